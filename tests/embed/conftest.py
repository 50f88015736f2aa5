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
