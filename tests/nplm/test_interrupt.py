"""Interrupted toy runs resume to exactly the results of an uninterrupted run.

* a toy's ``t`` does not depend on the other toys of its block (so neither on where a
  resumed run starts its blocks, nor on the timed block sizes);
* blocks are timed, the first one small, so progress is saved during long runs;
* ``contrastx-toys`` stopped by SIGINT, SIGTERM or SIGKILL at random (seeded) points,
  then rerun, gives t arrays equal to an uninterrupted run's; SIGINT and SIGTERM print one
  line, never a traceback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from contrastx.cli.toys import main
from contrastx.nplm.results import read_toy_results
from contrastx.nplm.toys import (
    FIRST_BLOCK,
    NULL,
    SIGNAL,
    ToyConfig,
    ToyEngine,
    next_block_size,
)


@pytest.fixture(scope="module")
def pools():
    rng = np.random.default_rng(5)
    return rng.normal(size=(8000, 3)), rng.normal(loc=1.2, scale=0.4, size=(1500, 3))


def _t_by_toy(blocks) -> dict[int, float]:
    return {int(i): float(t) for b in blocks for i, t in zip(b.toy_index, b.t, strict=True)}


@pytest.mark.parametrize(
    ("strategy", "solver"), [("pool", "cg"), ("stream", "cg"), ("stream", "exact")]
)
def test_t_does_not_depend_on_the_block(pools, strategy, solver):
    """Bitwise the same t whichever toys share a block (before: ~1e-8 relative)."""
    bkg, sig = pools
    ids = list(range(9))
    for hyp in (NULL, SIGNAL):
        t = []
        for max_block, order in ((64, ids), (1, ids[::-1]), (2, ids), (4, ids[::-1])):
            cfg = ToyConfig(
                n_ref=2000,
                n_bkg=200,
                n_sig=25,
                M=40,
                seed=4,
                strategy=strategy,
                solver=solver,
                max_block=max_block,
            )
            blocks = list(ToyEngine(bkg, sig, config=cfg).run(order, hypothesis=hyp))
            assert max(len(b) for b in blocks) <= max_block
            t.append(_t_by_toy(blocks))
        for other in t[1:]:
            assert other == t[0], (strategy, solver, hyp)


def test_block_work_does_not_depend_on_the_thread_count():
    """Same setup, blocks run with 1 and 2 threads: bitwise the same t ("pool", CPU).

    (Before: up to ~1e-6 relative here; the setup's BLAS/LAPACK calls still depend on the
    thread count, see the nplm.toys notes.)
    """
    rng = np.random.default_rng(5)
    bkg, sig = rng.normal(size=(12000, 3)), rng.normal(loc=1.2, scale=0.4, size=(1500, 3))
    eng = ToyEngine(bkg, sig, config=ToyConfig(n_ref=3000, n_bkg=300, n_sig=30, M=200, seed=4))
    eng.prepare()
    assert eng.strategy_ == "pool"
    old = torch.get_num_threads()
    t = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            t[threads] = _t_by_toy(eng.run(range(40), hypothesis=SIGNAL))
    finally:
        torch.set_num_threads(old)
    assert t[1] == t[2]


def test_blocks_are_timed(pools):
    bkg, _ = pools
    eng = ToyEngine(bkg, config=ToyConfig(n_ref=2000, n_bkg=200, M=30, seed=1))
    assert eng.block_size() > FIRST_BLOCK
    sizes = [len(b) for b in eng.run(range(40))]
    assert sizes[0] == FIRST_BLOCK and sum(sizes) == 40
    # A target far below the time of one toy: one toy per block after the first.
    # A later run starts from the time per toy measured before: one toy per block at once.
    assert [len(b) for b in eng.run(range(5), block_seconds=1e-9)] == [1, 1, 1, 1, 1]
    fresh = ToyEngine(bkg, config=ToyConfig(n_ref=2000, n_bkg=200, M=30, seed=1))
    n = FIRST_BLOCK + 4
    assert [len(b) for b in fresh.run(range(n), block_seconds=1e-9)] == [FIRST_BLOCK, 1, 1, 1, 1]
    # ... and at a generous target, as many toys as the measured rate allows.
    assert [len(b) for b in fresh.run(range(40), block_seconds=1e9)] == [40]
    assert [len(b) for b in eng.run(range(8), block_seconds=None)] == [8]
    with pytest.raises(ValueError, match="block_seconds must be finite and > 0"):
        next(eng.run(range(2), block_seconds=0))
    with pytest.raises(TypeError, match="block_seconds must be a number or None"):
        next(eng.run(range(2), block_seconds="30"))
    assert next_block_size(2.0, 4, 30.0, 256) == 60
    assert next_block_size(2.0, 40, 30.0, 256) == 256
    assert next_block_size(10.0, 100, 30.0, 256) == 256
    assert next_block_size(10.0, 10, 30.0, 256) == 30
    assert next_block_size(100.0, 2, 30.0, 256) == 1


def test_draw_leaves_no_state(pools):
    """Paper mode takes each toy's background indices from its own draw, not an attribute."""
    bkg, _ = pools
    cfg = ToyConfig(n_ref=1500, n_bkg=150, M=20, mode="paper", seed=2)
    eng = ToyEngine(bkg, config=cfg)
    eng.prepare()
    before = set(vars(eng))
    _, x, n_b, _ = eng.draw(NULL, 3)
    assert set(vars(eng)) == before and x.shape[0] == n_b
    t = _t_by_toy(eng.run([1, 0]))
    assert _t_by_toy(ToyEngine(bkg, config=cfg).run([0])) == {0: t[0]}


