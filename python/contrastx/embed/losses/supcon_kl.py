r"""SupCon + KL toward N(0, 1) (Li, Nachman, Noll: signal-aware contrastive latent spaces).

.. math::

    \mathcal{L} = \mathcal{L}_{\mathrm{SupCon}}(h, y; \tau)
        + \beta\, \frac{1}{N} \sum_i \mathrm{KL}\!\left(
          \mathcal{N}(\mu_i, \mathrm{diag}\, e^{v_i}) \,\Vert\, \mathcal{N}(0, 1)\right),

where :math:`h` is the projection-head output of the reparameterised latent sample
:math:`z_i = \mu_i + e^{v_i/2} \epsilon`, :math:`\mathcal{L}_{\mathrm{SupCon}}` is
:func:`~contrastx.embed.losses.supcon.supcon_loss` (one view per event, no
augmentation, as in the paper) and the KL is
:func:`~contrastx.embed.heads.kl_to_standard_normal`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..heads import kl_to_standard_normal
from ._checks import check_temperature
from .supcon import supcon_loss

__all__ = ["SupConKLLoss", "supcon_kl_loss"]


def supcon_kl_loss(
    views: torch.Tensor | Sequence[torch.Tensor],
    labels: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    temperature: float = 0.1,
    kl_weight: float = 0.1,
) -> torch.Tensor:
    """``supcon_loss(views, labels, temperature) + kl_weight * KL(mu, logvar)``.

    Parameters
    ----------
    views : Tensor (N, D') or sequence of them
        Projection-head outputs.
    labels : Tensor of int, shape (N,)
    mu, logvar : Tensor, shape (M, D)
        Gaussian output block parameters (M = N per view, stacked).
    temperature : float
    kl_weight : float >= 0
        :math:`\\beta` (the paper tunes it per configuration; default 0.1).
    """
    if kl_weight < 0:
        raise ValueError(f"kl_weight must be >= 0; got {kl_weight}")
    return supcon_loss(views, labels, temperature) + kl_weight * kl_to_standard_normal(mu, logvar)


class SupConKLLoss(nn.Module):
    """Module form of :func:`supcon_kl_loss`."""

    def __init__(self, temperature: float = 0.1, kl_weight: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0; got {kl_weight}")
        self.kl_weight = kl_weight

    def forward(
        self,
        views: torch.Tensor | Sequence[torch.Tensor],
        labels: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
    ) -> torch.Tensor:
        return supcon_kl_loss(views, labels, mu, logvar, self.temperature, self.kl_weight)
