r"""Anomaly-detection metrics: ROC, significance improvement, AUC with its uncertainty.

Conventions: ``y_true`` is 1 for signal (or, in a sculpting test, the true background)
and 0 for background (or template); a higher ``score`` is more signal-like. The signal
efficiency is :math:`\epsilon_S = \mathrm{TPR}` and the background efficiency
:math:`\epsilon_B = \mathrm{FPR}`.

* :func:`roc_curve` -- every distinct threshold, with the (unweighted) number of
  background events passing each;
* :func:`sic_curve` -- the significance improvement characteristic
  :math:`\mathrm{SIC} = \epsilon_S / \sqrt{\epsilon_B}`;
* :func:`max_sic` -- its maximum over the working points that keep at least
  ``min_background_events`` background events, i.e.
  :math:`\epsilon_B \ge N_\mathrm{min} / N_B` (LHC Olympics practice: 100 events), so
  that a handful of background events cannot produce a spurious maximum;
* :func:`significance_improvement` -- SIC at fixed background efficiencies, and
  :func:`post_selection_significance` the significance :math:`S/\sqrt{B}` before and
  after such a cut for given signal and background yields;
* :func:`auc_with_uncertainty` -- the area under the ROC curve and its standard error
  (Hanley & McNeil 1982, with effective sample sizes for weighted events, or a seeded
  bootstrap);
* :func:`classification_metrics` -- all of the above as one JSON-friendly dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "MaxSIC",
    "RocCurve",
    "auc_with_uncertainty",
    "classification_metrics",
    "max_sic",
    "post_selection_significance",
    "roc_curve",
    "sic_curve",
    "significance_improvement",
]


def _inputs(y_true: Any, score: Any, sample_weight: Any = None) -> tuple[np.ndarray, ...]:
    y = np.asarray(y_true)
    s = np.asarray(score)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"y_true and score must be 1-D; got shapes {np.shape(y_true)} and {np.shape(score)}"
        )
    if y.shape != s.shape:
        raise ValueError(f"y_true and score differ in length: {y.size} and {s.size}")
    if s.dtype == object or not np.issubdtype(s.dtype, np.number):
        raise TypeError(f"score must be numeric; got dtype {s.dtype}")
    if not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5].tolist()
        raise ValueError(f"y_true must hold 0 (background) and 1 (signal) only; got {bad}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(f"score contains NaN or inf ({int((~np.isfinite(s)).sum())} entries)")
    y = y.astype(bool)
    if not y.any() or y.all():
        raise ValueError(
            f"need both classes: {int(y.sum())} signal (1) and {int((~y).sum())} background (0)"
        )
    if sample_weight is None:
        w = np.ones(y.size)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != y.shape:
            raise ValueError(f"sample_weight must have shape {y.shape}; got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("sample_weight must be finite and >= 0")
        if w[y].sum() <= 0 or w[~y].sum() <= 0:
            raise ValueError("sample_weight sums to 0 in one class")
    return y, s, w


@dataclass(frozen=True)
class RocCurve:
    """ROC curve at every distinct score threshold (selection: ``score >= threshold``).

    Attributes
    ----------
    fpr, tpr : numpy.ndarray
        Background and signal efficiencies (weighted), from (0, 0) to (1, 1).
    thresholds : numpy.ndarray
        Score thresholds (``inf`` for the first point, which selects nothing).
    n_background_selected : numpy.ndarray of int
        Background events (unweighted count) passing each threshold.
    n_background : int
        Background events in all (unweighted).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_background_selected: np.ndarray
    n_background: int

    @property
    def auc(self) -> float:
        """Area under the curve (trapezoidal, i.e. ties count one half)."""
        return float(np.sum(np.diff(self.fpr) * (self.tpr[1:] + self.tpr[:-1])) / 2)


def roc_curve(y_true: Any, score: Any, *, sample_weight: Any = None) -> RocCurve:
    """The ROC curve of ``score`` separating ``y_true == 1`` from ``y_true == 0``.

    Raises
    ------
    ValueError
        On mismatched lengths, labels other than 0/1, one class only, or NaN scores.
    """
    y, s, w = _inputs(y_true, score, sample_weight)
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # last index of each value
    tp = np.cumsum(w * y)[last]
    fp = np.cumsum(w * ~y)[last]
    nb = np.cumsum(~y)[last]
    return RocCurve(
        fpr=np.r_[0.0, fp / fp[-1]],
        tpr=np.r_[0.0, tp / tp[-1]],
        thresholds=np.r_[np.inf, s[last]],
        n_background_selected=np.r_[0, nb].astype(np.int64),
        n_background=int(nb[-1]),
    )


