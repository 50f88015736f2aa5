"""contrastx-toys output: a saturated empirical median Z is a bound; the JSON is strict."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from contrastx.cli.toys import main
from contrastx.nplm.results import read_toy_results
from contrastx.nplm.statistics import empirical_z_limit

SMALL = ["--n-ref", "3000", "--n-bkg", "300", "--M", "60", "--no-progress", "--no-plot"]


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_saturated_empirical_z_is_printed_as_a_bound(tmp_path, capsys) -> None:
    # A signal far from the background: every signal toy is beyond every null toy.
    rng = np.random.default_rng(5)
    emb = np.vstack([rng.normal(size=(6000, 2)), rng.normal(4.0, 0.2, size=(400, 2))])
    labels = np.r_[rng.integers(0, 4, 6000), np.full(400, 4)]
    path = tmp_path / "emb.h5"
    with h5py.File(path, "w") as f:
        f["embedding"] = emb
        f["labels"] = labels
        f.attrs["process_names"] = json.dumps(["W", "QCD", "Z", "ttbar", "Ato4l"])
    out = tmp_path / "r.h5"
    argv = ["--input", str(path), "--n", "6", "--n-sig", "60", "--out", str(out), *SMALL]
    assert main(argv) == 0
    text = capsys.readouterr().out
    limit = empirical_z_limit(6)
    assert f"median Z (empirical) > {limit:.2f}" in text
    assert "lower bound" in text and "extrapolates" in text
    # Strict JSON in the side file and in the results file: NaN (empirical power at
    # 2 and 3 sigma with 6 null toys) is written as null.
    summary = _strict(out.with_suffix(".json").read_text())
    assert summary["median_z"]["empirical"]["lower_bound"] is True
    assert summary["median_z"]["empirical"]["z"] == pytest.approx(limit)
    assert summary["median_z"]["chi2_mean_dof"]["lower_bound"] is False
    assert summary["empirical_z_limit"] == pytest.approx(limit)
    assert summary["t_signal_median_beyond_null"] is True
    assert summary["power"]["empirical"][2]["power"] is None
    assert "n/a (too few null toys)" in text
    with h5py.File(out, "r") as f:
        _strict(f.attrs["summary"])
    assert read_toy_results(out)["summary"]["median_z"]["empirical"]["lower_bound"] is True


def test_json_ready_writes_null_for_non_finite_numbers() -> None:
    from contrastx._json import dumps

    obj = {"a": float("nan"), "b": [np.float64(np.inf), 1.5], "c": np.array([-np.inf, 2.0])}
    assert _strict(dumps(obj)) == {"a": None, "b": [None, 1.5], "c": [None, 2.0]}
    with pytest.raises(ValueError):  # allow_nan=False: nothing non-finite gets through
        dumps({"x": object()}, default=lambda o: float("nan"))
