"""ROC, SIC, max SIC with the minimum-background rule, AUC with its uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
from contrastx.cathode.metrics import (
    auc_with_uncertainty,
    classification_metrics,
    max_sic,
    post_selection_significance,
    roc_curve,
    sic_curve,
    significance_improvement,
)
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve


def _gauss(n_sig: int, n_bkg: int, shift: float, seed: int):
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(shift, 1.0, n_sig), rng.normal(0.0, 1.0, n_bkg)]
    y = np.r_[np.ones(n_sig), np.zeros(n_bkg)]
    return y, s


def test_roc_matches_scikit_learn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    s = np.round(rng.normal(size=3000) + y, 1)  # many ties
    w = rng.random(3000)
    for weights in (None, w):
        roc = roc_curve(y, s, sample_weight=weights)
        fpr, tpr, thr = sk_roc_curve(y, s, sample_weight=weights, drop_intermediate=False)
        assert np.allclose(roc.fpr, fpr) and np.allclose(roc.tpr, tpr)
        assert np.allclose(roc.thresholds[1:], thr[1:])
        assert roc.auc == pytest.approx(roc_auc_score(y, s, sample_weight=weights))
    # unweighted background counts passing each threshold
    roc = roc_curve(y, s)
    for k in (1, 10, 25):
        assert roc.n_background_selected[k] == int(((s >= roc.thresholds[k]) & (y == 0)).sum())


def test_max_sic_obeys_the_minimum_background_rule():
    # A working point with 400 signal and only 2 background events makes the
    # unrestricted maximum huge; the rule (>= 100 background events selected) must
    # ignore it.
    y, s = _gauss(2000, 10_000, 1.5, seed=1)
    s[:400] = 50.0  # 400 signal events above ...
    s[2000:2002] = 49.0  # ... 2 background events above all others
    roc = roc_curve(y, s)
    res = max_sic(y, s, min_background_events=100)
    # brute force over every distinct threshold
    best = 0.0
    for t in np.unique(s):
        nb = int(((s >= t) & (y == 0)).sum())
        if nb < 100:
            continue
        tpr, fpr = ((s >= t) & (y == 1)).sum() / 2000, nb / 10_000
        best = max(best, tpr / np.sqrt(fpr))
    assert res.value == pytest.approx(best)
    assert res.n_background_selected >= 100
    assert res.background_efficiency >= 100 / 10_000 == res.min_background_efficiency
    # without the rule the maximum sits at the tiny working point
    _, fpr, sic = sic_curve(y, s, min_background_events=1)
    assert sic.max() > 2 * res.value
    assert fpr[np.argmax(sic)] < 0.001
    assert roc.n_background == 10_000


def test_sic_at_fixed_efficiency_matches_the_analytic_curve():
    # Gaussians with unit width shifted by 1.5: TPR(FPR) = Phi(Phi^-1(FPR) + 1.5)
    y, s = _gauss(200_000, 200_000, 1.5, seed=2)
    eff = np.array([0.3, 0.1, 0.01])
    got = significance_improvement(y, s, eff)
    expected = stats.norm.sf(stats.norm.isf(eff) - 1.5) / np.sqrt(eff)
    assert np.allclose(got, expected, rtol=0.03)
    post = post_selection_significance(y, s, eff, n_signal=50.0, n_background=10_000.0)
    assert post["before"] == pytest.approx(0.5)
    assert np.allclose(post["after"], 0.5 * got, rtol=1e-12)


def test_auc_uncertainty_covers_the_truth():
    # Under the null (identical distributions) the AUC's standard error is exact; the
    # truth 0.5 lies within 1 sigma in ~68% of repetitions.
    inside = 0
    for seed in range(200):
        y, s = _gauss(150, 250, 0.0, seed=100 + seed)
        auc, sigma = auc_with_uncertainty(y, s)
        inside += abs(auc - 0.5) < sigma
    assert 0.58 < inside / 200 < 0.78
    # at AUC != 0.5 Hanley-McNeil and the bootstrap agree
    y, s = _gauss(800, 1200, 1.0, seed=3)
    auc, hm = auc_with_uncertainty(y, s)
    auc_b, boot = auc_with_uncertainty(y, s, method="bootstrap", n_bootstrap=300, seed=4)
    assert auc == auc_b == pytest.approx(stats.norm.cdf(1.0 / np.sqrt(2)), abs=0.03)
    assert boot == pytest.approx(hm, rel=0.2)
    # seeded bootstrap is reproducible
    assert auc_with_uncertainty(y, s, method="bootstrap", n_bootstrap=50, seed=4) == (
        auc_with_uncertainty(y, s, method="bootstrap", n_bootstrap=50, seed=4)
    )


def test_weighted_auc_uses_effective_sizes():
    y, s = _gauss(500, 500, 0.5, seed=5)
    w = np.r_[np.full(500, 1.0), np.full(500, 0.25)]
    a1, e1 = auc_with_uncertainty(y, s)
    a2, e2 = auc_with_uncertainty(y, s, sample_weight=w)  # uniform per class: same sizes
    assert a1 == pytest.approx(a2) and e1 == pytest.approx(e2)
    w2 = np.r_[np.ones(500), np.r_[np.full(250, 1.0), np.full(250, 1e-6)]]
    _, e3 = auc_with_uncertainty(y, s, sample_weight=w2)  # half the background counts
    assert e3 > e1 * 1.1


def test_classification_metrics_summary():
    y, s = _gauss(1000, 5000, 1.5, seed=6)
    out = classification_metrics(y, s, background_efficiencies=(0.1, 0.01))
    assert out["n_signal"] == 1000 and out["n_background"] == 5000
    assert out["max_sic"]["n_background_selected"] >= 100
    assert out["sic_at_background_efficiency"][0] == pytest.approx(
        significance_improvement(y, s, [0.1])[0]
    )
    assert out["sic_at_background_efficiency"][1] is None  # 50 events < 100: not measured


def test_bad_input_gets_clear_errors():
    y, s = _gauss(100, 200, 1.0, seed=7)
    with pytest.raises(ValueError, match="differ in length: 300 and 299"):
        roc_curve(y, s[:-1])
    with pytest.raises(ValueError, match="need both classes"):
        roc_curve(np.zeros(10), np.arange(10.0))
    with pytest.raises(ValueError, match=r"0 \(background\) and 1 \(signal\) only; got \[2.0\]"):
        roc_curve(np.r_[y[:-1], 2], s)
    bad = s.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match=r"score contains NaN or inf \(1 entries\)"):
        max_sic(y, bad)
    with pytest.raises(ValueError, match="at least min_background_events = 500"):
        max_sic(y, s, min_background_events=500)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\]"):
        significance_improvement(y, s, [0.0])
    with pytest.raises(ValueError, match="method must be"):
        auc_with_uncertainty(y, s, method="delong")
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        roc_curve(y, s, sample_weight=np.ones(3))
