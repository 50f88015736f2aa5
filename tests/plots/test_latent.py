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
