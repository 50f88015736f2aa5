"""Small samples for the embedding tests (fast generator, a few hundred events)."""

from __future__ import annotations

import pytest
import torch
from contrastx.events.generators import generate_sample

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_sample():
    """400 background events in four classes (100 each), seed 0."""
    return generate_sample({"W": 100, "QCD": 100, "Z": 100, "ttbar": 100}, seed=0)


@pytest.fixture
def tiny_config():
    """``tiny_config(**overrides)``: a TrainConfig of a few seconds (D = 4, two epochs of
    64-event batches, one warm-up epoch, no augmentation, no progress bar)."""
    from contrastx.embed.training import TrainConfig

    def make(**overrides) -> TrainConfig:
        settings = {
            "latent_dim": 4,
            "epochs": 2,
            "batch_size": 64,
            "lr": 0.5,
            "warmup_epochs": 1,
            "progress": False,
            "augmentation": None,
        }
        return TrainConfig(**{**settings, **overrides})

    return make


@pytest.fixture(scope="session")
def layout_events(random_layout_events):
    """``layout_events(layout, n, seed=0, n_processes=3)``: random valid events in any layout."""
    return random_layout_events


@pytest.fixture(scope="session")
def diphoton_sample(layout_events):
    """600 random but valid events in the diphoton layout, three classes, seed 0."""
    from contrastx.events import DIPHOTON

    return layout_events(DIPHOTON, 600, seed=0, n_processes=3)
