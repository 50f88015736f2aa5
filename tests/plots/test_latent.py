"""2-D latent maps: projection, by-process map and the Fig. V score map."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from contrastx.plots.latent import (
    plot_latent_by_process,
    plot_score_map,
    project_2d,
    resolve_method,
)


def test_projection_identity_and_pca() -> None:
    rng = np.random.default_rng(0)
    x2 = rng.normal(size=(50, 2))
    xy, used = project_2d(x2)
    assert used == "identity" and np.allclose(xy, x2)
    x = rng.normal(size=(200, 4)) * np.array([5.0, 1.0, 0.2, 0.1])
    xy, used = project_2d(x, "pca")
    assert used == "pca" and xy.shape == (200, 2)
    xy2, _ = project_2d(x, "pca")
    assert np.array_equal(xy, xy2)
    assert resolve_method("auto", 4) in ("umap", "tsne", "pca")
    with pytest.raises(ValueError, match="method"):
        project_2d(x, "lda")


def test_map_by_process() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 3))
    labels = np.repeat([0, 1, 4], 40)
    fig = plot_latent_by_process(x, labels, ("W", "QCD", "Z", "ttbar", "Ato4l"), method="pca")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["W (40)", "QCD (40)", "Ato4l (40)"]
    with pytest.raises(ValueError, match="differ in length"):
        plot_latent_by_process(x, labels[:10], ("W",))


def test_score_map_shows_only_scores_above_half_highest_on_top() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4))
    scores = rng.uniform(size=300)
    fig = plot_score_map(x, scores, method="pca")
    assert fig.contrastx_shown == int((scores > 0.5).sum())
    coll = next(c for c in fig.axes[0].collections if c.get_gid() == "scores")
    shown = np.asarray(coll.get_array())
    assert shown.min() > 0.5 and np.all(np.diff(shown) >= 0)


def _lab(color: str, alpha: float) -> np.ndarray:
    """CIELAB of ``color`` drawn with ``alpha`` on white."""
    c = np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    c = alpha * c + (1 - alpha)
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_process_colours_are_distinguishable_and_legend_outside() -> None:
    from itertools import combinations

    from contrastx.plots import latent

    labs = [_lab(c, latent._POINT_ALPHA) for c in latent._PROCESS_COLORS]
    # Before: blue W and pink h+- (as drawn, alpha 0.6) were 24 CIELAB units apart.
    assert min(np.linalg.norm(a - b) for a, b in combinations(labs, 2)) > 30
    rng = np.random.default_rng(3)
    fig = plot_latent_by_process(rng.normal(size=(80, 2)), np.repeat(np.arange(8), 10),
                                 ("W", "QCD", "Z", "ttbar", "Ato4l", "LQ_btau", "h0_tautau",
                                  "hch_taunu"), method="pca")  # fmt: skip
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the axes, over no point
