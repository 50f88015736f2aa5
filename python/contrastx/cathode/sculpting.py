r"""Sculpting checks: is the template faithful, and does a score cut carve a bump in m?

Two checks the CATHODE papers rely on:

* :func:`sculpting_test` -- a classifier (the same k-fold CWoLa classifier) between
  the background template and the *true* signal-region background. A faithful
  template cannot be told apart: the out-of-fold AUC is compatible with 0.5 within its
  uncertainty (:func:`~contrastx.cathode.metrics.auc_with_uncertainty`).
* :func:`mass_sculpting` -- the m spectrum before and after a cut on the anomaly score
  (the threshold keeps a fraction :math:`\epsilon` of the SR events), in the signal
  region and in the sidebands. Without sculpting the cut keeps every m bin with the
  same probability, so the kept counts are binomial with the overall efficiency:
  :func:`spectrum_check` reports per-bin pulls, their :math:`\chi^2` (shape
  compatibility) and a local bump search (the largest excess over 1--3 adjacent bins,
  with its p-value corrected for the number of windows tried).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .classifier import ClassifierOptions, CWoLaClassifier, as_features, as_weights
from .metrics import RocCurve, auc_with_uncertainty, roc_curve
from .regions import Regions, check_mass

__all__ = [
    "SculptingResult",
    "SpectrumCheck",
    "mass_sculpting",
    "sculpting_test",
    "spectrum_check",
]


@dataclass
class SculptingResult:
    """Template-vs-true-background classification.

    Attributes
    ----------
    auc, auc_error : float
        Out-of-fold AUC (true background = positive class) and its standard error.
    roc : RocCurve
    scores_background, scores_template : numpy.ndarray
        Out-of-fold scores of the true-background and template events.
    w_template : numpy.ndarray
        Template weights used.
    classifier : CWoLaClassifier
        The fitted classifier.
    """

    auc: float
    auc_error: float
    roc: RocCurve
    scores_background: np.ndarray
    scores_template: np.ndarray
    w_template: np.ndarray
    classifier: CWoLaClassifier

    @property
    def pull(self) -> float:
        """(AUC - 0.5) / its error."""
        return (self.auc - 0.5) / self.auc_error if self.auc_error > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """The numbers (no arrays)."""
        return {
            "auc": self.auc,
            "auc_error": self.auc_error,
            "pull": self.pull,
            "n_background": int(self.scores_background.size),
            "n_template": int(self.scores_template.size),
        }


def sculpting_test(
    x_template: Any,
    x_background: Any,
    *,
    w_template: Any = None,
    options: ClassifierOptions | None = None,
    seed: int = 0,
    auc_method: str = "hanley-mcneil",
) -> SculptingResult:
    """Classify the template against the true SR background; AUC ~ 0.5 if faithful.

    Parameters
    ----------
    x_template : array_like, shape (n_template, D)
        Background template (e.g. flow samples in the SR).
    x_background : array_like, shape (n_background, D)
        True signal-region background (simulation).
    w_template : array_like, optional
        Template weights (a hybrid template's).
    options : ClassifierOptions, optional
        Classifier settings (default ``ClassifierOptions()``).
    seed : int
    auc_method : {"hanley-mcneil", "bootstrap"}
        How the AUC's uncertainty is computed.
    """
    xb = as_features(x_background, "x_background")
    xt = as_features(x_template, "x_template", xb.shape[1])
    wt = as_weights(w_template, xt.shape[0], "w_template")
    clf = CWoLaClassifier(options).fit(xb, xt, w_template=wt, seed=seed)
    y = np.r_[np.ones(xb.shape[0]), np.zeros(xt.shape[0])]
    s = np.r_[clf.scores_, clf.template_scores_]
    w = np.r_[np.ones(xb.shape[0]), wt]
    auc, err = auc_with_uncertainty(y, s, sample_weight=w, method=auc_method, seed=seed)
    return SculptingResult(
        auc=auc,
        auc_error=err,
        roc=roc_curve(y, s, sample_weight=w),
        scores_background=clf.scores_,
        scores_template=clf.template_scores_,
        w_template=wt,
        classifier=clf,
    )


@dataclass
class SpectrumCheck:
    """m histograms before and after a selection, and their shape compatibility.

    Attributes
    ----------
    edges : numpy.ndarray
        Bin edges; for several disjoint windows, the bins of each window in turn
        (``edges`` then lists each window's edges, see ``window_of_bin``).
    window_of_bin : numpy.ndarray of int
        Window index of every bin.
    before, after : numpy.ndarray of int
        Counts per bin before and after the selection.
    efficiency : float
        ``after.sum() / before.sum()``.
    pulls : numpy.ndarray
        ``(after - efficiency * before) / sqrt(before * efficiency * (1 - efficiency))``
        (0 in empty bins).
    chi2 : float
        Sum of squared pulls; ``ndof`` = non-empty bins - 1.
    p_value : float
        :math:`\\chi^2` tail probability (1 when nothing can be tested).
    max_local_pull : float
        Largest excess over 1--3 adjacent bins of one window, in standard deviations.
    bump_p_value : float
        Its one-sided p-value times the number of windows tried (capped at 1).
    """

    edges: np.ndarray
    window_of_bin: np.ndarray
    before: np.ndarray
    after: np.ndarray
    efficiency: float
    pulls: np.ndarray
    chi2: float
    ndof: int
    p_value: float
    max_local_pull: float
    bump_p_value: float

    def bin_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper m edge of every bin (windows in turn)."""
        lo, hi = [], []
        start = 0
        for w in np.unique(self.window_of_bin):
            n = int((self.window_of_bin == w).sum())
            e = self.edges[start + w : start + w + n + 1]
            lo.append(e[:-1])
            hi.append(e[1:])
            start += n
        return np.concatenate(lo), np.concatenate(hi)

    def sculpted(self, alpha: float = 0.01) -> bool:
        """True if the shape test or the bump search rejects 'no sculpting' at ``alpha``."""
        return bool(min(self.p_value, self.bump_p_value) < alpha)

    def as_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "window_of_bin": self.window_of_bin.tolist(),
            "before": self.before.tolist(),
            "after": self.after.tolist(),
            "efficiency": self.efficiency,
            "pulls": self.pulls.tolist(),
            "chi2": self.chi2,
            "ndof": self.ndof,
            "p_value": self.p_value,
            "max_local_pull": self.max_local_pull,
            "bump_p_value": self.bump_p_value,
        }


def _window_edges(windows: Sequence[tuple[float, float]], bins: int) -> list[np.ndarray]:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer; got {bins!r}")
    return [np.linspace(lo, hi, int(bins) + 1) for lo, hi in windows]


def spectrum_check(
    m: Any,
    selected: Any,
    windows: Sequence[tuple[float, float]],
    *,
    bins: int = 10,
    max_bump_width: int = 3,
) -> SpectrumCheck:
    """Compare the m histogram of the ``selected`` events with that of all events.

    Parameters
    ----------
    m : array_like, shape (n,)
        Resonant variable of every event.
    selected : array_like of bool, shape (n,)
        Which events pass the cut.
    windows : sequence of (lo, hi)
        m windows to histogram (each with ``bins`` equal bins, half-open ``[lo, hi)``).
    bins : int
        Bins per window.
    max_bump_width : int
        Widest run of adjacent bins the bump search sums.
    """
    m = check_mass(m)
    sel = np.asarray(selected)
    if sel.dtype != bool or sel.shape != m.shape:
        raise ValueError(
            f"selected must be a boolean mask of shape {m.shape}; got {sel.dtype} {sel.shape}"
        )
    edges_per_window = _window_edges(windows, bins)
    before, after, which = [], [], []
    for i, edges in enumerate(edges_per_window):
        inside = (m >= edges[0]) & (m < edges[-1])
        b = np.histogram(m[inside], edges)[0]
        a = np.histogram(m[inside & sel], edges)[0]
        before.append(b)
        after.append(a)
        which.append(np.full(b.size, i))
    before_a = np.concatenate(before).astype(np.int64)
    after_a = np.concatenate(after).astype(np.int64)
    window_of_bin = np.concatenate(which)
    n_b, n_a = int(before_a.sum()), int(after_a.sum())
    eff = n_a / n_b if n_b else 0.0
    filled = before_a > 0
    pulls = np.zeros(before_a.size)
    testable = 0.0 < eff < 1.0 and filled.sum() >= 2
    if testable:
        sd = np.sqrt(before_a[filled] * eff * (1 - eff))
        pulls[filled] = (after_a[filled] - eff * before_a[filled]) / sd
        chi2 = float(np.sum(pulls**2))
        ndof = int(filled.sum() - 1)
        p_value = float(stats.chi2.sf(chi2, ndof))
        # local bump search over 1..max_bump_width adjacent bins within one window
        best, n_tried = -np.inf, 0
        for width in range(1, max(int(max_bump_width), 1) + 1):
            for start in range(before_a.size - width + 1):
                sl = slice(start, start + width)
                if np.unique(window_of_bin[sl]).size != 1 or before_a[sl].sum() == 0:
                    continue
                nb = before_a[sl].sum()
                z = (after_a[sl].sum() - eff * nb) / math.sqrt(nb * eff * (1 - eff))
                best = max(best, z)
                n_tried += 1
        max_local = float(best)
        bump_p = float(min(1.0, n_tried * stats.norm.sf(best)))
    else:
        chi2, ndof, p_value, max_local, bump_p = 0.0, 0, 1.0, 0.0, 1.0
    all_edges = np.concatenate(edges_per_window)
    return SpectrumCheck(
        edges=all_edges,
        window_of_bin=window_of_bin,
        before=before_a,
        after=after_a,
        efficiency=eff,
        pulls=pulls,
        chi2=chi2,
        ndof=ndof,
        p_value=p_value,
        max_local_pull=max_local,
        bump_p_value=bump_p,
    )


def mass_sculpting(
    m: Any,
    score: Any,
    regions: Regions,
    *,
    efficiencies: Sequence[float] = (0.2, 0.05),
    bins: int = 10,
    thresholds: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    r"""m spectra before and after score cuts, in the signal region and the sidebands.

    For each efficiency :math:`\epsilon`, the threshold is the score that keeps a
    fraction :math:`\epsilon` of the signal-region events; the same threshold is applied
    in the sidebands.

    Parameters
    ----------
    m : array_like, shape (n,)
        Resonant variable of SR and SB events.
    score : array_like, shape (n,)
        Anomaly score of every event (out of fold in the SR; from :meth:`predict` in the
        sidebands).
    regions : Regions
    efficiencies : sequence of float
        SR selection efficiencies, each in (0, 1).
    bins : int
        Bins per window.
    thresholds : sequence of float, optional
        One score threshold per efficiency, used instead of the quantile of the given SR
        scores: e.g. the cuts that keep these fractions of *all* SR data, applied to the
        true-background events only (a simulation's sculpting check).

    Returns
    -------
    list of dict
        One per efficiency: ``efficiency``, ``threshold``, ``signal_region`` and
        ``sidebands`` (:class:`SpectrumCheck`).
    """
    if not isinstance(regions, Regions):
        raise TypeError(f"regions must be a Regions; got {type(regions).__name__}")
    m = check_mass(m)
    s = np.asarray(score, dtype=np.float64)
    if s.shape != m.shape:
        raise ValueError(f"score must have shape {m.shape} (one per event); got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("score contains NaN or inf")
    in_sr = regions.signal_mask(m)
    if not in_sr.any():
        raise ValueError(f"no event lies in the signal region {regions.signal_region}")
    efficiencies = list(efficiencies)
    if thresholds is not None and len(thresholds) != len(efficiencies):
        raise ValueError(
            f"give one threshold per efficiency: {len(thresholds)} thresholds for "
            f"{len(efficiencies)} efficiencies"
        )
    out = []
    for i, eff in enumerate(efficiencies):
        if not 0.0 < float(eff) < 1.0:
            raise ValueError(f"efficiencies must lie in (0, 1); got {eff}")
        if thresholds is None:
            threshold = float(np.quantile(s[in_sr], 1.0 - float(eff)))
        else:
            threshold = float(thresholds[i])
        selected = s >= threshold
        out.append(
            {
                "efficiency": float(eff),
                "threshold": threshold,
                "signal_region": spectrum_check(m, selected, [regions.signal_region], bins=bins),
                "sidebands": spectrum_check(m, selected, list(regions.sidebands), bins=bins),
            }
        )
    return out
