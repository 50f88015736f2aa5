"""Input validation shared by the losses."""

from __future__ import annotations

import torch


def check_embeddings(name: str, z: object, *, min_rows: int = 1) -> torch.Tensor:
    """A floating (N, D) tensor with N >= ``min_rows`` and no NaN/inf."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D); got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be floating point; got {z.dtype}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows; got {z.shape[0]}")
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or inf")
    return z


def check_labels(labels: object, n: int) -> torch.Tensor:
    """An integer (n,) tensor."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},); got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers; got {labels.dtype}")
    return labels


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not t > 0 or t != t or t == float("inf"):
        raise ValueError(f"temperature must be finite and > 0; got {temperature}")
    return t