def sic_curve(
    y_true: Any, score: Any, *, sample_weight: Any = None, min_background_events: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""SIC :math:`= \epsilon_S / \sqrt{\epsilon_B}` at every working point.

    Only working points with at least ``min_background_events`` selected background
    events (and so :math:`\epsilon_B > 0`) are returned.

    Returns
    -------
    tpr, fpr, sic : numpy.ndarray
    """
    roc = roc_curve(y_true, score, sample_weight=sample_weight)
    keep = (roc.n_background_selected >= max(int(min_background_events), 1)) & (roc.fpr > 0)
    tpr, fpr = roc.tpr[keep], roc.fpr[keep]
    return tpr, fpr, tpr / np.sqrt(fpr)


@dataclass(frozen=True)
class MaxSIC:
    """The largest SIC over the allowed working points.

    Attributes
    ----------
    value : float
        max SIC.
    signal_efficiency, background_efficiency : float
        The working point.
    threshold : float
        Score threshold of the working point (select ``score >= threshold``).
    n_background_selected : int
        Background events passing.
    min_background_efficiency : float
        The rule: ``min_background_events / n_background``.
    """

    value: float
    signal_efficiency: float
    background_efficiency: float
    threshold: float
    n_background_selected: int
    min_background_efficiency: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def max_sic(
    y_true: Any,
    score: Any,
    *,
    min_background_events: int = 100,
    sample_weight: Any = None,
) -> MaxSIC:
    """Maximum SIC over working points with >= ``min_background_events`` background events.

    With unit weights this is the rule ``FPR >= min_background_events / N_B`` over the
    ``N_B`` evaluation background events.

    Raises
    ------
    ValueError
        If fewer than ``min_background_events`` background events are given.
    """
    if isinstance(min_background_events, bool) or not isinstance(
        min_background_events, (int, np.integer)
    ):
        raise TypeError(f"min_background_events must be an integer; got {min_background_events!r}")
    if min_background_events < 1:
        raise ValueError(f"min_background_events must be >= 1; got {min_background_events}")
    roc = roc_curve(y_true, score, sample_weight=sample_weight)
    if roc.n_background < min_background_events:
        raise ValueError(
            f"max SIC needs at least min_background_events = {min_background_events} "
            f"background events; got {roc.n_background}"
        )
    keep = np.flatnonzero((roc.n_background_selected >= min_background_events) & (roc.fpr > 0))
    sic = roc.tpr[keep] / np.sqrt(roc.fpr[keep])
    i = keep[int(np.argmax(sic))]
    return MaxSIC(
        value=float(sic.max()),
        signal_efficiency=float(roc.tpr[i]),
        background_efficiency=float(roc.fpr[i]),
        threshold=float(roc.thresholds[i]),
        n_background_selected=int(roc.n_background_selected[i]),
        min_background_efficiency=min_background_events / roc.n_background,
    )


def _tpr_at(roc: RocCurve, efficiencies: np.ndarray) -> np.ndarray:
    """Signal efficiency at background efficiencies (linear interpolation on the ROC)."""
    # fpr is non-decreasing; np.interp needs increasing x: drop repeated fpr, keep the
    # largest tpr at each (the most signal at that background efficiency).
    fpr, idx = np.unique(roc.fpr[::-1], return_index=True)
    tpr = roc.tpr[::-1][idx]
    return np.interp(efficiencies, fpr, tpr)


def _efficiencies(background_efficiencies: Sequence[float]) -> np.ndarray:
    eff = np.atleast_1d(np.asarray(background_efficiencies, dtype=np.float64))
    if eff.ndim != 1 or not ((eff > 0) & (eff <= 1)).all():
        raise ValueError(
            f"background efficiencies must lie in (0, 1]; got {list(np.atleast_1d(eff))}"
        )
    return eff


def significance_improvement(
    y_true: Any, score: Any, background_efficiencies: Sequence[float], *, sample_weight: Any = None
) -> np.ndarray:
    r""":math:`\epsilon_S / \sqrt{\epsilon_B}` at each fixed background efficiency.

    The signal efficiency is interpolated linearly on the ROC curve.
    """
    eff = _efficiencies(background_efficiencies)
    roc = roc_curve(y_true, score, sample_weight=sample_weight)
    return _tpr_at(roc, eff) / np.sqrt(eff)


def post_selection_significance(
    y_true: Any,
    score: Any,
    background_efficiencies: Sequence[float],
    *,
    n_signal: float,
    n_background: float,
    sample_weight: Any = None,
) -> dict[str, Any]:
    r"""Significance :math:`S / \sqrt{B}` before and after cuts at fixed efficiencies.

    Parameters
    ----------
    y_true, score
        Evaluation events (their ROC gives the efficiencies).
    background_efficiencies : sequence of float
        Working points.
    n_signal, n_background : float
        Expected signal and background yields before the cut (e.g. in the SR data).

    Returns
    -------
    dict
        ``before`` (:math:`S/\sqrt{B}`), ``background_efficiency``, ``signal_efficiency``
        and ``after`` (one entry per working point).
    """
    if not (n_signal >= 0 and n_background > 0):
        raise ValueError(
            f"need n_signal >= 0 and n_background > 0; got {n_signal} and {n_background}"
        )
    eff = _efficiencies(background_efficiencies)
    roc = roc_curve(y_true, score, sample_weight=sample_weight)
    eps_s = _tpr_at(roc, eff)
    return {
        "before": n_signal / math.sqrt(n_background),
        "background_efficiency": eff.tolist(),
        "signal_efficiency": eps_s.tolist(),
        "after": (eps_s * n_signal / np.sqrt(eff * n_background)).tolist(),
    }


def auc_with_uncertainty(
    y_true: Any,
    score: Any,
    *,
    sample_weight: Any = None,
    method: str = "hanley-mcneil",
    n_bootstrap: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """Area under the ROC curve and its standard error.

    Parameters
    ----------
    method : {"hanley-mcneil", "bootstrap"}
        ``"hanley-mcneil"``: the analytic standard error of Hanley & McNeil (1982); with
        weights, the class sizes are the effective sizes :math:`(\\sum w)^2 / \\sum w^2`.
        At AUC = 0.5 it equals the exact null spread of the Mann-Whitney statistic.
        ``"bootstrap"``: the standard deviation over ``n_bootstrap`` resamplings of
        the events (stratified by class, seeded by ``seed``).

    Returns
    -------
    auc, sigma : float

    References
    ----------
    J. A. Hanley, B. J. McNeil, "The meaning and use of the area under a receiver
    operating characteristic (ROC) curve", Radiology 143 (1982) 29.
    """
    y, s, w = _inputs(y_true, score, sample_weight)
    auc = roc_curve(y, s, sample_weight=w).auc
    if method == "hanley-mcneil":
        n1 = w[y].sum() ** 2 / (w[y] ** 2).sum()
        n0 = w[~y].sum() ** 2 / (w[~y] ** 2).sum()
        q1 = auc / (2 - auc)
        q2 = 2 * auc**2 / (1 + auc)
        var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n0 * n1)
        return auc, float(math.sqrt(max(var, 0.0)))
    if method == "bootstrap":
        if n_bootstrap < 2:
            raise ValueError(f"n_bootstrap must be >= 2; got {n_bootstrap}")
        rng = np.random.default_rng(seed)
        pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
        aucs = np.empty(n_bootstrap)
        for b in range(n_bootstrap):
            idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
            aucs[b] = roc_curve(y[idx], s[idx], sample_weight=w[idx]).auc
        return auc, float(aucs.std(ddof=1))
    raise ValueError(f"method must be 'hanley-mcneil' or 'bootstrap'; got {method!r}")


def classification_metrics(
    y_true: Any,
    score: Any,
    *,
    min_background_events: int = 100,
    background_efficiencies: Sequence[float] = (0.1, 0.01, 0.001),
    sample_weight: Any = None,
) -> dict[str, Any]:
    """AUC (with uncertainty), max SIC and SIC at fixed background efficiencies.

    Background efficiencies whose working point keeps fewer than
    ``min_background_events`` background events get ``None`` (too few events to
    measure).
    """
    y, s, w = _inputs(y_true, score, sample_weight)
    auc, sigma = auc_with_uncertainty(y, s, sample_weight=w)
    eff = _efficiencies(background_efficiencies)
    sic_at = significance_improvement(y, s, eff, sample_weight=w)
    n_b = int((~y).sum())
    enough = eff * n_b >= min_background_events
    return {
        "n_signal": int(y.sum()),
        "n_background": n_b,
        "auc": auc,
        "auc_error": sigma,
        "max_sic": max_sic(
            y, s, min_background_events=min_background_events, sample_weight=w
        ).as_dict(),
        "min_background_events": int(min_background_events),
        "background_efficiencies": eff.tolist(),
        "sic_at_background_efficiency": [float(v) if ok else None for v, ok in zip(sic_at, enough)],
    }
