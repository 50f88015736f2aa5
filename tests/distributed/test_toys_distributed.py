"""Toys in shards on local processes and a real Dask LocalCluster: the inline run's t."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys

import numpy as np
import pytest
import torch
from contrastx.distributed import ExecutorOptions, Shard, ToyProblem, plan_shards, run_toy_shards
from contrastx.nplm.options import ToyOptions
from contrastx.nplm.results import ToyResultsFile, read_toy_results
from contrastx.nplm.toys import NULL, SIGNAL, ToyEngine
from contrastx.options import OptionsError

N_TOYS = 12
THREADS = 1


@pytest.fixture(scope="module")
def problem() -> ToyProblem:
    rng = np.random.default_rng(11)
    bkg = rng.normal(size=(5000, 2))
    sig = rng.normal(1.5, 0.3, size=(400, 2))
    cfg = ToyOptions(n_ref=2000, n_bkg=200, M=40, n_sig=20, seed=5)
    return ToyProblem(bkg, sig, cfg)


@pytest.fixture(scope="module")
def inline_t(problem: ToyProblem) -> dict[int, np.ndarray]:
    """t of toys 0..N_TOYS-1 per hypothesis from one ToyEngine in this process."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)  # the workers' thread count: bitwise comparable
    try:
        eng = ToyEngine(problem.background, problem.signal, config=problem.config)
        return {
            h: np.concatenate([b.t for b in eng.run(range(N_TOYS), hypothesis=h)])
            for h in (NULL, SIGNAL)
        }
    finally:
        torch.set_num_threads(before)


class Collect:
    """A commit target that refuses a toy committed twice."""

    def __init__(self) -> None:
        self.t: dict[int, dict[int, float]] = {NULL: {}, SIGNAL: {}}

    def __call__(self, blk) -> None:
        for i, v in zip(blk.toy_index.tolist(), blk.t.tolist()):
            assert i not in self.t[blk.hypothesis], f"toy {i} committed twice"
            self.t[blk.hypothesis][i] = v

    def array(self, h: int) -> np.ndarray:
        assert sorted(self.t[h]) == list(range(N_TOYS)), "toys lost"
        return np.array([self.t[h][i] for i in range(N_TOYS)])


def _todo() -> dict[int, list[int]]:
    return {NULL: list(range(N_TOYS)), SIGNAL: list(range(N_TOYS))}


def _assert_identical(out: Collect, inline_t: dict[int, np.ndarray]) -> None:
    for h in (NULL, SIGNAL):
        np.testing.assert_array_equal(out.array(h), inline_t[h])


# ------------------------------------------------------------------ planning, options
def test_plan_shards_cover_each_toy_once() -> None:
    shards = plan_shards({1: [7, 3, 5], 0: range(5)}, 2)
    assert shards == [
        Shard(0, (0, 1)),
        Shard(0, (2, 3)),
        Shard(0, (4,)),
        Shard(1, (3, 5)),
        Shard(1, (7,)),
    ]
    with pytest.raises(ValueError, match="repeated"):
        plan_shards({0: [1, 1]}, 2)
    with pytest.raises(ValueError, match="shard_size"):
        plan_shards({0: [1]}, 0)


def test_executor_options_errors() -> None:
    with pytest.raises(OptionsError, match=r"executor\.scheduler needs executor 'dask'"):
        ExecutorOptions(scheduler="tcp://h:8786")
    with pytest.raises(OptionsError, match="tcp://host:8786"):
        ExecutorOptions(executor="dask", scheduler="h:8786")
    with pytest.raises(OptionsError, match=r"executor\.cluster 'slurm' needs executor 'dask'"):
        ExecutorOptions(cluster="slurm")
    with pytest.raises(OptionsError, match="exclude each other"):
        ExecutorOptions(executor="dask", scheduler="tcp://h:1", cluster="slurm")
    with pytest.raises(OptionsError, match=r"executor\.cores \(3\) must be a multiple"):
        ExecutorOptions(executor="dask", cluster="slurm", cores=3, worker_threads=2)
    with pytest.raises(OptionsError, match=r"executor\.executor"):
        ExecutorOptions(executor="mpi")


