"""End-to-end tiny study: outputs, caching, partial re-runs and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import contrastx.nplm
import numpy as np
import pytest
from contrastx.cli.pipeline import main
from contrastx.pipeline import Pipeline, load_config, read_log


def _actions(out: Path, run_id: str) -> dict[str, str]:
    """``stage[/name]`` -> action of one run in the stage log."""
    acts = {}
    for r in read_log(out):
        if r["run_id"] == run_id and r.get("action") in ("run", "skip", "fail"):
            acts[r["stage"] + (f"/{r['name']}" if r["name"] else "")] = r["action"]
    return acts


def _run(cfg_path: Path, *overrides: str) -> Pipeline:
    pipe = Pipeline(load_config(cfg_path, overrides=list(overrides)), log=lambda s: None)
    pipe.run()
    return pipe


def test_tiny_study_end_to_end_caching_and_resume(
    tiny_toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tiny_toml.parent / "out"
    # 1. Full run through the CLI.
    assert main(["--config", str(tiny_toml), "--quiet"]) == 0
    for name in ("report.html", "results.json", "table.md", "table.csv"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert set(res["embeddings"]) == {"supcon-mlp-d2", "raw57", "leadpt6"}
    mz = res["embeddings"]["raw57"]["signals"]["Ato4l"]["0.1"]["median_z"]["chi2"]
    # A baseline is built once; its 2 runs are 2 reference draws, so it has a spread.
    assert np.isfinite(mz["value"]) and mz["toy_err"] >= 0 and mz["training_spread"] > 0
    table = (out / "table.md").read_text()
    assert "| embedding | D | runs | Ato4l |" in table
    assert "| raw57 | 57 | built once, 2 draws |" in table and "| supcon-mlp-d2 | 2 | 2 |" in table
    assert (out / "table.csv").read_text().splitlines()[0].startswith("embedding,dimension")
    figs = res["figures"]
    for key in ("median_z_0.1", "power3_0.1", "linear_eval", "latent_map", "toys_Ato4l"):
        assert (out / figs[key]["path"]).is_file(), key
    html = (out / "report.html").read_text()
    assert "<table>" in html and figs["median_z_0.1"]["path"] in html
    first = read_log(out)[0]["run_id"]
    assert set(_actions(out, first).values()) == {"run"}

    # 2. Same config again: every stage is skipped, outputs untouched.
    mtime = (out / "results.json").stat().st_mtime_ns
    pipe = _run(tiny_toml)
    acts = _actions(out, pipe.run_id)
    # events, splits, 2 trainings + 2 baselines, 2 toys stages (runs) of each of the 3, results
    assert len(acts) == 13 and set(acts.values()) == {"skip"}
    assert all(r.skipped for r in pipe.results.values())
    assert (out / "results.json").stat().st_mtime_ns == mtime

    # 3. A results-only setting re-runs only the results stage.
    acts = _actions(out, _run(tiny_toml, 'results.z_method="empirical"').run_id)
    assert [k for k, v in acts.items() if v == "run"] == ["results"]

    # 4. One embedding's setting re-runs that embedding, its toys and the results only.
    pipe = _run(tiny_toml, 'embeddings=[{kind="contrastive", latent_dim=2, epochs=1, '
                'n_train=500, train={batch_size=200, warmup_epochs=0}}, {kind="raw"}, '
                '{kind="leading_pt"}]')  # fmt: skip
    acts = _actions(out, pipe.run_id)
    ran = sorted(k for k, v in acts.items() if v == "run")
    assert ran == [
        "embed/supcon-mlp-d2/training0",
        "embed/supcon-mlp-d2/training1",
        "results",
        "toys/supcon-mlp-d2/training0",
        "toys/supcon-mlp-d2/training1",
    ]

    # 5. Interrupted toys stage: the null toys finished, the signal toys raised.
    real_engine = contrastx.nplm.ToyEngine

    class Failing(real_engine):  # type: ignore[misc, valid-type]
        def run(self, ids, *, hypothesis=0):
            if hypothesis == contrastx.nplm.SIGNAL:
                raise RuntimeError("simulated crash")
            yield from super().run(ids, hypothesis=hypothesis)

    monkeypatch.setattr(contrastx.nplm, "ToyEngine", Failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tiny_toml, "nplm.n_toys=9")
    monkeypatch.setattr(contrastx.nplm, "ToyEngine", real_engine)
    pipe = _run(tiny_toml, "nplm.n_toys=9")
    acts = _actions(out, pipe.run_id)
    assert acts["events"] == acts["splits"] == "skip"
    assert all(v == "skip" for k, v in acts.items() if k.startswith("embed/"))
    toys = pipe.results["toys/raw57/draw0"]
    assert not toys.skipped
    null_run = toys.info["runs"][0]
    # The crashed run had finished the first embedding's null toys: they are resumed.
    first_toys = pipe.results["toys/supcon-mlp-d2/training0"].info["runs"][0]
    assert first_toys["file"] == "null.h5" and first_toys["toys_resumed"] == 9
    assert first_toys["toys_run"] == 0
    assert null_run["toys_run"] + null_run["toys_resumed"] == 9

    # 6. One more training: the first two (their own stages and seeds) are reused.
    pipe = _run(tiny_toml, "nplm.n_toys=9", "run.trainings=3")
    ran = sorted(k for k, v in _actions(out, pipe.run_id).items() if v == "run")
    assert ran == [
        "embed/supcon-mlp-d2/training2",
        "results",
        "toys/leadpt6/draw2",
        "toys/raw57/draw2",
        "toys/supcon-mlp-d2/training2",
    ]


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = load_config(
        overrides=[
            f'run.out_dir="{(tmp_path / "o").as_posix()}"',
            f'events.background_file="{(tmp_path / "missing.h5").as_posix()}"',
        ]
    )
    with pytest.raises(FileNotFoundError, match="input file not found"):
        Pipeline(cfg, log=lambda s: None).run(until="events")
    assert main(["--set", f'events.background_file="{tmp_path}/x.h5"', "--quiet",
                 "--out", str(tmp_path / "o2")]) == 2  # fmt: skip


def test_too_small_nplm_pool_fails_before_any_training(tiny_toml: Path, tmp_path: Path) -> None:
    # 1559 NPLM events (60 % of 2600, stratified); n_ref 1500 leaves too few for N(B) = 150.
    pipe = Pipeline(load_config(tiny_toml, overrides=["nplm.n_ref=1500"]), log=lambda s: None)
    with pytest.raises(ValueError, match="NPLM background pool has 1559 events"):
        pipe.run()
    assert "splits" in pipe.results
    assert not any(k.startswith("embed/") for k in pipe.results)
    assert not (tmp_path / "out" / "embed").exists()
