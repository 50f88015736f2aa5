r"""Study figures of the primary paper: quantities against the embedding dimension.

* :func:`plot_median_z_vs_dimension` -- median :math:`Z` per signal against D, with the
  3 and 5 :math:`\sigma` lines (Fig. III; Figs. VII-VIII at other injections);
* :func:`plot_power_vs_dimension` -- power at :math:`3\sigma` against D (Figs. IX, X);
* :func:`plot_linear_eval_vs_dimension` -- linear-evaluation accuracy against D (Fig. II);
* :func:`plot_black_box_splits` -- the black-box splits' :math:`t` against the null
  distribution (Fig. VI).

Every point is a :class:`StudyPoint`. Points of one *family* (e.g. ``supcon-mlp``) are
joined by a line over D; the baselines (families ``<D>D raw``, ``<D>D leading pT``,
``<D>D VAE``: ``57D raw``, ``6D leading pT`` and ``6D VAE`` for ADC2021 events) are drawn
as single black markers (circle, triangle, cross) as in the paper.

Error bars come in two parts: a thick inner bar, the statistical (toy) error
(``err_lo``/``err_hi``), and, where a point has a run spread (``spread`` > 0), a thin
outer bar with caps, the statistical error and the run spread in quadrature. A point
that is only a lower bound (``lower_bound``) has no bars and an upward arrow. The legend
(outside the panels) says which bars and marks a figure shows.
Figures are :class:`matplotlib.figure.Figure` objects on an Agg canvas (no pyplot);
save them with :func:`contrastx.plots.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BASELINE_MARKERS",
    "StudyPoint",
    "baseline_marker",
    "error_bar_note",
    "plot_black_box_splits",
    "plot_linear_eval_vs_dimension",
    "plot_median_z_vs_dimension",
    "plot_power_vs_dimension",
]

BASELINE_MARKERS = {"57D raw": "o", "6D leading pT": "^", "6D VAE": "x"}
"""Marker of each baseline family of ADC2021 events (drawn in black)."""

_BASELINE_KIND_MARKERS = {"raw": "o", "leading pT": "^", "VAE": "x"}


def baseline_marker(family: str) -> str | None:
    """The black marker of a baseline family ``"<D>D raw"``, ``"<D>D leading pT"`` or
    ``"<D>D VAE"`` (any D, so any event layout); None for any other family."""
    head, _, kind = family.partition("D ")
    if head.isdigit() and kind in _BASELINE_KIND_MARKERS:
        return _BASELINE_KIND_MARKERS[kind]
    return BASELINE_MARKERS.get(family)


_DODGE = 0.08
"""Horizontal distance (in log2 D) between families drawn at the same D."""

# ColorBrewer Dark2: dark, mutually distinct on white (the baselines are black).
_FAMILY_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")


@dataclass(frozen=True)
class StudyPoint:
    """One plotted value.

    Attributes
    ----------
    family : str
        Series label (points of one family are joined over D).
    dimension : int
        Embedding dimension D.
    value : float
    err_lo, err_hi : float
        Downward and upward error bars (0 for none).
    signal : str
        Panel (signal name); ``""`` for single-panel figures.
    name : str
        The embedding's own name (for tooltips and tables).
    spread : float
        Spread across trainings (sample standard deviation); drawn, in quadrature with
        the error, as the outer bar (0: none).
    lower_bound : bool
        ``value`` is only a lower bound (drawn as an upward arrow, without bars).
    """

    family: str
    dimension: int
    value: float
    err_lo: float = 0.0
    err_hi: float = 0.0
    signal: str = ""
    name: str = ""
    spread: float = 0.0
    lower_bound: bool = False


def _new_figure(n_panels: int, panel_size: tuple[float, float] = (4.6, 3.6)) -> tuple[Any, list]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = 1 if n_panels == 1 else 2
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def _check_points(points: Sequence[StudyPoint]) -> list[StudyPoint]:
    pts = list(points)
    if not pts:
        raise ValueError("no points to plot")
    for p in pts:
        if not isinstance(p, StudyPoint):
            raise TypeError(f"points must be StudyPoint objects; got {type(p).__name__}")
        if int(p.dimension) < 1:
            raise ValueError(f"dimension must be >= 1; got {p.dimension} ({p.family})")
    return pts


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def _draw_panel(ax: Any, points: list[StudyPoint], colors: dict[str, str]) -> None:
    from matplotlib.transforms import offset_copy

    families = list(dict.fromkeys(p.family for p in points))
    arrow_up = offset_copy(ax.transData, fig=ax.figure, x=0.0, y=22.0, units="points")
    # Families sharing a D (the 6-D leading pT and VAE, or a D = 6 encoder) are drawn side
    # by side, a little apart on the log axis, so no point hides another.
    at_d: dict[int, list[str]] = {}
    for p in points:
        if p.family not in at_d.setdefault(int(p.dimension), []):
            at_d[int(p.dimension)].append(p.family)

    def dodge(fam: str, dim: int) -> float:
        fams = at_d[dim]
        return float(dim * 2.0 ** (_DODGE * (fams.index(fam) - (len(fams) - 1) / 2)))

    for fam in families:
        pts = sorted((p for p in points if p.family == fam), key=lambda p: p.dimension)
        d = np.array([dodge(fam, int(p.dimension)) for p in pts], dtype=np.float64)
        v = np.array([p.value for p in pts], dtype=np.float64)
        bound = np.array([bool(p.lower_bound) for p in pts])
        err = np.array(
            [[_finite(p.err_lo) for p in pts], [_finite(p.err_hi) for p in pts]], dtype=np.float64
        )
        spread = np.array([_finite(p.spread) for p in pts], dtype=np.float64)
        err[:, bound] = 0.0
        spread[bound] = 0.0
        marker = baseline_marker(fam)
        color = "k" if marker is not None else colors[fam]
        if (spread > 0).any():
            outer = ax.errorbar(
                d, v, yerr=np.hypot(err, spread), fmt="none", ecolor=color, elinewidth=0.9,
                capsize=3.5,
            )  # fmt: skip
            for col in outer.lines[2]:
                col.set_gid(f"outer:{fam}")
        if marker is not None:
            inner = ax.errorbar(
                d, v, yerr=err, fmt=marker, color=color, ms=7, capsize=0,
                elinewidth=2.6, label=fam, gid=f"family:{fam}", ls="none",
            )  # fmt: skip
        else:
            inner = ax.errorbar(
                d, v, yerr=err, fmt="-o", color=color, ms=5, capsize=0, elinewidth=2.6,
                label=fam, gid=f"family:{fam}",
            )  # fmt: skip
        for col in inner.lines[2]:
            col.set_gid(f"inner:{fam}")
        for x, y in zip(d[bound], v[bound]):
            ax.annotate(
                "", xy=(x, y), xycoords=arrow_up, xytext=(x, y), textcoords="data",
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.4},
                annotation_clip=False, gid=f"lower_bound:{fam}",
            )  # fmt: skip
    if any(p.lower_bound for p in points):
        ax.margins(y=0.18)  # room for the arrows above the bounds
    ax.set_xscale("log", base=2)
    dims = sorted({p.dimension for p in points})
    ax.set_xticks(dims)
    ax.set_xticklabels([str(d) for d in dims])
    ax.set_xlabel("embedding dimension D")
    ax.grid(alpha=0.3)


def _family_colors(points: list[StudyPoint]) -> dict[str, str]:
    fams = [f for f in dict.fromkeys(p.family for p in points) if baseline_marker(f) is None]
    return {f: _FAMILY_COLORS[i % len(_FAMILY_COLORS)] for i, f in enumerate(fams)}


def _per_signal(
    points: Sequence[StudyPoint],
    ylabel: str,
    title: str | None,
    hlines: Sequence[tuple[float, str]] = (),
    ylim: tuple[float, float] | None = None,
    err_label: str = "toy error",
) -> Any:
    pts = _check_points(points)
    signals = list(dict.fromkeys(p.signal for p in pts))
    colors = _family_colors(pts)
    fig, axes = _new_figure(len(signals))
    for ax, sig in zip(axes, signals):
        _draw_panel(ax, [p for p in pts if p.signal == sig], colors)
        for y, label in hlines:
            ax.axhline(y, color="0.4", ls="--", lw=1.0)
            ax.text(
                1.0, y, f" {label}", transform=ax.get_yaxis_transform(), va="center",
                ha="left", fontsize=8, color="0.3",
            )  # fmt: skip
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_ylabel(ylabel)
        ax.set_title(sig or None)
    _legend(fig, axes, pts, err_label)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def error_bar_note(points: Sequence[StudyPoint], err_label: str = "toy error") -> str:
    """Words for what the error bars and marks of ``points`` mean (the legend's title)."""
    parts = [f"thick bars: {err_label}"]
    if any(_finite(p.spread) > 0 and not p.lower_bound for p in points):
        parts.append(
            f"thin capped bars: {err_label} and run spread (retraining, reference draw) "
            "in quadrature"
        )
    if any(p.lower_bound for p in points):
        parts.append("arrow: lower bound (empirical Z at its limit)")
    return "\n".join(parts)


def _legend(fig: Any, axes: list, points: Sequence[StudyPoint], err_label: str) -> None:
    """One legend for all panels, outside them (below), titled with the error-bar note."""
    seen: dict[str, Any] = {}
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        seen.update({k: v for k, v in zip(lab, h) if k not in seen})
    fig.legend(
        list(seen.values()), list(seen.keys()), loc="outside lower center",
        ncols=min(4, len(seen)), fontsize=8, title=error_bar_note(points, err_label),
        title_fontsize=8,
    )  # fmt: skip


def plot_median_z_vs_dimension(points: Sequence[StudyPoint], *, title: str | None = None) -> Any:
    r"""Median :math:`Z` against D, one panel per signal, 3 and 5 :math:`\sigma` lines (Fig. III).

    Parameters
    ----------
    points : sequence of StudyPoint
        ``value`` = median Z, ``err_lo`` / ``err_hi`` its toy (bootstrap) error,
        ``spread`` the spread across trainings, ``lower_bound`` for an empirical Z at its
        limit, ``signal`` the panel.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _per_signal(points, "median Z", title, hlines=((3.0, "3σ"), (5.0, "5σ")))


def plot_power_vs_dimension(
    points: Sequence[StudyPoint], *, z_level: float = 3.0, title: str | None = None
) -> Any:
    r"""Power at ``z_level`` :math:`\sigma` against D, one panel per signal (Figs. IX, X).

    ``value`` is the power in [0, 1], ``err_lo`` / ``err_hi`` its Clopper-Pearson errors,
    ``spread`` the spread across trainings.
    """
    return _per_signal(
        points, f"power at {z_level:g}σ", title, hlines=(), ylim=(-0.03, 1.05),
        err_label="68 % Clopper-Pearson interval",
    )  # fmt: skip


def plot_linear_eval_vs_dimension(points: Sequence[StudyPoint], *, title: str | None = None) -> Any:
    """Linear-evaluation accuracy on the background classes against D (Fig. II).

    ``value`` is the mean accuracy, ``err_lo = err_hi`` its standard error over folds,
    ``spread`` the spread across trainings.
    """
    pts = _check_points(points)
    fig, (ax,) = _new_figure(1, (6.4, 4.6))
    _draw_panel(ax, pts, _family_colors(pts))
    ax.set_ylabel("linear evaluation accuracy")
    _legend(fig, [ax], pts, "standard error over the probe's folds")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_black_box_splits(
    t_null: Any,
    t_splits: Any,
    *,
    dof: float | None = None,
    best_split: int | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Black-box splits' mean :math:`t` (green) against the null toys (purple) (Fig. VI).

    Parameters
    ----------
    t_null : array_like
        Null toys' :math:`t`.
    t_splits : array_like, shape (k,) or (k, r)
        Each split's :math:`t` (averaged over the runs when 2-D).
    dof : float, optional
        Draw the fitted :math:`\chi^2_\nu` density.
    best_split : int, optional
        Split to annotate as the most significant.
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy import stats

    from .nplm import CHI2_COLOR, NULL_COLOR, SIGNAL_COLOR, common_bins

    t0 = np.asarray(t_null, dtype=np.float64).reshape(-1)
    ts = np.asarray(t_splits, dtype=np.float64)
    if ts.ndim == 2:
        ts = ts.mean(1)
    ts = ts.reshape(-1)
    if t0.size < 2 or ts.size < 1:
        raise ValueError("need at least 2 null toys and 1 split")
    if not (np.isfinite(t0).all() and np.isfinite(ts).all()):
        raise ValueError("t_null or t_splits contains NaN or inf")
    if ax is None:
        fig, (ax,) = _new_figure(1, (7.0, 4.6))
    else:
        fig = ax.figure
    edges = common_bins([t0, ts])
    ax.hist(
        t0, bins=edges, density=True, histtype="stepfilled", alpha=0.45, color=NULL_COLOR,
        edgecolor=NULL_COLOR, label=f"null toys (n = {t0.size})", gid="hist_null",
    )  # fmt: skip
    ax.hist(
        ts, bins=edges, density=True, histtype="stepfilled", alpha=0.45, color=SIGNAL_COLOR,
        edgecolor=SIGNAL_COLOR, label=f"black-box splits (n = {ts.size})", gid="hist_splits",
    )  # fmt: skip
    if dof is not None:
        x = np.linspace(max(edges[0], 0.0), edges[-1], 400)
        ax.plot(x, stats.chi2.pdf(x, dof), color=CHI2_COLOR, lw=2.0, label=f"χ², ν = {dof:.2f}")
    ymax = ax.get_ylim()[1]
    for i, v in enumerate(ts):
        ax.plot([v, v], [0, 0.08 * ymax], color=SIGNAL_COLOR, lw=1.5)
        ax.text(v, 0.09 * ymax, str(i), ha="center", va="bottom", fontsize=7, color="0.2")
    if best_split is not None and 0 <= best_split < ts.size:
        ax.annotate(
            f"split {best_split}", xy=(ts[best_split], 0.12 * ymax),
            xytext=(ts[best_split], 0.35 * ymax), ha="center", fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "0.3"},
        )  # fmt: skip
    ax.set_xlabel("NPLM test statistic t")
    ax.set_ylabel("density (unit area)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig
