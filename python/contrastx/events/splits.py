"""Deterministic data splits: a held-out test set plus k-fold cross-validation.

The primary paper withholds 20 % of the Standard Model sample from embedding
training as the anomaly-detection test set and trains on the rest with 5-fold
cross-validation (each fold is the validation set once, the other four train).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Splits:
    """Index sets of one split of a sample of ``n`` events.

    Attributes
    ----------
    test : ndarray of int64
        Held-out test indices (sorted).
    folds : tuple of ndarray of int64
        The k cross-validation folds (each sorted); together with ``test`` they
        partition ``range(n)``.
    n, seed, test_fraction : int, int, float
        The configuration that produced the split.
    """

    test: np.ndarray
    folds: tuple[np.ndarray, ...]
    n: int
    seed: int
    test_fraction: float

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    def _check_fold(self, k: int) -> None:
        if not 0 <= k < self.n_folds:
            raise IndexError(f"fold must be in [0, {self.n_folds - 1}]; got {k}")

    def validation(self, k: int) -> np.ndarray:
        """Validation indices of fold ``k``."""
        self._check_fold(k)
        return self.folds[k]

    def train(self, k: int) -> np.ndarray:
        """Training indices for fold ``k``: every other fold, sorted."""
        self._check_fold(k)
        return np.sort(np.concatenate([f for i, f in enumerate(self.folds) if i != k]))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the split and its configuration to an ``.npz`` file."""
        path = Path(path)
        np.savez(
            path,
            test=self.test,
            n=self.n,
            seed=self.seed,
            test_fraction=self.test_fraction,
            **{f"fold{i}": f for i, f in enumerate(self.folds)},
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Splits:
        """Read a split written by :meth:`save`."""
        with np.load(path) as z:
            k = sum(1 for key in z.files if key.startswith("fold"))
            return cls(
                test=z["test"],
                folds=tuple(z[f"fold{i}"] for i in range(k)),
                n=int(z["n"]),
                seed=int(z["seed"]),
                test_fraction=float(z["test_fraction"]),
            )


def make_splits(
    n: int,
    *,
    n_folds: int = 5,
    test_fraction: float = 0.2,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> Splits:
    """Split ``range(n)`` into a test set and ``n_folds`` folds, reproducibly.

    Parameters
    ----------
    n : int
        Number of events.
    n_folds : int
        Number of cross-validation folds (>= 2).
    test_fraction : float
        Fraction held out as the test set, in [0, 1).
    seed : int
        The split is a pure function of ``(n, n_folds, test_fraction, seed, labels)``.
    labels : ndarray, optional
        If given, the split is stratified: every process contributes the same
        fraction to the test set and to every fold (up to rounding).
    """
    if n <= 0:
        raise ValueError(f"cannot split an empty sample (n={n})")
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2; got {n_folds}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1); got {test_fraction}")
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [np.arange(n)]
    else:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},); got {labels.shape}")
        groups = [np.flatnonzero(labels == v) for v in np.unique(labels)]
    test_parts: list[np.ndarray] = []
    fold_parts: list[list[np.ndarray]] = [[] for _ in range(n_folds)]
    for group in groups:
        perm = group[rng.permutation(group.size)]
        n_test = round(test_fraction * group.size)
        test_parts.append(perm[:n_test])
        for i, part in enumerate(np.array_split(perm[n_test:], n_folds)):
            fold_parts[i].append(part)
    folds = tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in fold_parts)
    if min(f.size for f in folds) == 0:
        raise ValueError(f"{n} events are too few for {n_folds} non-empty folds")
    return Splits(
        test=np.sort(np.concatenate(test_parts)).astype(np.int64),
        folds=folds,
        n=n,
        seed=seed,
        test_fraction=test_fraction,
    )


def largest_remainder_counts(n: int, weights: Sequence[float]) -> np.ndarray:
    """Split ``n`` items among weights by largest-remainder rounding (sums exactly to ``n``).

    Each count is ``floor(n w / sum(w))`` plus one for the largest remainders; ties go to
    the weight listed first. ``weights`` must be finite, non-negative and not all zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not w.size or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all zero; got {list(weights)}")
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def composition_rows(
    labels: np.ndarray,
    process_names: Sequence[str],
    fractions: Mapping[str, float],
    *,
    n_max: int = 0,
    seed: int = 0,
    what: str = "sample",
) -> np.ndarray:
    """Rows of the largest sub-sample with the given process composition.

    A labelled sample (a Pythia file generated with balanced processes, say) is
    re-weighted to a physical mixture (the ADC2021 cocktail) by dropping events: the
    sub-sample has ``round(f_p T)`` events of every process ``p`` for the largest total
    ``T`` the sample holds (at most ``n_max`` when ``n_max > 0``), drawn at random
    without replacement.

    Parameters
    ----------
    labels : array of int
        Label of every event (indices into ``process_names``).
    process_names : sequence of str
        Names of the labels.
    fractions : mapping of str to float
        Process name -> fraction; positive, summing to 1 within 1e-3 (never rescaled
        silently).
    n_max : int
        At most this many events (0: as many as the sample allows).
    seed : int
        The rows are a pure function of the inputs and ``seed``.
    what : str
        Name of the sample in error messages (e.g. a file name).

    Returns
    -------
    ndarray of int64
        Sorted row indices into ``labels``.

    Raises
    ------
    ValueError
        An unknown process, a fraction that is not positive, fractions that do not sum
        to 1, or a process that would get no event.
    """
    labels = np.asarray(labels)
    names = list(fractions)
    if not names:
        raise ValueError("fractions must name at least one process")
    f = np.array([float(fractions[k]) for k in names], dtype=np.float64)
    if not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise ValueError(f"fractions must be finite and > 0; got {dict(fractions)}")
    if abs(f.sum() - 1.0) > 1e-3:
        raise ValueError(f"fractions must sum to 1; got {dict(fractions)} (sum {f.sum():.6g})")
    missing = [k for k in names if k not in process_names]
    if missing:
        raise ValueError(
            f"{what} has no process {missing}; its processes: {', '.join(process_names)}"
        )
    pools = [np.flatnonzero(labels == list(process_names).index(k)) for k in names]
    available = np.array([p.size for p in pools])
    total = int(np.floor(np.min(available / f)))
    if n_max > 0:
        total = min(total, int(n_max))
    counts = largest_remainder_counts(total, f)
    # Rounding up may ask one event more than a process has: shrink the total until it fits.
    while np.any(counts > available):
        total -= 1
        counts = largest_remainder_counts(total, f)
    empty = [k for k, c in zip(names, counts) if c == 0]
    if empty:
        raise ValueError(
            f"{what}: {total} events with fractions {dict(fractions)} leave no event of "
            f"{empty} (available per process: {dict(zip(names, available.tolist()))})"
        )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC0C7]))
    rows = [rng.choice(p, int(c), replace=False) for p, c in zip(pools, counts)]
    return np.sort(np.concatenate(rows)).astype(np.int64)
