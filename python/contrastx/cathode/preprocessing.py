"""Invertible preprocessing of the flow's inputs: logit of bounded features, standardisation.

A normalizing flow learns hard edges badly (a feature bounded in [0, 1], a mass that
cannot be negative) and its spline transforms act on a fixed box ([-5, 5] in zuko), so
CATHODE maps each bounded feature through a logit and then standardises:

.. math::

    u = \\mathrm{clip}\\left(\\frac{x - a}{b - a}, \\epsilon, 1 - \\epsilon\\right), \\qquad
    y = \\log\\frac{u}{1 - u}, \\qquad z = \\frac{y - \\mu}{\\sigma},

with bounds ``a = min - margin * (max - min)`` and ``b = max + margin * (max - min)``
taken from the training data. The clip keeps every value finite: a value at or beyond a
bound maps to a large but finite z, never to ±inf (a known source of training
divergence when the logit of 0 or 1 reaches the flow). Features without the logit are
only standardised. The inverse maps any finite z back inside ``[a, b]``, so samples of
a bounded feature stay inside its bounds.

:meth:`FeatureScaler.log_abs_det_jacobian` returns ``log |dz/dx|`` so a density learned
in z is reported in the original space: ``log p(x) = log p(z) + log |dz/dx|``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

__all__ = ["FeatureScaler", "check_features"]

logger = logging.getLogger(__name__)

STATE_KIND = "contrastx-feature-scaler"
STATE_VERSION = 1


def check_features(x: Any, name: str = "x", n_features: int | None = None) -> np.ndarray:
    """``x`` as a finite 2-D float64 array ``(n_events, n_features)``, or a clear error.

    Raises
    ------
    TypeError
        ``x`` is not numeric.
    ValueError
        Not 2-D, wrong number of features, or NaN / inf (count and first position given).
    """
    try:
        arr = np.asarray(x)
    except Exception as err:
        raise TypeError(f"{name} must be a 2-D numeric array; got {type(x).__name__}") from err
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a 2-D numeric array; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (events x features); got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} feature(s); got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf), first at "
            f"event {i}, feature {j}: {arr[i, j]}"
        )
    return arr


class FeatureScaler:
    """Per-feature logit (optional) followed by standardisation; exactly invertible.

    Parameters
    ----------
    logit : bool or sequence of bool
        Apply the logit to every feature (True), none (False), or per feature.
    margin : float
        Bounds lie this fraction of the training range beyond the training min and max,
        so no training value sits on a bound.
    eps : float
        The scaled value ``u`` is clipped to ``[eps, 1 - eps]`` before the logit.

    Attributes
    ----------
    n_features_ : int
    logit_ : ndarray of bool, shape (n_features,)
    low_, high_ : ndarray, shape (n_features,)
        Logit bounds ``a`` and ``b`` (unused for features without the logit).
    mean_, std_ : ndarray, shape (n_features,)
        Standardisation of the (logit-transformed) features.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).uniform(size=(1000, 2))
    >>> scaler = FeatureScaler(logit=[True, False]).fit(x)
    >>> z = scaler.transform(x)
    >>> bool(np.allclose(scaler.inverse_transform(z), x, rtol=0, atol=1e-12))
    True
    """

    def __init__(
        self, logit: bool | Sequence[bool] = True, margin: float = 0.1, eps: float = 1e-6
    ) -> None:
        if isinstance(logit, (bool, np.bool_)):
            self.logit: bool | tuple[bool, ...] = bool(logit)
        elif isinstance(logit, Sequence) and all(isinstance(v, (bool, np.bool_)) for v in logit):
            self.logit = tuple(bool(v) for v in logit)
        else:
            raise TypeError(f"logit must be a bool or a sequence of bools; got {logit!r}")
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0; got {margin!r}")
        if not (isinstance(eps, (int, float)) and 0 < eps < 0.5):
            raise ValueError(f"eps must be in (0, 0.5); got {eps!r}")
        self.margin = float(margin)
        self.eps = float(eps)

    # ----------------------------------------------------------------------- fit
    def fit(self, x: Any) -> FeatureScaler:
        """Learn bounds and standardisation from training data ``x`` (n_events, n_features).

        Raises
        ------
        ValueError
            Fewer than 2 events, non-finite values, a ``logit`` list of the wrong length,
            or a constant feature (the message names it).
        """
        x = check_features(x)
        n, d = x.shape
        if n < 2:
            raise ValueError(f"x needs at least 2 events to fit the scaler; got {n}")
        if isinstance(self.logit, tuple):
            if len(self.logit) != d:
                raise ValueError(f"logit lists {len(self.logit)} flags for {d} feature(s)")
            mask = np.array(self.logit, dtype=bool)
        else:
            mask = np.full(d, self.logit, dtype=bool)
        lo, hi = x.min(axis=0), x.max(axis=0)
        width = hi - lo
        constant = np.flatnonzero(width <= 0)
        if constant.size:
            j = int(constant[0])
            raise ValueError(f"feature {j} is constant ({lo[j]:g}) in the training data")
        self.n_features_ = d
        self.logit_ = mask
        self.low_ = np.where(mask, lo - self.margin * width, 0.0)
        self.high_ = np.where(mask, hi + self.margin * width, 1.0)
        y = self._to_unstandardised(x)
        self.mean_ = y.mean(axis=0)
        self.std_ = y.std(axis=0)
        if not (self.std_ > 0).all():  # pragma: no cover - excluded by the width check
            raise ValueError("a feature has zero spread after the logit")
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise RuntimeError("FeatureScaler is not fitted; call fit(x) first")

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        """``u = (x - a) / (b - a)`` of the logit columns of ``x``."""
        cols = self.logit_
        return (x[:, cols] - self.low_[cols]) / (self.high_[cols] - self.low_[cols])

    def _to_unstandardised(self, x: np.ndarray, *, level: int = logging.WARNING) -> np.ndarray:
        y = x.copy()
        if self.logit_.any():
            cols = self.logit_
            u = self._scaled(x)
            outside = (u < self.eps) | (u > 1 - self.eps)
            if outside.any():
                counts = outside.sum(axis=0)
                names = np.flatnonzero(cols)
                listing = ", ".join(
                    f"feature {int(j)}: {int(c)}" for j, c in zip(names, counts) if c
                )
                logger.log(
                    level,
                    "%d value(s) at or beyond the logit bounds were clipped (%s)",
                    int(outside.sum()),
                    listing,
                )
            u = np.clip(u, self.eps, 1 - self.eps)
            y[:, cols] = np.log(u) - np.log1p(-u)
        return y

    # ----------------------------------------------------------------------- transforms
    def transform(self, x: Any, *, log_level: int = logging.WARNING) -> np.ndarray:
        """Map ``x`` to the standardised space z; values beyond the bounds are clipped.

        Clipped values (logged at ``log_level`` with their count per feature) are the
        only ones that :meth:`inverse_transform` does not return exactly.
        """
        self._check_fitted()
        x = check_features(x, n_features=self.n_features_)
        return (self._to_unstandardised(x, level=log_level) - self.mean_) / self.std_

    def inverse_transform(self, z: Any) -> np.ndarray:
        """Map z back to the original space; logit features land inside ``[low_, high_]``."""
        self._check_fitted()
        z = check_features(z, name="z", n_features=self.n_features_)
        y = z * self.std_ + self.mean_
        x = y.copy()
        if self.logit_.any():
            cols = self.logit_
            u = expit(y[:, cols])
            x[:, cols] = self.low_[cols] + u * (self.high_[cols] - self.low_[cols])
        return x

    def log_abs_det_jacobian(self, x: Any) -> np.ndarray:
        """``log |det dz/dx|`` per event, shape (n_events,).

        For a logit feature ``log(1 / (u (1 - u) (b - a) sigma))`` at the clipped ``u``;
        for a standardised feature ``-log(sigma)``.
        """
        self._check_fitted()
        x = check_features(x, n_features=self.n_features_)
        out = np.full(len(x), -np.log(self.std_).sum())
        if self.logit_.any():
            cols = self.logit_
            u = np.clip(self._scaled(x), self.eps, 1 - self.eps)
            width = self.high_[cols] - self.low_[cols]
            out -= (np.log(u) + np.log1p(-u) + np.log(width)).sum(axis=1)
        return out

    # ----------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """JSON-friendly state (plain lists and numbers)."""
        self._check_fitted()
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "margin": self.margin,
            "eps": self.eps,
            "logit": [bool(v) for v in self.logit_],
            "low": self.low_.tolist(),
            "high": self.high_.tolist(),
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> FeatureScaler:
        """Rebuild a fitted scaler from :meth:`state_dict`; inconsistent states are refused."""
        if not isinstance(state, Mapping) or state.get("kind") != STATE_KIND:
            raise ValueError(f"not a {STATE_KIND} state")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"{STATE_KIND} state version {state.get('version')!r} is not supported "
                f"(expected {STATE_VERSION})"
            )
        try:
            logit = [bool(v) for v in state["logit"]]
            scaler = cls(logit=logit, margin=state["margin"], eps=state["eps"])
            arrays = {
                k: np.asarray(state[k], dtype=np.float64) for k in ("low", "high", "mean", "std")
            }
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"invalid {STATE_KIND} state: {err}") from err
        d = len(logit)
        for key, arr in arrays.items():
            if arr.shape != (d,) or not np.isfinite(arr).all():
                raise ValueError(f"invalid {STATE_KIND} state: {key} must be {d} finite numbers")
        if not (arrays["std"] > 0).all() or not (arrays["high"] > arrays["low"]).all():
            raise ValueError(f"invalid {STATE_KIND} state: std > 0 and high > low required")
        scaler.n_features_ = d
        scaler.logit_ = np.array(logit, dtype=bool)
        scaler.low_, scaler.high_ = arrays["low"], arrays["high"]
        scaler.mean_, scaler.std_ = arrays["mean"], arrays["std"]
        return scaler
