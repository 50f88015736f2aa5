r"""CATHODE figures: SIC and ROC curves, the sculpting checks, template-vs-data projections.

* :func:`plot_sic_curves` -- SIC :math:`= \epsilon_S/\sqrt{\epsilon_B}` against the signal
  efficiency for several classifiers (CATHODE, idealized, supervised, ...), each with the
  band spanned by its ensembles; only working points that keep at least
  ``min_background_events`` background events are drawn;
* :func:`plot_roc_curves` -- background rejection :math:`1/\epsilon_B` against
  :math:`\epsilon_S` (log scale), with the random classifier;
* :func:`plot_sculpting_roc` -- ROC of the template-vs-true-background classifier with
  its AUC and uncertainty (the second paper's Fig. 3a);
* :func:`plot_mass_spectra` -- normalised m spectra before and after the score cuts, in
  the signal region and the sidebands, with the compatibility p-values (Fig. 3b);
* :func:`plot_projections` -- 1-D distributions of SR data, template (weighted) and,
  if known, the true background and the signal per feature (the second paper's Fig. 1).

Every function returns a :class:`matplotlib.figure.Figure` on an Agg canvas (no pyplot
state); save it with :func:`contrastx.plots.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ScoreSet",
    "plot_mass_spectra",
    "plot_projections",
    "plot_roc_curves",
    "plot_sculpting_roc",
    "plot_sic_curves",
]

_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")


@dataclass(frozen=True)
class ScoreSet:
    """Scores of one classifier on labelled events (1 signal, 0 background).

    Attributes
    ----------
    labels : numpy.ndarray, shape (n,)
    scores : numpy.ndarray, shape (n,)
        The classifier's (mean) score.
    ensemble_scores : numpy.ndarray, shape (n_ensembles, n), optional
        Per-ensemble scores, drawn as a band.
    """

    labels: Any
    scores: Any
    ensemble_scores: Any = None


def _figure(n_panels: int, panel_size: tuple[float, float] = (4.8, 3.8)) -> tuple[Any, list]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def _check_sets(curves: Mapping[str, ScoreSet]) -> dict[str, ScoreSet]:
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping name -> ScoreSet")
    for name, c in curves.items():
        if not isinstance(c, ScoreSet):
            raise TypeError(f"curves[{name!r}] must be a ScoreSet; got {type(c).__name__}")
    return dict(curves)


def _sic_on_grid(
    labels: Any, scores: Any, grid: np.ndarray, min_background_events: int
) -> np.ndarray:
    """SIC interpolated at signal efficiencies ``grid`` (NaN where the rule excludes)."""
    from contrastx.cathode.metrics import roc_curve

    roc = roc_curve(labels, scores)
    ok = (roc.n_background_selected >= min_background_events) & (roc.fpr > 0)
    if ok.sum() < 2:
        return np.full(grid.shape, np.nan)
    tpr, sic = roc.tpr[ok], roc.tpr[ok] / np.sqrt(roc.fpr[ok])
    tpr_u, idx = np.unique(tpr, return_index=True)
    out = np.interp(grid, tpr_u, sic[idx], left=np.nan, right=np.nan)
    return out


def plot_sic_curves(
    curves: Mapping[str, ScoreSet],
    *,
    min_background_events: int = 100,
    title: str | None = None,
) -> Any:
    """SIC against signal efficiency, one line per classifier with its ensemble band.

    The band spans the smallest to the largest SIC of the ensembles at each signal
    efficiency.
    """
    sets = _check_sets(curves)
    from contrastx.cathode.metrics import sic_curve

    fig, (ax,) = _figure(1)
    grid = np.linspace(0.0, 1.0, 401)[1:]
    for i, (name, c) in enumerate(sets.items()):
        color = _COLORS[i % len(_COLORS)]
        tpr, _, sic = sic_curve(c.labels, c.scores, min_background_events=min_background_events)
        ax.plot(tpr, sic, color=color, lw=1.6, label=name, gid=f"sic:{name}")
        if c.ensemble_scores is not None and len(c.ensemble_scores) > 1:
            per = np.array(
                [
                    _sic_on_grid(c.labels, s, grid, min_background_events)
                    for s in np.asarray(c.ensemble_scores)
                ]
            )
            valid = np.isfinite(per).all(axis=0)
            if valid.any():
                ax.fill_between(
                    grid[valid], per[:, valid].min(axis=0), per[:, valid].max(axis=0),
                    color=color, alpha=0.25, lw=0, gid=f"band:{name}",
                )  # fmt: skip
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1.0, label="random")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"SIC $= \epsilon_S / \sqrt{\epsilon_B}$")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"SIC (>= {min_background_events} background events)", fontsize=10)
    return fig


def plot_roc_curves(curves: Mapping[str, ScoreSet], *, title: str | None = None) -> Any:
    """Background rejection 1/eps_B against signal efficiency (log scale)."""
    sets = _check_sets(curves)
    from contrastx.cathode.metrics import roc_curve

    fig, (ax,) = _figure(1)
    for i, (name, c) in enumerate(sets.items()):
        roc = roc_curve(c.labels, c.scores)
        ok = roc.fpr > 0
        ax.plot(
            roc.tpr[ok], 1.0 / roc.fpr[ok], color=_COLORS[i % len(_COLORS)], lw=1.6,
            label=f"{name} (AUC {roc.auc:.3f})", gid=f"roc:{name}",
        )  # fmt: skip
    eff = np.linspace(1e-3, 1, 200)
    ax.plot(eff, 1 / eff, color="0.5", ls=":", lw=1.0, label="random")
    ax.set_yscale("log")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"background rejection $1/\epsilon_B$")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or "ROC", fontsize=10)
    return fig


def plot_sculpting_roc(result: Any, *, title: str | None = None) -> Any:
    """ROC of template vs true background (a
    :class:`~contrastx.cathode.sculpting.SculptingResult`), with AUC and its error."""
    roc = result.roc
    fig, (ax,) = _figure(1)
    ax.plot(
        roc.fpr, roc.tpr, color=_COLORS[0], lw=1.6,
        label=f"AUC = {result.auc:.3f} ± {result.auc_error:.3f}", gid="sculpting-roc",
    )  # fmt: skip
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1.0, label="indistinguishable")
    ax.set_xlabel("template efficiency")
    ax.set_ylabel("true-background efficiency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "sculpting test: template vs true SR background", fontsize=10)
    return fig


def plot_mass_spectra(
    checks: Sequence[Mapping[str, Any]], *, m_label: str = "m", title: str | None = None
) -> Any:
    """m spectra before and after each score cut (signal region and sidebands).

    ``checks`` is the output of :func:`contrastx.cathode.mass_sculpting` (or
    :meth:`Cathode.mass_sculpting`). One panel per cut: events per unit m before the cut
    (bars) and after it scaled by 1 / the region's efficiency (points with Poisson
    errors), so that without sculpting the points follow the bars in each region; the
    shape-compatibility and bump p-values are printed.
    """
    checks = list(checks)
    if not checks:
        raise ValueError("no sculpting checks to plot")
    fig, axes = _figure(len(checks))
    for ax, check in zip(axes, checks):
        lines = []
        for r, shade, short in (("sidebands", "0.85", "SB"), ("signal_region", "0.65", "SR")):
            sc = check[r]
            lo, hi = sc.bin_ranges()
            width = hi - lo
            scale = 1.0 / sc.efficiency if sc.efficiency > 0 else 0.0
            first = r == "signal_region"
            ax.bar(lo, sc.before / width, width=width, align="edge", color=shade,
                   label="before cut" if first else None, gid=f"before:{r}")  # fmt: skip
            ax.errorbar(
                0.5 * (lo + hi), sc.after * scale / width, yerr=np.sqrt(sc.after) * scale / width,
                fmt="o", ms=3, color=_COLORS[1],
                label="after cut / efficiency" if first else None, gid=f"after:{r}",
            )  # fmt: skip
            lines.append(
                f"{short}: eff {sc.efficiency:.3f}, p = {sc.p_value:.2g}, "
                f"bump p = {sc.bump_p_value:.2g}"
            )
        ax.text(0.02, 0.03, "\n".join(lines[::-1]), transform=ax.transAxes, va="bottom",
                fontsize=7, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})  # fmt: skip
        ax.set_xlabel(m_label)
        ax.set_ylabel("events / unit m")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
        ax.set_title(
            f"cut keeping {check['efficiency']:.0%} of the SR (score >= {check['threshold']:.3g})",
            fontsize=9,
        )
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_projections(
    x_data: Any,
    x_template: Any,
    *,
    w_template: Any = None,
    x_signal: Any = None,
    x_background: Any = None,
    feature_names: Sequence[str] | None = None,
    bins: int = 40,
    data_label: str = "SR data",
    title: str | None = None,
) -> Any:
    """1-D distributions of SR data and the template per feature (and signal, if given).

    Histograms are normalised to unit area; the template uses its weights. The binning
    covers the 0.1 -- 99.9 % quantiles of the data. ``x_background`` (n, D), the true SR
    background where it is known (simulation), is drawn as a third histogram.
    """
    xd = np.asarray(x_data, dtype=np.float64)
    xt = np.asarray(x_template, dtype=np.float64)
    if xd.ndim != 2 or xt.ndim != 2 or xd.shape[1] != xt.shape[1]:
        raise ValueError(
            f"x_data and x_template must be (n, D) with the same D; got {xd.shape}, {xt.shape}"
        )
    d = xd.shape[1]
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(d)]
    if len(names) != d:
        raise ValueError(f"feature_names has {len(names)} names for {d} features")
    w = None if w_template is None else np.asarray(w_template, dtype=np.float64)
    xs = None if x_signal is None else np.asarray(x_signal, dtype=np.float64)
    xb = None if x_background is None else np.asarray(x_background, dtype=np.float64)
    if xb is not None and (xb.ndim != 2 or xb.shape[1] != d or len(xb) == 0):
        raise ValueError(f"x_background must be (n > 0, {d}) like x_data; got {xb.shape}")
    fig, axes = _figure(d, panel_size=(3.6, 2.9))
    for j, ax in enumerate(axes):
        lo, hi = np.quantile(xd[:, j], [0.001, 0.999])
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        ax.hist(xd[:, j], edges, density=True, histtype="stepfilled", color="0.8",
                label=data_label, gid=f"data:{j}")  # fmt: skip
        ax.hist(xt[:, j], edges, weights=w, density=True, histtype="step", lw=1.4,
                color=_COLORS[0], label="template", gid=f"template:{j}")  # fmt: skip
        if xb is not None:
            ax.hist(xb[:, j], edges, density=True, histtype="step", lw=1.2,
                    color=_COLORS[2], label="true background", gid=f"background:{j}")  # fmt: skip
        if xs is not None and len(xs):
            ax.hist(xs[:, j], edges, density=True, histtype="step", lw=1.2, ls="--",
                    color=_COLORS[1], label="signal", gid=f"signal:{j}")  # fmt: skip
        ax.set_xlabel(names[j])
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
