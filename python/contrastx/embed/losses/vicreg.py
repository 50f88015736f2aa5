r"""VICReg: variance-invariance-covariance regularisation.

Bardes et al. 2022; the primary paper's Eq. 3.

For two views :math:`Z, Z'` (N x D),

.. math::

    s(Z, Z') &= \frac{1}{N} \sum_i \lVert z_i - z'_i \rVert^2 / D
        \quad (\text{mean squared error over all entries}), \\
    v(Z) &= \frac{1}{D} \sum_d
        \max\!\left(0, \gamma - \sqrt{\mathrm{Var}(Z_{:d}) + \epsilon}\right), \\
    c(Z) &= \frac{1}{D} \sum_{d \ne d'} C(Z)_{dd'}^2, \quad
        C(Z) = \frac{1}{N-1} (Z - \bar Z)^\top (Z - \bar Z), \\
    \mathcal{L} &= \lambda\, s(Z, Z') + \mu\,[v(Z) + v(Z')] + \nu\,[c(Z) + c(Z')],

with the unbiased variance, defaults :math:`\lambda = \mu = 25`, :math:`\nu = 1`,
:math:`\gamma = 1`, :math:`\epsilon = 10^{-4}`. The variance and covariance terms are
*summed* over the two views as written in the primary paper's Eq. 3 (the original
VICReg code averages the variance term over the views).
"""

from __future__ import annotations

import torch
from torch import nn

from ...ops.contrastive import (
    resolve_contrastive_backend,
    vicreg_loss_fused,
    vicreg_loss_reference,
)
from ...ops.contrastive import vicreg_covariance as covariance_loss
from ...ops.contrastive import vicreg_variance as variance_loss
from ._checks import check_embeddings

__all__ = ["VICRegLoss", "covariance_loss", "invariance_loss", "variance_loss", "vicreg_loss"]


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the two views, :math:`s(Z, Z')`."""
    return nn.functional.mse_loss(z1, z2)


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """VICReg loss of two views (see the module docstring).

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, D), N >= 2
        Row ``i`` of both is a positive pair.
    invariance_weight, variance_weight, covariance_weight : float
        :math:`\\lambda, \\mu, \\nu` (25, 25, 1).
    gamma, eps : float
        Target standard deviation and numerical floor (1, 1e-4).
    backend : {"auto", "native", "torch"}
        ``"native"``: the fused CPU kernel of
        :func:`contrastx.ops.contrastive.vicreg_loss_fused` (float64 inside, the D x D
        covariances never leave it; differentiable once); ``"torch"``: the formula above;
        ``"auto"``: native for float32 / float64 CPU tensors when built, else torch.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(64, 4, generator=g)
    >>> bool(vicreg_loss(z, z) < vicreg_loss(z, torch.randn(64, 4, generator=g)))
    True
    """
    z1 = check_embeddings("z1", z1, min_rows=2)
    z2 = check_embeddings("z2", z2, min_rows=2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape; got {tuple(z1.shape)}, {tuple(z2.shape)}"
        )
    if (
        z1.dtype == z2.dtype
        and z1.device == z2.device
        and z1.shape[1] > 0
        and eps > 0
        and resolve_contrastive_backend(backend, z1) == "native"
    ):
        return vicreg_loss_fused(
            z1, z2, invariance_weight, variance_weight, covariance_weight, gamma, eps,
            backend="native", check_finite=False,
        )  # fmt: skip
    weights = (invariance_weight, variance_weight, covariance_weight)
    return vicreg_loss_reference(z1, z2, *weights, gamma, eps)


class VICRegLoss(nn.Module):
    """Module form of :func:`vicreg_loss`; the constructor stores the weights."""

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.backend = backend
        self.invariance_weight = invariance_weight
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.gamma = gamma
        self.eps = eps

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return vicreg_loss(
            z1,
            z2,
            self.invariance_weight,
            self.variance_weight,
            self.covariance_weight,
            self.gamma,
            self.eps,
            backend=self.backend,
        )
