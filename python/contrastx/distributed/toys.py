"""NPLM toys split into shards and solved by local processes or a Dask cluster.

**Shards.** The toys still to run are cut, per hypothesis and in index order, into
shards of ``shard_size`` toy indices (:func:`plan_shards`). A toy's randomness depends
only on ``(seed, hypothesis, toy index)`` (:func:`contrastx.nplm.toys.toy_rng`) and, on
a CPU, its ``t`` is bitwise independent of the other toys solved with it, so any shard
plan, any number of workers and any order of completion give the same ``t`` as the
inline run, bitwise when every process uses the same thread count
(``worker_threads``; the inline run: ``OMP_NUM_THREADS``) on the same machine type and
libraries.

**What each worker recomputes.** A worker process receives the background and signal
pools once (the client ships them; Dask moves them to each worker once per round) and
builds the :class:`~contrastx.nplm.ToyEngine` once: the reference and centre draws,
sigma, the reference system (the ``K_MM`` factor and the reference's whitened Gram),
the preconditioner and, with the ``"pool"`` strategy, the whitened data pool. The
engine is kept in a module-level cache keyed by a hash of the inputs and reused for
every later shard in that process. With ``reference_cache`` set to a directory every
worker can read, the reference system is computed by the first worker and loaded by the
others; the whitened data pool (the larger part at scale) is recomputed by every
worker process. Each shard then costs only its toys' CG solves. The per-worker setup
is therefore the scaling limit: with W workers the wall time is about
``setup + toys x time per toy / W``, so workers help only while a worker's share of the
toys costs more than the setup.

**Merging and resume.** Shard results (a :class:`~contrastx.nplm.toys.ToyBlock` of a
few arrays) return to the client, which commits each one to the results file
(:class:`~contrastx.nplm.results.ToyResultsFile`) as it arrives. A shard lost with its
worker (a killed process, ``client.restart()``) is redone in a later round, over the
toys not yet committed; a toy delivered twice is committed once. A client killed
mid-run leaves the committed shards in the file, and the same command reruns only the
missing toys.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from contrastx.nplm.options import ToyOptions
from contrastx.nplm.toys import ToyBlock

from ._dask import (
    close_client,
    dask_client,
    local_workers,
    lost_worker,
    require_dask,
    worker_name,
)
from .options import ExecutorOptions

__all__ = [
    "Shard",
    "ToyProblem",
    "plan_shards",
    "run_toy_shards",
    "solve_shard",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Shard:
    """A block of toy indices of one hypothesis: the unit of work sent to a worker."""

    hypothesis: int
    toy_index: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.toy_index)


@dataclasses.dataclass(frozen=True, eq=False)
class ToyProblem:
    """Everything a worker needs to build the run's :class:`~contrastx.nplm.ToyEngine`.

    Attributes
    ----------
    background, signal : numpy.ndarray
        The pools, as given to :class:`~contrastx.nplm.ToyEngine` (``signal`` may be None).
    config : ToyOptions
    device : str
        Torch device string on the workers.
    """

    background: np.ndarray
    signal: np.ndarray | None
    config: ToyOptions
    device: str = "cpu"

    def key(self) -> str:
        """Hash of the inputs (pools, settings, device): the workers' engine-cache key."""
        h = hashlib.sha256()
        for arr in (self.background, self.signal):
            if arr is None:
                h.update(b"none")
                continue
            a = np.ascontiguousarray(arr)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        cfg = dataclasses.asdict(self.config)
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
        h.update(self.device.encode())
        return h.hexdigest()


def plan_shards(todo: Mapping[int, Sequence[int]], shard_size: int) -> list[Shard]:
    """Shards of ``shard_size`` toys (the last of a hypothesis may be smaller).

    Parameters
    ----------
    todo : mapping of hypothesis to toy indices
        The toys to run; each hypothesis's indices are sorted and must be distinct.
    shard_size : int
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an int >= 1; got {shard_size!r}")
    shards = []
    for hyp in sorted(todo):
        ids = sorted(int(i) for i in todo[hyp])
        if len(set(ids)) != len(ids):
            raise ValueError(f"hypothesis {hyp}: toy indices repeated")
        for lo in range(0, len(ids), shard_size):
            shards.append(Shard(int(hyp), tuple(ids[lo : lo + shard_size])))
    return shards


# ------------------------------------------------------------------ worker side
_ENGINES: dict[str, Any] = {}
_LOCK = threading.Lock()
_PROCESS_PROBLEM: dict[str, Any] = {}


def _engine(problem: ToyProblem, key: str) -> tuple[Any, float]:
    """The process's engine for ``key`` (built and prepared on first use) and its setup s."""
    eng = _ENGINES.get(key)
    if eng is not None:
        return eng, 0.0
    from contrastx.nplm.toys import ToyEngine

    start = time.perf_counter()
    _ENGINES.clear()  # one run's engine at a time: bounded memory
    eng = ToyEngine(
        problem.background, problem.signal, config=problem.config, device=problem.device
    )
    eng.prepare()
    _ENGINES[key] = eng
    return eng, time.perf_counter() - start


