r"""Figures of the signal-aware study (the second paper): SIC and required injection
per encoder configuration, and the confusion matrices of the information check.

* :func:`plot_sic_vs_injection` -- SIC against the injected :math:`S/\sqrt{B}`, one panel
  per classifier working point :math:`\epsilon_B`, one line and band per configuration
  (ID, IP, EP, background-only); points where the SIC is only an upper bound are drawn as
  downward arrows (the second paper's Figs. 4-6);
* :func:`plot_injection_summary` -- the injected :math:`S/\sqrt{B}` needed to reach a
  significance after the selection, per signal and configuration, with upward arrows for
  "not reached in the scanned range" (Fig. 7);
* :func:`plot_confusion_matrices` -- row-normalised confusion matrices with the fractions
  written in the cells and the accuracy in the title (Appendix A, Fig. 8).

The inputs are the corresponding parts of the study's ``results.json`` (``"sic"``,
``"injection_for_significance"``, ``"information"``), so a figure can be redrawn from the
file alone. Every function returns a :class:`matplotlib.figure.Figure` on an Agg canvas
(no pyplot state); save it with :func:`contrastx.plots.save_figure`.

Artists carry ``gid`` labels (``"sic:<kind>:<wp>"``, ``"bound:<kind>:<wp>"``,
``"value:<kind>"``, ``"not-reached:<kind>"``, ``"matrix:<title>"``, ...) so tests and
callers can find them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .cathode import _figure

__all__ = [
    "CONFIGURATION_COLORS",
    "plot_confusion_matrices",
    "plot_injection_summary",
    "plot_sic_vs_injection",
]

CONFIGURATION_COLORS = {
    "ID": "#1b9e77",
    "IP": "#d95f02",
    "EP": "#7570b3",
    "background-only": "#555555",
}
"""Fixed colour of each encoder configuration kind; figures draw the kinds in this order."""

_CURVE_KEYS = ("injection", "mean", "instance_std", "ensemble_std", "resolved", "bound")
_ENTRY_KEYS = ("value", "reached", "scanned_max", "low", "high")
_ARROW_POINTS = 20.0
"""Length of the bound / not-reached arrows, in points."""


# ----------------------------------------------------------------------------- validation


def _mapping(obj: Any, where: str, what: str) -> Mapping:
    if not isinstance(obj, Mapping):
        raise TypeError(f"{where} must be a mapping {what}; got {type(obj).__name__}")
    if not obj:
        raise ValueError(f"{where} is empty: expected a mapping {what}")
    return obj


def _kinds_in_order(kinds: Any, where: str) -> list[str]:
    unknown = [k for k in kinds if k not in CONFIGURATION_COLORS]
    if unknown:
        raise ValueError(
            f"{where}: unknown configuration kind(s) {unknown}; "
            f"choose from {tuple(CONFIGURATION_COLORS)}"
        )
    return [k for k in CONFIGURATION_COLORS if k in kinds]


def _is_bool(v: Any) -> bool:
    return isinstance(v, (bool, np.bool_))


def _number(v: Any, where: str) -> float:
    """A finite float from a JSON number (bool is not a number here)."""
    if _is_bool(v) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where} must be a number; got {v!r}")
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"{where} must be finite; got {v!r}")
    return x


def _numbers(values: Any, where: str, required: np.ndarray, *, nonneg: bool) -> np.ndarray:
    """Floats from a list with None (or NaN) allowed where ``required`` is False."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if required[i]:
                raise ValueError(f"{where}[{i}] is missing ({v!r}) at a resolved point")
            continue
        out[i] = _number(v, f"{where}[{i}]")
        if nonneg and out[i] < 0:
            raise ValueError(f"{where}[{i}] must be >= 0; got {v!r}")
    return out


def _check_keys(obj: Any, keys: Sequence[str], where: str) -> None:
    """``obj`` must be a mapping holding every one of ``keys``."""
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"{where} must be a mapping with keys {list(keys)}; got {type(obj).__name__}"
        )
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{where} lacks the key(s) {missing}")


