"""``contrastx-cathode``: inputs, results files, resuming, baselines, figures, errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from contrastx.cli import cathode as cli
from contrastx.cli.cathode import main

pytest.importorskip("matplotlib")

SR = "--sr=1.2,1.8"
SB = "--sb=0,1.2,1.8,3"
SMALL = [
    "--epochs", "3", "--transforms", "1", "--hidden-features", "16,16", "--batch-size", "256",
    "--n-best-epochs", "2", "--n-models", "2", "--max-iter", "30", "--no-progress",
    "--min-background-events", "20",
]  # fmt: skip


def _events(n_bkg: int, n_sig: int, seed: int, m_range=(0.0, 3.0)) -> np.ndarray:
    """Rows (m, x0, x1, x2, label): background with x depending on m, a localized signal."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(*m_range, n_bkg)
    x = rng.normal(size=(n_bkg, 3)) + 0.3 * m[:, None]
    ms = rng.normal(1.5, 0.05, n_sig)
    xs = rng.normal(size=(n_sig, 3)) * 0.2 + np.array([2.0, -0.5, 1.0])
    return np.c_[np.r_[m, ms], np.r_[x, xs], np.r_[np.zeros(n_bkg), np.ones(n_sig)]]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cathode-cli")
    paths = {
        "data": d / "data.npy",
        "eval": d / "eval.npy",
        "ideal": d / "ideal.npy",
        "sup": d / "sup.npy",
    }
    np.save(paths["data"], _events(6000, 80, seed=1))
    np.save(paths["eval"], _events(3000, 500, seed=2, m_range=(1.2, 1.8)))
    np.save(paths["ideal"], _events(4000, 0, seed=3, m_range=(1.2, 1.8)))
    np.save(paths["sup"], _events(2000, 500, seed=4, m_range=(1.2, 1.8)))
    return paths


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _base(files, out: Path) -> list[str]:
    return [
        "--features", str(files["data"]), "--m-column", "0", "--label-column", "4", SR, SB,
        "--out", str(out), *SMALL,
    ]  # fmt: skip


def test_features_run_writes_results_and_figures_then_reports(files, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        *_base(files, out), "--eval", str(files["eval"]), "--idealized", str(files["ideal"]),
        "--supervised", str(files["sup"]),
    ]  # fmt: skip
    rc, text, err = _run(args, capsys)
    assert rc == 0, err
    assert "CATHODE: max SIC" in text and "idealized: max SIC" in text
    assert "supervised: max SIC" in text and "sculpting test" in text
    summary = json.loads((out / "cathode.json").read_text())
    assert summary["complete"] is True
    assert summary["config"]["cathode"]["classifier"]["n_models"] == 2
    assert summary["config"]["cathode"]["signal_region"] == [1.2, 1.8]
    n_sr = summary["counts"]["signal_region"]
    assert summary["template"]["n_events"] == round(4 * n_sr)
    cath = summary["evaluation"]["cathode"]
    assert cath["n_background"] == 3000 and cath["n_signal"] == 500
    assert len(cath["ensembles"]["max_sic"]) == 1
    post = cath["post_selection_significance"]
    n_sig_sr = 80  # every injected signal event lies in the SR
    assert post["before"] == pytest.approx(n_sig_sr / np.sqrt(n_sr - n_sig_sr))
    assert len(post["after"]) == 3
    assert summary["idealized"]["n_template"] == 4000
    assert summary["supervised"]["metrics"]["max_sic"]["value"] > 1.0
    assert 0.0 < summary["sculpting_test"]["auc"] < 1.0
    assert summary["mass_sculpting_events"] == "true background (truth labels)"
    assert [c["efficiency"] for c in summary["mass_sculpting"]] == [0.2, 0.05]
    assert summary["flow"]["reused"] is False and summary["flow"]["fit_info"]["n_train"] > 0
    assert summary["timing"]["classifier_seconds"] > 0
    for name in ("sic", "roc", "sculpting_roc", "mass_spectra", "projections"):
        assert Path(summary["figures"][name]).is_file(), name
    with h5py.File(out / "cathode.h5") as f:
        assert f.attrs["format"] == "contrastx-cathode-results"
        assert json.loads(f.attrs["config"]) == summary["config"]
        assert json.loads(f["summary_json"][()]) == summary
        assert f["signal_region/scores"].shape == (n_sr,)
        assert f["signal_region/ensemble_scores"].shape == (1, n_sr)
        assert f["template/x"].shape == (round(4 * n_sr), 3)
        assert f["eval/scores"].shape == (3500,)
        assert "idealized/scores" in f and "supervised/scores" in f
        assert np.isclose(f["template/weights"][...].sum(), n_sr)
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temporaries

    # a finished run with the same configuration is reported, not recomputed
    before = (out / "cathode.json").stat().st_mtime_ns
    rc, text, err = _run(args, capsys)
    assert rc == 0, err
    assert "not recomputed" in text and "CATHODE: max SIC" in text
    assert (out / "cathode.json").stat().st_mtime_ns == before


