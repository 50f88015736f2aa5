"""map_tasks: independent tasks inline, on spawned local processes and on Dask."""

from __future__ import annotations

import operator
import time

import pytest
from contrastx.distributed import ExecutorOptions, map_tasks

TASKS = [(1, 2), (3, 4), (5, 6)]


@pytest.mark.parametrize("executor", ["inline", "processes", "dask"])
def test_every_task_runs_once_with_its_own_result(executor):
    if executor == "dask":
        pytest.importorskip("distributed")
    opts = ExecutorOptions(executor=executor, workers=2)
    got = dict(map_tasks(opts, operator.add, TASKS))
    assert got == {0: 3, 1: 7, 2: 11}


def test_a_failing_task_raises_and_bad_options_are_refused():
    opts = ExecutorOptions(executor="processes", workers=2)
    with pytest.raises(ZeroDivisionError):
        dict(map_tasks(opts, operator.truediv, [(1, 1), (1, 0)]))
    with pytest.raises(TypeError, match="ExecutorOptions"):
        list(map_tasks({"executor": "inline"}, operator.add, TASKS))
    assert list(map_tasks(ExecutorOptions(), operator.add, [])) == []


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_a_failing_task_is_raised_without_running_the_queued_ones(executor):
    # One worker, a first task that fails, then eight 2-second tasks: the error must not
    # wait for the queue (16 s of sleeps); spawning plus the one task in flight take less.
    if executor == "dask":
        pytest.importorskip("distributed")
    opts = ExecutorOptions(executor=executor, workers=1)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="non-negative"):
        dict(map_tasks(opts, time.sleep, [(-1.0,)] + [(2.0,)] * 8))
    assert time.perf_counter() - start < 10.0
