"""Input preprocessing for the encoders, fitted on a training sample.

Three variants, all fitted on a training sample and applied unchanged to every
other sample (validation, test, signal, black box):

* ``"pt"`` (the primary paper's code, ADC2021 layout): ``pT -> (pT - mean) / std``
  with *one* global mean and standard deviation over all filled object slots; eta
  and phi are left as they are.
* ``"log_pt"`` (ADC2021 layout): ``pT -> (log pT - mean) / std`` with the mean and
  standard deviation of log pT over all filled object slots.
* ``"layout"`` (the second paper's normalisation, any layout): every object feature
  the layout logs (pT, masses) becomes ``log(1 + x)`` (x in GeV; defined for the
  massless objects and MET), then *each* object feature is standardised with its own
  mean and standard deviation over all filled objects of the encoder's groups;
  one-hot type columns stay 0/1; the encoder's event-level features are standardised
  individually over the events (logged first where the layout says so).

Padded slots (pT = 0 on input) stay exactly 0 in every feature, so the network
can still tell them apart. The fitted statistics travel with the model that used
them: :meth:`Preprocessor.state_dict` / :meth:`Preprocessor.from_state_dict`
(plain JSON-friendly values), or :meth:`Preprocessor.save` / :meth:`Preprocessor.load`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .container import Events, check_event_features, check_particles
from .layout import ADC2021, PT, EventLayout, LayoutError

KINDS = ("pt", "log_pt", "layout")
ADC2021_KINDS = ("pt", "log_pt")
"""The kinds that apply to the ADC2021 layout only (its pT column)."""


def _particles_of(x: Events | np.ndarray, layout: EventLayout = ADC2021) -> np.ndarray:
    if isinstance(x, Events):
        if x.layout != layout:
            raise ValueError(
                f"the preprocessor is for layout {layout.name!r}; got events in layout "
                f"{x.layout.name!r}"
            )
        return x.particles
    return check_particles(x, layout=layout)


class EncoderInputs(NamedTuple):
    """What an encoder sees of a batch of events, preprocessed (all float32 / bool).

    Attributes
    ----------
    objects : ndarray, shape (N, n_encoder_objects, n_features)
        The encoder groups' slots (:attr:`EventLayout.encoder_slots`), preprocessed;
        padded slots all zero.
    mask : ndarray of bool, shape (N, n_encoder_objects)
        True where a slot holds an object (raw pT > 0).
    event_features : ndarray, shape (N, n_encoder_event_features)
        The encoder's event-level features (:attr:`EventLayout.encoder_event_features`),
        standardised.
    """

    objects: np.ndarray
    mask: np.ndarray
    event_features: np.ndarray


class _Moments:
    """Count, mean and sum of squared deviations per column, merged chunk by chunk (Chan)."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def add(self, values: np.ndarray) -> None:
        """Merge rows ``values`` (M, width), float64."""
        m = values.shape[0]
        if m == 0:
            return
        mean = values.mean(axis=0)
        m2 = np.square(values - mean).sum(axis=0)
        n = self.n + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / n)
        self.m2 = self.m2 + m2 + np.square(delta) * (self.n * m / n)
        self.n = n

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n, 1))


