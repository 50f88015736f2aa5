"""2-D maps of a latent space.

* :func:`project_2d` -- a 2-D projection: identity for D = 2, PCA (NumPy SVD), t-SNE
  (scikit-learn) or UMAP (umap-learn); ``"auto"`` takes the best one installed;
* :func:`plot_latent_by_process` -- the map coloured by process;
* :func:`plot_score_map` -- the map of a black-box split coloured by the NPLM score,
  showing only events with score > 0.5, highest scores drawn on top (Fig. V).

scikit-learn and umap-learn are optional: without them ``"auto"`` falls back to PCA.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plot_latent_by_process", "plot_score_map", "project_2d", "resolve_method"]

# Chosen for the largest smallest CIELAB distance between any two processes as drawn
# (alpha 0.7 on white): W navy, QCD orange, Z green, ttbar brown, Ato4l red, LQ purple,
# h0 cyan, h+- olive.
_PROCESS_COLORS = (
    "#000080", "#ff7f0e", "#2ca02c", "#8c564b", "#d62728", "#9467bd", "#17becf", "#bcbd22",
)  # fmt: skip
_POINT_ALPHA = 0.7


def resolve_method(method: str, dim: int) -> str:
    """The projection ``method`` resolves to for a ``dim``-dimensional latent space."""
    if method not in ("auto", "pca", "tsne", "umap"):
        raise ValueError(f"method must be auto, pca, tsne or umap; got {method!r}")
    if dim == 2 and method in ("auto", "pca"):
        return "identity"
    if method != "auto":
        return method
    if importlib.util.find_spec("umap") is not None:
        return "umap"
    if importlib.util.find_spec("sklearn") is not None:
        return "tsne"
    return "pca"


def project_2d(x: Any, method: str = "auto", *, seed: int = 0) -> tuple[np.ndarray, str]:
    """Project ``x`` (N, D) to 2-D.

    Parameters
    ----------
    x : array_like, shape (N, D)
    method : {"auto", "pca", "tsne", "umap"}
        ``auto``: identity for D = 2, else UMAP if ``umap-learn`` is installed, else t-SNE
        if scikit-learn is, else PCA. Columns are standardised first.
    seed : int
        Seeds t-SNE / UMAP.

    Returns
    -------
    (xy, method_used) : (ndarray of shape (N, 2), str)

    Raises
    ------
    ImportError
        ``"tsne"`` or ``"umap"`` asked for but not installed.
    """
    z = np.asarray(x, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(f"x must be (N >= 2, D >= 1); got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("x contains NaN or inf")
    used = resolve_method(method, z.shape[1])
    if used == "identity":
        return z.copy(), used
    std = z.std(0)
    std[std == 0] = 1.0
    z = (z - z.mean(0)) / std
    if z.shape[1] == 1:
        return np.column_stack([z[:, 0], np.zeros(z.shape[0])]), "pca"
    if used == "pca":
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        xy = z @ vt[:2].T
        # Fix the sign of each axis (largest loading positive) for reproducible maps.
        signs = np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(1)])
        return xy * np.where(signs == 0, 1.0, signs), used
    if used == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as err:
            raise ImportError(
                "method='tsne' needs scikit-learn (pip install scikit-learn)"
            ) from err
        perplexity = float(min(30.0, max(2.0, (z.shape[0] - 1) / 3.0)))
        return TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(z), used
    try:
        import umap
    except ImportError as err:
        raise ImportError("method='umap' needs umap-learn (pip install umap-learn)") from err
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(z), used


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def plot_latent_by_process(
    x: Any,
    labels: Any,
    process_names: Sequence[str],
    *,
    method: str = "auto",
    seed: int = 0,
    title: str | None = None,
) -> Any:
    """2-D map of a latent space, one colour per process.

    Parameters
    ----------
    x : array_like, shape (N, D)
        Latent vectors (or an already 2-D map with ``method="pca"`` and D = 2).
    labels : array_like of int, shape (N,)
        Indices into ``process_names`` (-1: unknown, drawn grey).
    process_names : sequence of str
    method : str
        See :func:`project_2d`.
    seed : int
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        The projection used is in the axes labels and in ``fig.contrastx_method``.
    """
    y = np.asarray(labels).reshape(-1)
    z = np.asarray(x)
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"labels ({y.shape[0]}) and x ({z.shape[0]}) differ in length")
    xy, used = project_2d(z, method, seed=seed)
    fig, ax = _figure((7.4, 5.2))
    order = np.random.default_rng(seed).permutation(y.size)  # no process hides another
    colors = np.array(["0.6"] * y.size, dtype=object)
    for k in range(len(process_names)):
        colors[y == k] = _PROCESS_COLORS[k % len(_PROCESS_COLORS)]
    ax.scatter(xy[order, 0], xy[order, 1], s=5, c=list(colors[order]), alpha=_POINT_ALPHA,
               linewidths=0)  # fmt: skip
    for k, name in enumerate(process_names):
        n = int((y == k).sum())
        if n:
            ax.scatter([], [], s=20, color=_PROCESS_COLORS[k % len(_PROCESS_COLORS)],
                       label=f"{name} ({n})")  # fmt: skip
    if (y < 0).any():
        ax.scatter([], [], s=20, color="0.6", label=f"unknown ({int((y < 0).sum())})")
    ax.set_xlabel(f"{used} 1")
    ax.set_ylabel(f"{used} 2")
    # Outside the axes, so it never covers a point.
    ax.legend(fontsize=8, markerscale=1.0, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    fig.contrastx_method = used
    return fig


def plot_score_map(
    x: Any,
    scores: Any,
    *,
    threshold: float = 0.5,
    method: str = "auto",
    seed: int = 0,
    title: str | None = None,
) -> Any:
    """2-D map of a black-box split coloured by the NPLM score (Fig. V).

    The projection is computed on all events of ``x``; only events with
    ``score > threshold`` are drawn, sorted so the highest scores are on top.

    Parameters
    ----------
    x : array_like, shape (N, D)
        Latent vectors of the split.
    scores : array_like, shape (N,)
        NPLM scores :math:`\\sigma(f(x))` (:func:`contrastx.nplm.nplm_score`).
    threshold : float
        Show only scores above this (0.5 in the paper).
    method, seed, title
        See :func:`project_2d`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    z = np.asarray(x)
    if s.shape[0] != z.shape[0]:
        raise ValueError(f"scores ({s.shape[0]}) and x ({z.shape[0]}) differ in length")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    xy, used = project_2d(z, method, seed=seed)
    keep = np.flatnonzero(s > threshold)
    keep = keep[np.argsort(s[keep], kind="stable")]
    fig, ax = _figure((6.4, 5.2))
    sc = ax.scatter(
        xy[keep, 0], xy[keep, 1], c=s[keep], s=5, cmap="plasma_r",
        vmin=threshold, vmax=max(float(s.max()), threshold + 1e-6), linewidths=0, gid="scores",
    )  # fmt: skip
    fig.colorbar(sc, ax=ax, label="NPLM score σ(f(x))")
    ax.set_xlabel(f"{used} 1")
    ax.set_ylabel(f"{used} 2")
    ax.set_title(title or f"score > {threshold:g}: {keep.size} of {s.size} events")
    fig.contrastx_method = used
    fig.contrastx_shown = int(keep.size)
    return fig
