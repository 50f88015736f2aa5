r"""NPLM toy figure: null and signal :math:`t` distributions (the primary paper's Fig. IV).

One panel shows

* the null toys' :math:`t` (purple) and the signal toys' :math:`t` (green) as histograms
  normalised to unit area on common bins (a *density*: bin height
  :math:`n_k / (n\,\Delta_k)`);
* the :math:`\chi^2_\nu` fitted to the null toys (blue line), drawn as the density
  :math:`p_{\chi^2_\nu}(t)` itself, so it is on the same scale as the histograms;
* the median signal :math:`t` (dashed, with its :math:`Z`), an optional observed
  :math:`t` (solid black, with its :math:`Z`), and the :math:`\chi^2` thresholds
  :math:`t_Z = F^{-1}_{\chi^2_\nu}(\Phi(Z))` at :math:`Z = 1, 2, 3` (dotted);
* a legend box with the power at 1, 2, 3 :math:`\sigma` from the :math:`\chi^2` and from
  the empirical null, with Clopper-Pearson 68 % intervals
  (:func:`contrastx.nplm.statistics.power`).

The figure is a :class:`matplotlib.figure.Figure` on an Agg canvas (no ``pyplot``
state, works headless).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["chi2_density_curve", "plot_toy_distributions", "save_figure", "save_toy_figure"]

NULL_COLOR = "#7b3294"
SIGNAL_COLOR = "#1b9e77"
CHI2_COLOR = "#2166ac"


def _as_t(x: Any, name: str, *, allow_none: bool = False) -> np.ndarray | None:
    if x is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required")
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        if allow_none:
            return None
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def common_bins(samples: Sequence[np.ndarray], n_bins: int | None = None) -> np.ndarray:
    r"""Common bin edges over all samples.

    Equal-width bins over :math:`[\min, \max]` of the pooled samples (padded by 2 %);
    ``n_bins`` defaults to the Freedman-Diaconis count of the largest sample, clipped to
    [10, 80].
    """
    allv = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples])
    lo, hi = float(allv.min()), float(allv.max())
    span = hi - lo if hi > lo else max(1.0, abs(hi))
    lo, hi = lo - 0.02 * span, hi + 0.02 * span
    if n_bins is None:
        per_sample = []
        for s in samples:
            q75, q25 = np.percentile(s, [75, 25])
            width = 2.0 * (q75 - q25) / max(len(s), 1) ** (1 / 3)
            per_sample.append((hi - lo) / width if width > 0 else 30)
        n_bins = int(np.clip(max(per_sample), 10, 80))
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    return np.linspace(lo, hi, n_bins + 1)


def chi2_density_curve(
    dof: float, lo: float, hi: float, n_points: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    r"""The :math:`\chi^2_\nu` density on a grid over :math:`[\max(lo, 0), hi]`.

    .. math:: p(t) = \frac{t^{\nu/2 - 1} e^{-t/2}}{2^{\nu/2}\Gamma(\nu/2)}

    On the scale of a unit-area histogram: :math:`\int_{lo}^{hi} p\,dt =
    F_{\chi^2_\nu}(hi) - F_{\chi^2_\nu}(lo)`, the fraction of a :math:`\chi^2_\nu` sample
    that would fall on the plotted range.

    Returns
    -------
    t, p : numpy.ndarray, shape (n_points,)
    """
    if not (np.isfinite(dof) and dof > 0):
        raise ValueError(f"dof must be finite and > 0; got {dof}")
    if not hi > lo:
        raise ValueError(f"need hi > lo; got [{lo}, {hi}]")
    t = np.linspace(max(lo, 0.0), hi, int(n_points))
    return t, stats.chi2.pdf(t, dof)


def plot_toy_distributions(
    t_null: Any,
    t_signal: Any = None,
    *,
    dof: float | None = None,
    t_obs: float | None = None,
    n_bins: int | None = None,
    z_levels: Sequence[float] = (1.0, 2.0, 3.0),
    title: str | None = None,
    signal_label: str = "signal toys",
    ax: Any = None,
) -> Any:
    r"""Null and signal :math:`t` histograms with the fitted :math:`\chi^2` (Fig. IV).

    Parameters
    ----------
    t_null : array_like
        Null (background-only) toys' :math:`t` (at least 2).
    t_signal : array_like, optional
        Signal toys' :math:`t`.
    dof : float, optional
        :math:`\nu` of the :math:`\chi^2` overlay (default: the null mean, the paper's
        choice; see :func:`contrastx.nplm.statistics.fit_chi2_dof`).
    t_obs : float, optional
        An observed :math:`t` to mark, with its :math:`\chi^2` and empirical :math:`Z`.
    n_bins : int, optional
        Number of common bins (see :func:`common_bins`).
    z_levels : sequence of float
        Significances of the threshold lines and the power table.
    title : str, optional
    signal_label : str
        Legend label of the signal histogram.
    ax : matplotlib Axes, optional
        Draw into this axes (default: a new 7 x 5 inch figure on an Agg canvas).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from contrastx.nplm import statistics as st

    t0 = _as_t(t_null, "t_null")
    assert t0 is not None
    if t0.size < 2:
        raise ValueError("need at least 2 null toys")
    t1 = _as_t(t_signal, "t_signal", allow_none=True)
    nu = float(st.fit_chi2_dof(t0).dof) if dof is None else float(dof)
    if not (np.isfinite(nu) and nu > 0):
        raise ValueError(f"dof must be finite and > 0; got {dof}")
    if ax is None:
        fig = Figure(figsize=(7.0, 5.0), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    samples = [t0] + ([t1] if t1 is not None else [])
    if t_obs is not None:
        samples.append(np.array([float(t_obs)]))
    edges = common_bins(samples, n_bins)
    hists = [(t0, NULL_COLOR, "null toys", "hist_null")]
    if t1 is not None:
        hists.append((t1, SIGNAL_COLOR, signal_label, "hist_signal"))
    for t, color, label, gid in hists:
        ax.hist(
            t,
            bins=edges,
            density=True,
            histtype="stepfilled",
            alpha=0.45,
            color=color,
            edgecolor=color,
            label=f"{label} (n = {t.size})",
            gid=gid,
        )
    x, y = chi2_density_curve(nu, edges[0], edges[-1])
    ax.plot(
        x, y, color=CHI2_COLOR, lw=2.0, label=rf"$\chi^2_{{\nu}}$, $\nu$ = {nu:.2f}", gid="chi2"
    )
    # Head room above the tallest bin for the legend and the power table.
    ax.set_ylim(0.0, 1.55 * ax.get_ylim()[1])
    for z in z_levels:
        thr = float(stats.chi2.isf(stats.norm.sf(z), nu))
        if edges[0] <= thr <= edges[-1]:
            ax.axvline(thr, color="0.45", ls=":", lw=1.0, ymax=0.62)
            ax.text(
                thr,
                0.63,
                f"{z:g}σ",
                color="0.35",
                fontsize=8,
                ha="center",
                va="bottom",
                transform=ax.get_xaxis_transform(),
            )
    marks = []  # (t, colour, line style, label, gid) of the vertical lines
    if t1 is not None:
        med = float(np.median(t1))
        zmed = float(st.chi2_z(med, nu))
        label = f"median signal t = {med:.1f} (Z = {zmed:.2f})"
        marks.append((med, SIGNAL_COLOR, "--", label, "median"))
    if t_obs is not None:
        obs = float(t_obs)
        zo = float(st.chi2_z(obs, nu))
        ze = float(st.z_from_p(st.empirical_p_value(obs, t0)))
        label = f"observed t = {obs:.1f} (Z = {zo:.2f} χ², {ze:.2f} emp.)"
        marks.append((obs, "k", "-", label, "observed"))
    for t, color, ls, label, gid in marks:
        ax.axvline(t, color=color, ls=ls, lw=1.8, ymax=0.64, label=label, gid=gid)
    if t1 is not None:
        lines = [f"{'power':<6}{'χ² null':<20}empirical null"]
        pc = st.power(t1, t0, z_levels, method="chi2", dof=nu)
        pe = st.power(t1, t0, z_levels, method="empirical")
        for a, b in zip(pc, pe):
            emp = (
                "n/a (too few toys)"
                if not np.isfinite(b.power)
                else f"{b.power:.2f} [{b.lo:.2f}, {b.hi:.2f}]"
            )
            chi = f"{a.power:.2f} [{a.lo:.2f}, {a.hi:.2f}]"
            lines.append(f"{f'{a.z:g}σ':<6}{chi:<20}{emp}")
        lines.append("68 % Clopper-Pearson intervals")
        ax.text(
            0.02,
            0.97,
            "\n".join(lines),
            transform=ax.transAxes,
            ha="left",
            va="top",
            multialignment="left",
            fontsize=8,
            family="monospace",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9},
            gid="power",
        )
    ax.set_xlabel("NPLM test statistic t")
    ax.set_ylabel("density (unit area)")
    ax.set_xlim(edges[0], edges[-1])
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, frameon=True, framealpha=0.9)
    return fig


def save_figure(fig: Any, stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for each format (150 dpi for raster); return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, format=fmt, dpi=150)
        out.append(path)
    return out


def save_toy_figure(
    stem: str | Path,
    t_null: Any,
    t_signal: Any = None,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    **kwargs: Any,
) -> list[Path]:
    """:func:`plot_toy_distributions` saved as ``stem.png`` and ``stem.pdf``."""
    return save_figure(plot_toy_distributions(t_null, t_signal, **kwargs), stem, formats)