class Preprocessor:
    """Standardise the encoder inputs; padding stays 0.

    Parameters
    ----------
    kind : {"pt", "log_pt", "layout"}
        ``"pt"``/``"log_pt"`` (ADC2021 layout): scale pT linearly (the primary
        paper's code) or its logarithm with one global mean/std, eta and phi raw.
        ``"layout"`` (any layout): the second paper's normalisation, every object
        feature and event-level feature with its own statistics (see the module
        docstring).
    layout : EventLayout
        The layout of the events (default ADC2021); the ADC2021 kinds need ADC2021.

    Attributes
    ----------
    mean_, std_ : float
        ``"pt"``/``"log_pt"``: statistics of (log) pT over the filled slots of the
        fitted sample.
    object_mean_, object_std_ : ndarray, shape (n_features,)
        ``"layout"``: statistics of every (logged) object feature over the filled
        objects of the encoder's groups; 0 and 1 for the one-hot columns.
    event_mean_, event_std_ : ndarray, shape (n_encoder_event_features,)
        ``"layout"``: statistics of every (logged) encoder event-level feature.
    n_fitted_ : int
        Number of filled slots (objects) the object statistics were computed from.
    n_events_ : int
        ``"layout"``: number of events the event-level statistics were computed from.

    Examples
    --------
    >>> import numpy as np
    >>> from contrastx.events.preprocessing import Preprocessor
    >>> x = np.zeros((2, 19, 3), np.float32); x[:, 0, 0] = [10.0, 30.0]
    >>> pre = Preprocessor().fit(x)
    >>> pre.transform(x)[:, 0, 0].tolist(), pre.transform(x)[0, 1].tolist()
    ([-1.0, 1.0], [0.0, 0.0, 0.0])
    """

    def __init__(self, kind: str = "pt", layout: EventLayout = ADC2021) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        if not isinstance(layout, EventLayout):
            raise TypeError(f"layout must be an EventLayout; got {type(layout).__name__}")
        if kind in ADC2021_KINDS and layout != ADC2021:
            raise ValueError(
                f"kind {kind!r} is the ADC2021 pT scaling; layout {layout.name!r} needs "
                "kind 'layout'"
            )
        self.kind = kind
        self.layout = layout
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._objects = _Moments(self.layout.n_features)
        self._events = _Moments(self.layout.encoder_event_features.size)

    # ------------------------------------------------------------------ layout kind
    def _object_values(self, v: np.ndarray) -> np.ndarray:
        """Filled objects' features (M, F) -> float64 with the layout's logs taken."""
        v = v.astype(np.float64)
        logged = self.layout.log_features
        v[:, logged] = np.log1p(v[:, logged])
        return v

    def _event_values(self, v: np.ndarray) -> np.ndarray:
        """Event features (N, E) -> the encoder's columns, float64, logs taken."""
        cols = self.layout.encoder_event_features
        v = v[:, cols].astype(np.float64)
        logged = np.array([self.layout.event_features[c].log for c in cols], dtype=bool)
        v[:, logged] = np.log1p(v[:, logged])
        return v

    def _event_features_of(self, x: Events | np.ndarray) -> np.ndarray:
        if isinstance(x, Events):
            assert x.event_features is not None
            return x.event_features
        if self.layout.encoder_event_features.size:
            raise ValueError(
                f"layout {self.layout.name!r} has event-level encoder features "
                f"({', '.join(self._encoder_event_names())}): pass Events, not a particle array"
            )
        return np.zeros((len(x), self.layout.n_event_features), dtype=np.float32)

    def _encoder_event_names(self) -> list[str]:
        return [self.layout.event_features[c].name for c in self.layout.encoder_event_features]

    def _partial_fit_layout(self, x: Events | np.ndarray) -> None:
        p = _particles_of(x, self.layout)
        ev = self._event_features_of(x)
        enc = p[:, self.layout.encoder_slots]
        filled = enc[..., self.layout.feature_index("pt")] > 0
        self._objects.add(self._object_values(enc[filled]))
        self._events.add(self._event_values(ev))
        one_hot = self.layout.one_hot_features
        self.object_mean_ = np.where(one_hot, 0.0, self._objects.mean)
        self.object_std_ = np.where(one_hot, 1.0, self._objects.std)
        self.event_mean_ = self._events.mean.copy()
        self.event_std_ = self._events.std
        self.n_fitted_ = self._objects.n
        self.n_events_ = self._events.n

    def _check_layout_fit(self) -> None:
        if self._objects.n == 0:
            raise ValueError(
                "cannot fit the preprocessor: the sample has no filled object slot in the "
                f"encoder's groups of layout {self.layout.name!r}"
            )
        flat = np.flatnonzero(~(self.object_std_ > 0))
        if flat.size:
            names = ", ".join(self.layout.feature_names[i] for i in flat)
            raise ValueError(
                f"cannot fit the preprocessor: object feature(s) {names} have zero spread over "
                "the filled objects of the sample"
            )
        flat = np.flatnonzero(~(self.event_std_ > 0))
        if flat.size:
            names = ", ".join(self._encoder_event_names()[i] for i in flat)
            raise ValueError(
                f"cannot fit the preprocessor: event feature(s) {names} have zero spread "
                "over the sample"
            )

    def _values(self, pt: np.ndarray) -> np.ndarray:
        pt = pt.astype(np.float64)
        return np.log(pt) if self.kind == "log_pt" else pt

    # ------------------------------------------------------------------ fitting
    def partial_fit(self, x: Events | np.ndarray) -> Preprocessor:
        """Accumulate statistics from one chunk (for samples streamed from disk)."""
        if self.kind == "layout":
            self._partial_fit_layout(x)
            return self
        p = _particles_of(x)
        pt = p[..., PT]
        filled = pt > 0
        if (pt < 0).any():
            raise ValueError("pT must be non-negative (padding is 0)")
        v = self._values(pt[filled])
        self._n += int(v.size)
        self._sum += float(v.sum())
        self._sumsq += float(np.square(v).sum())
        if self._n == 0:
            return self
        mean = self._sum / self._n
        var = max(self._sumsq / self._n - mean * mean, 0.0)
        self.mean_ = mean
        self.std_ = float(np.sqrt(var))
        self.n_fitted_ = self._n
        return self

    def fit(self, x: Events | np.ndarray | Iterable[Events]) -> Preprocessor:
        """Fit the statistics on a sample, or on an iterable of chunks.

        Raises
        ------
        ValueError
            If the sample holds no filled slot or a standardised feature has zero
            spread (the message names it), or the events are in another layout.
        """
        self._reset()
        chunks = [x] if isinstance(x, (Events, np.ndarray)) else x
        for chunk in chunks:
            self.partial_fit(chunk)
        if self.kind == "layout":
            self._check_layout_fit()
            return self
        if self._n == 0:
            raise ValueError("cannot fit the preprocessor: the sample has no filled object slot")
        if not self.std_ > 0:
            raise ValueError("cannot fit the preprocessor: pT has zero spread in the sample")
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "object_mean_" if self.kind == "layout" else "mean_"):
            raise RuntimeError("this Preprocessor is not fitted yet: call fit() first")

    # ------------------------------------------------------------------ applying
    def transform(self, x: Events | np.ndarray) -> np.ndarray:
        """Return the preprocessed (N, n_objects, n_features) float32 array (a new array).

        With ``kind="layout"`` every slot is transformed, also those of groups the
        encoder does not see (with the same per-feature statistics); see
        :meth:`encoder_inputs` for what the encoder takes.
        """
        self._check_fitted()
        if self.kind == "layout":
            return self._transform_layout(x)
        p = _particles_of(x)
        out = p.copy()
        pt = p[..., PT]
        filled = pt > 0
        scaled = (self._values(pt[filled]) - self.mean_) / self.std_
        out[..., PT][filled] = scaled.astype(np.float32)
        out[~filled] = 0.0
        return out

    def _transform_layout(self, x: Events | np.ndarray) -> np.ndarray:
        p = _particles_of(x, self.layout)
        filled = p[..., self.layout.feature_index("pt")] > 0
        out = np.zeros_like(p)
        z = (self._object_values(p[filled]) - self.object_mean_) / self.object_std_
        out[filled] = z.astype(np.float32)
        return out

    def transform_event_features(self, x: Events | np.ndarray) -> np.ndarray:
        """The encoder's event-level features, standardised: (N, n_encoder_event_features).

        ``x`` is :class:`Events` or an (N, n_event_features) array in the layout's
        column order. Only for ``kind="layout"``.
        """
        self._check_fitted()
        if self.kind != "layout":
            raise ValueError(f"kind {self.kind!r} has no event-level features; use kind 'layout'")
        if isinstance(x, Events):
            _particles_of(x, self.layout)  # layout check
            values = self._event_features_of(x)
        else:
            values = check_event_features(x, layout=self.layout)
        z = (self._event_values(values) - self.event_mean_) / self.event_std_
        return z.astype(np.float32)

    def encoder_inputs(self, events: Events) -> EncoderInputs:
        """Everything the encoder sees of ``events``, preprocessed (``kind="layout"``).

        The encoder groups' slots of :meth:`transform`, their padding mask, and
        :meth:`transform_event_features`; objects and observables the layout keeps
        out of the encoder are left out.
        """
        if not isinstance(events, Events):
            raise TypeError(f"encoder_inputs() takes Events; got {type(events).__name__}")
        slots = self.layout.encoder_slots
        objects = np.ascontiguousarray(self.transform(events)[:, slots])
        mask = events.object_mask[:, slots]
        return EncoderInputs(objects, mask, self.transform_event_features(events))

    def fit_transform(self, x: Events | np.ndarray) -> np.ndarray:
        """Fit on ``x`` and return ``transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: np.ndarray, filled: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform` given the mask of filled slots (N, n_objects)."""
        self._check_fitted()
        z = np.asarray(z, dtype=np.float32)
        if self.kind == "layout":
            out = np.zeros_like(z)
            v = z[filled].astype(np.float64) * self.object_std_ + self.object_mean_
            logged = self.layout.log_features
            v[:, logged] = np.expm1(v[:, logged])
            out[filled] = v.astype(np.float32)
            return out
        out = z.copy()
        v = z[..., PT][filled].astype(np.float64) * self.std_ + self.mean_
        out[..., PT][filled] = (np.exp(v) if self.kind == "log_pt" else v).astype(np.float32)
        out[~filled] = 0.0
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-friendly fitted state, stored with every model that used it.

        ``"pt"``/``"log_pt"``: ``kind, mean, std, n_fitted`` (unchanged since the first
        models). ``"layout"``: ``kind, layout`` (:meth:`EventLayout.to_dict`),
        ``object_mean, object_std`` (one per object feature), ``event_mean,
        event_std`` (one per encoder event-level feature), ``n_fitted, n_events``.
        """
        self._check_fitted()
        if self.kind == "layout":
            return {
                "kind": self.kind,
                "layout": self.layout.to_dict(),
                "object_mean": self.object_mean_.tolist(),
                "object_std": self.object_std_.tolist(),
                "event_mean": self.event_mean_.tolist(),
                "event_std": self.event_std_.tolist(),
                "n_fitted": self.n_fitted_,
                "n_events": self.n_events_,
            }
        return {"kind": self.kind, "mean": self.mean_, "std": self.std_, "n_fitted": self.n_fitted_}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a fitted preprocessor from :meth:`state_dict`."""
        if state.get("kind") == "layout":
            return cls._from_layout_state(state)
        missing = {"kind", "mean", "std"} - set(state)
        if missing:
            raise KeyError(f"preprocessor state lacks {sorted(missing)}")
        pre = cls(state["kind"])
        pre.mean_ = float(state["mean"])
        pre.std_ = float(state["std"])
        pre.n_fitted_ = int(state.get("n_fitted", 0))
        if not (np.isfinite(pre.mean_) and pre.std_ > 0):
            raise ValueError(f"invalid preprocessor state: {state}")
        return pre

    @classmethod
    def _from_layout_state(cls, state: dict[str, Any]) -> Preprocessor:
        keys = {"layout", "object_mean", "object_std", "event_mean", "event_std"}
        missing = keys - set(state)
        if missing:
            raise KeyError(f"preprocessor state lacks {sorted(missing)}")
        try:
            layout = EventLayout.from_dict(state["layout"], where="preprocessor state layout")
        except LayoutError as err:
            raise ValueError(f"invalid preprocessor state: {err}") from None
        pre = cls("layout", layout)
        sizes = {
            "object_mean": layout.n_features,
            "object_std": layout.n_features,
            "event_mean": layout.encoder_event_features.size,
            "event_std": layout.encoder_event_features.size,
        }
        for key, size in sizes.items():
            try:
                arr = np.asarray(state[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"invalid preprocessor state: {key} must be numbers") from None
            if arr.shape != (size,) or not np.isfinite(arr).all():
                raise ValueError(
                    f"invalid preprocessor state: {key} must be {size} finite numbers for "
                    f"layout {layout.name!r}; got {state[key]!r}"
                )
            if key.endswith("std") and not (arr > 0).all():
                raise ValueError(f"invalid preprocessor state: {key} must be positive")
            setattr(pre, f"{key}_", arr)
        pre.n_fitted_ = int(state.get("n_fitted", 0))
        pre.n_events_ = int(state.get("n_events", 0))
        return pre

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted state as JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.state_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessor:
        """Read a state written by :meth:`save`."""
        return cls.from_state_dict(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        if self.kind == "layout":
            state = "fitted" if hasattr(self, "object_mean_") else "unfitted"
            return f"Preprocessor(kind='layout', layout={self.layout.name!r}, {state})"
        if hasattr(self, "mean_"):
            return f"Preprocessor(kind={self.kind!r}, mean_={self.mean_:.4g}, std_={self.std_:.4g})"
        return f"Preprocessor(kind={self.kind!r}, unfitted)"
