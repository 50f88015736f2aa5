"""Argument checks shared by the ops and the losses built on them (clear, named errors)."""

from __future__ import annotations

import math

import torch


def check_rows(name: str, z: object, min_rows: int = 1) -> torch.Tensor:
    """A floating-point (N, D) tensor with N >= ``min_rows``."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D); got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be floating point; got {z.dtype}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows; got {z.shape[0]}")
    return z


def check_finite(name: str, z: torch.Tensor) -> None:
    """Raise if ``z`` holds a NaN or an infinity."""
    if z.numel() and not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} contains NaN or inf")


def check_positive(name: str, value: float) -> float:
    """``value`` as a float, which must be finite and > 0."""
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be finite and > 0; got {value}")
    return v


def check_labels(labels: object, n: int, device: torch.device | None = None) -> torch.Tensor:
    """An integer (n,) tensor (on ``device`` when given)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},); got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers; got {labels.dtype}")
    if device is not None and labels.device != device:
        raise ValueError(f"labels are on {labels.device} but the embeddings are on {device}")
    return labels