def test_interrupted_run_reuses_the_saved_flow(files, tmp_path, capsys):
    out = tmp_path / "run"
    rc, _, err = _run(_base(files, out), capsys)
    assert rc == 0, err
    first = json.loads((out / "cathode.json").read_text())
    flow_mtime = (out / "flow.pt").stat().st_mtime_ns
    with h5py.File(out / "cathode.h5") as f:
        scores = f["signal_region/scores"][...]
    # an interruption after the flow was saved: no summary yet
    (out / "cathode.json").unlink()
    (out / "cathode.h5").unlink()
    rc, text, err = _run(_base(files, out), capsys)
    assert rc == 0, err
    assert "reusing the flow saved in" in text
    assert (out / "flow.pt").stat().st_mtime_ns == flow_mtime
    again = json.loads((out / "cathode.json").read_text())
    assert again["flow"]["reused"] is True
    with h5py.File(out / "cathode.h5") as f:
        assert np.array_equal(f["signal_region/scores"][...], scores)
    assert again["evaluation"]["cathode"] == first["evaluation"]["cathode"]

    # other settings: refused without --overwrite; with it, a classifier-only change
    # keeps the flow, a flow change retrains it
    rc, _, err = _run([*_base(files, out), "--n-models", "4"], capsys)
    assert rc == 2 and "holds results of a different configuration" in err
    rc, text, err = _run([*_base(files, out), "--n-models", "4", "--overwrite"], capsys)
    assert rc == 0, err
    assert "reusing the flow" in text
    rc, text, err = _run([*_base(files, out), "--epochs", "2", "--overwrite"], capsys)
    assert rc == 0, err
    assert "another flow configuration: training a new flow" in text
    assert (out / "flow.pt").stat().st_mtime_ns != flow_mtime


def test_embedding_input_with_m_dataset_and_config_file(files, tmp_path, capsys):
    from contrastx.embed.embedding_file import write_embedding

    arr = np.load(files["data"])
    path = tmp_path / "emb.h5"
    labels = np.where(arr[:, 4] == 1, 4, 1)  # Ato4l (a contrastx signal) vs QCD
    write_embedding(path, arr[:, 1:4], labels, ("W", "QCD", "Z", "ttbar", "Ato4l"))
    with h5py.File(path, "a") as f:
        f.create_dataset("mjj", data=arr[:, 0])
    cfg = tmp_path / "cathode.toml"
    cfg.write_text(
        "[cathode]\nsignal_region = [1.2, 1.8]\nsidebands = [0.0, 1.2, 1.8, 3.0]\n"
        "min_background_events = 20\n[cathode.classifier]\nn_models = 2\nmax_iter = 30\n"
        "[cathode.flow]\nepochs = 2\ntransforms = 1\nhidden_features = [16, 16]\n"
        "n_best_epochs = 1\n"
    )
    out = tmp_path / "emb-run"
    args = ["--embedding", str(path), "--m", "mjj", "--config", str(cfg), "--out", str(out),
            "--no-progress", "--no-figures", "--no-sculpting-test"]  # fmt: skip
    rc, _, err = _run(args, capsys)
    assert rc == 0, err
    summary = json.loads((out / "cathode.json").read_text())
    assert summary["config"]["input"]["signal_processes"] == ["Ato4l"]
    assert summary["config"]["cathode"]["flow"]["epochs"] == 2
    assert summary["evaluation"]["cathode"]["n_signal"] == int(
        ((arr[:, 0] >= 1.2) & (arr[:, 0] < 1.8) & (arr[:, 4] == 1)).sum()
    )
    assert "figures" not in summary and "sculpting_test" not in summary
    # --m-column takes m from the embedding itself and drops it from the features
    ns = cli.build_parser().parse_args(["--embedding", str(path), "--m-column", "0", SR, SB])
    loaded = cli.load_input(ns, path, "embedding", "data")
    assert loaded.x.shape == (arr.shape[0], 2)
    assert np.allclose(loaded.m, arr[:, 1], atol=1e-6)
    # --signal picks other processes; unknown names are an error naming the file
    ns = cli.build_parser().parse_args(
        ["--embedding", str(path), "--m", "mjj", "--signal", "QCD", SR, SB]
    )
    assert (cli.load_input(ns, path, "embedding", "data").labels == (labels == 1)).all()
    rc, _, err = _run([*args[:6], "--signal", "Nope", "--out", str(tmp_path / "x")], capsys)
    assert rc == 2 and "--signal process(es) ['Nope'] not in the file's processes" in err


