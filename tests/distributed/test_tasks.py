"""map_tasks: independent tasks inline, on spawned local processes and on Dask."""

from __future__ import annotations

import operator

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
