"""Input validation shared by the losses (built on :mod:`contrastx.ops._validation`)."""

from __future__ import annotations

import torch

from ...ops._validation import check_finite, check_labels, check_positive, check_rows

__all__ = ["check_embeddings", "check_labels", "check_temperature"]


def check_embeddings(name: str, z: object, *, min_rows: int = 1) -> torch.Tensor:
    """A floating (N, D) tensor with N >= ``min_rows`` and no NaN/inf."""
    z = check_rows(name, z, min_rows)
    check_finite(name, z)
    return z


def check_temperature(temperature: float) -> float:
    """The temperature as a float, finite and > 0."""
    return check_positive("temperature", temperature)