def test_cli_flags_build_the_options() -> None:
    from contrastx.cli.toys import build_parser, executor_options

    args = build_parser().parse_args(
        ["--executor", "dask", "--cluster", "slurm", "--jobs", "20", "--cores", "8"]
    )
    ex = executor_options(args)
    assert (ex.executor, ex.cluster, ex.jobs, ex.cores) == ("dask", "slurm", 20, 8)
    args = build_parser().parse_args(["--executor", "dask", "--scheduler", "tcp://h:8786"])
    assert executor_options(args).scheduler == "tcp://h:8786"


def test_inline_executor_matches_the_engine(problem, inline_t) -> None:
    out = Collect()
    stats = run_toy_shards(problem, _todo(), ExecutorOptions(shard_size=5), out)
    _assert_identical(out, inline_t)
    assert stats["shards"] == 6 and stats["lost"] == 0


# ------------------------------------------------------------------ local processes
def test_processes_identical_after_a_killed_worker(problem, inline_t) -> None:
    """A worker process killed after the first shard: its shards are redone, none twice."""
    out = Collect()
    killed = []

    def kill_one(blk) -> None:
        if not killed:
            child = multiprocessing.active_children()[0]
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)

    opts = ExecutorOptions(executor="processes", workers=2, shard_size=3, worker_threads=THREADS)
    stats = run_toy_shards(problem, _todo(), opts, out, on_shard=kill_one)
    _assert_identical(out, inline_t)
    assert killed and stats["lost"] >= 1 and stats["rounds"] >= 2


def test_cli_processes_resumes_an_inline_file(tmp_path, monkeypatch) -> None:
    """contrastx-toys --executor processes finishes a file an inline run began: the toys
    of the full inline run, each once."""
    from contrastx.cli.toys import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    common = ["--n-ref", "2000", "--n-bkg", "150", "--M", "30", "--no-plot", "--no-progress"]
    try:
        assert main([*common, "--n", "10", "--out", str(tmp_path / "full.h5")]) == 0
        part = str(tmp_path / "part.h5")
        assert main([*common, "--n", "4", "--out", part]) == 0
        rc = main(
            [
                *common,
                "--n",
                "10",
                "--out",
                part,
                "--executor",
                "processes",
                "--workers",
                "2",
                "--shard-size",
                "3",
            ]
        )
        assert rc == 0
    finally:
        torch.set_num_threads(before)
    full, part = read_toy_results(tmp_path / "full.h5"), read_toy_results(part)
    for g in ("null", "signal"):
        np.testing.assert_array_equal(part[g]["toy_index"], np.arange(10))
        np.testing.assert_array_equal(part[g]["t"], full[g]["t"])
    assert part["config"]["executor"]["executor"] == "processes"
    assert part["config"]["strategy_used"] == full["config"]["strategy_used"]


# ------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def dask_client(local_dask):
    return local_dask[1]


def _dask_opts(**kw) -> ExecutorOptions:
    return ExecutorOptions(executor="dask", shard_size=3, worker_threads=THREADS, **kw)


def test_dask_local_cluster_identical(problem, inline_t, dask_client) -> None:
    out = Collect()
    stats = run_toy_shards(problem, _todo(), _dask_opts(), out, client=dask_client)
    _assert_identical(out, inline_t)
    assert stats["lost"] == 0 and len(stats["workers"]) == 2


def test_dask_restart_mid_run(problem, inline_t, dask_client) -> None:
    out = Collect()
    done = []

    def restart(blk) -> None:
        done.append(blk)
        if len(done) == 1:
            dask_client.restart()

    opts = _dask_opts()
    stats = run_toy_shards(problem, _todo(), opts, out, client=dask_client, on_shard=restart)
    _assert_identical(out, inline_t)
    assert stats["rounds"] >= 2 and stats["lost"] >= 1


