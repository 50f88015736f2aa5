"""Independent tasks on the executor: whole study stages on local processes or Dask.

:func:`map_tasks` runs ``fn(*args)`` for every argument tuple where
:class:`~contrastx.distributed.ExecutorOptions` says (in this process, a pool of spawned
local processes, or a Dask cluster) and yields ``(index, result)`` as tasks finish. It
suits work that is already cut into self-contained, seeded, cached pieces -- a study's
stages, each writing its own folder -- so that where a task ran cannot change what it
wrote. (The NPLM toys have their own sharding with lost-worker recovery:
:func:`~contrastx.distributed.run_toy_shards`.)
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._dask import close_client, dask_client, local_workers, require_dask
from .options import ExecutorOptions

__all__ = ["map_tasks"]


def _with_threads(fn: Callable[..., Any], threads: int, args: tuple) -> Any:
    import torch

    torch.set_num_threads(threads)
    return fn(*args)


def map_tasks(
    opts: ExecutorOptions, fn: Callable[..., Any], tasks: Sequence[tuple]
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*tasks[i])`` for every ``i`` on the executor; yield ``(i, result)``.

    ``fn`` must be a module-level function and the arguments picklable (for processes
    and Dask); each worker runs with ``opts.worker_threads`` torch threads. Results come
    in the order tasks finish (inline: in order). An exception of a task is raised here
    as soon as that task has failed, and the tasks still queued are cancelled (on local
    processes, the few a worker has already taken finish in the background).
    """
    if not isinstance(opts, ExecutorOptions):
        raise TypeError(f"opts must be an ExecutorOptions; got {type(opts).__name__}")
    if not tasks:
        return
    if opts.executor == "inline":
        for i, args in enumerate(tasks):
            yield i, fn(*args)
        return
    if opts.executor == "processes":
        pool = cf.ProcessPoolExecutor(
            max_workers=min(local_workers(opts), len(tasks)),
            mp_context=multiprocessing.get_context("spawn"),
        )
        finished = False
        try:
            futures = {
                pool.submit(_with_threads, fn, opts.worker_threads, args): i
                for i, args in enumerate(tasks)
            }
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()
            finished = True
        finally:
            # After a failure (or when the caller stops iterating) the queued tasks are
            # cancelled and the error is raised at once; the few tasks a worker has
            # already taken cannot be interrupted and finish in the background (the
            # interpreter waits for them at exit).
            pool.shutdown(wait=finished, cancel_futures=True)
        return
    distributed = require_dask()
    client, cluster = dask_client(opts)
    futures = {}
    try:
        futures = {
            client.submit(_with_threads, fn, opts.worker_threads, args, pure=False): i
            for i, args in enumerate(tasks)
        }
        for fut in distributed.as_completed(list(futures)):
            yield futures[fut], fut.result()
    finally:
        close_client(client, cluster, futures)
