"""Input preprocessing for the encoders: pT standardisation, eta/phi kept raw.

Two variants, both fitted on a training sample and applied unchanged to every
other sample (validation, test, signal, black box):

* ``"pt"`` (the primary paper's code): ``pT -> (pT - mean) / std`` with *one*
  global mean and standard deviation over all filled object slots; eta and phi are
  left as they are.
* ``"log_pt"`` (the second paper's choice for momenta): ``pT -> (log pT - mean) / std``
  with the mean and standard deviation of log pT over all filled object slots.

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
from typing import Any

import numpy as np

from .container import Events, check_particles
from .layout import PT

KINDS = ("pt", "log_pt")


def _particles_of(x: Events | np.ndarray) -> np.ndarray:
    return x.particles if isinstance(x, Events) else check_particles(x)


class Preprocessor:
    """Standardise pT with one global mean/std; keep eta, phi raw and padding at 0.

    Parameters
    ----------
    kind : {"pt", "log_pt"}
        Scale pT linearly (the paper's code) or its logarithm.

    Attributes
    ----------
    mean_, std_ : float
        Statistics of (log) pT over the filled slots of the fitted sample.
    n_fitted_ : int
        Number of filled slots the statistics were computed from.

    Examples
    --------
    >>> import numpy as np
    >>> from contrastx.events.preprocessing import Preprocessor
    >>> x = np.zeros((2, 19, 3), np.float32); x[:, 0, 0] = [10.0, 30.0]
    >>> pre = Preprocessor().fit(x)
    >>> pre.transform(x)[:, 0, 0].tolist(), pre.transform(x)[0, 1].tolist()
    ([-1.0, 1.0], [0.0, 0.0, 0.0])
    """

    def __init__(self, kind: str = "pt") -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        self.kind = kind
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._sum = 0.0
        self._sumsq = 0.0

    def _values(self, pt: np.ndarray) -> np.ndarray:
        pt = pt.astype(np.float64)
        return np.log(pt) if self.kind == "log_pt" else pt

    # ------------------------------------------------------------------ fitting
    def partial_fit(self, x: Events | np.ndarray) -> Preprocessor:
        """Accumulate statistics from one chunk (for samples streamed from disk)."""
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
            If the sample holds no filled slot or its pT has zero spread.
        """
        self._reset()
        chunks = [x] if isinstance(x, (Events, np.ndarray)) else x
        for chunk in chunks:
            self.partial_fit(chunk)
        if self._n == 0:
            raise ValueError("cannot fit the preprocessor: the sample has no filled object slot")
        if not self.std_ > 0:
            raise ValueError("cannot fit the preprocessor: pT has zero spread in the sample")
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise RuntimeError("this Preprocessor is not fitted yet: call fit() first")

    # ------------------------------------------------------------------ applying
    def transform(self, x: Events | np.ndarray) -> np.ndarray:
        """Return the preprocessed (N, 19, 3) float32 array (a new array)."""
        self._check_fitted()
        p = _particles_of(x)
        out = p.copy()
        pt = p[..., PT]
        filled = pt > 0
        scaled = (self._values(pt[filled]) - self.mean_) / self.std_
        out[..., PT][filled] = scaled.astype(np.float32)
        out[~filled] = 0.0
        return out

    def fit_transform(self, x: Events | np.ndarray) -> np.ndarray:
        """Fit on ``x`` and return ``transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: np.ndarray, filled: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform` given the mask of filled slots (N, 19)."""
        self._check_fitted()
        z = np.asarray(z, dtype=np.float32)
        out = z.copy()
        v = z[..., PT][filled].astype(np.float64) * self.std_ + self.mean_
        out[..., PT][filled] = (np.exp(v) if self.kind == "log_pt" else v).astype(np.float32)
        out[~filled] = 0.0
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-friendly fitted state, stored with every model that used it."""
        self._check_fitted()
        return {"kind": self.kind, "mean": self.mean_, "std": self.std_, "n_fitted": self.n_fitted_}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a fitted preprocessor from :meth:`state_dict`."""
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
        if hasattr(self, "mean_"):
            return f"Preprocessor(kind={self.kind!r}, mean_={self.mean_:.4g}, std_={self.std_:.4g})"
        return f"Preprocessor(kind={self.kind!r}, unfitted)"
