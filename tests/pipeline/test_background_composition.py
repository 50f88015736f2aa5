"""[events] background_processes / background_fractions: a study on part of a labelled file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from contrastx.embed import load_model
from contrastx.events import read_events, write_events
from contrastx.events.generators import generate_sample
from contrastx.pipeline import Pipeline, load_config
from contrastx.pipeline.stages import (
    background_path,
    background_rows,
    load_background,
    load_signals,
)

COCKTAIL = "{W = 0.592, QCD = 0.338, Z = 0.067, ttbar = 0.003}"


@pytest.fixture(scope="module")
def pythia_like_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Balanced backgrounds and a signal in one file, ordered by process (as Pythia writes)."""
    ev = generate_sample({"W": 800, "QCD": 800, "Z": 800, "ttbar": 800, "Ato4l": 300}, seed=11)
    ev = ev[np.argsort(ev.labels, kind="stable")]
    return write_events(tmp_path_factory.mktemp("pythia") / "balanced.h5", ev)


def _config(tiny_toml: Path, path: Path, *extra: str, signal_files: bool = True):
    files = [f'events.signal_files={{Ato4l = "{path.as_posix()}"}}'] if signal_files else []
    return load_config(
        tiny_toml,
        overrides=[
            f'events.background_file="{path.as_posix()}"',
            *files,
            "events.n_background=0",
            "events.n_signal=200",
            *extra,
        ],
    )


def test_background_fractions_draw_the_cocktail_from_a_balanced_file(
    tiny_toml: Path, pythia_like_file: Path
) -> None:
    cfg = _config(tiny_toml, pythia_like_file, f"events.background_fractions={COCKTAIL}")
    pipe = Pipeline(cfg, log=lambda s: None)
    ev = pipe.events_stage()
    bkg = load_background(ev)
    counts = bkg.counts()
    # W (800 events) limits the sample: 800 / 0.592 = 1351 events.
    assert counts == {"W": 800, "QCD": 457, "Z": 90, "ttbar": 4}
    assert ev.info["counts"]["Ato4l"] == 200
    # Each event is the file row background_rows names.
    rows = background_rows(ev)
    whole = read_events(background_path(ev))
    np.testing.assert_array_equal(bkg.particles, whole.particles[rows])
    np.testing.assert_array_equal(bkg.labels, whole.labels[rows])
    # The model records the file rows it trained on: background rows only.
    sp = pipe.splits_stage(ev)
    spec = next(s for s in cfg.embeddings if s.trained)
    model = load_model(pipe.embed_stage(spec, ev, sp, 0).path("model"))
    te = model.training_events
    assert te is not None and te.matches(pythia_like_file)
    assert np.isin(te.rows, rows).all()
    assert not np.isin(whole.labels[te.rows], [whole.label_of("Ato4l")]).any()


def test_signals_in_the_background_file_are_left_out(
    tiny_toml: Path, pythia_like_file: Path
) -> None:
    cfg = _config(tiny_toml, pythia_like_file)
    bkg = load_background(Pipeline(cfg, log=lambda s: None).events_stage())
    assert bkg.counts() == {"W": 800, "QCD": 800, "Z": 800, "ttbar": 800}
    cfg = _config(tiny_toml, pythia_like_file, 'events.background_processes=["W", "Z"]')
    bkg = load_background(Pipeline(cfg, log=lambda s: None).events_stage())
    assert bkg.counts() == {"W": 800, "Z": 800}


def test_the_generator_makes_the_composition_asked_for(tiny_toml: Path) -> None:
    cfg = load_config(
        tiny_toml,
        overrides=["events.background_fractions={W = 0.25, QCD = 0.25, Z = 0.25, ttbar = 0.25}"],
    )
    bkg = load_background(Pipeline(cfg, log=lambda s: None).events_stage())
    assert bkg.counts() == {"W": 650, "QCD": 650, "Z": 650, "ttbar": 650}


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("events.background_fractions={W = 0.5, QCD = 0.4}", "must sum to 1"),
        ("events.background_fractions={W = 0.5, QCD = -0.5, Z = 1.0}", r"QCD must be .*> 0"),
        ("events.background_fractions={W = 0.5, top = 0.5}", r"\['top'\] unknown"),
        ('events.background_processes=["W"]', "needs events.background_file"),
        ("events.background_fractions={W = 0.5, Ato4l = 0.5}", "both as signals"),
    ],
)
def test_bad_compositions_are_errors_naming_the_key(
    tiny_toml: Path, override: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        load_config(tiny_toml, overrides=[override])


def test_a_file_that_cannot_give_the_composition_names_it(
    tiny_toml: Path, pythia_like_file: Path
) -> None:
    cfg = _config(tiny_toml, pythia_like_file, "events.background_fractions={W = 0.5, gamma = 0.5}")
    with pytest.raises(ValueError, match=r"background_fractions: .*balanced.h5 has no process"):
        Pipeline(cfg, log=lambda s: None).events_stage()


def test_signals_default_to_processes_of_the_background_file(
    tiny_toml: Path, pythia_like_file: Path
) -> None:
    cfg = _config(tiny_toml, pythia_like_file, signal_files=False)
    ev = Pipeline(cfg, log=lambda s: None).events_stage()
    sig = load_signals(ev)["Ato4l"]
    assert len(sig) == 200 and (sig.labels == sig.label_of("Ato4l")).all()
    assert load_background(ev).counts() == {"W": 800, "QCD": 800, "Z": 800, "ttbar": 800}


def test_a_signal_missing_from_a_multi_process_file_is_an_error(
    tiny_toml: Path, pythia_like_file: Path
) -> None:
    # Never relabel a file of several processes as one signal.
    cfg = _config(tiny_toml, pythia_like_file, 'events.signals=["LQ_btau"]', signal_files=False)
    with pytest.raises(ValueError, match=r"'LQ_btau'.*balanced.h5 holds several processes"):
        Pipeline(cfg, log=lambda s: None).events_stage()
