"""The black-box search's fits and null toys on the executor: the inline run's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import contrastx.distributed as cxd
import numpy as np
import pytest
import torch
from contrastx.distributed import ExecutorOptions
from contrastx.nplm.blackbox import (
    BlackBoxConfig,
    read_event_scores,
    run_black_box,
    write_fast_black_box,
)

THREADS = 1  # the workers' torch threads; the inline runs use the same (bitwise comparable)
CFG = BlackBoxConfig(
    n_splits=3, n_resample=3, n_ref=1000, M=30, n_null=7, seed=2, shuffle=True
)  # fmt: skip
ARRAYS = ("t", "z", "z_mean", "z_std", "t_null", "scores", "scores_std", "scores_best_run")


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    """(black box, reference pool): background with a narrow excess."""
    rng = np.random.default_rng(21)
    pool = rng.normal(size=(3500, 3))
    bb = rng.normal(size=(1200, 3))
    bb[:80] = rng.normal(1.5, 0.3, size=(80, 3))
    return bb, pool


def _inline(bb: np.ndarray, pool: np.ndarray, **kw):
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return run_black_box(bb, pool, CFG, **kw)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inline(sample):
    return _inline(*sample)


def _assert_identical(res, ref) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)
    assert (res.best_split, res.best_run, res.dof, res.sigma) == (
        ref.best_split,
        ref.best_run,
        ref.dof,
        ref.sigma,
    )
    np.testing.assert_array_equal(res.global_z_runs, ref.global_z_runs)
    assert res.global_z == ref.global_z
    assert res.config == ref.config  # the executor is not part of the result's settings


def test_inline_records_where_it_ran(inline) -> None:
    assert inline.timing["executor"] == {"executor": "inline", "tasks": 1 + 9, "workers": 1}
    assert "executor" not in inline.config and "workers" not in inline.config
    # 7 null toys in shard_size (25) blocks: one block of all of them.
    assert inline.t_null.size == 7 and np.unique(inline.t_null).size == 7


def test_results_put_together_in_run_order_whatever_order_tasks_finish(
    sample, inline, monkeypatch
) -> None:
    real = cxd.map_tasks

    def reversed_order(opts, fn, tasks):
        return reversed(list(real(opts, fn, tasks)))

    monkeypatch.setattr(cxd, "map_tasks", reversed_order)
    said: list[str] = []
    res = _inline(*sample, executor=ExecutorOptions(shard_size=2), progress=said.append)
    _assert_identical(res, inline)
    assert res.timing["executor"]["tasks"] == 4 + 9  # null toys in blocks of 2
    # Progress comes as the splits finish: here the last split first, the null toys last.
    assert [s.split(":")[0] for s in said] == ["split 2", "split 1", "split 0", "null"]


def test_processes_identical(sample, inline) -> None:
    ex = ExecutorOptions(executor="processes", workers=2, worker_threads=THREADS, shard_size=3)
    res = run_black_box(*sample, CFG, executor=ex)
    _assert_identical(res, inline)
    assert res.timing["executor"]["executor"] == "processes"
    assert res.timing["executor"]["tasks"] == 3 + 9


def test_a_failing_task_surfaces_its_error(sample) -> None:
    ex = ExecutorOptions(executor="processes", workers=2, worker_threads=THREADS)
    # The device is first used by the fits and toys, on the workers.
    with pytest.raises(ValueError, match="unknown device 'bogus'"):
        run_black_box(*sample, CFG, device="bogus", executor=ex)
    with pytest.raises(TypeError, match="executor must be an ExecutorOptions"):
        run_black_box(*sample, CFG, executor={"executor": "processes"})


# ------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def dask_cluster(local_dask):
    return local_dask[0]


def test_dask_local_cluster_identical(sample, inline, dask_cluster) -> None:
    ex = ExecutorOptions(
        executor="dask", scheduler=dask_cluster.scheduler_address, worker_threads=THREADS,
        shard_size=3,
    )  # fmt: skip
    res = run_black_box(*sample, CFG, executor=ex)
    _assert_identical(res, inline)
    assert res.timing["executor"] == {"executor": "dask", "tasks": 3 + 9, "workers": 2}
    with pytest.raises(ValueError, match="unknown device 'bogus'"):
        run_black_box(*sample, CFG, device="bogus", executor=ex)


# ------------------------------------------------------------------ command line
def _cli(tmp_path: Path, bb: Path, out: str, *extra: str) -> dict:
    from contrastx.cli.blackbox import main

    rc = main(
        [
            "--black-box", str(bb), "--truth", str(tmp_path / "truth.h5"),
            "--model", "leading_pt", "--n-splits", "2", "--n-resample", "2", "--n-ref", "800",
            "--M", "30", "--n-null", "5", "--out", str(tmp_path / out), "--map-method", "pca",
            "--top-k", "5", *extra,
        ]
    )  # fmt: skip
    assert rc == 0
    return json.loads((tmp_path / out / "blackbox.json").read_text())


def _comparable(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in ("figures", "event_scores")}
    out["result"] = {k: v for k, v in summary["result"].items() if k != "timing"}
    return out


def test_cli_processes_writes_the_inline_summary(tmp_path: Path, capsys) -> None:
    bb = tmp_path / "bb.h5"
    write_fast_black_box(
        bb, tmp_path / "truth.h5", n_background=1200, signal="Ato4l", fraction=0.05, seed=3
    )
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        inline = _cli(tmp_path, bb, "inline")
    finally:
        torch.set_num_threads(before)
    procs = _cli(tmp_path, bb, "procs", "--executor", "processes", "--workers", "2")
    assert _comparable(procs) == _comparable(inline)
    assert procs["result"]["timing"]["executor"]["executor"] == "processes"
    assert inline["result"]["timing"]["executor"]["executor"] == "inline"
    a = read_event_scores(tmp_path / "inline" / "event_scores.h5")
    b = read_event_scores(tmp_path / "procs" / "event_scores.h5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # Executor settings are checked before anything runs: one line, exit 2.
    from contrastx.cli.blackbox import build_parser, main

    capsys.readouterr()
    rc = main(["--black-box", str(bb), "--executor", "processes", "--scheduler", "tcp://h:1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("contrastx-blackbox: error:") and "scheduler" in err
    with pytest.raises(SystemExit):  # --retries is not a flag here: nothing is resubmitted
        build_parser().parse_args(["--black-box", str(bb), "--retries", "2"])


def test_cli_without_dask_names_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:
    import sys

    from contrastx.cli.blackbox import main

    bb = tmp_path / "bb.h5"
    write_fast_black_box(
        bb, tmp_path / "truth.h5", n_background=600, signal="Ato4l", fraction=0.05, seed=3
    )
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    rc = main(
        [
            "--black-box", str(bb), "--model", "leading_pt", "--n-splits", "2",
            "--n-resample", "1", "--n-ref", "500", "--M", "20", "--n-null", "2",
            "--out", str(tmp_path / "out"), "--executor", "dask",
        ]
    )  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "contrastx-blackbox: error:" in err and "contrastx[dask]" in err
