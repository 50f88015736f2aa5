"""SIC of ensembles at working points (against a brute-force count), resolution bounds,
spreads and the injection needed for a significance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from contrastx.signal_aware.results import (
    ensemble_sic,
    injection_for_significance,
    summarise_points,
)


def _brute_sic(sb, ss, wb, eps):
    """Signal efficiency at the threshold that keeps a weighted fraction eps of the
    background (events ordered by score; no ties), over sqrt(eps)."""
    order = np.argsort(-sb)
    cum = np.cumsum(wb[order]) / wb.sum()
    k = int(np.searchsorted(cum, eps))  # background events above the cut: k (+ a fraction)
    thr = sb[order][k]
    return float((ss > thr).mean() / math.sqrt(eps))


def test_ensemble_sic_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    n_models, nb, ns = 4, 20_000, 3_000
    base_b, base_s = rng.normal(0, 1, nb), rng.normal(1.5, 1, ns)
    sb = base_b + 0.1 * rng.normal(size=(n_models, nb))
    ss = base_s + 0.1 * rng.normal(size=(n_models, ns))
    wb = rng.uniform(0.5, 1.5, nb)
    out = ensemble_sic(sb, ss, wb, [0.1, 0.01], ensemble_size=2, seed=3, min_background_events=10)
    assert out["sic"].shape == (2, 2) and out["resolved"].all()
    order = np.random.default_rng(3).permutation(n_models)
    for e in range(2):
        m = order[2 * e : 2 * e + 2]
        for j, eps in enumerate((0.1, 0.01)):
            ref = _brute_sic(sb[m].mean(0), ss[m].mean(0), wb, eps)
            assert out["sic"][e, j] == pytest.approx(ref, rel=0.02)


def test_an_unresolved_working_point_becomes_an_upper_bound():
    rng = np.random.default_rng(1)
    sb, ss = rng.normal(0, 1, (2, 500)), rng.normal(2, 1, (2, 500))
    out = ensemble_sic(sb, ss, np.ones(500), [0.1, 0.001], ensemble_size=2, seed=0,
                       min_background_events=20)  # fmt: skip
    assert out["resolved"].tolist() == [True, False]
    eps_min = 20 / 500
    assert np.isnan(out["bound"][0, 0])
    # bound = signal efficiency at the tightest resolved cut / sqrt(eps): above the value
    assert out["bound"][0, 1] >= out["sic"][0, 1]
    ref = _brute_sic(sb.mean(0), ss.mean(0), np.ones(500), eps_min) * math.sqrt(eps_min)
    assert out["bound"][0, 1] == pytest.approx(ref / math.sqrt(0.001), rel=0.05)
    with pytest.raises(ValueError, match="cannot make an ensemble"):
        ensemble_sic(sb, ss, np.ones(500), [0.1], ensemble_size=3, seed=0,
                     min_background_events=1)  # fmt: skip


def test_spreads_need_two_values():
    one = {"sic": np.array([[2.0, 5.0]]), "resolved": np.array([True, True]),
           "bound": np.full((1, 2), np.nan)}  # fmt: skip
    two = {"sic": np.array([[2.0, 5.0], [4.0, 7.0]]), "resolved": np.array([True, True]),
           "bound": np.full((2, 2), np.nan)}  # fmt: skip
    s1 = summarise_points([one])
    assert np.isnan(s1["instance_std"]).all() and np.isnan(s1["ensemble_std"]).all()
    s2 = summarise_points([two, one])
    assert s2["mean"].tolist() == [2.5, 5.5]
    assert s2["instance_std"][0] == pytest.approx(np.std([3.0, 2.0], ddof=1))
    # the instance with one ensemble has no ensemble spread: the other's is the mean
    assert s2["ensemble_std"][0] == pytest.approx(np.std([2.0, 4.0], ddof=1))


def test_injection_for_significance_is_a_bracket_of_scanned_points():
    r = [0.0, 0.5, 1.0, 2.0]
    # Z = SIC x r: 0, 1, 4, 10 -> 3 sigma first reached at r = 1, after 0.5
    e = injection_for_significance(r, [0.5, 2.0, 4.0, 5.0], 3.0, [0.0, 0.5, 1.5, 0.5])
    assert e == {"value": 1.0, "reached": True, "scanned_max": 2.0, "low": 0.5, "high": 2.0}
    miss = injection_for_significance(r, [0.1, 0.2, 0.3, 0.4], 3.0, [0.0] * 4)
    assert miss["value"] is None and not miss["reached"] and miss["low"] is None