def _check_curve(curve: Any, where: str) -> dict[str, np.ndarray]:
    _check_keys(curve, _CURVE_KEYS, where)
    for k in _CURVE_KEYS:
        if isinstance(curve[k], (str, bytes, Mapping)) or not hasattr(curve[k], "__len__"):
            raise TypeError(f"{where}[{k!r}] must be a list; got {type(curve[k]).__name__}")
    n = len(curve["injection"])
    if n == 0:
        raise ValueError(f"{where} has no points (empty 'injection')")
    for k in _CURVE_KEYS[1:]:
        if len(curve[k]) != n:
            raise ValueError(f"{where}[{k!r}] has {len(curve[k])} values but 'injection' has {n}")
    for i, r in enumerate(curve["resolved"]):
        if not _is_bool(r):
            raise TypeError(f"{where}['resolved'][{i}] must be true or false; got {r!r}")
    resolved = np.array([bool(r) for r in curve["resolved"]])
    everywhere = np.ones(n, dtype=bool)
    injection = _numbers(curve["injection"], f"{where}['injection']", everywhere, nonneg=True)
    if n > 1 and not (np.diff(injection) > 0).all():
        raise ValueError(f"{where}['injection'] must increase strictly; got {injection.tolist()}")
    out = {"injection": injection, "resolved": resolved}
    out["mean"] = _numbers(curve["mean"], f"{where}['mean']", resolved, nonneg=False)
    # A spread of one instance or one ensemble does not exist (None/NaN): no band for it.
    for k in ("instance_std", "ensemble_std"):
        out[k] = np.nan_to_num(
            _numbers(curve[k], f"{where}[{k!r}]", np.zeros(n, bool), nonneg=True), nan=0.0
        )
    out["bound"] = _numbers(curve["bound"], f"{where}['bound']", np.zeros(n, bool), nonneg=True)
    return out


def _working_point(key: Any, where: str) -> float:
    try:
        wp = float(key) if isinstance(key, str) else math.nan
    except ValueError:
        wp = math.nan
    if not 0.0 < wp <= 1.0:
        raise ValueError(
            f"{where}: working point {key!r} is not a background efficiency in (0, 1] "
            "written as a string (e.g. '0.1')"
        )
    return wp


def _check_entry(entry: Any, where: str) -> dict[str, Any]:
    _check_keys(entry, _ENTRY_KEYS, where)
    if not _is_bool(entry["reached"]):
        raise TypeError(f"{where}['reached'] must be true or false; got {entry['reached']!r}")
    reached = bool(entry["reached"])
    scanned_max = _number(entry["scanned_max"], f"{where}['scanned_max']")
    if scanned_max <= 0:
        raise ValueError(f"{where}['scanned_max'] must be > 0; got {scanned_max!r}")
    out: dict[str, Any] = {"reached": reached, "scanned_max": scanned_max}
    if not reached:
        if entry["value"] is not None:
            raise ValueError(
                f"{where}: 'reached' is false but 'value' is {entry['value']!r} (expected null)"
            )
        return out
    value = _number(entry["value"], f"{where}['value']")
    if value < 0:
        raise ValueError(f"{where}['value'] must be >= 0; got {value!r}")
    out["value"] = value
    for side in ("low", "high"):
        if entry[side] is None:
            out[side] = None
            continue
        out[side] = _number(entry[side], f"{where}[{side!r}]")
    if out["low"] is not None and out["low"] > value:
        raise ValueError(f"{where}: 'low' {out['low']!r} is above 'value' {value!r}")
    if out["high"] is not None and out["high"] < value:
        raise ValueError(f"{where}: 'high' {out['high']!r} is below 'value' {value!r}")
    return out


# ----------------------------------------------------------------------------- drawing


