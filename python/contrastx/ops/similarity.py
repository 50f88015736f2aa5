r"""Similarity and covariance operations used by the contrastive losses.

Pure-torch references, differentiable through autograd. The losses in
:mod:`contrastx.embed.losses` call only these functions for their pairwise work, so a
fused native kernel can later replace one of them without touching a loss.

* :func:`cosine_similarity_matrix`: :math:`S_{ij} = \frac{a_i \cdot b_j}
  {\max(\lVert a_i\rVert, \epsilon)\,\max(\lVert b_j\rVert, \epsilon)}`.
* :func:`covariance`: :math:`C = \frac{1}{N-1} (Z - \bar Z)^\top (Z - \bar Z)`.
* :func:`off_diagonal`: the off-diagonal entries of a square matrix, flattened.
"""

from __future__ import annotations

import torch

__all__ = ["cosine_similarity_matrix", "covariance", "off_diagonal"]


def _check_2d(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    return t


def cosine_similarity_matrix(
    a: torch.Tensor, b: torch.Tensor | None = None, *, eps: float = 1e-8
) -> torch.Tensor:
    """All pairwise cosine similarities between the rows of ``a`` and ``b``.

    Parameters
    ----------
    a : Tensor, shape (N, D)
    b : Tensor, shape (M, D), optional
        Defaults to ``a`` (the self-similarity matrix).
    eps : float
        Lower bound on a row norm (a zero row gives similarity 0, not NaN).

    Returns
    -------
    Tensor, shape (N, M)
        Values in [-1, 1].

    Examples
    --------
    >>> import torch
    >>> cosine_similarity_matrix(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).round(decimals=3)
    tensor([[1.0000, 0.7070],
            [0.7070, 1.0000]])
    """
    a = _check_2d("a", a)
    b = a if b is None else _check_2d("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same width; got {a.shape[1]} and {b.shape[1]}")
    an = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    bn = an if b is a else b / b.norm(dim=1, keepdim=True).clamp_min(eps)
    return an @ bn.T


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance matrix of the columns of ``z``.

    Parameters
    ----------
    z : Tensor, shape (N, D), N >= 2

    Returns
    -------
    Tensor, shape (D, D)
    """
    z = _check_2d("z", z)
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"covariance needs at least 2 rows; got {n}")
    zc = z - z.mean(dim=0, keepdim=True)
    return zc.T @ zc / (n - 1)


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix as a flat tensor of length D (D - 1)."""
    m = _check_2d("m", m)
    d = m.shape[0]
    if m.shape[1] != d:
        raise ValueError(f"off_diagonal needs a square matrix; got {tuple(m.shape)}")
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()
