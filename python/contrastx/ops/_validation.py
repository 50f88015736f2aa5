"""Argument checks shared by the ops and the losses built on them (clear, named errors).

Every check here, and every op that validates its own arguments, uses one vocabulary:

* ``TypeError``: the argument has the wrong type: not a tensor, not a real number, or a
  tensor of a dtype the op does not take (including dtypes that differ between arguments
  that must share one).
* ``ValueError``: the type is right but the value is not: a shape, a size, a device that
  differs from the other arguments', NaN or inf, a number out of range, an unknown option.
"""

from __future__ import annotations

import math
import numbers

import torch


def check_tensor(name: str, t: object) -> torch.Tensor:
    """``t`` itself if it is a :class:`torch.Tensor`, else ``TypeError``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_rows(name: str, z: object, min_rows: int = 1) -> torch.Tensor:
    """A floating-point (N, D) tensor with N >= ``min_rows``."""
    check_tensor(name, z)
    if z.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D); got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be floating point; got {z.dtype}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows; got {z.shape[0]}")
    return z


def check_like(name: str, t: torch.Tensor, like_name: str, like: torch.Tensor) -> torch.Tensor:
    """``t`` if its dtype (else ``TypeError``) and device (else ``ValueError``) are ``like``'s."""
    if t.dtype != like.dtype:
        raise TypeError(f"{name} dtype {t.dtype} does not match {like_name} dtype {like.dtype}")
    if t.device != like.device:
        raise ValueError(f"{name} is on {t.device} but {like_name} is on {like.device}")
    return t


def check_finite(name: str, z: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``z`` holds a NaN or an infinity."""
    if z.numel() and not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} contains NaN or inf")


def check_positive(name: str, value: object) -> float:
    """``value`` as a float, which must be a real number (``TypeError``), finite and > 0.

    A real number is a Python or NumPy int or float, or a one-element tensor; ``bool`` is not.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number, got a {value.dtype} tensor")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be finite and > 0; got {value!r}")
    return v


def check_labels(labels: object, n: int, device: torch.device | None = None) -> torch.Tensor:
    """An integer (n,) tensor (on ``device`` when given)."""
    check_tensor("labels", labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},); got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers; got {labels.dtype}")
    if device is not None and labels.device != device:
        raise ValueError(f"labels are on {labels.device} but the embeddings are on {device}")
    return labels
