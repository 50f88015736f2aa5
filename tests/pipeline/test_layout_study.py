"""A study on a diphoton-layout file, end to end: names, dimensions, backgrounds, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from contrastx.embed import LeadingPtBaseline, RawBaseline, read_embedding
from contrastx.events import DIPHOTON, EventFile, Events, write_events
from contrastx.events.generators.diphoton import BACKGROUND_PROCESSES
from contrastx.options import OptionsError
from contrastx.pipeline import Pipeline, load_config
from contrastx.pipeline.stages import background_rows

SIGNAL = "X_hh_400"
NAMES = (*BACKGROUND_PROCESSES, SIGNAL, "A_Zh_500")
"""The file's processes: the five diphoton backgrounds, the studied signal and another
signal that is not studied (it must be left out of the background)."""

D_RAW = RawBaseline(DIPHOTON).latent_dim
D_LEAD = LeadingPtBaseline(DIPHOTON).latent_dim

OVERRIDES = (
    'events.layout="diphoton"',
    f'events.signals=["{SIGNAL}"]',
    "run.trainings=1",
)
"""TINY_TOML on the diphoton file (its trained embedding gets the layout preprocessing)."""


@pytest.fixture(scope="module")
def diphoton_file(tmp_path_factory: pytest.TempPathFactory, random_layout_events) -> Path:
    """2,600 background events of the five SM processes, 200 of the signal and 200 of
    another signal, in the diphoton layout (random but valid events)."""
    ev = random_layout_events(DIPHOTON, 3000, seed=5)
    labels = np.concatenate(
        [np.arange(2600) % len(BACKGROUND_PROCESSES), np.full(200, 5), np.full(200, 6)]
    )
    labels = np.random.default_rng(6).permutation(labels)
    ev = Events(ev.particles, labels, NAMES, layout=DIPHOTON, event_features=ev.event_features)
    return write_events(tmp_path_factory.mktemp("diphoton") / "diphoton.h5", ev)


def _toml(tiny_toml: Path, extra: str = "") -> Path:
    """The tiny study of conftest.py, writing to ``tmp_path / "out"``."""
    text = tiny_toml.read_text()
    # The contrastive MLP on the layout preprocessing (the primary paper's pt is ADC2021 only).
    text = text.replace(
        "train = {batch_size = 200, warmup_epochs = 0}",
        'train = {batch_size = 200, warmup_epochs = 0, preprocessing = "layout"}',
    )
    p = tiny_toml.with_name("study.toml")
    p.write_text(text + extra)
    return p


def _config(tiny_toml: Path, path: Path, *more: str, extra: str = ""):
    return load_config(
        _toml(tiny_toml, extra),
        overrides=[f'events.background_file="{path.as_posix()}"', *OVERRIDES, *more],
    )


VAE = """
[[embeddings]]
kind = "vae"
epochs = 1
n_train = 600
train = {preprocessing = "layout", batch_size = 200}
"""


def test_a_diphoton_study_runs_end_to_end(
    diphoton_file: Path, tiny_toml: Path, tmp_path: Path
) -> None:
    cfg = _config(tiny_toml, diphoton_file, extra=VAE)
    names = [e.name for e in cfg.embeddings]
    assert names == ["supcon-mlp-d2", f"raw{D_RAW}", f"leadpt{D_LEAD}", "vae6"]
    assert D_RAW != 57 and D_LEAD != 6
    pipe = Pipeline(cfg, log=lambda s: None)
    res = pipe.run()
    out = tmp_path / "out"

    # The background is the file's five SM processes: neither signal is in it.
    ev = res["events"]
    with EventFile(diphoton_file) as f:
        file_labels = f.read_labels()
    rows = background_rows(ev)
    assert sorted(np.unique(file_labels[rows])) == list(range(len(BACKGROUND_PROCESSES)))
    assert rows.size == 2600
    assert set(ev.info["counts"]) == {*BACKGROUND_PROCESSES, SIGNAL}

    # Every embedding holds the NPLM background (SM processes only) and the signal.
    for name in names:
        stage = next(r for k, r in res.items() if k.startswith(f"embed/{name}"))
        emb = read_embedding(stage.path("embedding"))
        assert emb.layout == DIPHOTON
        present = {emb.process_names[k] for k in np.unique(emb.labels)}
        assert present == {*BACKGROUND_PROCESSES, SIGNAL}
        dim = {f"raw{D_RAW}": D_RAW, f"leadpt{D_LEAD}": D_LEAD, "vae6": 6}.get(name, 2)
        assert emb.embedding.shape[1] == dim

    # The table names the baselines with their dimensions on the layout.
    table = (out / "table.md").read_text()
    assert f"| raw{D_RAW} | {D_RAW} | built once |" in table
    assert f"| leadpt{D_LEAD} | {D_LEAD} | built once |" in table
    assert "| supcon-mlp-d2 | 2 | 1 |" in table and "| vae6 | 6 | 1 |" in table

    # results.json is strict JSON (no NaN) and records the layout.
    result = json.loads(
        (out / "results.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"results.json holds {c}"),
    )
    assert result["layout"] == {"name": "diphoton", "sha256": DIPHOTON.fingerprint}
    emb = result["embeddings"]
    assert emb[f"raw{D_RAW}"]["dimension"] == D_RAW
    assert emb[f"raw{D_RAW}"]["family"] == f"{D_RAW}D raw"
    assert emb[f"leadpt{D_LEAD}"]["family"] == f"{D_LEAD}D leading pT"
    # Linear evaluation on the five SM processes (ADC2021's W/QCD/Z/ttbar are not there).
    for name in names:
        le = emb[name]["linear_eval"]
        assert sorted(le["classes"]) == sorted(BACKGROUND_PROCESSES), (name, le)
    assert "linear_eval" in result["figures"] and "latent_map" in result["figures"]
    assert "layout &#x27;diphoton&#x27;" in (out / "report.html").read_text()


def test_config_names_and_errors_of_another_layout(diphoton_file: Path, tiny_toml: Path) -> None:
    # ADC2021 keeps its names; the layout gives the others, explicit names stay.
    assert [e.name for e in load_config(_toml(tiny_toml)).embeddings][1:] == ["raw57", "leadpt6"]
    cfg = _config(tiny_toml, diphoton_file)
    assert cfg.layout == DIPHOTON
    assert [e.dimension_on(cfg.layout) for e in cfg.embeddings] == [2, D_RAW, D_LEAD]
    named = _config(tiny_toml, diphoton_file, extra='\n[[embeddings]]\nkind = "raw"\nname = "r"\n')
    assert named.embeddings[-1].name == "r"
    # Round trip through the resolved config keeps the names.
    assert [e.name for e in type(cfg).from_dict(cfg.to_dict()).embeddings] == [
        e.name for e in cfg.embeddings
    ]

    # A trained embedding with the ADC2021 preprocessing: at load time, naming it.
    with pytest.raises(OptionsError, match=r"embeddings\[3\] \(vae6\): preprocessing 'pt'"):
        _config(tiny_toml, diphoton_file, extra='\n[[embeddings]]\nkind = "vae"\n')
    with pytest.raises(OptionsError, match=r"events\.layout: unknown layout 'dipho'"):
        _config(tiny_toml, diphoton_file, 'events.layout="dipho"')
    with pytest.raises(OptionsError, match=r"layout 'diphoton' needs events\.background_file"):
        load_config(_toml(tiny_toml), overrides=['events.layout="diphoton"'])


def test_layout_and_signal_mistakes_are_clear_errors(diphoton_file: Path, tiny_toml: Path) -> None:
    # The file records its layout: a study that says adc2021 (the default) is told.
    cfg = load_config(
        _toml(tiny_toml),
        overrides=[f'events.background_file="{diphoton_file.as_posix()}"',
                   f'events.signals=["{SIGNAL}"]'],
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"holds events in layout 'diphoton' but events.layout "
                       r"is 'adc2021'; set events.layout = 'diphoton'"):  # fmt: skip
        Pipeline(cfg, log=lambda s: None).run(until="events")
    # The default signals are ADC2021's: not in a diphoton file, said before any reading.
    cfg = load_config(
        _toml(tiny_toml),
        overrides=[
            f'events.background_file="{diphoton_file.as_posix()}"',
            'events.layout="diphoton"',
        ],
    )
    with pytest.raises(ValueError, match=r"events.signals \['Ato4l'\]: .*diphoton.h5 holds "
                       r"several processes but none of these \(it holds gamma_gamma"):  # fmt: skip
        Pipeline(cfg, log=lambda s: None).run(until="events")


def test_latent_map_and_baseline_markers_on_other_processes() -> None:
    from contrastx.plots.latent import plot_latent_by_process, process_styles
    from contrastx.plots.study import baseline_marker

    # Eleven diphoton processes: eleven distinct colours; ADC2021 colours unchanged.
    names = (*BACKGROUND_PROCESSES, "X_hh_300", "X_Sh_500", "A_Zh_300", "Hpm_Wh_300", "t_ch",
             "X_hh_400")  # fmt: skip
    styles = process_styles(names)
    assert len(set(styles.values())) == len(names)
    assert process_styles(["h0_tautau", "W"]) == {"h0_tautau": ("#17becf", "o"),
                                                  "W": ("#000080", "o")}  # fmt: skip
    # More processes than colours: the next ones repeat the colours with another marker.
    many = process_styles([f"p{i}" for i in range(30)])
    assert len(set(many.values())) == 30
    rng = np.random.default_rng(4)
    fig = plot_latent_by_process(rng.normal(size=(110, 2)), np.repeat(np.arange(11), 10), names,
                                 method="pca")  # fmt: skip
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [f"{n} (10)" for n in names]
    colours = {tuple(h.get_facecolor()[0]) for h in legend.legend_handles}
    assert len(colours) == len(names)
    assert baseline_marker(f"{D_RAW}D raw") == "o" and baseline_marker("57D raw") == "o"
    assert baseline_marker(f"{D_LEAD}D leading pT") == "^" and baseline_marker("8D VAE") == "x"
    assert baseline_marker("supcon-mlp") is None and baseline_marker("xD raw") is None


def test_the_diphoton_example_loads() -> None:
    path = Path(__file__).parents[2] / "examples" / "diphoton.toml"
    cfg = load_config(path)
    assert cfg.layout == DIPHOTON and cfg.events.background_file == "diphoton.h5"
    assert len(cfg.events.signals) == 5
    names = [e.name for e in cfg.embeddings]
    assert f"raw{D_RAW}" in names and f"leadpt{D_LEAD}" in names
    assert all(e.preprocessing() in (None, "layout") for e in cfg.embeddings)
