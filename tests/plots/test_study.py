"""Dimension-study figures (Figs. II, III, IX/X) and the black-box splits figure (Fig. VI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from contrastx.plots import save_figure
from contrastx.plots.study import (
    StudyPoint,
    plot_black_box_splits,
    plot_linear_eval_vs_dimension,
    plot_median_z_vs_dimension,
    plot_power_vs_dimension,
)


def _points() -> list[StudyPoint]:
    pts = []
    for s in ("Ato4l", "LQ_btau"):
        for d in (2, 4, 8):
            pts.append(StudyPoint("supcon-mlp", d, 4.0 / d, 0.1, 0.1, s))
        pts.append(StudyPoint("57D raw", 57, 0.5, 0.1, 0.1, s))
        pts.append(StudyPoint("6D leading pT", 6, 1.0, 0.1, 0.1, s))
    return pts


def test_median_z_figure_has_panels_lines_and_sigma_levels(tmp_path: Path) -> None:
    fig = plot_median_z_vs_dimension(_points(), title="t")
    axes = fig.axes
    assert len(axes) == 2
    ys = sorted(
        round(float(line.get_ydata()[0]), 3)
        for line in axes[0].get_lines()
        if len(set(np.asarray(line.get_ydata(), float))) == 1 and len(line.get_ydata()) == 2
    )
    assert 3.0 in ys and 5.0 in ys
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["2", "4", "6", "8", "57"]
    paths = save_figure(fig, tmp_path / "z", ("png",))
    assert paths[0].stat().st_size > 1000


def test_power_and_linear_eval_figures() -> None:
    fig = plot_power_vs_dimension(_points())
    assert fig.axes[0].get_ylim()[1] == pytest.approx(1.05)
    lin = [StudyPoint("supcon-mlp", d, 0.8 + 0.01 * d, 0.01, 0.01) for d in (2, 4)]
    fig = plot_linear_eval_vs_dimension([*lin, StudyPoint("6D VAE", 6, 0.7)])
    assert len(fig.axes) == 1


def test_bad_points() -> None:
    with pytest.raises(ValueError, match="no points"):
        plot_median_z_vs_dimension([])
    with pytest.raises(ValueError, match="dimension"):
        plot_median_z_vs_dimension([StudyPoint("a", 0, 1.0)])


def test_black_box_splits_figure() -> None:
    rng = np.random.default_rng(0)
    t0 = rng.chisquare(10, 200)
    ts = rng.chisquare(10, (5, 3))
    ts[2] += 40
    fig = plot_black_box_splits(t0, ts, dof=10.0, best_split=2, title="bb")
    ax = fig.axes[0]
    assert {p.get_gid() for p in ax.patches} >= {"hist_null", "hist_splits"}
    with pytest.raises(ValueError, match="at least 2"):
        plot_black_box_splits([1.0], ts)


def _bars(ax, gid: str) -> list[float]:
    """Lengths of the vertical error bars with this gid, by D."""
    (col,) = [c for c in ax.collections if c.get_gid() == gid]
    return [float(s[1][1] - s[0][1]) for s in col.get_segments()]


def test_inner_toy_and_outer_total_error_bars() -> None:
    pts = [
        StudyPoint("supcon-mlp", 4, 1.5, 0.1, 0.1, "Ato4l", spread=0.4),
        StudyPoint("supcon-mlp", 8, 1.7, 0.1, 0.1, "Ato4l", spread=0.3),
        StudyPoint("6D leading pT", 6, 2.0, 0.1, 0.1, "Ato4l"),
    ]
    fig = plot_median_z_vs_dimension(pts)
    ax = fig.axes[0]
    assert _bars(ax, "outer:supcon-mlp") == pytest.approx(
        [2 * np.hypot(0.1, 0.4), 2 * np.hypot(0.1, 0.3)]
    )
    assert _bars(ax, "inner:supcon-mlp") == pytest.approx([0.2, 0.2])
    assert _bars(ax, "inner:6D leading pT") == pytest.approx([0.2])
    # A deterministic baseline has no spread, so no outer bar.
    assert not [c for c in ax.collections if c.get_gid() == "outer:6D leading pT"]
    # The legend is outside the panels and says what the bars are.
    assert ax.get_legend() is None and len(fig.legends) == 1
    note = fig.legends[0].get_title().get_text()
    assert "thick bars: toy error" in note
    assert "run spread (retraining, reference draw) in quadrature" in note


def test_lower_bound_is_an_arrow_without_bars() -> None:
    pts = [
        StudyPoint("supcon-mlp", 4, 2.33, 0.2, 0.2, "h0", spread=0.3, lower_bound=True),
        StudyPoint("supcon-mlp", 8, 1.9, 0.2, 0.2, "h0", spread=0.3),
    ]
    fig = plot_median_z_vs_dimension(pts)
    ax = fig.axes[0]
    arrows = [t for t in ax.texts if t.get_gid() == "lower_bound:supcon-mlp"]
    assert len(arrows) == 1 and arrows[0].xy == (4.0, 2.33)
    assert _bars(ax, "inner:supcon-mlp") == pytest.approx([0.0, 0.4])  # none on the bound
    assert _bars(ax, "outer:supcon-mlp") == pytest.approx([0.0, 2 * np.hypot(0.2, 0.3)])
    assert "arrow: lower bound" in fig.legends[0].get_title().get_text()


def test_linear_eval_legend_is_outside_the_axes() -> None:
    # Before: ax.legend(...) inside the axes, over the points.
    lin = [StudyPoint("supcon-mlp", d, 0.8, 0.01, 0.01, spread=0.02) for d in (2, 4)]
    fig = plot_linear_eval_vs_dimension(lin)
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    assert "folds" in fig.legends[0].get_title().get_text()


def test_families_at_the_same_dimension_are_drawn_apart() -> None:
    # Before: the 6-D leading pT and VAE markers were drawn on top of each other.
    pts = [StudyPoint("6D leading pT", 6, 1.0), StudyPoint("6D VAE", 6, 1.05),
           StudyPoint("57D raw", 57, 0.5)]  # fmt: skip
    ax = plot_median_z_vs_dimension(pts).axes[0]
    xs = {
        line.get_gid(): float(line.get_xdata()[0])
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith("family:")
    }
    assert xs["family:6D leading pT"] < 6 < xs["family:6D VAE"]
    assert xs["family:6D VAE"] / xs["family:6D leading pT"] < 1.2
    assert xs["family:57D raw"] == 57
    assert [t.get_text() for t in ax.get_xticklabels()] == ["6", "57"]