def _arrows(ax: Any, x: np.ndarray, y: np.ndarray, color: str, gid: str, *, up: bool) -> None:
    """A short bar at each (x, y) and an arrow from it, down (``up`` False) or up."""
    from matplotlib.transforms import offset_copy

    ax.plot(x, y, ls="none", marker="_", ms=10, mew=1.6, color=color, gid=gid)
    sign = 1.0 if up else -1.0
    head = offset_copy(ax.transData, fig=ax.figure, x=0.0, y=sign * _ARROW_POINTS, units="points")
    for xi, yi in zip(x, y):
        ax.annotate(
            "", xy=(xi, yi), xycoords=head, xytext=(xi, yi), textcoords="data",
            arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.4, "shrinkA": 0,
                        "shrinkB": 0},
            annotation_clip=False, gid=f"{gid}-arrow",
        )  # fmt: skip


def plot_sic_vs_injection(
    curves: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    signal: str,
    title: str | None = None,
) -> Any:
    r"""SIC against the injected signal strength, one panel per working point (Figs. 4-6).

    Parameters
    ----------
    curves : mapping
        ``{configuration_kind: {str(working_point): curve}}`` for one signal (the
        ``results.json`` entry ``"sic"[signal]``). Kinds are ``"ID"``, ``"IP"``, ``"EP"``
        and ``"background-only"`` (any subset; drawn in that order with the fixed colours
        of :data:`CONFIGURATION_COLORS`); every kind must have the same working points,
        written as strings of background efficiencies in (0, 1]. A curve is a mapping of
        equal-length lists:

        * ``injection`` -- injected :math:`S/\sqrt{B}`, strictly increasing;
        * ``mean`` -- SIC, mean over pseudo-data instances of the mean over ensembles;
        * ``instance_std`` -- standard deviation over the instances;
        * ``ensemble_std`` -- mean over the instances of the standard deviation over
          the ensembles;
        * ``resolved`` -- false where the SIC is only an upper bound (too few background
          events at the working point); ``mean`` and the spreads may then be null;
        * ``bound`` -- the upper bound where ``resolved`` is false (null elsewhere; null
          at an unresolved point when not even the loosest cut keeps enough background
          events: such a point is not drawn, and the panel says how many there are).
    signal : str
        The signal's name (in the default title).
    title : str, optional
        Figure title; default ``"<signal>: SIC against injected S/sqrt(B)"``.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per working point (largest :math:`\epsilon_B` first). Per configuration:
        the mean SIC (line with markers, resolved points only), a band of
        :math:`\pm\sqrt{\sigma_\mathrm{inst}^2 + \sigma_\mathrm{ens}^2}` (total), capped bars
        of :math:`\pm\sigma_\mathrm{ens}` (ensembles only), and downward arrows from the
        bound at unresolved points. A dashed line marks SIC = 1. The legend (below the
        panels) says what the band and bars are.

    Raises
    ------
    ValueError
        Empty ``curves``, unknown kind, working points that differ between kinds or are
        not in (0, 1], a curve with missing keys, lists of different lengths, a
        non-increasing injection, or a missing value at a resolved point.
    TypeError
        Non-mapping ``curves`` or curve, non-list fields, non-boolean ``resolved``.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not isinstance(signal, str) or not signal:
        raise ValueError(f"signal must be a non-empty string; got {signal!r}")
    what = "{configuration_kind: {working_point: curve}}"
    _mapping(curves, "curves", what)
    kinds = _kinds_in_order(list(curves), "curves")
    wps: list[str] | None = None
    data: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for kind in kinds:
        per_wp = _mapping(curves[kind], f"curves[{kind!r}]", "{working_point: curve}")
        keys = list(per_wp)
        for key in keys:
            _working_point(key, f"curves[{kind!r}]")
        if wps is None:
            wps = keys
            first = kind
        elif set(keys) != set(wps):
            raise ValueError(
                f"curves[{kind!r}] has working points {sorted(keys)} but curves[{first!r}] "
                f"has {sorted(wps)}"
            )
        data[kind] = {key: _check_curve(per_wp[key], f"curves[{kind!r}][{key!r}]") for key in keys}
    assert wps is not None
    wps = sorted(wps, key=lambda k: -float(k))

    fig, axes = _figure(len(wps), panel_size=(4.8, 3.8))
    any_bound = False
    for ax, wp in zip(axes, wps):
        unbounded = 0
        for kind in kinds:
            c = data[kind][wp]
            color = CONFIGURATION_COLORS[kind]
            x, res = c["injection"], c["resolved"]
            mean = np.where(res, c["mean"], np.nan)
            total = np.hypot(c["instance_std"], c["ensemble_std"])
            ax.fill_between(
                x, mean - total, mean + total, where=res, color=color, alpha=0.2, lw=0,
                gid=f"band:{kind}:{wp}",
            )  # fmt: skip
            ax.plot(x, mean, "-o", color=color, lw=1.6, ms=3.5, gid=f"sic:{kind}:{wp}")
            if res.any():
                bars = ax.errorbar(
                    x[res], mean[res], yerr=c["ensemble_std"][res], fmt="none", ecolor=color,
                    elinewidth=1.0, capsize=3.0, alpha=0.6,
                )  # fmt: skip
                for col in bars.lines[2]:
                    col.set_gid(f"ensemble:{kind}:{wp}")
            bounded = ~res & np.isfinite(c["bound"])
            unbounded += int((~res & ~bounded).sum())
            if bounded.any():
                any_bound = True
                _arrows(ax, x[bounded], c["bound"][bounded], color, f"bound:{kind}:{wp}", up=False)
        if unbounded:
            ax.text(
                0.98, 0.02, f"{unbounded} point(s) without a bound not drawn",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.3",
                gid="unbounded",
            )  # fmt: skip
        ax.axhline(1.0, color="0.4", ls="--", lw=1.0, gid="sic=1")
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel(r"injected $S/\sqrt{B}$")
        ax.set_ylabel(r"SIC $= \epsilon_S/\sqrt{\epsilon_B}$")
        ax.set_title(rf"$\epsilon_B$ = {wp}", fontsize=10)
        ax.grid(alpha=0.3)

    handles: list[Any] = [
        (Line2D([], [], color=CONFIGURATION_COLORS[k], marker="o", ms=3.5, lw=1.6),
         Patch(color=CONFIGURATION_COLORS[k], alpha=0.2, lw=0))
        for k in kinds
    ]  # fmt: skip
    labels = list(kinds)
    handles.append(Line2D([], [], color="0.4", ls="--", lw=1.0))
    labels.append("SIC = 1 (no gain)")
    if any_bound:
        handles.append(Line2D([], [], color="0.3", ls="none", marker=r"$\downarrow$", ms=10))
        labels.append("upper bound (too few background events)")
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8,
        title=(
            "line: mean over pseudo-data instances (of the mean over ensembles); "
            "band: ± (instance std ⊕ ensemble std); capped bars: ± ensemble std only"
        ),
        title_fontsize=8,
    )  # fmt: skip
    fig.suptitle(title or f"{signal}: SIC against injected S/√B", fontsize=10)
    return fig


def plot_injection_summary(
    table: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    significance: float,
    title: str | None = None,
) -> Any:
    r"""Injected :math:`S/\sqrt{B}` needed to reach ``significance`` after the selection (Fig. 7).

    Parameters
    ----------
    table : mapping
        ``{signal: {configuration_kind: entry}}`` (the ``results.json`` entry
        ``"injection_for_significance"``). An entry is a mapping with

        * ``value`` -- the injection needed (null when not reached);
        * ``reached`` -- false when the significance is not reached at any scanned
          injection (drawn as an upward arrow from ``scanned_max``);
        * ``scanned_max`` -- the largest injection scanned (> 0);
        * ``low``, ``high`` -- an interval around ``value`` (null for none; drawn as an
          error bar, a missing side is not drawn; not drawn for entries not reached).

        Signals are drawn in the order given; kinds as in :func:`plot_sic_vs_injection`
        (a signal may lack some kinds).
    significance : float
        The target significance in :math:`\sigma` (> 0), for the axis label.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One panel: signals on the x axis, one marker per configuration (set apart
        horizontally), lower is better.

    Raises
    ------
    ValueError
        Empty ``table`` or signal entry, unknown kind, a missing key, ``value`` given
        when not reached (or missing when reached), ``low`` > ``value`` or
        ``high`` < ``value``, non-positive ``scanned_max`` or ``significance``.
    TypeError
        Non-mapping ``table`` or entry, non-boolean ``reached``, non-numeric values.
    """
    from matplotlib.lines import Line2D

    sig = _number(significance, "significance")
    if sig <= 0:
        raise ValueError(f"significance must be > 0; got {significance!r}")
    _mapping(table, "table", "{signal: {configuration_kind: entry}}")
    signals = list(table)
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    seen: set[str] = set()
    for s in signals:
        row = _mapping(table[s], f"table[{s!r}]", "{configuration_kind: entry}")
        _kinds_in_order(list(row), f"table[{s!r}]")
        seen.update(row)
        entries[s] = {k: _check_entry(e, f"table[{s!r}][{k!r}]") for k, e in row.items()}
    kinds = _kinds_in_order(seen, "table")

    fig, (ax,) = _figure(1, panel_size=(max(5.0, 1.1 * len(signals) + 2.0), 4.2))
    width = 0.6
    step = width / len(kinds)
    any_arrow = any_interval = False
    top = 0.0
    for i, kind in enumerate(kinds):
        color = CONFIGURATION_COLORS[kind]
        off = (i - (len(kinds) - 1) / 2) * step
        xs, ys, lo, hi, ax_x, ax_y = [], [], [], [], [], []
        for j, s in enumerate(signals):
            e = entries[s].get(kind)
            if e is None:
                continue
            if e["reached"]:
                v = e["value"]
                xs.append(j + off)
                ys.append(v)
                lo.append(0.0 if e["low"] is None else v - e["low"])
                hi.append(0.0 if e["high"] is None else e["high"] - v)
                any_interval |= e["low"] is not None or e["high"] is not None
                top = max(top, v + hi[-1])
            else:
                ax_x.append(j + off)
                ax_y.append(e["scanned_max"])
                top = max(top, e["scanned_max"])
        if xs:
            bars = ax.errorbar(
                xs, ys, yerr=[lo, hi], fmt="o", color=color, ms=6, capsize=3,
                elinewidth=1.2, ls="none",
            )  # fmt: skip
            bars.lines[0].set_gid(f"value:{kind}")
            for col in bars.lines[2]:
                col.set_gid(f"interval:{kind}")
        if ax_x:
            any_arrow = True
            _arrows(ax, np.array(ax_x), np.array(ax_y), color, f"not-reached:{kind}", up=True)
    ax.set_xticks(range(len(signals)))
    ax.set_xticklabels(signals, rotation=30 if len(signals) > 4 else 0, ha="right"
                       if len(signals) > 4 else "center")  # fmt: skip
    ax.set_xlim(-0.6, len(signals) - 0.4)
    ax.set_ylim(0.0, 1.25 * top if top > 0 else 1.0)
    ax.set_ylabel(rf"injected $S/\sqrt{{B}}$ for {sig:g}$\sigma$ (lower is better)")
    ax.set_xlabel("signal")
    ax.grid(alpha=0.3, axis="y")
    handles: list[Any] = [
        Line2D([], [], color=CONFIGURATION_COLORS[k], marker="o", ms=6, ls="none") for k in kinds
    ]
    labels = list(kinds)
    if any_arrow:
        handles.append(Line2D([], [], color="0.3", ls="none", marker=r"$\uparrow$", ms=10))
        labels.append("not reached in the scanned range (from the largest injection)")
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(3, len(handles)), fontsize=8,
        title="bars: interval low-high" if any_interval else None, title_fontsize=8,
    )  # fmt: skip
    ax.set_title(title or f"injection needed for {sig:g}σ after the selection", fontsize=10)
    return fig


def plot_confusion_matrices(
    matrices: Mapping[str, Mapping[str, Any]], *, title: str | None = None
) -> Any:
    """Row-normalised confusion matrices, one panel each (Appendix A, Fig. 8).

    Parameters
    ----------
    matrices : mapping
        ``{panel title: {"matrix", "class_names", "accuracy"}}`` (the ``results.json``
        entry ``"information"``): ``matrix`` is square, rows the true class and columns
        the predicted class, non-negative (counts or fractions; each row is divided by
        its sum, so a row must not sum to zero); ``class_names`` one name per row;
        ``accuracy`` in [0, 1].
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per entry: the row-normalised matrix as an image (0 to 1) with the
        fractions written in the cells to two decimals, true class on y, predicted on x,
        the accuracy in the panel title.

    Raises
    ------
    ValueError
        Empty ``matrices``, a missing key, a non-square or non-finite or negative matrix,
        a row that sums to zero, a class-name count that differs from the matrix size,
        duplicate class names, or an accuracy outside [0, 1].
    TypeError
        Non-mapping ``matrices`` or entry, non-string class names.
    """
    _mapping(matrices, "matrices", '{title: {"matrix", "class_names", "accuracy"}}')
    panels = []
    for name, entry in matrices.items():
        where = f"matrices[{name!r}]"
        _check_keys(entry, ("matrix", "class_names", "accuracy"), where)
        try:
            m = np.asarray(entry["matrix"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}['matrix'] is not a numeric matrix: {exc}") from None
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
            raise ValueError(f"{where}['matrix'] must be a non-empty square matrix; got {m.shape}")
        if not np.isfinite(m).all() or (m < 0).any():
            raise ValueError(f"{where}['matrix'] must be finite and non-negative")
        names = entry["class_names"]
        if isinstance(names, str) or not all(isinstance(c, str) for c in names):
            raise TypeError(f"{where}['class_names'] must be a list of strings; got {names!r}")
        names = list(names)
        if len(names) != m.shape[0]:
            raise ValueError(
                f"{where}: {len(names)} class_names for a {m.shape[0]}x{m.shape[1]} matrix"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"{where}['class_names'] has duplicates: {names}")
        rows = m.sum(axis=1)
        if (rows <= 0).any():
            empty = [names[i] for i in np.flatnonzero(rows <= 0)]
            raise ValueError(f"{where}['matrix']: the row(s) of {empty} sum to zero")
        acc = _number(entry["accuracy"], f"{where}['accuracy']")
        if not 0.0 <= acc <= 1.0:
            raise ValueError(f"{where}['accuracy'] must be in [0, 1]; got {acc!r}")
        panels.append((str(name), m / rows[:, None], names, acc))

    n_max = max(p[1].shape[0] for p in panels)
    side = max(3.6, 0.55 * n_max + 1.8)
    fig, axes = _figure(len(panels), panel_size=(side + 0.3, side))
    fontsize = 8 if n_max <= 6 else 6
    for ax, (name, m, names, acc) in zip(axes, panels):
        n = m.shape[0]
        ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0, gid=f"matrix:{name}")
        for i in range(n):
            for j in range(n):
                ax.text(
                    j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if m[i, j] > 0.5 else "black", gid=f"cell:{name}",
                )  # fmt: skip
        ax.set_xticks(range(n))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=fontsize + 1)
        ax.set_yticks(range(n))
        ax.set_yticklabels(names, fontsize=fontsize + 1)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{name}\naccuracy = {acc:.3f}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
