"""Pythia batches on a real Dask LocalCluster: the inline file, lost batches redone once, resume.

The batches are real (pythia8mc, MPI off, batches of 40 events). Marked ``pythia``:
skipped without the optional dependencies (see conftest.py); skipped without Dask.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
from contrastx.cli.generate import main
from contrastx.distributed import ExecutorOptions
from contrastx.events.generators import pythia
from contrastx.events.generators.pythia import (
    RecoSettings,
    committed_counts,
    generate_pythia,
    pythia_batch,
)
from contrastx.events.io import EventFile, read_events

pytestmark = pytest.mark.pythia

SEED = 7
BATCH = 40
COUNTS = {"W": 30, "Z": 50}  # about 2 + 3 batches
FAST = {"seed": SEED, "batch_size": BATCH, "mpi": False, "progress": False}
CLI = [
    "--generator",
    "pythia",
    "--n-background",
    "0",
    "--signals",
    ",".join(f"{k}={v}" for k, v in COUNTS.items()),
    "--batch-size",
    str(BATCH),
    "--no-mpi",
    "--seed",
    str(SEED),
    "--no-progress",
]


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def cluster(local_dask):
    return local_dask


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The file of the inline pool (``workers=1``)."""
    path = tmp_path_factory.mktemp("inline") / "ref.h5"
    return read_events(generate_pythia(path, COUNTS, workers=1, **FAST))


def _dask(cluster, **kw) -> ExecutorOptions:
    """Options that connect to the test cluster (its client is not closed by the run)."""
    return ExecutorOptions(executor="dask", scheduler=cluster[0].scheduler_address, **kw)


def _same_file(path, reference) -> None:
    """Events, labels and metadata bitwise those of ``reference`` (CPU times aside)."""
    ev = read_events(path)
    np.testing.assert_array_equal(ev.particles, reference.particles)
    np.testing.assert_array_equal(ev.labels, reference.labels)
    mine, ref = dict(ev.metadata), dict(reference.metadata)
    for md in (mine, ref):
        md.pop("command", None)
        md["progress"] = {
            p: {k: v for k, v in entry.items() if k != "cpu_seconds"}
            for p, entry in md["progress"].items()
        }
    assert mine == ref


class Spy:
    """Records the batches the Dask pool submits, the commits, and the pools' counters."""

    def __init__(self, monkeypatch, on_commit=None) -> None:
        self.submitted: list[tuple[str, int]] = []
        self.commits: list[tuple[str, int]] = []
        self.resubmitted: list[int] = []
        submit, close = pythia._DaskPool.submit, pythia._DaskPool.close
        commit = pythia._commit_batch

        def spy_submit(pool, key, task):
            self.submitted.append(key)
            return submit(pool, key, task)

        def spy_close(pool):
            self.resubmitted.append(pool.resubmitted)
            return close(pool)

        def spy_commit(writer, plan, out, process, res, extra):
            n = commit(writer, plan, out, process, res, extra)
            self.commits.append((process, res.batch))
            if on_commit is not None:
                on_commit(len(self.commits))
            return n

        monkeypatch.setattr(pythia._DaskPool, "submit", spy_submit)
        monkeypatch.setattr(pythia._DaskPool, "close", spy_close)
        monkeypatch.setattr(pythia, "_commit_batch", spy_commit)

    def assert_each_batch_committed_once_in_order(self) -> None:
        for p in COUNTS:
            batches = [b for q, b in self.commits if q == p]
            assert batches == list(range(batches[0], batches[0] + len(batches))), self.commits


# ---------------------------------------------------------------- same file
def test_dask_pool_writes_the_inline_file(tmp_path, cluster, reference, monkeypatch):
    spy = Spy(monkeypatch)
    path = generate_pythia(tmp_path / "d.h5", COUNTS, executor=_dask(cluster), **FAST)
    _same_file(path, reference)
    assert len(spy.submitted) >= len(spy.commits) > 2  # every batch ran on the cluster
    assert spy.resubmitted == [0]
    spy.assert_each_batch_committed_once_in_order()


def test_cli_dask_executor_writes_the_inline_file(tmp_path, cluster, reference, monkeypatch):
    spy = Spy(monkeypatch)
    out = tmp_path / "cli.h5"
    args = ["--out", str(out), *CLI, "--executor", "dask"]
    assert main([*args, "--scheduler", cluster[0].scheduler_address]) == 0
    _same_file(out, reference)
    assert spy.submitted and spy.resubmitted == [0]
    assert "--executor dask" in read_events(out).metadata["command"]