# ------------------------------------------------------------------ interruptions
N = 32
ARGS = [
    *("--n-ref", "3000", "--n-bkg", "300", "--M", "60", "--n", str(N)),
    *("--sig-fraction", "0.1", "--max-block", "2", "--seed", "3"),
    *("--no-progress", "--no-plot"),
]
MESSAGE = re.compile(
    r"contrastx-toys: interrupted \((?P<sig>SIGINT|SIGTERM)\)(; (?P<saved>\d+) of "
    + str(2 * N)
    + r" toys saved in \S+; rerun the same command to resume| before any toy ran; nothing saved)"
)


@pytest.fixture
def one_thread():
    """The subprocesses and the in-process runs use one thread: equal setups, and fast
    even on a busy machine (t depends on the thread count at the rounding level)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    torch.set_num_threads(old)


def _interrupted_run(out, env, sig, delay, from_start):
    """Start contrastx-toys, send ``sig`` ``delay`` s after the start or after the engine
    line (the toys start right after it); return (returncode, stderr)."""
    cmd = [sys.executable, "-m", "contrastx.cli.toys", *ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        if from_start:
            time.sleep(delay)
        else:
            for line in proc.stdout:
                if line.startswith("engine:"):
                    break
            time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(sig)
        _, err = proc.communicate()
    finally:
        watchdog.cancel()
    return proc.returncode, err


class _SignalInDel:
    """Sends SIGTERM to this process from ``__del__``, where Python cannot raise."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # the handler runs here, inside __del__
            pass


def test_signal_in_a_finaliser_still_stops_the_run(tmp_path, one_thread, capsys, monkeypatch):
    """A signal arriving while a finaliser runs is not lost and prints no traceback.

    Its exception cannot leave ``__del__`` (before: "Exception ignored ... Traceback" and
    the run went on to the end, exit 0); the run stops after the block instead.
    """
    from contrastx.nplm import results

    append = results.ToyResultsFile.append
    calls = []

    def append_then_signal(self, blk):
        append(self, blk)
        calls.append(len(blk))
        if len(calls) == 2:
            _SignalInDel()  # dropped at once: __del__ runs here

    monkeypatch.setattr(results.ToyResultsFile, "append", append_then_signal)
    out = tmp_path / "r.h5"
    assert main([*ARGS, "--out", str(out)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    m = MESSAGE.fullmatch(err.strip())
    assert m and m["sig"] == "SIGTERM" and int(m["saved"]) == sum(calls) == 4, err
    assert len(calls) == 2  # stopped after the block


def test_interrupted_runs_resume_to_the_same_results(tmp_path, one_thread, capsys):
    ref = tmp_path / "ref.h5"
    assert main([*ARGS, "--out", str(ref)]) == 0
    capsys.readouterr()
    want = read_toy_results(ref)
    toys_s = max(want["summary"]["timing"]["toys_s"], 0.05)
    rng = np.random.default_rng(2024)
    trials = [signal.SIGINT] * 4 + [signal.SIGTERM] * 3 + [signal.SIGKILL] * 3
    exits = []
    for k, sig in enumerate(trials):
        out = tmp_path / f"run{k}.h5"
        from_start = k == len(trials) - 1  # a kill anywhere, setup included
        delay = rng.uniform(0, 4.0 if from_start else 0.8 * toys_s)
        rc, err = _interrupted_run(out, one_thread, sig, delay, from_start)
        exits.append(rc)
        assert "Traceback" not in err, err
        if sig == signal.SIGKILL:
            assert rc in (-signal.SIGKILL, 0), (rc, err)
        elif rc != 0:
            assert rc == 128 + sig, (rc, err)
            m = MESSAGE.fullmatch(err.strip())
            assert m and m["sig"] == sig.name, err
        if out.exists():  # what was saved is right, before any resume
            got = read_toy_results(out)
            for name in ("null", "signal"):
                idx = got[name]["toy_index"]
                np.testing.assert_array_equal(got[name]["t"], want[name]["t"][idx])
        assert main([*ARGS, "--out", str(out)]) == 0, capsys.readouterr().err
        capsys.readouterr()
        got = read_toy_results(out)
        for name in ("null", "signal"):
            assert got[name]["toy_index"].tolist() == list(range(N))
            np.testing.assert_array_equal(got[name]["t"], want[name]["t"])
    # Most trials must really have been interrupted for the test to mean anything.
    assert sum(rc != 0 for rc in exits) >= 5, exits
