r"""VICReg + cross-entropy (primary paper, Eq. 11).

.. math::

    \mathcal{L} = \alpha\, \mathcal{L}_{\mathrm{VICReg}}(Z, Z')
                + (1 - \alpha)\, \mathcal{L}_{\mathrm{CE}}(\mathrm{logits}, y),

with :math:`\mathcal{L}_{\mathrm{VICReg}}` from :mod:`.vicreg` and the mean
cross-entropy of a classifier on the embedding against the process labels. The
paper chose :math:`\alpha` by grid search and does not quote it; the default here
is 0.5. In the supervised setting the second view of an event is another event of
the same class (see :func:`contrastx.embed.training.same_label_partners`).
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_labels
from .vicreg import vicreg_loss

__all__ = ["VICRegCELoss", "vicreg_ce_loss"]


def vicreg_ce_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.5,
    **vicreg_kwargs: float,
) -> torch.Tensor:
    """``alpha * vicreg_loss(z1, z2) + (1 - alpha) * cross_entropy(logits, labels)``.

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, D)
        The two views.
    logits : Tensor, shape (M, C)
        Class scores (e.g. of both views, M = 2N).
    labels : Tensor of int, shape (M,)
    alpha : float in [0, 1]
        Mixing weight of the VICReg term.
    **vicreg_kwargs
        Passed to :func:`~contrastx.embed.losses.vicreg.vicreg_loss`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (M, C); got {tuple(logits.shape)}")
    labels = check_labels(labels, logits.shape[0])
    ce = nn.functional.cross_entropy(logits, labels.long())
    return alpha * vicreg_loss(z1, z2, **vicreg_kwargs) + (1.0 - alpha) * ce


class VICRegCELoss(nn.Module):
    """Module form of :func:`vicreg_ce_loss`."""

    def __init__(self, alpha: float = 0.5, **vicreg_kwargs: float) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
        self.alpha = alpha
        self.vicreg_kwargs = dict(vicreg_kwargs)

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        return vicreg_ce_loss(z1, z2, logits, labels, self.alpha, **self.vicreg_kwargs)
