r"""From toy test statistics to p-values, significances and power.

Conventions: large :math:`t` is signal-like; :math:`Z = \Phi^{-1}(1 - p)`
(one-sided). Null toys :math:`t_0` calibrate the test either empirically or through a
:math:`\chi^2_\nu` fitted to them (the primary paper's notebook uses
:math:`\nu = \overline{t_0}`; :func:`fit_chi2_dof` also offers the KS-optimal
:math:`\nu`). Far tails are evaluated in log space
(:func:`scipy.stats.chi2.logsf`, :func:`scipy.special.ndtri_exp`), so :math:`Z` stays
finite where :math:`p` underflows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "Chi2Fit",
    "MedianZ",
    "Power",
    "bonferroni",
    "chi2_log_p",
    "chi2_z",
    "clopper_pearson",
    "empirical_p_value",
    "empirical_z_limit",
    "fit_chi2_dof",
    "median_z",
    "nplm_score",
    "power",
    "z_from_log_p",
    "z_from_p",
]

Method = Literal["empirical", "chi2"]


def _as_1d(x: Any, name: str, *, allow_empty: bool = False) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def empirical_p_value(t_obs: Any, t_null: Any) -> np.ndarray | float:
    r"""Empirical p-value with the +1 correction.

    .. math:: p = \frac{1 + \#\{i : t_{0,i} \ge t_\mathrm{obs}\}}{1 + n_\mathrm{null}}

    Never 0; the smallest attainable value is :math:`1/(1 + n_\mathrm{null})`.

    Parameters
    ----------
    t_obs : float or array_like
    t_null : array_like, shape (n_null,)

    Returns
    -------
    float or numpy.ndarray (same shape as ``t_obs``)
    """
    null = np.sort(_as_1d(t_null, "t_null"))
    obs = np.asarray(t_obs, dtype=np.float64)
    if not np.isfinite(obs).all():
        raise ValueError("t_obs contains NaN or inf")
    n_extreme = null.size - np.searchsorted(null, obs, side="left")
    p = (1.0 + n_extreme) / (1.0 + null.size)
    return float(p) if np.ndim(p) == 0 else p


def z_from_p(p: Any) -> np.ndarray | float:
    r""":math:`Z = \Phi^{-1}(1 - p)` (``scipy.stats.norm.isf``)."""
    arr = np.asarray(p, dtype=np.float64)
    if ((arr < 0) | (arr > 1) | ~np.isfinite(arr)).any():
        raise ValueError("p must lie in [0, 1]")
    z = stats.norm.isf(arr)
    return float(z) if np.ndim(z) == 0 else z


def z_from_log_p(log_p: Any) -> np.ndarray | float:
    r""":math:`Z = \Phi^{-1}(1 - e^{\log p}) = -\Phi^{-1}(e^{\log p})`, finite for tiny p.

    Uses :func:`scipy.special.ndtri_exp`, accurate for :math:`\log p` down to -1e300.
    """
    arr = np.asarray(log_p, dtype=np.float64)
    if (arr > 0).any() or np.isnan(arr).any():
        raise ValueError("log_p must be <= 0")
    z = -special.ndtri_exp(arr)
    return float(z) if np.ndim(z) == 0 else z


def _log_gammaincc_cf(a: float, x: np.ndarray) -> np.ndarray:
    r"""Log of the regularised upper incomplete gamma :math:`Q(a, x)` for :math:`x > a + 1`.

    Continued fraction (modified Lentz):
    :math:`Q = e^{-x} x^a / \Gamma(a) \cdot 1/(x + 1 - a - \frac{1(1-a)}{x + 3 - a -
    \cdots})`, evaluated with the prefactor in log space so it never underflows.
    """
    tiny = 1e-300
    b = x + 1.0 - a
    c = np.full_like(x, 1.0 / tiny)
    d = 1.0 / b
    h = d.copy()
    for i in range(1, 1000):
        an = -i * (i - a)
        b = b + 2.0
        d = an * d + b
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = b + an / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        delta = d * c
        h = h * delta
        if np.all(np.abs(delta - 1.0) < 1e-15):
            break
    return -x + a * np.log(x) - special.gammaln(a) + np.log(h)


def chi2_log_p(t: Any, dof: float) -> np.ndarray | float:
    r""":math:`\log p` with :math:`p = P(\chi^2_\nu \ge t) = Q(\nu/2, t/2)`.

    ``scipy.stats.chi2.logsf`` where :math:`p` is representable; beyond (where it
    returns :math:`-\infty` or :math:`p < 10^{-280}`) the continued fraction of the
    upper incomplete gamma function in log space, so :math:`\log p` stays finite.
    """
    if not (math.isfinite(dof) and dof > 0):
        raise ValueError(f"dof must be finite and > 0; got {dof}")
    tt = np.asarray(t, dtype=np.float64)
    if np.isnan(tt).any():
        raise ValueError("t contains NaN")
    lp = np.asarray(stats.chi2.logsf(tt, dof), dtype=np.float64)
    far = (lp < -640.0) & np.isfinite(tt) & (tt / 2 > dof / 2 + 1)
    if far.any():
        lp = lp.copy()
        lp[far] = _log_gammaincc_cf(dof / 2, tt[far] / 2)
    return float(lp) if np.ndim(lp) == 0 else lp


def chi2_z(t: Any, dof: float) -> np.ndarray | float:
    r"""Significance of :math:`t` under a :math:`\chi^2_\nu` null:
    :math:`Z = \Phi^{-1}(1 - P(\chi^2_\nu \ge t))`, via log-space so it stays finite."""
    return z_from_log_p(chi2_log_p(t, dof))


class _Record:
    """Base of the result records below: :meth:`as_dict` gives their fields (for JSON)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Chi2Fit(_Record):
    """A :math:`\\chi^2` fitted to the null toys.

    Attributes
    ----------
    dof : float
        Degrees of freedom :math:`\\nu`.
    method : str
        ``"mean"`` or ``"ks"``.
    ks_statistic, ks_pvalue : float
        Kolmogorov-Smirnov distance of the null toys to :math:`\\chi^2_\\nu` and its p-value
        (for ``"ks"`` the p-value is optimistic: :math:`\\nu` was tuned on the same toys).
    """

    dof: float
    method: str
    ks_statistic: float
    ks_pvalue: float


def fit_chi2_dof(
    t_null: Any,
    method: Literal["mean", "ks"] = "mean",
    *,
    bounds: tuple[float, float] | None = None,
) -> Chi2Fit:
    r"""Fit the degrees of freedom of a :math:`\chi^2` to the null toys.

    * ``"mean"``: :math:`\nu = \overline{t_0}` (the primary paper's choice; the mean of
      a :math:`\chi^2_\nu` is :math:`\nu`).
    * ``"ks"``: :math:`\nu = \arg\min_\nu \sup_t |F_n(t) - F_{\chi^2_\nu}(t)|`, by a grid
      of 400 points over ``bounds`` (default :math:`[0.5, 2]\,\overline{t_0}`) refined by
      a bounded scalar minimisation around the best grid point.

    Parameters
    ----------
    t_null : array_like
        Null test statistics (at least 2, positive mean).
    method : {"mean", "ks"}
    bounds : (float, float), optional
        Search interval for ``"ks"``.

    Returns
    -------
    Chi2Fit
    """
    t0 = _as_1d(t_null, "t_null")
    if t0.size < 2:
        raise ValueError("need at least 2 null toys")
    mean = float(t0.mean())
    if not mean > 0:
        raise ValueError(f"the null toys have mean {mean} <= 0; a chi^2 cannot describe them")

    def ks(nu: float) -> float:
        return float(stats.kstest(t0, stats.chi2(nu).cdf).statistic)

    if method == "mean":
        dof = mean
    elif method == "ks":
        lo, hi = bounds if bounds is not None else (0.5 * mean, 2.0 * mean)
        if not (0 < lo < hi):
            raise ValueError(f"bounds must satisfy 0 < lo < hi; got {(lo, hi)}")
        grid = np.linspace(lo, hi, 400)
        vals = np.array([ks(g) for g in grid])
        i = int(np.argmin(vals))
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = optimize.minimize_scalar(ks, bounds=(a, b), method="bounded")
        dof = float(res.x) if res.fun <= vals[i] else float(grid[i])
    else:
        raise ValueError(f"method must be 'mean' or 'ks'; got {method!r}")
    test = stats.kstest(t0, stats.chi2(dof).cdf)
    return Chi2Fit(float(dof), method, float(test.statistic), float(test.pvalue))


def clopper_pearson(k: int, n: int, cl: float = 0.6827) -> tuple[float, float]:
    r"""Clopper-Pearson (exact binomial) interval for :math:`k` successes in :math:`n`.

    .. math:: [B^{-1}(\tfrac{1-\mathrm{cl}}2; k, n-k+1),\;
              B^{-1}(\tfrac{1+\mathrm{cl}}2; k+1, n-k)]

    with :math:`B^{-1}` the Beta quantile; the bounds are 0 and 1 at the edges.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0; got k={k}, n={n}")
    if not 0 < cl < 1:
        raise ValueError(f"cl must be in (0, 1); got {cl}")
    a = (1 - cl) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def _z_of(t: np.ndarray, t_null: np.ndarray, method: Method, dof: float | None) -> np.ndarray:
    if method == "empirical":
        return np.asarray(z_from_p(empirical_p_value(t, t_null)))
    if method == "chi2":
        nu = fit_chi2_dof(t_null).dof if dof is None else dof
        return np.asarray(chi2_z(t, nu))
    raise ValueError(f"method must be 'empirical' or 'chi2'; got {method!r}")


@dataclass(frozen=True)
class MedianZ(_Record):
    """Median significance of the signal toys.

    Attributes
    ----------
    z : float
        :math:`Z` of the median signal :math:`t`.
    z_lo, z_hi : float
        :math:`Z` of the 15.87 % and 84.13 % quantiles of the signal :math:`t`: the 68 %
        band of the per-toy significance (the spread of one experiment's outcome).
    z_err : float
        Bootstrap standard error of the median :math:`Z` (resampling the signal toys;
        the statistical precision of ``z`` itself).
    method : str
    dof : float or None
    lower_bound : bool
        True when ``z`` sits at the resolution limit of the empirical method: the median
        signal :math:`t` is beyond every null toy, so :math:`Z` is only known to be at
        least :math:`Z(1/(1+n_0))` (:func:`empirical_z_limit`). Print it as a bound
        (:meth:`text`), never as a measurement. Always False for ``chi2``.
    """

    z: float
    z_lo: float
    z_hi: float
    z_err: float
    method: str
    dof: float | None
    lower_bound: bool = False

    def text(self, digits: int = 2) -> str:
        """``"1.23 +- 0.05"``, or ``"> 2.33"`` when ``z`` is only a lower bound."""
        if self.lower_bound:
            return f"> {self.z:.{digits}f}"
        if math.isfinite(self.z_err):
            return f"{self.z:.{digits}f} +- {self.z_err:.{digits}f}"
        return f"{self.z:.{digits}f}"


def empirical_z_limit(n_null: int) -> float:
    r"""Largest :math:`Z` the empirical method can give with ``n_null`` null toys.

    :math:`\Phi^{-1}(1 - 1/(1 + n_0))`: 2.33 for 100 null toys. A median :math:`Z` at this
    value is a lower bound, not a measurement.
    """
    if isinstance(n_null, bool) or not isinstance(n_null, (int, np.integer)) or n_null < 1:
        raise ValueError(f"n_null must be a positive integer; got {n_null!r}")
    return float(z_from_p(1.0 / (1.0 + int(n_null))))


def median_z(
    t_signal: Any,
    t_null: Any,
    *,
    method: Method = "chi2",
    dof: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> MedianZ:
    r"""Median :math:`Z` of the signal toys, with its 68 % band and bootstrap error.

    :math:`Z(t)` is :math:`\Phi^{-1}(1 - p(t))` with :math:`p` empirical
    (:func:`empirical_p_value`, capped at :math:`Z(1/(1+n_0))`) or from a :math:`\chi^2`
    (``dof`` given, else :math:`\nu = \overline{t_0}`). As :math:`Z` is monotone in
    :math:`t`, the median :math:`Z` is the :math:`Z` of the median :math:`t`.

    Parameters
    ----------
    t_signal, t_null : array_like
    method : {"chi2", "empirical"}
    dof : float, optional
    n_boot : int
        Bootstrap resamples for ``z_err`` (0 to skip: ``z_err`` is then NaN).
    seed : int
    """
    ts = _as_1d(t_signal, "t_signal")
    t0 = _as_1d(t_null, "t_null")
    if method == "chi2" and dof is None:
        dof = fit_chi2_dof(t0).dof
    q = np.quantile(ts, [0.5, stats.norm.cdf(-1.0), stats.norm.cdf(1.0)])
    z_med, z_lo, z_hi = (float(v) for v in _z_of(q, t0, method, dof))
    z_err = float("nan")
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        meds = np.median(ts[rng.integers(0, ts.size, size=(n_boot, ts.size))], axis=1)
        zb = _z_of(meds, t0, method, dof)
        z_err = float(np.std(zb[np.isfinite(zb)], ddof=1)) if np.isfinite(zb).sum() > 1 else z_err
    # Empirical Z saturates when the median signal t is beyond every null toy.
    bound = method == "empirical" and bool(q[0] > t0.max())
    return MedianZ(z_med, z_lo, z_hi, z_err, method, None if method == "empirical" else dof, bound)


@dataclass(frozen=True)
class Power(_Record):
    """Fraction of signal toys beyond the :math:`Z`-sigma threshold of the null.

    Attributes
    ----------
    z : float
        Threshold significance.
    threshold : float
        :math:`t` threshold (NaN for an unreachable empirical threshold).
    power : float
        Fraction of signal toys with :math:`t` beyond it (NaN when unreachable).
    lo, hi : float
        Clopper-Pearson interval at ``cl``.
    k, n : int
        Signal toys passing, and in total.
    method : str
    """

    z: float
    threshold: float
    power: float
    lo: float
    hi: float
    k: int
    n: int
    method: str


def power(
    t_signal: Any,
    t_null: Any,
    z_levels: Sequence[float] = (1.0, 2.0, 3.0),
    *,
    method: Method = "chi2",
    dof: float | None = None,
    cl: float = 0.6827,
) -> list[Power]:
    r"""Power at :math:`Z` sigma: :math:`P(p(t_S) \le p_Z)` with :math:`p_Z = 1 - \Phi(Z)`.

    * ``"chi2"``: threshold :math:`t_Z = F^{-1}_{\chi^2_\nu}(1 - p_Z)` (``chi2.isf``);
      power = fraction of signal toys with :math:`t > t_Z`.
    * ``"empirical"``: a signal toy passes when its empirical p-value
      (:func:`empirical_p_value`) is :math:`\le p_Z`, i.e. :math:`t` is above the
      threshold (the null toy with :math:`\lfloor p_Z(n_0 + 1)\rfloor - 1` toys above
      it). When :math:`p_Z < 1/(1 + n_0)` no toy can pass and the power is reported as
      NaN (too few null toys).

    Errors are Clopper-Pearson intervals (:func:`clopper_pearson`) at ``cl``.

    Returns
    -------
    list of Power, one per entry of ``z_levels``.
    """
    ts = _as_1d(t_signal, "t_signal")
    t0 = _as_1d(t_null, "t_null")
    out = []
    if method == "chi2":
        nu = fit_chi2_dof(t0).dof if dof is None else dof
        for z in z_levels:
            thr = float(stats.chi2.isf(stats.norm.sf(z), nu))
            k = int((ts > thr).sum())
            lo, hi = clopper_pearson(k, ts.size, cl)
            out.append(Power(float(z), thr, k / ts.size, lo, hi, k, ts.size, method))
    elif method == "empirical":
        p_emp = np.asarray(empirical_p_value(ts, t0))
        null_sorted = np.sort(t0)
        for z in z_levels:
            p_z = float(stats.norm.sf(z))
            # p_emp(t) <= p_z  <=>  #{null >= t} <= k_max  <=>  t > null_sorted[n0 - 1 - k_max]
            k_max = math.floor(p_z * (t0.size + 1) - 1 + 1e-12)
            if k_max < 0:
                nan = float("nan")
                out.append(Power(float(z), nan, nan, nan, nan, 0, ts.size, method))
                continue
            thr = float(null_sorted[t0.size - 1 - k_max]) if k_max < t0.size else -math.inf
            k = int((p_emp <= p_z).sum())
            lo, hi = clopper_pearson(k, ts.size, cl)
            out.append(Power(float(z), thr, k / ts.size, lo, hi, k, ts.size, method))
    else:
        raise ValueError(f"method must be 'empirical' or 'chi2'; got {method!r}")
    return out


def bonferroni(p_values: Any = None, *, log_p: Any = None) -> tuple[float, float]:
    r"""Global significance of the most significant of :math:`n` tests (Bonferroni).

    .. math:: p_\mathrm{glob} = \min(1, n\, \min_i p_i), \qquad
              Z_\mathrm{glob} = \Phi^{-1}(1 - p_\mathrm{glob})

    evaluated in log space; pass either ``p_values`` or ``log_p``.

    Returns
    -------
    (p_global, z_global) : (float, float)
        ``p_global`` may underflow to 0 while ``z_global`` stays finite.
    """
    if (p_values is None) == (log_p is None):
        raise ValueError("pass exactly one of p_values and log_p")
    if log_p is None:
        p = _as_1d(p_values, "p_values")
        if ((p < 0) | (p > 1)).any():
            raise ValueError("p_values must lie in [0, 1]")
        with np.errstate(divide="ignore"):
            lp = np.log(p)
    else:
        lp = np.asarray(log_p, dtype=np.float64).reshape(-1)
        if lp.size == 0 or np.isnan(lp).any() or (lp > 0).any():
            raise ValueError("log_p must be a non-empty array of values <= 0")
    lg = min(0.0, math.log(lp.size) + float(lp.min()))
    return math.exp(lg), float(z_from_log_p(lg))


def nplm_score(f: Any) -> np.ndarray:
    r"""Per-event NPLM score :math:`\sigma(f(x)) = 1/(1 + e^{-f(x)})` in (0, 1).

    :math:`f` estimates :math:`\log n(x|\mathrm{data}) / n(x|R)`, so the score is the
    data-vs-reference classifier output; large values flag signal-like events.
    """
    if hasattr(f, "detach"):
        f = f.detach().cpu().numpy()
    return special.expit(_as_1d(f, "f", allow_empty=True))
