r"""Gaussian kernel pieces of NPLM: the width heuristic, centre selection, ``K @ v``.

The NPLM model is :math:`f(x) = \sum_{j=1}^M \alpha_j k(x, c_j)` with

.. math:: k(x, y) = \exp\!\left(-\frac{\lVert x - y\rVert^2}{2\sigma^2}\right).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastx.ops._validation import check_positive
from contrastx.ops.gaussian import gaussian_kernel_matvec

__all__ = [
    "as_points",
    "check_sigma",
    "kernel_matvec",
    "resolve_device",
    "select_centers",
    "sigma_heuristic",
]


def check_sigma(sigma: Any) -> float:
    """``sigma`` as a float: ``TypeError`` unless a real number, ``ValueError`` unless > 0."""
    return check_positive("sigma", sigma)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Validate a device spec (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Raises
    ------
    ValueError
        For an unknown device string, or a CUDA device that this machine does not have.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        idx = 0 if dev.index is None else dev.index
        if idx >= n:
            raise ValueError(
                f"CUDA device {idx} requested but this machine has {n} visible CUDA device(s)"
            )
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r} (use 'cpu' or 'cuda[:N]')")
    return dev


def as_points(
    x: Any,
    name: str,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    d: int | None = None,
    allow_empty: bool = False,
) -> Tensor:
    """Validate a 2-D array of points and return it as a tensor of ``dtype`` on ``device``.

    Raises
    ------
    ValueError
        If not 2-D, empty (unless ``allow_empty``), of the wrong width ``d``, or not
        finite; the message names ``name``.
    """
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (points, features); got shape {tuple(t.shape)}")
    if t.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has no features")
    if d is not None and t.shape[1] != d:
        raise ValueError(f"{name} has {t.shape[1]} features; expected {d}")
    t = t.to(device=resolve_device(device), dtype=dtype).contiguous()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def sigma_heuristic(
    ref: Any,
    *,
    n_points: int = 2000,
    percentile: float = 90.0,
    decimals: int | None = 1,
) -> float:
    r"""Kernel width from the pairwise distances of the reference sample.

    Reproduces the primary paper's rule
    ``np.around(np.percentile(pdist(ref[:2000]), 90), 1)``:

    .. math:: \sigma = \operatorname{round}\big(
              Q_{p}\{\lVert r_i - r_j\rVert : i < j \le n\}, \text{decimals}\big)

    Parameters
    ----------
    ref : array_like, shape (N_R, d)
        Reference sample (standardised as the fit will see it).
    n_points : int
        Use the first ``n_points`` rows (all if fewer). They must be a random sample of
        the reference: rows stored by process (a generator's output) give the width of
        the first process alone. :class:`~contrastx.nplm.ToyEngine` passes its reference
        in draw order.
    percentile : float
        Percentile :math:`p` of the pairwise Euclidean distances, in [0, 100].
    decimals : int or None
        Round to this many decimals (``np.around``); ``None`` keeps the raw value.

    Returns
    -------
    float
        :math:`\sigma > 0`.

    Raises
    ------
    ValueError
        Fewer than 2 points, non-finite input, a percentile outside [0, 100], or a
        zero width (e.g. identical points, or rounding down to 0).
    """
    from scipy.spatial.distance import pdist

    if isinstance(ref, Tensor):
        ref = ref.detach().cpu().numpy()
    r = np.asarray(ref, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"ref must be 2-D (points, features); got shape {r.shape}")
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2; got {n_points}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100]; got {percentile}")
    r = r[:n_points]
    if r.shape[0] < 2:
        raise ValueError(f"need at least 2 reference points; got {r.shape[0]}")
    if not np.isfinite(r).all():
        raise ValueError("ref contains NaN or inf")
    sigma = float(np.percentile(pdist(r), percentile))
    if decimals is not None:
        sigma = float(np.around(sigma, decimals))
    if not sigma > 0:
        raise ValueError(
            f"the heuristic width is {sigma} (all points identical, or rounded to 0 with "
            f"decimals={decimals})"
        )
    return sigma


def select_centers(
    n_total: int,
    m: int,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Indices of ``m`` centres drawn uniformly without replacement from ``n_total`` rows.

    Parameters
    ----------
    n_total : int
        Number of training points (rows of ``concat(data, ref)``).
    m : int
        Number of centres, ``1 <= m <= n_total``.
    rng : numpy Generator, int seed or None

    Returns
    -------
    numpy.ndarray of int64, shape (m,)
    """
    if not 1 <= m <= n_total:
        raise ValueError(f"M must be in [1, {n_total}] (the number of training points); got {m}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return gen.choice(n_total, size=m, replace=False).astype(np.int64)


def kernel_matvec(x: Tensor, centers: Tensor, v: Tensor, sigma: float) -> Tensor:
    r"""``K(X, C) @ V`` with :math:`K_{ij} = \exp(-|x_i - c_j|^2 / (2\sigma^2))`.

    :func:`contrastx.ops.gaussian_kernel_matvec` with its defaults: the fused native
    kernels where they are built for the tensors' device, else a chunked torch loop;
    ``v`` of shape (M,) or (M, B) gives (N,) or (N, B).
    """
    return gaussian_kernel_matvec(x, centers, v, sigma)
