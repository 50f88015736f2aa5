"""Interrupting Pythia generation: workers end with the parent, the file resumes exactly.

A small ``contrastx-generate --generator pythia`` run (MPI off, two workers) is
stopped by SIGINT (to its process group, as a terminal's Ctrl-C), SIGTERM or
SIGKILL once its first batch is committed. No worker may outlive it, Ctrl-C and
SIGTERM print one line, and re-running the same command completes the file to
the events of an uninterrupted run.

Marked ``pythia``: skipped without the optional dependencies (see conftest.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from contrastx.cli.generate import main
from contrastx.events.generators import pythia
from contrastx.events.generators.pythia import (
    RecoSettings,
    committed_counts,
    generate_pythia,
)
from contrastx.events.io import read_events

pytestmark = [
    pytest.mark.pythia,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"),
        reason="reads /proc; workers die with the parent on Linux",
    ),
]

N_EVENTS = 400
ARGS = [
    "--generator",
    "pythia",
    "--n-background",
    "0",
    "--signals",
    f"Z={N_EVENTS}",
    "--batch-size",
    "50",  # 8 batches: after the first is committed, 7 remain (a loaded machine may
    # deschedule the test for a while before it sends the signal)
    "--workers",
    "2",
    "--no-mpi",
    "--seed",
    "7",
    "--no-progress",
]


# ---------------------------------------------------------------- helpers
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] == pid:
                out.append(int(entry))
    return out


def _alive(pids: list[int]) -> list[int]:
    """The processes among ``pids`` that still exist and are not zombies."""
    return [p for p in pids if (st := _stat(p)) is not None and st[0] != "Z"]


def _committed(path: Path) -> int:
    """Events committed to a file another process is writing (0 if unreadable yet)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            progress = json.loads(f.attrs["metadata"]).get("progress", {})
    except Exception:  # not created yet, or caught mid-write
        return 0
    return sum(int(v["kept"]) for v in progress.values())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _compare(path: Path, reference) -> None:
    ev = read_events(path)
    assert np.array_equal(ev.particles, reference.particles)
    assert np.array_equal(ev.labels, reference.labels)
    for key in ("requested_counts", "n_kept", "n_generated", "filter_efficiency"):
        assert ev.metadata[key] == reference.metadata[key], key
    for p, entry in reference.metadata["progress"].items():
        mine = dict(ev.metadata["progress"][p])
        assert mine.pop("cpu_seconds") > 0
        assert mine == {k: v for k, v in entry.items() if k != "cpu_seconds"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "ref.h5"
    assert main(["--out", str(out), *ARGS]) == 0
    return read_events(out)


# ---------------------------------------------------------------- signals
def _stop_run(path: Path, sig: str, ready) -> tuple[int, str, list[int], list[str]]:
    """Start the command, send ``sig`` once ``ready()``; return its exit status, its
    output, and its child processes (pids and command lines) just before the signal."""
    command = [sys.executable, "-m", "contrastx.cli.generate", "--out", str(path), *ARGS]

    def child_setup() -> None:  # own process group; SIGINT as at a terminal, even if the
        os.setsid()  # test runner ignores it (a background job)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    logs = path.parent / "output"
    with open(logs, "w+") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, preexec_fn=child_setup)
        try:
            deadline = time.monotonic() + 120
            while not ready():
                assert proc.poll() is None, "the run ended before the signal was due"
                assert time.monotonic() < deadline, "the run did not get there in 120 s"
                time.sleep(0.01)
            children = _children(proc.pid)
            commands = [_cmdline(c) for c in children]
            if sig == "SIGINT":
                os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            else:
                os.kill(proc.pid, getattr(signal, sig))
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        return rc, log.read(), children, commands


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_stopped_run_leaves_no_process_and_resumes_exactly(sig, tmp_path, reference):
    path = tmp_path / "z.h5"
    rc, output, children, commands = _stop_run(path, sig, lambda: _committed(path) > 0)

    # the workers, and nothing else (no multiprocessing resource tracker), end with it
    assert len(children) == 2
    assert all("_worker_main" in c for c in commands), commands
    deadline = time.monotonic() + 5
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(children) == []

    committed = sum(committed_counts(path).values())
    assert 0 < committed < N_EVENTS, "the run finished before the signal: nothing to resume"
    if sig == "SIGKILL":
        assert rc == -signal.SIGKILL
    else:
        assert rc == 128 + getattr(signal, sig)
        assert "Traceback" not in output
        lines = output.strip().splitlines()
        assert len(lines) == 1, output
        word = "interrupted" if sig == "SIGINT" else "terminated"
        assert lines[0] == (
            f"contrastx-generate: {word}; {committed} events written to {path}, "
            "re-run the same command to resume"
        )

    assert main(["--out", str(path), *ARGS]) == 0  # the same command again
    _compare(path, reference)


def test_killed_as_soon_as_the_file_appears_resumes(tmp_path, reference):
    # HDF5 keeps a new file's structure in memory until a flush: a file killed before
    # its first batch was unreadable, and the same command then failed on it forever
    path = tmp_path / "z.h5"
    rc, _, _, _ = _stop_run(path, "SIGKILL", path.exists)
    assert rc == -signal.SIGKILL
    assert sum(committed_counts(path).values()) == 0
    assert main(["--out", str(path), *ARGS]) == 0
    _compare(path, reference)


# ---------------------------------------------------------------- the worker pool
def _task(process: str, batch: int, settings: tuple[str, ...], n_events: int = 30):
    return pythia._BatchTask(process, batch, settings, 3, n_events, RecoSettings())


def test_worker_errors_reach_the_parent():
    pool = pythia._ProcessPool(1)
    try:
        pool.submit(("Z", 0), _task("Z", 0, ("Nonsense:key = 1",)))
        with pytest.raises(ValueError, match="rejected the setting 'Nonsense:key = 1'"):
            pool.result(("Z", 0))
        # the worker survives a failed batch and runs the next one
        settings = (*pythia.common_settings(mpi=False), *pythia.get_process("Z").settings)
        pool.submit(("Z", 1), _task("Z", 1, settings))
        res = pool.result(("Z", 1))
        expected = pythia.pythia_batch("Z", 1, seed=3, n_events=30, mpi=False)
        assert np.array_equal(res.particles, expected.particles)
    finally:
        pool.close()


def test_dead_worker_is_reported():
    pool = pythia._ProcessPool(1)
    try:
        settings = (*pythia.common_settings(mpi=False), *pythia.get_process("Z").settings)
        pool.submit(("Z", 0), _task("Z", 0, settings, n_events=100_000))
        (worker,) = pool._workers
        os.kill(worker.process.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"worker process .* ended with signal SIGKILL"):
            pool.result(("Z", 0))
    finally:
        pool.close()
    assert worker.process.poll() is not None


# ---------------------------------------------------------------- progress
def test_progress_is_one_log_line_per_batch_with_eta(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(pythia, "stderr_is_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="contrastx.events.generators.pythia")
    path = generate_pythia(
        tmp_path / "p.h5", {"Z": 60}, seed=2, batch_size=50, mpi=False, workers=1
    )
    batches = [r.getMessage() for r in caplog.records if " batch " in r.getMessage()]
    progress = read_events(path).metadata["progress"]["Z"]
    assert len(batches) == progress["batch"] + (progress["skip"] > 0) >= 2
    assert all(re.search(r"Z batch \d+: \d+/60 Z events, .* ETA ", m) for m in batches)
    assert batches[-1].startswith("p.h5: Z batch") and "60/60 Z events" in batches[-1]