# ---------------------------------------------------------------- lost workers
def test_batch_lost_to_a_restarted_cluster_is_redone_once(cluster):
    """A finished batch whose result is lost (restart) runs again; with no retries left
    the pool fails with a message naming the batch."""
    settings = (*pythia.common_settings(mpi=False), *pythia.get_process("Z").settings)
    expected = pythia_batch("Z", 1, seed=SEED, n_events=BATCH, mpi=False)
    client = cluster[1]

    pool = pythia._DaskPool(_dask(cluster, retries=1))
    try:
        task = pythia._BatchTask("Z", 1, settings, SEED, BATCH, RecoSettings())
        pool.submit(("Z", 1), task)
        pool._futures[("Z", 1)].result()  # finished, its result held by a worker
        client.restart()
        res = pool.result(("Z", 1))
        assert pool.resubmitted == 1
        np.testing.assert_array_equal(res.particles, expected.particles)
    finally:
        pool.close()

    pool = pythia._DaskPool(_dask(cluster, retries=0))
    try:
        pool.submit(("Z", 1), task)
        pool._futures[("Z", 1)].result()
        client.restart()
        with pytest.raises(RuntimeError, match=r"batch 1 of 'Z' was lost with its Dask worker"):
            pool.result(("Z", 1))
    finally:
        pool.close()


def test_a_failing_batch_is_raised_not_retried(cluster):
    pool = pythia._DaskPool(_dask(cluster))
    try:
        task = pythia._BatchTask("Z", 0, ("Nonsense:key = 1",), SEED, BATCH, RecoSettings())
        pool.submit(("Z", 0), task)
        with pytest.raises(ValueError, match="rejected the setting 'Nonsense:key = 1'"):
            pool.result(("Z", 0))
        assert pool.resubmitted == 0
    finally:
        pool.close()


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_run_survives_a_lost_worker(how, tmp_path, cluster, reference, monkeypatch):
    """The cluster is restarted, or a worker process killed, after the first commit:
    the lost batches run again, each is committed once, the file is the inline one."""
    client = cluster[1]
    killed = []

    def lose_worker(n_commits: int) -> None:
        if n_commits != 1:
            return
        if how == "restart":
            client.restart()
        else:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    spy = Spy(monkeypatch, lose_worker)
    path = generate_pythia(tmp_path / f"{how}.h5", COUNTS, executor=_dask(cluster), **FAST)
    _same_file(path, reference)
    spy.assert_each_batch_committed_once_in_order()
    if how == "restart":  # every future was cancelled: those still needed were resubmitted
        assert spy.resubmitted[0] >= 1
    client.wait_for_workers(2, timeout=60)
    if how == "kill":  # Dask reran the batches of the killed worker on the others
        assert len(killed) == 1 and killed[0] not in client.run(os.getpid).values()


# ---------------------------------------------------------------- resume
def test_interrupted_dask_run_resumes_only_missing_batches(
    tmp_path, cluster, reference, monkeypatch
):
    path = tmp_path / "resumed.h5"

    def interrupt(n_commits: int) -> None:
        if n_commits == 3:
            raise KeyboardInterrupt

    Spy(monkeypatch, interrupt)
    with pytest.raises(KeyboardInterrupt):
        generate_pythia(path, COUNTS, executor=_dask(cluster), **FAST)
    kept = committed_counts(path)
    assert 0 < sum(kept.values()) < sum(COUNTS.values())
    with EventFile(path) as f:
        first = {p: e["batch"] for p, e in f.metadata["progress"].items()}
    monkeypatch.undo()

    spy = Spy(monkeypatch)
    generate_pythia(path, COUNTS, executor=_dask(cluster), **FAST)
    _same_file(path, reference)
    assert spy.submitted
    assert all(b >= first[p] for p, b in spy.submitted), (first, spy.submitted)
    assert all(b >= first[p] for p, b in spy.commits)
    done = [p for p in COUNTS if kept[p] == COUNTS[p]]
    assert not any(p in done for p, _ in spy.submitted)


def test_inline_run_resumes_on_dask(tmp_path, cluster, reference, monkeypatch):
    path = tmp_path / "mixed.h5"
    generate_pythia(path, {"W": COUNTS["W"]}, workers=1, **FAST)
    spy = Spy(monkeypatch)
    generate_pythia(path, COUNTS, executor=_dask(cluster), **FAST)
    _same_file(path, reference)
    assert spy.submitted and all(p == "Z" for p, _ in spy.submitted)


# ---------------------------------------------------------------- choice of pool
def test_workers_and_executor_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="give workers= or executor=, not both"):
        generate_pythia(tmp_path / "x.h5", COUNTS, workers=2, executor=ExecutorOptions(), **FAST)
    with pytest.raises(TypeError, match="executor must be an ExecutorOptions; got dict"):
        generate_pythia(tmp_path / "x.h5", COUNTS, executor={"executor": "dask"}, **FAST)
    assert not (tmp_path / "x.h5").exists()


def test_missing_dask_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    out = tmp_path / "nodask.h5"
    assert main(["--out", str(out), *CLI, "--executor", "dask"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contrastx-generate: error: ")
    assert "contrastx[dask]" in err[0]
    assert not out.exists()
