"""Tiny study configs for the pipeline tests (seconds on a loaded 2-core CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

TINY_TOML = """
[run]
out_dir = "{out}"
seed = 3
trainings = 2

[events]
n_background = 2600
n_signal = 150
signals = ["Ato4l"]

[splits]
nplm_fraction = 0.6
linear_eval_events = 300

[nplm]
n_ref = 1000
n_bkg = 150
M = 30
n_toys = 8
n_toys_signal = 6
fractions = [0.1]

[results]
table_fraction = 0.1
latent_events = 60
latent_method = "pca"

[[embeddings]]
kind = "contrastive"
latent_dim = 2
epochs = 1
n_train = 600
train = {{batch_size = 200, warmup_epochs = 0}}

[[embeddings]]
kind = "raw"

[[embeddings]]
kind = "leading_pt"
"""


@pytest.fixture
def tiny_toml(tmp_path: Path) -> Path:
    """A tiny study config writing to ``tmp_path / "out"``."""
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_TOML.format(out=(tmp_path / "out").as_posix()))
    return p


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared, loaded CPU oversubscribed threads cost ~3x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