def engine_info(eng: Any) -> dict[str, Any]:
    """The engine's choices recorded in a results file's config."""
    info = {
        "sigma_used": eng.sigma_,
        "strategy_used": eng.strategy_,
        "pool_backend_used": eng.pool_backend_,
        "pool_arithmetic_used": eng.pool_arithmetic_,
        "strategy_reason": eng.strategy_reason_,
    }
    if eng.config.mode == "shared":
        n_pool = int(eng.data_pool_index_.size)
        info["data_pool_size"] = n_pool
        info["data_pool_fraction"] = eng.config.n_bkg / n_pool
    return info


def solve_shard(problem: ToyProblem, key: str, shard: Shard, threads: int) -> ToyBlock:
    """Solve one shard in this process (the worker function).

    Builds the engine on the process's first shard of ``key`` (see the module notes),
    sets torch's thread count to ``threads``, and returns one block holding the shard's
    toys. ``block.extra`` has ``engine`` (:func:`engine_info`), ``setup_s`` (0 when the
    cached engine was used), ``worker`` (host:pid).
    """
    import torch

    with _LOCK:  # one shard at a time per process: its threads are torch's
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        eng, setup_s = _engine(problem, key)
        start = time.perf_counter()
        blocks = list(eng.run(shard.toy_index, hypothesis=shard.hypothesis, block_seconds=None))
        seconds = time.perf_counter() - start

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in blocks])

    return ToyBlock(
        hypothesis=shard.hypothesis,
        toy_index=cat("toy_index"),
        t=cat("t"),
        n_bkg=cat("n_bkg"),
        n_sig=cat("n_sig"),
        n_iter=cat("n_iter"),
        seconds=seconds,
        extra={
            "engine": engine_info(eng),
            "setup_s": setup_s,
            "worker": worker_name(),
        },
    )


