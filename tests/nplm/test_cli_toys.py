"""contrastx-toys: default sample, resume, inputs, errors; the results file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from contrastx.cli.toys import leading_pt_features, main
from contrastx.events import generators
from contrastx.events.generators import FAST_GENERATOR_VERSION
from contrastx.nplm.results import ToyResultsFile, read_toy_results
from contrastx.nplm.toys import NULL, SIGNAL, ToyBlock

SMALL = ["--n-ref", "3000", "--n-bkg", "300", "--M", "60", "--no-progress"]


def test_default_sample_run_and_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "toys.h5"
    assert main([*SMALL, "--n", "6", "--sig-fraction", "0.1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "median Z" in text and "toys/s" in text
    res = read_toy_results(out)
    assert res["null"]["toy_index"].tolist() == list(range(6))
    assert res["signal"]["n_sig"].min() > 0 and res["null"]["n_sig"].max() == 0
    assert res["null"]["seed"][:, 1].tolist() == [NULL] * 6
    assert res["config"]["input"]["features"].startswith("leading-object pT")
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["n_null"] == 6 and "power" in summary and "chi2" in summary
    assert set(summary["chi2"]) == {"mean", "ks"} and "ks_pvalue" in summary["chi2"]["ks"]
    assert "z_err" in summary["median_z"]["chi2_mean_dof"]
    assert {"lo", "hi"} <= set(summary["power"]["empirical"][0])
    figs = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    assert summary["figure"] == [str(p) for p in figs]
    assert all(p.stat().st_size > 1000 for p in figs)
    assert res["config"]["strategy_used"] in ("pool", "stream")
    if res["config"]["pool_backend_used"] == "native":  # float64 pool: float64 products
        assert res["config"]["pool_arithmetic_used"] == "float64"
    assert res["config"]["data_pool_fraction"] == pytest.approx(
        300 / res["config"]["data_pool_size"]
    )
    t_first = res["null"]["t"].copy()
    # Resume to 9 toys: the first 6 are kept, not recomputed.
    assert main([*SMALL, "--n", "9", "--sig-fraction", "0.1", "--out", str(out)]) == 0
    assert "resuming" in capsys.readouterr().out
    res2 = read_toy_results(out)
    assert res2["null"]["toy_index"].tolist() == list(range(9))
    np.testing.assert_array_equal(res2["null"]["t"][:6], t_first)
    # A different setting refuses to append to the same file.
    assert main([*SMALL, "--n", "9", "--n-bkg", "400", "--out", str(out)]) == 2
    assert "different settings" in capsys.readouterr().err
    # So does a sample from another fast-generator version (another sample for the seed).
    assert res2["config"]["input"]["generator_version"] == FAST_GENERATOR_VERSION
    with monkeypatch.context() as mp:
        mp.setattr(generators, "FAST_GENERATOR_VERSION", "0.0.1")
        assert main([*SMALL, "--n", "9", "--sig-fraction", "0.1", "--out", str(out)]) == 2
    assert "different settings" in capsys.readouterr().err


def test_embedding_input(tmp_path):
    rng = np.random.default_rng(0)
    emb = np.vstack([rng.normal(size=(8000, 3)), rng.normal(1.0, 0.2, size=(500, 3))])
    labels = np.r_[rng.integers(0, 4, 8000), np.full(500, 4)]
    path = tmp_path / "emb.h5"
    with h5py.File(path, "w") as f:
        f["embedding"] = emb
        f["labels"] = labels
        f.attrs["process_names"] = json.dumps(["W", "QCD", "Z", "ttbar", "Ato4l"])
    out = tmp_path / "r.h5"
    args = ["--input", str(path), "--n", "3", "--n-sig", "30", "--out", str(out), *SMALL]
    assert main([*args, "--no-plot", "--strategy", "pool", "--pool-dtype", "float32"]) == 0
    assert not out.with_suffix(".png").exists()
    res = read_toy_results(out)
    assert res["config"]["strategy_used"] == "pool" and res["config"]["pool_dtype"] == "float32"
    native = res["config"]["pool_backend_used"] == "native"
    assert res["config"]["pool_arithmetic_used"] == ("float32" if native else None)
    assert res["config"]["input"]["signal_pool"] == 500
    assert res["config"]["input"]["features"] == "embedding (3-D)"


def test_errors(tmp_path, capsys):
    assert main(["--gpu", "3", "--n", "2", "--out", str(tmp_path / "x.h5")]) == 2
    assert "CUDA device 3" in capsys.readouterr().err
    assert main(["--input", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "y.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*SMALL, "--sigma", "-1", "--out", str(tmp_path / "z.h5")]) == 2
    assert "sigma" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--mode", "fast"])


def test_paper_preset_stores_the_pool_in_float32():
    """--paper stores the whitened pool in float32 (half of float64's 8 GB at that scale, t
    within ~1e-7); a given --pool-dtype wins, and the CPU-sized default stays float64."""
    from contrastx.cli.toys import build_parser, toy_options

    parser = build_parser()
    assert toy_options(parser.parse_args(["--paper"])).pool_dtype == "float32"
    args = parser.parse_args(["--paper", "--pool-dtype", "float64"])
    assert toy_options(args).pool_dtype == "float64"
    assert toy_options(parser.parse_args(["--pool-dtype", "int16"])).pool_dtype == "int16"
    assert toy_options(parser.parse_args([])).pool_dtype == "float64"


def test_leading_pt_features():
    p = np.zeros((2, 19, 3), dtype=np.float32)
    p[:, :, 0] = np.arange(19) + 1
    np.testing.assert_array_equal(leading_pt_features(p)[0], [1, 2, 3, 6, 7, 10])


def test_results_file_roundtrip(tmp_path):
    path = tmp_path / "r.h5"
    key = {"seed": 4, "n_ref": 10}
    blk = ToyBlock(
        SIGNAL,
        np.array([3, 1]),
        np.array([5.0, 6.0]),
        np.array([9, 8]),
        np.array([1, 2]),
        np.array([0, 0]),
        seconds=1.0,
    )
    with ToyResultsFile(path, {"note": "x", **key}, key) as f:
        f.append(blk)
        assert sorted(f.done(SIGNAL).tolist()) == [1, 3] and f.done(NULL).size == 0
        f.write_summary({"ok": True})
    res = read_toy_results(path)
    assert res["signal"]["toy_index"].tolist() == [1, 3]  # sorted by toy index
    assert res["signal"]["t"].tolist() == [6.0, 5.0]
    assert res["signal"]["seed"].tolist() == [[4, 1, 1], [4, 1, 3]]
    assert res["signal"]["seconds"].tolist() == [0.5, 0.5]
    assert res["summary"] == {"ok": True}
    with pytest.raises(ValueError, match="different settings"):
        ToyResultsFile(path, {}, {"seed": 5, "n_ref": 10})
    ToyResultsFile(path, {}, {"seed": 5}, overwrite=True).close()


def test_event_file_input(tmp_path):
    from contrastx.events import write_events
    from contrastx.events.generators import generate_sample

    ev = generate_sample({"W": 3000, "QCD": 1500, "Z": 500, "Ato4l": 400}, seed=3)
    path = write_events(tmp_path / "ev.h5", ev)
    out = tmp_path / "r.h5"
    args = ["--input", str(path), "--n", "2", "--n-sig", "20", "--out", str(out), *SMALL]
    assert main(args) == 0
    info = read_toy_results(out)["config"]["input"]
    assert info["features"].startswith("flattened 57")
    assert info["background_pool"] == 5000 and info["signal_pool"] == 400