def test_dask_worker_process_killed(problem, inline_t, dask_client) -> None:
    out = Collect()
    pids = list(dask_client.run(os.getpid).values())
    killed = []

    def kill(blk) -> None:
        if not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    run_toy_shards(problem, _todo(), _dask_opts(), out, client=dask_client, on_shard=kill)
    _assert_identical(out, inline_t)
    assert killed


def test_dask_killed_client_resumes_file(problem, inline_t, dask_client, tmp_path) -> None:
    """The client dies after two shards; a rerun on the file redoes only the rest."""
    path = tmp_path / "toys.h5"
    key = {"seed": problem.config.seed}

    class Killed(Exception):
        pass

    with ToyResultsFile(path, key, key) as res:

        def die(blk) -> None:
            if sum(res.done(h).size for h in (NULL, SIGNAL)) >= 6:
                raise Killed

        with pytest.raises(Killed):
            run_toy_shards(
                problem, _todo(), _dask_opts(), res.append, client=dask_client, on_shard=die
            )
    with ToyResultsFile(path, key, key) as res:
        todo = {h: sorted(set(range(N_TOYS)) - set(res.done(h).tolist())) for h in (0, 1)}
        assert sum(map(len, todo.values())) == 2 * N_TOYS - 6
        run_toy_shards(problem, todo, _dask_opts(), res.append, client=dask_client)
    got = read_toy_results(path)
    for h, g in ((NULL, "null"), (SIGNAL, "signal")):
        np.testing.assert_array_equal(got[g]["toy_index"], np.arange(N_TOYS))
        np.testing.assert_array_equal(got[g]["t"], inline_t[h])


# ------------------------------------------------------------------ dask-jobqueue scripts
def test_slurm_job_script() -> None:
    pytest.importorskip("dask_jobqueue")
    from contrastx.distributed import job_script

    opts = ExecutorOptions(
        executor="dask",
        cluster="slurm",
        cores=8,
        worker_threads=2,
        memory="16GiB",
        walltime="02:30:00",
        queue="short",
        account="atlas",
        jobs=20,
    )
    text = job_script(opts, scheduler="tcp://10.0.0.1:8786")
    for line in (
        "#SBATCH -p short",
        "#SBATCH -A atlas",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH -t 02:30:00",
        "export OMP_NUM_THREADS=2",
        "tcp://10.0.0.1:8786",
        "--nworkers 4",
        "--nthreads 2",
    ):
        assert line in text, line
    assert "#SBATCH --mem=" in text


def test_htcondor_job_script() -> None:
    pytest.importorskip("dask_jobqueue")
    from contrastx.distributed import job_script

    opts = ExecutorOptions(
        executor="dask", cluster="htcondor", cores=4, memory="8GiB", disk="2GiB", walltime="1:00:00"
    )
    text = job_script(opts, scheduler="tcp://10.0.0.1:8786")
    for line in (
        "MY.DaskWorkerCores = 4",
        f"MY.DaskWorkerMemory = {8 * 2**30}",
        f"MY.DaskWorkerDisk = {2 * 2**30}",
        "+MaxRuntime = 3600",
        "export OMP_NUM_THREADS=1",
        "tcp://10.0.0.1:8786",
        "--nthreads 1",
        "--nworkers 4",
    ):
        assert line in text, line
    with pytest.raises(ValueError, match="HH:MM:SS"):
        job_script(ExecutorOptions(executor="dask", cluster="htcondor", walltime="2h"), "tcp://h:1")


# ------------------------------------------------------------------ without Dask
def test_missing_dask_names_the_extra(problem, monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ImportError, match=r"contrastx\[dask\]"):
        run_toy_shards(problem, _todo(), ExecutorOptions(executor="dask"), Collect())
    from contrastx.cli.toys import main

    common = ["--n", "2", "--n-ref", "2000", "--n-bkg", "150", "--M", "30", "--no-plot"]
    rc = main([*common, "--executor", "dask", "--out", str(tmp_path / "t.h5"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "contrastx-toys: error:" in err and "contrastx[dask]" in err
