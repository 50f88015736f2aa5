"""One executor hook for contrastx's embarrassingly parallel work (NPLM toys first).

:class:`ExecutorOptions` says where the work goes: in-process (default), a pool of local
processes, or a Dask ``distributed`` cluster (a scheduler address, a ``LocalCluster``,
or a Slurm / HTCondor cluster built by dask-jobqueue). Dask is optional
(``pip install 'contrastx[dask]'``) and imported only when asked for.
:func:`run_toy_shards` solves NPLM toys in shards with the same ``t`` as the inline run
(see :mod:`contrastx.distributed.toys`); :func:`map_tasks` runs independent tasks, such
as whole cached study stages (see :mod:`contrastx.distributed.tasks`).
"""

from typing import Any

from ._dask import dask_client, job_script, jobqueue_cluster, require_dask
from .options import ExecutorOptions
from .tasks import map_tasks

# The toys' names load contrastx.distributed.toys (and so torch and the NPLM engine) on
# first use: the executor's options and tasks serve torch-free commands too.
_TOYS = ("Shard", "ToyProblem", "plan_shards", "run_toy_shards", "solve_shard")


def __getattr__(name: str) -> Any:
    if name in _TOYS:
        from . import toys

        return getattr(toys, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ExecutorOptions",
    "Shard",
    "ToyProblem",
    "dask_client",
    "job_script",
    "jobqueue_cluster",
    "map_tasks",
    "plan_shards",
    "require_dask",
    "run_toy_shards",
    "solve_shard",
]
