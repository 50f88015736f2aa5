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
