"""NPLM statistics against scipy and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from contrastx.nplm.statistics import (
    bonferroni,
    chi2_log_p,
    chi2_z,
    clopper_pearson,
    empirical_p_value,
    empirical_z_limit,
    fit_chi2_dof,
    median_z,
    nplm_score,
    power,
    z_from_log_p,
    z_from_p,
)
from scipy import stats


def test_empirical_p_value_by_hand():
    null = [1.0, 2.0, 3.0, 4.0]
    assert empirical_p_value(2.5, null) == pytest.approx(3 / 5)  # 2 >= 2.5, +1
    assert empirical_p_value(3.0, null) == pytest.approx(3 / 5)  # ties count as extreme
    assert empirical_p_value(10.0, null) == pytest.approx(1 / 5)
    assert empirical_p_value(0.0, null) == pytest.approx(1.0)
    np.testing.assert_allclose(empirical_p_value([0.0, 10.0], null), [1.0, 0.2])
    with pytest.raises(ValueError, match="empty"):
        empirical_p_value(1.0, [])
    with pytest.raises(ValueError, match="NaN"):
        empirical_p_value(np.nan, null)


def test_z_conversions():
    assert z_from_p(0.5) == pytest.approx(0.0)
    assert z_from_p(stats.norm.sf(3.0)) == pytest.approx(3.0)
    assert z_from_log_p(math.log(stats.norm.sf(2.0))) == pytest.approx(2.0)
    # Far tail: p = 1e-400 underflows, log p does not.
    z = z_from_log_p(-400 * math.log(10))
    assert math.isfinite(z) and 42 < z < 43
    with pytest.raises(ValueError):
        z_from_p(1.5)


def test_chi2_z_far_tail_is_finite():
    dof = 12.0
    assert chi2_z(dof, dof) == pytest.approx(stats.norm.isf(stats.chi2.sf(dof, dof)))
    assert chi2_log_p(30.0, dof) == pytest.approx(math.log(stats.chi2.sf(30.0, dof)))
    z = chi2_z(5000.0, dof)  # sf underflows to 0 in double precision
    assert stats.chi2.sf(5000.0, dof) == 0.0
    assert math.isfinite(z) and z > 60
    # The log-space continued fraction joins scipy's logsf smoothly.
    from contrastx.nplm.statistics import _log_gammaincc_cf

    for t in (60.0, 300.0, 1400.0):
        assert _log_gammaincc_cf(dof / 2, np.array([t / 2]))[0] == pytest.approx(
            stats.chi2.logsf(t, dof), rel=1e-10
        )
    zs = chi2_z(np.array([20.0, 200.0, 2000.0]), dof)
    assert np.all(np.diff(zs) > 0)


def test_fit_chi2_dof():
    rng = np.random.default_rng(0)
    t0 = rng.chisquare(10.0, size=4000)
    mean_fit = fit_chi2_dof(t0)
    assert mean_fit.dof == pytest.approx(t0.mean())
    ks_fit = fit_chi2_dof(t0, "ks")
    assert ks_fit.dof == pytest.approx(10.0, abs=0.4)
    # The KS-optimal dof is at least as good as the mean's, and a local minimum.
    assert ks_fit.ks_statistic <= mean_fit.ks_statistic + 1e-12
    for nu in (ks_fit.dof - 0.05, ks_fit.dof + 0.05):
        assert stats.kstest(t0, stats.chi2(nu).cdf).statistic >= ks_fit.ks_statistic - 1e-12
    with pytest.raises(ValueError, match="method"):
        fit_chi2_dof(t0, "ml")
    with pytest.raises(ValueError, match="mean"):
        fit_chi2_dof([-1.0, -2.0])


def test_clopper_pearson_against_beta():
    lo, hi = clopper_pearson(7, 20, cl=0.9)
    assert lo == pytest.approx(stats.beta.ppf(0.05, 7, 14))
    assert hi == pytest.approx(stats.beta.ppf(0.95, 8, 13))
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    # Coverage by definition: P(K >= 7 | p = lo) = 0.05.
    assert stats.binom.sf(6, 20, lo) == pytest.approx(0.05, rel=1e-6)
    with pytest.raises(ValueError):
        clopper_pearson(5, 3)


def test_power_chi2_and_empirical():
    rng = np.random.default_rng(1)
    t0 = rng.chisquare(8.0, size=999)
    ts = rng.chisquare(8.0, size=500) + 6.0
    res = power(ts, t0, method="chi2", dof=8.0)
    for r in res:
        thr = stats.chi2.isf(stats.norm.sf(r.z), 8.0)
        assert r.threshold == pytest.approx(thr)
        assert r.k == int((ts > thr).sum()) and r.power == r.k / 500
        assert r.lo <= r.power <= r.hi
    emp = power(ts, t0, method="empirical")
    p_emp = empirical_p_value(ts, t0)
    for r in emp:
        assert r.k == int((p_emp <= stats.norm.sf(r.z)).sum())
        assert r.k == int((ts > r.threshold).sum())  # the threshold is consistent
    # 3 sigma (p = 1.35e-3) needs more than 1/p - 1 ~ 740 null toys: unreachable with 500.
    few = power(ts, t0[:500], z_levels=[3.0], method="empirical")[0]
    assert math.isnan(few.power)


def test_median_z():
    rng = np.random.default_rng(2)
    t0 = rng.chisquare(10.0, size=2000)
    ts = rng.chisquare(10.0, size=301) + 15.0
    mz = median_z(ts, t0, method="chi2", dof=10.0, n_boot=200)
    assert mz.z == pytest.approx(chi2_z(np.median(ts), 10.0))
    assert mz.z_lo < mz.z < mz.z_hi
    assert 0 < mz.z_err < 1
    emp = median_z(ts, t0, method="empirical", n_boot=0)
    assert emp.z == pytest.approx(z_from_p(empirical_p_value(np.median(ts), t0)))
    assert math.isnan(emp.z_err)
    # Default dof is the null mean.
    assert median_z(ts, t0, n_boot=0).dof == pytest.approx(t0.mean())


def test_bonferroni():
    p, z = bonferroni([0.01, 0.2, 0.5])
    assert p == pytest.approx(0.03) and z == pytest.approx(stats.norm.isf(0.03))
    assert bonferroni([0.6, 0.9])[0] == 1.0
    p, z = bonferroni(log_p=[-1000.0, -3.0])
    assert p == 0.0 and math.isfinite(z) and z == pytest.approx(z_from_log_p(math.log(2) - 1000))
    with pytest.raises(ValueError):
        bonferroni([0.1], log_p=[-1.0])


def test_nplm_score():
    np.testing.assert_allclose(
        nplm_score([0.0, 2.0, -50.0]), [0.5, 1 / (1 + np.exp(-2)), 0.0], atol=1e-20
    )
    assert nplm_score(np.array([800.0]))[0] == 1.0  # no overflow


def test_empirical_median_z_at_its_limit_is_a_lower_bound():
    # Every signal toy beyond every null toy: the empirical Z is only a bound.
    rng = np.random.default_rng(11)
    t0 = rng.chisquare(4, size=100)
    t1 = t0.max() + 1.0 + rng.random(50)
    mz = median_z(t1, t0, method="empirical", n_boot=0)
    assert mz.lower_bound
    assert mz.z == pytest.approx(empirical_z_limit(100))
    assert empirical_z_limit(100) == pytest.approx(2.330, abs=1e-3)
    assert mz.text() == "> 2.33"
    assert mz.as_dict()["lower_bound"] is True
    # The chi2 extrapolation is a model, not a bound; inside the null range neither is.
    assert not median_z(t1, t0, method="chi2", n_boot=0).lower_bound
    inside = median_z(np.quantile(t0, [0.4, 0.5, 0.6]), t0, method="empirical", n_boot=50)
    assert not inside.lower_bound
    assert inside.text().count("+-") == 1
    with pytest.raises(ValueError, match="n_null"):
        empirical_z_limit(0)
