"""Sculpting checks: template-vs-background AUC, m spectra before and after a cut."""

from __future__ import annotations

import numpy as np
import pytest
from contrastx.cathode import Regions
from contrastx.cathode.classifier import ClassifierOptions
from contrastx.cathode.sculpting import mass_sculpting, sculpting_test, spectrum_check

FAST = ClassifierOptions(n_models=2, max_iter=50)


def test_perfect_template_gives_auc_compatible_with_one_half():
    rng = np.random.default_rng(13)
    cov = [[1.0, 0.4, 0.0], [0.4, 1.0, 0.0], [0.0, 0.0, 2.0]]
    x_background = rng.multivariate_normal(np.zeros(3), cov, 2000)
    x_template = rng.multivariate_normal(np.zeros(3), cov, 8000)  # same distribution
    res = sculpting_test(x_template, x_background, options=FAST, seed=1)
    assert abs(res.auc - 0.5) < 3 * res.auc_error
    assert res.auc_error == pytest.approx(np.sqrt((2000 + 8000) / (12 * 2000 * 8000)), rel=0.01)
    d = res.as_dict()
    assert d["n_background"] == 2000 and d["n_template"] == 8000
    assert abs(d["pull"]) < 3


def test_imperfect_template_is_detected():
    rng = np.random.default_rng(14)
    x_background = rng.normal(size=(2000, 3))
    x_template = rng.normal(size=(8000, 3))
    x_template[:, 1] *= 1.25  # a template 25 % too wide in one feature
    res = sculpting_test(x_template, x_background, options=FAST, seed=1)
    assert res.auc - 0.5 > 5 * res.auc_error


def test_template_weights_enter_the_sculpting_test():
    # a template with the right shape only after its weights are applied
    rng = np.random.default_rng(15)
    x_background = rng.normal(size=(2000, 2))
    x_template = rng.normal(size=(8000, 2))
    x_template[:4000, 0] += 1.5  # a displaced half ...
    w = np.r_[np.full(4000, 1e-9), np.ones(4000)]  # ... weighted away
    weighted = sculpting_test(x_template, x_background, w_template=w, options=FAST, seed=2)
    unweighted = sculpting_test(x_template, x_background, options=FAST, seed=2)
    assert abs(weighted.auc - 0.5) < 3 * weighted.auc_error
    assert unweighted.auc - 0.5 > 5 * unweighted.auc_error


def _mass_toy(seed: int, n: int = 40_000):
    rng = np.random.default_rng(seed)
    m = rng.uniform(0.0, 3.0, n)
    return rng, m, Regions((1.2, 1.8), ((0.0, 1.2), (1.8, 3.0)))


def test_score_independent_of_m_does_not_sculpt():
    rng, m, regions = _mass_toy(16)
    score = rng.normal(size=m.size)
    for check in mass_sculpting(m, score, regions, efficiencies=(0.2, 0.05)):
        for region in ("signal_region", "sidebands"):
            sc = check[region]
            assert not sc.sculpted(alpha=0.001), (check["efficiency"], region, sc.p_value)
            assert sc.efficiency == pytest.approx(check["efficiency"], abs=0.02)
            assert sc.before.sum() > sc.after.sum() > 0


def test_score_correlated_with_m_creates_a_detected_bump():
    # a score that prefers m near 1.5 carves a peak into the SR spectrum
    rng, m, regions = _mass_toy(17)
    score = rng.normal(size=m.size) + 1.5 * np.exp(-0.5 * ((m - 1.5) / 0.05) ** 2)
    check = mass_sculpting(m, score, regions, efficiencies=(0.1,))[0]
    sr = check["signal_region"]
    assert sr.sculpted(alpha=0.001)
    assert sr.bump_p_value < 1e-6
    peak_bin = int(np.argmax(sr.pulls))
    assert sr.edges[peak_bin] <= 1.5 <= sr.edges[peak_bin + 1] + 0.06
    # a smooth slope in m is a shape change without a local bump: chi2 sees it
    score = rng.normal(size=m.size) + 0.8 * m
    sb = mass_sculpting(m, score, regions, efficiencies=(0.1,))[0]["sidebands"]
    assert sb.p_value < 1e-6


def test_spectrum_check_counts_and_windows():
    m = np.array([0.05, 0.15, 0.15, 0.25, 0.95, 1.05, 1.15])
    sel = np.array([True, False, True, False, False, True, True])
    sc = spectrum_check(m, sel, [(0.0, 0.3), (1.0, 1.2)], bins=3)
    # 0.95 lies outside both windows; 1.15 in the last bin [1.133, 1.2)
    assert sc.before.tolist() == [1, 2, 1, 1, 0, 1]
    assert sc.after.tolist() == [1, 1, 0, 1, 0, 1]
    assert sc.window_of_bin.tolist() == [0, 0, 0, 1, 1, 1]
    lo, hi = sc.bin_ranges()
    assert np.allclose(lo, [0.0, 0.1, 0.2, 1.0, 1.0 + 0.2 / 3, 1.0 + 0.4 / 3])
    assert np.allclose(hi, [0.1, 0.2, 0.3, 1.0 + 0.2 / 3, 1.0 + 0.4 / 3, 1.2])
    assert sc.efficiency == pytest.approx(4 / 6)


def test_bad_input_gets_clear_errors():
    rng, m, regions = _mass_toy(18, n=1000)
    score = rng.normal(size=m.size)
    with pytest.raises(ValueError, match=r"score must have shape \(1000,\)"):
        mass_sculpting(m, score[:-1], regions)
    with pytest.raises(ValueError, match=r"efficiencies must lie in \(0, 1\)"):
        mass_sculpting(m, score, regions, efficiencies=(1.0,))
    with pytest.raises(ValueError, match="no event lies in the signal region"):
        mass_sculpting(m[m < 1.0], score[m < 1.0], regions)
    with pytest.raises(TypeError, match="regions must be a Regions"):
        mass_sculpting(m, score, ((1.2, 1.8),))
    with pytest.raises(ValueError, match="selected must be a boolean mask"):
        spectrum_check(m, np.ones(3, bool), [(0.0, 1.0)])
    with pytest.raises(ValueError, match="x_template has 2 features; expected 3"):
        sculpting_test(np.zeros((50, 2)), np.zeros((50, 3)))
