"""The executor settings: where the embarrassingly parallel work of a run goes.

One :func:`~contrastx.options.options` class, :class:`ExecutorOptions` (section
``executor``); the ``contrastx-toys`` flags (``--executor dask --scheduler tcp://...``,
``--cluster slurm --jobs 20``) and a TOML ``[executor]`` table are generated from it.
"""

from __future__ import annotations

from typing import Literal

from contrastx.options import OptionsError, key_name, option, options

__all__ = ["ExecutorOptions"]


@options(section="executor")
class ExecutorOptions:
    """Where the shards of a run are solved (see :mod:`contrastx.distributed`)."""

    executor: Literal["inline", "processes", "dask"] = option(
        "inline",
        "'inline': in this process; 'processes': a pool of local worker processes; "
        "'dask': a Dask distributed cluster (--scheduler address, a LocalCluster, or a "
        "dask-jobqueue cluster from --cluster; needs the extra contrastx[dask]).",
    )
    workers: int | None = option(
        None,
        "Worker processes of 'processes' and of a Dask LocalCluster; unset: the CPU count "
        "divided by --worker-threads.",
        ge=1,
    )
    worker_threads: int = option(
        1,
        "Torch/BLAS threads per worker process (t is bitwise identical between runs with "
        "the same thread count: give the inline run OMP_NUM_THREADS equal to this).",
        ge=1,
    )
    scheduler: str | None = option(
        None,
        "Address of a running Dask scheduler (tcp://host:8786) to connect to; unset: "
        "start a cluster (--cluster).",
        metavar="ADDRESS",
    )
    cluster: Literal["local", "slurm", "htcondor"] = option(
        "local",
        "Cluster started for --executor dask without --scheduler: 'local' "
        "(distributed.LocalCluster with --workers processes), 'slurm' or 'htcondor' "
        "(dask-jobqueue: --jobs batch jobs of --cores cores and --memory each).",
    )
    jobs: int = option(1, "dask-jobqueue: batch jobs to submit.", ge=1)
    cores: int = option(
        1,
        "dask-jobqueue: cores per job; the job runs cores / --worker-threads worker processes.",
        ge=1,
    )
    memory: str = option("4GiB", "dask-jobqueue: memory per job (e.g. 16GiB).")
    walltime: str = option(
        "01:00:00",
        "dask-jobqueue: wall-time limit of a job, HH:MM:SS (HTCondor: +MaxRuntime).",
    )
    queue: str | None = option(
        None, "dask-jobqueue, Slurm: partition (#SBATCH -p); unset: the site's default."
    )
    account: str | None = option(
        None, "dask-jobqueue, Slurm: account (#SBATCH -A); unset: the site's default."
    )
    disk: str = option("4GiB", "dask-jobqueue, HTCondor: disk request per job.")
    shard_size: int = option(
        25,
        "Toys per shard: the unit of work sent to a worker, and of what is committed to "
        "the results file and redone after a lost worker.",
        ge=1,
    )
    retries: int = option(
        3,
        "Rounds that resubmit the shards lost with a worker (a killed worker, a "
        "restarted cluster) before the run fails.",
        ge=0,
    )

    def _check(self) -> None:
        if self.scheduler is not None:
            if self.executor != "dask":
                raise OptionsError(
                    f"{key_name(self, 'scheduler')} needs executor 'dask'; got executor "
                    f"{self.executor!r}"
                )
            if "://" not in self.scheduler:
                raise OptionsError(
                    f"{key_name(self, 'scheduler')} must be an address like "
                    f"tcp://host:8786; got {self.scheduler!r}"
                )
            if self.cluster != "local":
                raise OptionsError(
                    f"{key_name(self, 'scheduler')} and {key_name(self, 'cluster')} "
                    f"{self.cluster!r} exclude each other: connect to a scheduler or start "
                    "a cluster"
                )
        if self.cluster != "local" and self.executor != "dask":
            raise OptionsError(
                f"{key_name(self, 'cluster')} {self.cluster!r} needs executor 'dask'; got "
                f"{self.executor!r}"
            )
        if self.cores % self.worker_threads:
            raise OptionsError(
                f"{key_name(self, 'cores')} ({self.cores}) must be a multiple of "
                f"{key_name(self, 'worker_threads')} ({self.worker_threads})"
            )
