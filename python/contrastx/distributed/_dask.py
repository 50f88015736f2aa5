"""Dask clients and dask-jobqueue clusters built from :class:`ExecutorOptions`.

Dask is imported here only, lazily: without it, :func:`require_dask` raises an
``ImportError`` that names the extra to install.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import os
import socket
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from .options import ExecutorOptions

__all__ = [
    "close_client",
    "dask_client",
    "job_script",
    "jobqueue_cluster",
    "lost_worker",
    "require_dask",
    "worker_name",
]

logger = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'contrastx[dask]' (dask, distributed, dask-jobqueue)"


def require_dask(what: str = "executor 'dask'") -> ModuleType:
    """Import and return ``distributed``; a clear ``ImportError`` naming the extra if absent."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"{what} needs Dask's distributed package: {EXTRA_HINT}") from exc
    return distributed


def _jobqueue() -> ModuleType:
    require_dask("a dask-jobqueue cluster")
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ImportError(f"--cluster slurm/htcondor needs dask-jobqueue: {EXTRA_HINT}") from exc
    return dask_jobqueue


def _walltime_seconds(walltime: str) -> int:
    parts = walltime.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or any(v < 0 for v in values):
        raise ValueError(f"executor.walltime must be HH:MM:SS; got {walltime!r}")
    h, m, s = values
    return 3600 * h + 60 * m + s


def _job_kwargs(opts: ExecutorOptions) -> dict[str, Any]:
    """The dask-jobqueue keyword arguments of one job (both Slurm and HTCondor)."""
    processes = opts.cores // opts.worker_threads
    threads = str(opts.worker_threads)
    kwargs: dict[str, Any] = {
        "cores": opts.cores,
        "memory": opts.memory,
        "processes": processes,
        # BLAS/torch threads of each worker process, as in the inline run it must match.
        "job_script_prologue": [
            f"export OMP_NUM_THREADS={threads}",
            f"export MKL_NUM_THREADS={threads}",
            f"export OPENBLAS_NUM_THREADS={threads}",
        ],
    }
    if opts.cluster == "slurm":
        kwargs["walltime"] = opts.walltime
        _walltime_seconds(opts.walltime)
        if opts.queue is not None:
            kwargs["queue"] = opts.queue
        if opts.account is not None:
            kwargs["account"] = opts.account
    elif opts.cluster == "htcondor":
        kwargs["disk"] = opts.disk
        kwargs["job_extra_directives"] = {"+MaxRuntime": str(_walltime_seconds(opts.walltime))}
    else:
        raise ValueError(f"executor.cluster must be 'slurm' or 'htcondor'; got {opts.cluster!r}")
    return kwargs


def job_script(opts: ExecutorOptions, scheduler: str = "tcp://scheduler:8786") -> str:
    """The batch script dask-jobqueue submits for one job of ``opts`` (no scheduler started).

    Parameters
    ----------
    opts : ExecutorOptions
        With ``cluster`` ``"slurm"`` or ``"htcondor"``.
    scheduler : str
        Scheduler address written into the worker command.
    """
    jq = _jobqueue()
    job_cls = {"slurm": jq.slurm.SLURMJob, "htcondor": jq.htcondor.HTCondorJob}.get(opts.cluster)
    if job_cls is None:
        raise ValueError(f"executor.cluster must be 'slurm' or 'htcondor'; got {opts.cluster!r}")
    job = job_cls(scheduler=scheduler, name="contrastx-worker", **_job_kwargs(opts))
    return job.job_script()


def jobqueue_cluster(opts: ExecutorOptions) -> Any:
    """A started dask-jobqueue ``SLURMCluster`` / ``HTCondorCluster`` scaled to ``opts.jobs``."""
    jq = _jobqueue()
    cls = {"slurm": jq.SLURMCluster, "htcondor": jq.HTCondorCluster}[opts.cluster]
    cluster = cls(**_job_kwargs(opts))
    cluster.scale(jobs=opts.jobs)
    logger.info("dask-jobqueue %s cluster: %d jobs submitted", opts.cluster, opts.jobs)
    return cluster


def local_workers(opts: ExecutorOptions) -> int:
    """Worker processes of a local pool or LocalCluster: ``workers`` or CPUs / threads."""
    if opts.workers is not None:
        return int(opts.workers)
    return max(1, math.floor((os.cpu_count() or 1) / opts.worker_threads))


def dask_client(opts: ExecutorOptions) -> tuple[Any, Any]:
    """``(client, cluster)`` for ``opts`` (cluster None when connecting to ``scheduler``).

    The caller closes both (client first).
    """
    distributed = require_dask()
    if opts.scheduler is not None:
        return distributed.Client(opts.scheduler), None
    if opts.cluster == "local":
        cluster = distributed.LocalCluster(
            n_workers=local_workers(opts),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    else:
        cluster = jobqueue_cluster(opts)
    return distributed.Client(cluster), cluster


def close_client(client: Any, cluster: Any, pending: Iterable[Any] = ()) -> None:
    """Cancel the ``pending`` futures, then close ``client`` and the ``cluster`` it started
    (None: a running scheduler's, left alone), each even if the step before failed."""
    pending = [fut for fut in pending if not fut.done()]
    try:
        if pending:
            client.cancel(pending)
    finally:
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def lost_worker(exc: BaseException) -> bool:
    """Whether ``exc`` says a task was lost with its worker or a restarted cluster
    (``KilledWorker``, a closed connection, a cancelled future), not that it failed."""
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(exc, (KilledWorker, CommClosedError, cf.CancelledError))


def worker_name() -> str:
    """``host:pid`` of the process running a task."""
    return f"{socket.gethostname()}:{os.getpid()}"