def test_event_file_input_uses_raw_features_and_the_invariant_mass(tmp_path, make_events):
    from contrastx.events import write_events
    from contrastx.events.kinematics import invariant_mass

    ev = make_events(50, seed=3)
    path = write_events(tmp_path / "ev.h5", ev)
    ns = cli.build_parser().parse_args(["--events", str(path), SR, SB])
    loaded = cli.load_input(ns, path, "events", "data")
    assert loaded.x.shape == (50, 57)
    assert np.allclose(loaded.m, invariant_mass(ev.particles))
    assert loaded.feature_names[:3] == ["pT[0]", "eta[0]", "phi[0]"]
    assert loaded.labels is not None and set(np.unique(loaded.labels)) <= {0, 1}


def test_blind_data_without_labels_still_runs(files, tmp_path, capsys):
    arr = np.load(files["data"])[:, :4]  # no label column
    path = tmp_path / "blind.npy"
    np.save(path, arr)
    out = tmp_path / "blind"
    args = ["--features", str(path), "--m-column", "0", SR, SB, "--out", str(out), *SMALL]
    rc, _, err = _run(args, capsys)
    assert rc == 0, err
    summary = json.loads((out / "cathode.json").read_text())
    assert summary["evaluation"] == {} and summary["evaluation_events"] is None
    assert summary["mass_sculpting_events"] == "all data"
    assert "sic" not in summary["figures"] and "mass_spectra" in summary["figures"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--m-column", "7"], "--m-column 7 is out of range (5 columns)"),
        (["--label-column", "1"], "column 1 (labels) must hold 0 (background) and 1"),
        (["--sr=5,6", "--sb=4,5,6,7"], "lie outside every window"),
        (["--sr=1.2,1.8", "--sb=0,1.3"], "overlaps the signal_region"),
        (["--eval", "missing.npy"], "--eval file not found: missing.npy"),
        (["--n-models", "3"], "n_models (3) must be a multiple"),
    ],
)
def test_bad_input_one_clear_line(files, tmp_path, capsys, change, message):
    args = [*_base(files, tmp_path / "bad"), *change]
    rc, _, err = _run(args, capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("contrastx-cathode: error: ")
    assert message in lines[0]


def test_bad_files_name_the_file(files, tmp_path, capsys):
    arr = np.load(files["data"])
    arr[17, 2] = np.nan
    bad = tmp_path / "nan.npy"
    np.save(bad, arr)
    rc, _, err = _run(
        ["--features", str(bad), "--m-column", "0", SR, SB, "--out", str(tmp_path / "o")], capsys
    )
    assert rc == 2 and f"{bad} (features) holds 1 NaN/inf value(s), first at index (17, 1)" in err
    m_file = tmp_path / "m.npy"
    np.save(m_file, np.ones(5))
    rc, _, err = _run(
        ["--features", str(files["data"]), "--m", str(m_file), SR, SB,
         "--out", str(tmp_path / "o")], capsys,
    )  # fmt: skip
    assert rc == 2 and f"{m_file}: m must have shape (6080,)" in err
    rc, _, err = _run(["--features", str(files["data"]), "--m-column", "0", SB], capsys)
    assert rc == 2 and "cathode.signal_region is not set" in err


def test_plot_functions_validate_their_input():
    from contrastx.plots.cathode import ScoreSet, plot_projections, plot_sic_curves

    with pytest.raises(ValueError, match="non-empty mapping"):
        plot_sic_curves({})
    with pytest.raises(TypeError, match="must be a ScoreSet"):
        plot_sic_curves({"a": (np.zeros(3), np.zeros(3))})
    with pytest.raises(ValueError, match="same D"):
        plot_projections(np.zeros((5, 2)), np.zeros((5, 3)))
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(200), np.zeros(2000)]
    s = rng.normal(size=2200) + y
    ens = np.stack([s + rng.normal(0, 0.1, 2200) for _ in range(3)])
    fig = plot_sic_curves({"toy": ScoreSet(y, s, ens)}, min_background_events=50)
    gids = {a.get_gid() for a in fig.axes[0].get_children()}
    assert {"sic:toy", "band:toy"} <= gids
