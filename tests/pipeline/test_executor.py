"""The pipeline's embed and toys stages on local processes and a real Dask LocalCluster:
the inline t."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from contrastx.nplm import read_toy_results
from contrastx.pipeline import Pipeline, load_config


def _all_t(pipe: Pipeline) -> dict[str, np.ndarray]:
    out = {}
    for key, stage in pipe.results.items():
        if not key.startswith("toys/"):
            continue
        for file in sorted(p.name for p in stage.dir.glob("*.h5")):
            r = read_toy_results(stage.dir / file)
            group = "null" if file == "null.h5" else "signal"
            out[f"{key}/{file}"] = np.asarray(r[group]["t"])
    return out


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_toys_on_an_executor_equal_the_inline_run(
    tiny_toml: Path, tmp_path: Path, executor: str
) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    inline = Pipeline(load_config(tiny_toml, overrides=["run.trainings=1"]), log=lambda s: None)
    inline.run(until="toys")
    cfg = load_config(
        tiny_toml,
        overrides=[
            "run.trainings=1",
            f'run.out_dir="{(tmp_path / "remote").as_posix()}"',
            f'executor.executor="{executor}"',
            "executor.workers=2",
            "executor.worker_threads=1",
            "executor.shard_size=3",
        ],
    )
    remote = Pipeline(cfg, log=lambda s: None)
    remote.run(until="toys")
    a, b = _all_t(inline), _all_t(remote)
    assert a.keys() == b.keys() and len(a) == 6  # 3 embeddings x (null + 1 signal file)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # The embeddings were trained and embedded on the workers, not skipped.
    assert all(not s.skipped for k, s in remote.results.items() if k.startswith("embed/"))
    runs = [r for k, s in remote.results.items() if k.startswith("toys/") for r in s.info["runs"]]
    assert {r["executor"] for r in runs} == {executor}
    assert all(r["shards"] >= 2 for r in runs)
    # The executor is not part of any stage's key: the inline run's stages are the same.
    assert {k: s.key for k, s in inline.results.items()} == {
        k: s.key for k, s in remote.results.items()
    }
