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

__all__ = [
    "plot_latent_by_process",
    "plot_score_map",
    "process_styles",
    "project_2d",
    "resolve_method",
]

# Chosen for the largest smallest CIELAB distance between any two processes as drawn
# (alpha 0.7 on white): W navy, QCD orange, Z green, ttbar brown, Ato4l red, LQ purple,
# h0 cyan, h+- olive; then magenta, lime, blue and black for further processes (the
# smallest distance of the twelve stays above 30).
_PROCESS_COLORS = (
    "#000080", "#ff7f0e", "#2ca02c", "#8c564b", "#d62728", "#9467bd", "#17becf", "#bcbd22",
    "#ff00ff", "#00ff00", "#0000ff", "#000000",
)  # fmt: skip
_ADC2021_COLORS = dict(
    zip(("W", "QCD", "Z", "ttbar", "Ato4l", "LQ_btau", "h0_tautau", "hch_taunu"), _PROCESS_COLORS)
)
"""The ADC2021 processes keep their colours in every map."""
_MARKERS = ("o", "s", "^", "D", "v", "P")
"""Markers of successive passes through the colours (more processes than colours)."""
_POINT_ALPHA = 0.7


def process_styles(process_names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour and marker of every process of a map, distinct for every process.

    The ADC2021 processes keep their own colours (W navy, QCD orange, ...); any other
    process (e.g. the diphoton layout's) takes the colours no ADC2021 process of the map
    uses, in order; once every colour is taken, further processes go through all the
    colours again with the next marker (circle, square, triangle, ...).

    Parameters
    ----------
    process_names : sequence of str
        The processes shown, in legend order.

    Returns
    -------
    dict
        Name -> ``(colour, marker)``.
    """
    names = list(dict.fromkeys(process_names))
    taken = {_ADC2021_COLORS[n] for n in names if n in _ADC2021_COLORS}
    cycle = [(c, _MARKERS[0]) for c in _PROCESS_COLORS if c not in taken]
    cycle += [(c, m) for m in _MARKERS[1:] for c in _PROCESS_COLORS]
    out: dict[str, tuple[str, str]] = {}
    i = 0
    for n in names:
        if n in _ADC2021_COLORS:
            out[n] = (_ADC2021_COLORS[n], _MARKERS[0])
        else:
            out[n] = cycle[i % len(cycle)]
            i += 1
    return out


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
        Every process has its own colour (and marker beyond twelve processes):
        :func:`process_styles`.
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
    shown = [k for k in range(len(process_names)) if (y == k).any()]
    styles = process_styles([process_names[k] for k in shown])
    colors = np.array(["0.6"] * y.size, dtype=object)
    markers = np.array([_MARKERS[0]] * y.size, dtype=object)
    for k in shown:
        colors[y == k], markers[y == k] = styles[process_names[k]]
    for m in dict.fromkeys(markers[order]):
        sel = order[markers[order] == m]
        ax.scatter(xy[sel, 0], xy[sel, 1], s=5, c=list(colors[sel]), marker=m,
                   alpha=_POINT_ALPHA, linewidths=0)  # fmt: skip
    for k in shown:
        name = process_names[k]
        color, marker = styles[name]
        ax.scatter([], [], s=20, color=color, marker=marker,
                   label=f"{name} ({int((y == k).sum())})")  # fmt: skip
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
