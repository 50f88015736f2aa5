"""NPLM toy figure: files are written, the chi^2 overlay is on the histogram's scale."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

pytest.importorskip("matplotlib")

from contrastx.plots import chi2_density_curve, plot_toy_distributions, save_toy_figure


def _artist(ax, gid):
    found = [a for a in (*ax.lines, *ax.patches, *ax.texts) if a.get_gid() == gid]
    assert found, f"no artist with gid {gid!r}"
    return found


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def test_files_written(tmp_path):
    rng = np.random.default_rng(0)
    t0, t1 = rng.chisquare(12, 300), rng.chisquare(12, 300) + 20
    paths = save_toy_figure(tmp_path / "sub" / "toys", t0, t1, t_obs=30.0, title="x")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 10_000
    assert paths[1].read_bytes()[:5] == b"%PDF-" and paths[1].stat().st_size > 5_000


def test_chi2_overlay_matches_histogram_scale():
    """Unit-area histograms and the chi^2 density share one scale.

    With 40000 null toys drawn from chi^2_9 the histogram heights equal the plotted
    density at the bin centres within the binomial errors; an overlay in counts or
    per-bin probabilities would miss by a factor n or the bin width.
    """
    rng = np.random.default_rng(1)
    dof = 9.0
    t0 = rng.chisquare(dof, 40_000)
    fig = plot_toy_distributions(t0, dof=dof, n_bins=40)
    ax = fig.axes[0]
    (curve,) = _artist(ax, "chi2")
    x, y = curve.get_xdata(), curve.get_ydata()
    lo, hi = ax.get_xlim()
    mass = stats.chi2.cdf(hi, dof) - stats.chi2.cdf(max(lo, 0), dof)
    assert integrate.trapezoid(y, x) == pytest.approx(mass, rel=2e-3)
    (poly,) = _artist(ax, "hist_null")
    assert _polygon_area(poly.get_xy()) == pytest.approx(1.0, rel=1e-6)
    edges = np.linspace(lo, hi, 41)
    counts, _ = np.histogram(t0, bins=edges)
    width = edges[1] - edges[0]
    centres = 0.5 * (edges[1:] + edges[:-1])
    heights = counts / (t0.size * width)
    expected = np.interp(centres, x, y)
    err = np.sqrt(np.maximum(counts, 1)) / (t0.size * width)
    # Bin-averaged vs centre density differ by O(width^2 p''); allow that plus 5 sigma.
    assert np.all(np.abs(heights - expected) < 5 * err + 0.02 * expected.max())


def test_lines_and_power_box():
    rng = np.random.default_rng(2)
    t0, t1 = rng.chisquare(20, 400), rng.chisquare(20, 200) + 25
    fig = plot_toy_distributions(t0, t1, t_obs=41.0)
    ax = fig.axes[0]
    (med,) = _artist(ax, "median")
    assert med.get_xdata()[0] == pytest.approx(np.median(t1))
    (obs,) = _artist(ax, "observed")
    assert obs.get_xdata()[0] == pytest.approx(41.0)
    (box,) = _artist(ax, "power")
    assert box.get_text().count("σ") >= 3
    # Default dof is the null mean.
    (curve,) = _artist(ax, "chi2")
    assert f"{t0.mean():.2f}" in curve.get_label()


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        plot_toy_distributions([1.0, np.nan])
    with pytest.raises(ValueError, match="at least 2"):
        plot_toy_distributions([1.0])
    with pytest.raises(ValueError, match="dof"):
        chi2_density_curve(-1.0, 0.0, 1.0)
