"""Linear evaluation of a frozen embedding (primary paper, Sec. V-C, Fig. II).

A single linear layer is trained with cross-entropy to classify the background
processes from the embedding; the accuracy is reported as the mean and standard
error over the folds (each fold is the evaluation set once, the others train).
The embedding columns are standardised with the training folds' mean and
standard deviation before the fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..events.layout import BACKGROUNDS
from ..events.splits import make_splits

__all__ = ["LinearEvalResult", "linear_evaluation"]


@dataclass(frozen=True)
class LinearEvalResult:
    """Outcome of :func:`linear_evaluation`.

    Attributes
    ----------
    accuracies : ndarray, shape (n_folds,)
        Accuracy on each evaluation fold.
    mean, sem : float
        Mean accuracy and its standard error (sample std / sqrt(n_folds)).
    classes : tuple of int
        Labels that were classified.
    """

    accuracies: np.ndarray
    mean: float
    sem: float
    classes: tuple[int, ...]

    def __str__(self) -> str:
        return f"accuracy {self.mean:.4f} +- {self.sem:.4f} over {self.accuracies.size} folds"


def _fit_linear(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, max_iter: int, l2: float, seed: int
) -> torch.nn.Linear:
    """Full-batch L-BFGS on the (convex) softmax cross-entropy, float64."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(x.shape[1], n_classes, dtype=x.dtype)
    opt = torch.optim.LBFGS(
        layer.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(layer(x), y)
        loss = loss + 0.5 * l2 * layer.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer


def linear_evaluation(
    embedding: np.ndarray,
    labels: np.ndarray,
    *,
    classes: Sequence[int] | None = None,
    process_names: Sequence[str] | None = None,
    n_folds: int = 5,
    max_iter: int = 200,
    l2: float = 1e-4,
    seed: int = 0,
) -> LinearEvalResult:
    """k-fold linear-probe accuracy of an embedding.

    Parameters
    ----------
    embedding : ndarray, shape (N, D)
        Frozen embedding.
    labels : ndarray of int, shape (N,)
    classes : sequence of int, optional
        Labels to classify (others are dropped). Default: the background processes
        (W, QCD, Z, ttbar) found through ``process_names``, or all labels >= 0 if
        ``process_names`` is not given.
    process_names : sequence of str, optional
        Names of the labels (e.g. ``Events.process_names``).
    n_folds : int
        Folds (stratified, :func:`~contrastx.events.make_splits` with no test set).
    max_iter : int
        L-BFGS iterations (full batch, float64) for the linear layer.
    l2 : float
        Small L2 penalty on the weights (keeps separable problems bounded).
    seed : int
        Seeds the folds and the layer initialisation.

    Returns
    -------
    LinearEvalResult
    """
    z = np.asarray(embedding, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"embedding must be (N, D) and labels (N,); got {z.shape} and {y.shape}")
    if not np.isfinite(z).all():
        raise ValueError("embedding contains NaN or inf")
    if classes is None:
        if process_names is not None:
            classes = [i for i, n in enumerate(process_names) if n in BACKGROUNDS]
        else:
            classes = sorted(int(c) for c in np.unique(y) if c >= 0)
    classes = tuple(int(c) for c in classes)
    keep = np.isin(y, classes)
    present = [c for c in classes if (y[keep] == c).any()]
    if len(present) < 2:
        raise ValueError(f"need at least two classes with events; found {present}")
    z, y = z[keep], y[keep]
    lut = {c: i for i, c in enumerate(present)}
    y_idx = np.array([lut[int(v)] for v in y], dtype=np.int64)
    splits = make_splits(len(y_idx), n_folds=n_folds, test_fraction=0.0, seed=seed, labels=y_idx)
    accs = []
    for k in range(n_folds):
        tr, ev = splits.train(k), splits.validation(k)
        mean = z[tr].mean(axis=0)
        std = z[tr].std(axis=0)
        std[std == 0] = 1.0
        xt = torch.from_numpy((z[tr] - mean) / std)
        xe = torch.from_numpy((z[ev] - mean) / std)
        layer = _fit_linear(xt, torch.from_numpy(y_idx[tr]), len(present), max_iter, l2, seed + k)
        with torch.no_grad():
            pred = layer(xe).argmax(dim=1).numpy()
        accs.append(float((pred == y_idx[ev]).mean()))
    a = np.array(accs)
    sem = float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0
    return LinearEvalResult(accuracies=a, mean=float(a.mean()), sem=sem, classes=tuple(present))
