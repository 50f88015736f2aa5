"""A tiny signal-aware study end to end (seconds): every output, and what never leaks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from contrastx.embed import load_model, training_events
from contrastx.events import DIPHOTON, Events, write_events
from contrastx.events.generators.diphoton import BACKGROUND_PROCESSES
from contrastx.options import OptionsError
from contrastx.signal_aware import SignalAwareStudy, load_signal_aware_config

SIGNALS = ("X_hh_300", "X_hh_400", "A_Zh_500")
NAMES = (*BACKGROUND_PROCESSES, *SIGNALS)
COUNTS = {"gamma_gamma": 2400, "ggF": 200, "VBF": 200, "VH": 200, "ttH": 200,
          "X_hh_300": 300, "X_hh_400": 500, "A_Zh_500": 500}  # fmt: skip
XSEC_FB = {"gamma_gamma": 1000.0, "ggF": 40.0, "VBF": 10.0, "VH": 5.0, "ttH": 2.0,
           "X_hh_300": 1.0, "X_hh_400": 1.0, "A_Zh_500": 1.0}  # fmt: skip


@pytest.fixture(scope="module")
def diphoton_file(tmp_path_factory: pytest.TempPathFactory, random_layout_events) -> Path:
    """Random valid diphoton events: a falling continuum in m_gg, peaked SM Higgs and
    signals; the signals have harder jets (something for CATHODE to find)."""
    n = sum(COUNTS.values())
    ev = random_layout_events(DIPHOTON, n, seed=11)
    labels = np.concatenate([np.full(c, NAMES.index(p)) for p, c in COUNTS.items()])
    rng = np.random.default_rng(12)
    labels = rng.permutation(labels)
    m = np.where(labels == 0, 105.0 + rng.exponential(25.0, n) % 55.0, rng.normal(125, 1.5, n))
    ef = ev.event_features.copy()
    ef[:, DIPHOTON.event_feature_index("m_gg")] = np.clip(m, 105.0, 159.9)
    p = ev.particles.copy()
    sig = labels >= len(BACKGROUND_PROCESSES)
    pt = DIPHOTON.feature_index("pt")
    p[sig, :, pt] *= 3.0
    metadata = {
        "selected_cross_section_fb": XSEC_FB,
        "n_kept": COUNTS,
        "process_groups": {"X_hh_300": "X_hh", "X_hh_400": "X_hh", "A_Zh_500": "A_Zh"},
    }
    out = Events(p, labels, NAMES, layout=DIPHOTON, event_features=ef, metadata=metadata)
    return write_events(tmp_path_factory.mktemp("sa") / "diphoton.h5", out)


def _overrides(path: Path, out: Path, *more: str) -> list[str]:
    return [
        f'events.file="{path.as_posix()}"',
        f'run.out_dir="{out.as_posix()}"',
        "run.encoders=1",
        'events.signals=["X_hh_400", "A_Zh_500"]',
        "events.max_encoder_events=0",
        "pseudo_data.instances=2",
        "pseudo_data.luminosity_fb=1.0",
        "pseudo_data.injections=[0.0, 2.0, 4.0]",
        "pseudo_data.min_eval_signal=20",
        "results.nominal_injection=4.0",
        "results.map_method='pca'",
        "results.map_events=20",
        "results.min_background_events=5.0",
        "train.epochs=1",
        "train.batch_size=256",
        "cathode.epochs=2",
        "cathode.n_flows=1",
        "cathode.max_iter=10",
        *more,
    ]


def _config(path: Path, out: Path, *more: str):
    return load_signal_aware_config(preset="signal-aware", overrides=_overrides(path, out, *more))


@pytest.fixture(scope="module")
def study(diphoton_file: Path, tmp_path_factory: pytest.TempPathFactory) -> SignalAwareStudy:
    st = SignalAwareStudy(
        _config(diphoton_file, tmp_path_factory.mktemp("out")), log=lambda s: None
    )
    st.run()
    return st


def test_every_output_is_written(study: SignalAwareStudy):
    res = study.results["results"]
    for key in ("results", "tables", "report"):
        assert res.path(key).is_file()
    out = json.loads(res.path("results").read_text())
    assert set(out["sic"]) == {"X_hh_400", "A_Zh_500"}
    assert set(out["sic"]["X_hh_400"]) == {"ID", "IP", "EP", "background-only"}
    assert set(out["sic"]["A_Zh_500"]) == {"ID", "EP", "background-only"}  # one mass point
    curve = out["sic"]["X_hh_400"]["ID"]["0.1"]
    assert curve["injection"] == [0.0, 2.0, 4.0] and len(curve["mean"]) == 3
    assert all(np.isfinite(v) for v in curve["mean"])
    assert set(out["injection_for_significance"]["A_Zh_500"]) == {"ID", "EP", "background-only"}
    assert {"ID", "background-only", "IP-X_hh_400", "EP-X_hh", "EP-A_Zh"} <= set(out["sculpting"])
    assert 0.0 <= out["sculpting"]["ID"]["auc"] <= 1.0
    info = out["information"]
    assert len(info) == 4 and all(
        np.allclose(np.sum(v["matrix"], axis=1), 1) for v in info.values()
    )
    figs = {k for k in out["figures"]}
    assert {"sic_X_hh_400", "sic_A_Zh_500", "injection_summary", "projections_ID",
            "sculpting_roc_ID", "mass_sculpting_ID", "map_ID", "information"} <= figs  # fmt: skip
    for f in out["figures"].values():
        assert (res.dir / f["path"]).is_file()
    assert "SIC at S/sqrt(B) = 4" in res.path("tables").read_text()


def test_held_out_signals_never_reach_their_encoders(study: SignalAwareStudy):
    """Checked on the labels the model trained on and on the file rows (event ids) it read."""
    d = study.data
    names = d.events.process_names
    for key, st in study.results.items():
        if not key.startswith("encoder/"):
            continue
        cfg = st.info["configuration"]
        model = load_model(st.path("model"))
        assert model.metadata["training_configuration"] == cfg
        rows = training_events(model).rows
        procs = {names[k] for k in np.unique(d.events.labels[rows])}
        assert procs == set(cfg["trained"]), key
        assert not procs & set(cfg["held_out"]), key
        groups = set(model.class_names)
        assert not groups & set(cfg["held_out_groups"]) - {d.groups[p] for p in cfg["trained"]}
        # and never pseudo-data: the encoder rows and the pseudo-data half are disjoint
        pseudo = np.load(study.results["split"].path("split"))["pseudo"]
        assert not np.isin(rows, pseudo).any()
    ep = study.results["encoder/EP-X_hh/encoder0"]
    assert "X_hh" not in load_model(ep.path("model")).class_names


def test_a_rerun_skips_every_stage(study: SignalAwareStudy):
    again = SignalAwareStudy(study.config, log=lambda s: None)
    again.run()
    assert all(r.skipped for r in again.results.values())


def test_config_errors_name_the_key(diphoton_file: Path, tmp_path: Path):
    with pytest.raises(OptionsError, match=r"events\.configurations"):
        _config(diphoton_file, tmp_path, 'events.configurations=["ID", "XP"]')
    with pytest.raises(OptionsError, match="nominal_injection"):
        _config(diphoton_file, tmp_path, "results.nominal_injection=3.0")
    with pytest.raises(OptionsError, match=r"train\.seed"):
        _config(diphoton_file, tmp_path, "train.seed=3")
    with pytest.raises(OptionsError, match=r"events\.file"):
        load_signal_aware_config(preset="signal-aware")
    st = SignalAwareStudy(_config(diphoton_file, tmp_path, 'events.signals=["X_hh_999"]'))
    with pytest.raises(ValueError, match="X_hh_999"):
        st.run(until="split")
    big = _config(diphoton_file, tmp_path / "big", "pseudo_data.luminosity_fb=100.0")
    with pytest.raises(ValueError, match="lower the luminosity"):
        SignalAwareStudy(big, log=lambda s: None).run(until="cathode")


def test_the_command_line_runs_it(study: SignalAwareStudy, diphoton_file: Path, capsys):
    """contrastx-pipeline --preset signal-aware: the same settings find every stage done."""
    from contrastx.cli.pipeline import main

    sets = [a for o in _overrides(diphoton_file, study.out) for a in ("--set", o)]
    assert main(["--preset", "signal-aware", "--quiet", "--print-config", *sets]) == 0
    assert 'study = "signal-aware"' in capsys.readouterr().out
    assert main(["--preset", "signal-aware", *sets]) == 0
    out = capsys.readouterr().out
    assert "SIC at S/sqrt(B) = 4" in out and "report:" in out
    assert main(["--preset", "signal-aware", "--until", "toys", *sets]) == 2
    assert "not a stage of a signal-aware study" in capsys.readouterr().err


def test_cathode_stages_on_worker_processes_give_the_same_scores(
    study: SignalAwareStudy, diphoton_file: Path, tmp_path: Path
):
    """[executor] processes: the stages run in 2 spawned workers, with the same results."""
    import shutil

    for stage in ("split", "encoder", "pseudo_data"):  # only the cathode stages are redone
        shutil.copytree(study.out / stage, tmp_path / stage)
    cfg = _config(diphoton_file, tmp_path, 'executor.executor="processes"', "executor.workers=2")
    pooled = SignalAwareStudy(cfg, log=lambda s: None)
    pooled.run(until="cathode")
    names = [k for k in study.results if k.startswith("cathode/")]
    assert names and sorted(names) == sorted(k for k in pooled.results if k.startswith("cathode/"))
    for k in names:
        a, b = study.results[k], pooled.results[k]
        assert a.key == b.key and not b.skipped
        with np.load(a.path("scores")) as fa, np.load(b.path("scores")) as fb:
            assert sorted(fa.files) == sorted(fb.files)
            for f in fa.files:
                assert np.array_equal(fa[f], fb[f]), (k, f)
    again = SignalAwareStudy(cfg, log=lambda s: None)
    again.run(until="cathode")
    assert all(r.skipped for k, r in again.results.items() if k.startswith("cathode/"))
