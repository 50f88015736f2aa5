"""One executor hook for contrastx's embarrassingly parallel work (NPLM toys first).

:class:`ExecutorOptions` says where the work goes: in-process (default), a pool of local
processes, or a Dask ``distributed`` cluster (a scheduler address, a ``LocalCluster``,
or a Slurm / HTCondor cluster built by dask-jobqueue). Dask is optional
(``pip install 'contrastx[dask]'``) and imported only when asked for.
:func:`run_toy_shards` solves NPLM toys in shards with the same ``t`` as the inline run
(see :mod:`contrastx.distributed.toys`); :func:`map_tasks` runs independent tasks, such
as whole cached study stages (see :mod:`contrastx.distributed.tasks`).
"""

from ._dask import dask_client, job_script, jobqueue_cluster, require_dask
from .options import ExecutorOptions
from .tasks import map_tasks
from .toys import Shard, ToyProblem, plan_shards, run_toy_shards, solve_shard

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
