"""Pipeline models record the event-file rows they were trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from contrastx.embed import load_model, read_embedding
from contrastx.events import ADC2021, Splits, read_events
from contrastx.pipeline import Pipeline, load_config
from contrastx.pipeline.stages import background_path


def test_pipeline_models_record_their_training_rows(tiny_toml: Path) -> None:
    cfg = load_config(tiny_toml)
    pipe = Pipeline(cfg, log=lambda s: None)
    ev = pipe.events_stage()
    sp = pipe.splits_stage(ev)
    spec = next(s for s in cfg.embeddings if s.trained)
    stage = pipe.embed_stage(spec, ev, sp, 0)
    model = load_model(stage.path("model"))
    te = model.training_events
    assert te is not None
    bkg_file = background_path(ev)
    assert te.matches(bkg_file)
    # The training read only rows of the embedding-training folds, never the NPLM part.
    splits = Splits.load(sp.path("splits"))
    assert not np.intersect1d(te.rows, splits.test).size
    assert te.rows.size == spec.n_train and np.isin(te.rows, np.concatenate(splits.folds)).all()
    # The rows are rows of the file: the events there are the ones the stage trained on.
    bkg = read_events(bkg_file)
    assert np.isin(bkg.labels[te.rows], [bkg.label_of(p) for p in ("W", "QCD", "Z", "ttbar")]).all()
    assert model.layout == ADC2021
    assert read_embedding(stage.path("embedding")).layout == ADC2021


def test_signal_file_of_another_layout_keeps_its_layout(
    tmp_path: Path, random_layout_events
) -> None:
    from contrastx.events import DIPHOTON, write_events
    from contrastx.pipeline.stages import _read_signal_file

    ev = random_layout_events(DIPHOTON, 40, seed=2, n_processes=1)
    path = write_events(tmp_path / "sig.h5", ev)
    sig = _read_signal_file(str(path), "Ato4l", 30)
    assert len(sig) == 30 and sig.layout == DIPHOTON
    assert (sig.labels == sig.label_of("Ato4l")).all()
    np.testing.assert_array_equal(sig.event_features, ev.event_features[:30])