def _init_process(problem: ToyProblem, key: str, threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _PROCESS_PROBLEM.clear()
    _PROCESS_PROBLEM[key] = problem


def _solve_in_process(key: str, shard: Shard, threads: int) -> ToyBlock:
    return solve_shard(_PROCESS_PROBLEM[key], key, shard, threads)


# ------------------------------------------------------------------ client side
class _Processes:
    """A spawn-started process pool; the pools are shipped once per process."""

    def __init__(self, opts: ExecutorOptions, problem: ToyProblem, key: str) -> None:
        self.opts, self.problem, self.key = opts, problem, key
        self.pool: cf.ProcessPoolExecutor | None = None

    def start_round(self) -> None:
        if self.pool is None:
            self.pool = cf.ProcessPoolExecutor(
                max_workers=local_workers(self.opts),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_process,
                initargs=(self.problem, self.key, self.opts.worker_threads),
            )

    def submit(self, shard: Shard) -> Any:
        assert self.pool is not None
        return self.pool.submit(_solve_in_process, self.key, shard, self.opts.worker_threads)

    @staticmethod
    def as_completed(futures: list[Any]) -> Any:
        return cf.as_completed(futures)

    def lost(self, exc: BaseException) -> bool:
        if isinstance(exc, (cf.process.BrokenProcessPool, cf.CancelledError)):
            self.close()  # a broken pool takes no more work: a new one next round
            return True
        return False

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class _Dask:
    """A Dask client (given, or built from the options and closed at the end)."""

    def __init__(
        self, opts: ExecutorOptions, problem: ToyProblem, key: str, client: Any = None
    ) -> None:
        self.distributed = require_dask()
        self.opts, self.problem, self.key = opts, problem, key
        self.own = client is None
        self.cluster = None
        if client is None:
            client, self.cluster = dask_client(opts)
        self.client = client
        self.data: Any = None

    def start_round(self) -> None:
        # Scattered anew every round: a restarted cluster has lost the previous copy.
        self.data = self.client.scatter(self.problem, hash=False)

    def submit(self, shard: Shard) -> Any:
        return self.client.submit(
            solve_shard, self.data, self.key, shard, self.opts.worker_threads, pure=False
        )

    def as_completed(self, futures: list[Any]) -> Any:
        return self.distributed.as_completed(futures)

    def lost(self, exc: BaseException) -> bool:
        return lost_worker(exc)

    def close(self) -> None:
        if self.own:
            close_client(self.client, self.cluster)


class _Inline:
    """In this process (for tests and for the API; the CLI's inline path is its own)."""

    def __init__(self, opts: ExecutorOptions, problem: ToyProblem, key: str) -> None:
        self.opts, self.problem, self.key = opts, problem, key

    def start_round(self) -> None:
        pass

    def submit(self, shard: Shard) -> Any:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(solve_shard(self.problem, self.key, shard, self.opts.worker_threads))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    @staticmethod
    def as_completed(futures: list[Any]) -> Any:
        return iter(futures)

    @staticmethod
    def lost(exc: BaseException) -> bool:
        return False

    def close(self) -> None:
        pass


def run_toy_shards(
    problem: ToyProblem,
    todo: Mapping[int, Sequence[int]],
    options: ExecutorOptions,
    commit: Callable[[ToyBlock], None],
    *,
    client: Any = None,
    on_shard: Callable[[ToyBlock], None] | None = None,
) -> dict[str, Any]:
    """Solve the toys ``todo`` in shards on ``options.executor`` and commit each shard.

    Parameters
    ----------
    problem : ToyProblem
    todo : mapping of hypothesis to toy indices
        The toys to run (those not yet committed).
    options : ExecutorOptions
    commit : callable
        Called in this process with each shard's :class:`~contrastx.nplm.toys.ToyBlock`
        (for instance :meth:`ToyResultsFile.append`); a toy is passed once only, even if
        a lost shard's work was delivered after all.
    client : distributed.Client, optional
        For ``executor="dask"``: use this client (not closed here) instead of one built
        from ``options``.
    on_shard : callable, optional
        Called after each commit with the block (progress; tests stop workers from it).

    Returns
    -------
    dict
        ``shards`` (solved and committed), ``rounds``, ``lost`` (shards lost and redone),
        ``workers`` (host:pid of each worker that solved a shard, with its setup seconds),
        ``seconds`` (wall time) and ``engine`` (:func:`engine_info` of a worker).

    Raises
    ------
    RuntimeError
        If toys are still missing after ``options.retries`` rounds of resubmission.
    ImportError
        For ``executor="dask"`` without Dask installed (the message names the extra).
    """
    if not isinstance(options, ExecutorOptions):
        raise TypeError(f"options must be ExecutorOptions; got {type(options).__name__}")
    start = time.perf_counter()
    key = problem.key()
    backend: Any
    if options.executor == "dask":
        backend = _Dask(options, problem, key, client)
    elif options.executor == "processes":
        backend = _Processes(options, problem, key)
    else:
        backend = _Inline(options, problem, key)
    remaining = {int(h): set(int(i) for i in ids) for h, ids in todo.items()}
    stats: dict[str, Any] = {"shards": 0, "rounds": 0, "lost": 0, "workers": {}, "engine": None}
    try:
        for _ in range(options.retries + 1):
            shards = plan_shards({h: sorted(v) for h, v in remaining.items()}, options.shard_size)
            if not shards:
                break
            stats["rounds"] += 1
            backend.start_round()
            futures = [backend.submit(s) for s in shards]
            lost = 0
            for fut in backend.as_completed(futures):
                try:
                    blk = fut.result()
                except BaseException as exc:
                    if not backend.lost(exc):
                        raise
                    lost += 1
                    continue
                blk = _keep(blk, remaining[blk.hypothesis])
                if blk is None:
                    continue
                commit(blk)
                remaining[blk.hypothesis].difference_update(blk.toy_index.tolist())
                stats["shards"] += 1
                stats["engine"] = blk.extra.get("engine")
                worker = blk.extra.get("worker", "?")
                w = stats["workers"].setdefault(worker, {"shards": 0, "setup_s": 0.0})
                w["shards"] += 1
                w["setup_s"] += float(blk.extra.get("setup_s", 0.0))
                if on_shard is not None:
                    on_shard(blk)
            if lost:
                stats["lost"] += lost
                logger.warning("%d shards lost with their workers; resubmitting them", lost)
        missing = sum(len(v) for v in remaining.values())
        if missing:
            raise RuntimeError(
                f"{missing} toys still missing after {options.retries} resubmission rounds "
                "(workers keep failing); rerun to resume"
            )
    finally:
        backend.close()
    stats["seconds"] = time.perf_counter() - start
    return stats


def _keep(blk: ToyBlock, remaining: set[int]) -> ToyBlock | None:
    """The block's toys still to commit (None if none): a toy is committed once."""
    keep = np.array([int(i) in remaining for i in blk.toy_index], dtype=bool)
    if keep.all():
        return blk
    if not keep.any():
        return None
    logger.info("dropping %d toys delivered twice", int((~keep).sum()))
    return dataclasses.replace(
        blk,
        toy_index=blk.toy_index[keep],
        t=blk.t[keep],
        n_bkg=blk.n_bkg[keep],
        n_sig=blk.n_sig[keep],
        n_iter=blk.n_iter[keep],
        seconds=blk.seconds * keep.sum() / keep.size,
    )
