r"""NT-Xent, the SimCLR loss (Chen et al. 2020; primary paper, Eq. 2).

For two views :math:`z^{(1)}, z^{(2)}` of N events, stack them into
:math:`2N` rows :math:`z_1..z_{2N}` (row :math:`i` and row :math:`i \pm N` are the
two views of one event, the *positive pair*) and let
:math:`s_{ik} = \cos(z_i, z_k) / \tau`. Then

.. math::

    \mathcal{L} = \frac{1}{2N} \sum_{i=1}^{2N}
        -\log \frac{e^{s_{i\,p(i)}}}{\sum_{k \ne i} e^{s_{ik}}},

with :math:`p(i)` the other view of event :math:`i`. The self-similarity
:math:`k = i` is excluded from the denominator; every other row of the batch is a
negative.
"""

from __future__ import annotations

import torch
from torch import nn

from ...ops.contrastive import nt_xent_loss_fused, resolve_contrastive_backend
from ...ops.similarity import cosine_similarity_matrix
from ._checks import check_embeddings, check_temperature

__all__ = ["NTXentLoss", "nt_xent_loss"]


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, *, backend: str = "auto"
) -> torch.Tensor:
    """NT-Xent loss of two views (see the module docstring).

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, D)
        The two views' projections; row ``i`` of both is the same event. N >= 1.
    temperature : float
        :math:`\\tau > 0`.
    backend : {"auto", "native", "torch"}
        ``"native"``: the streaming kernels of
        :func:`contrastx.ops.contrastive.nt_xent_loss_fused` (O(N D) memory, no N x N
        matrix; differentiable once); ``"torch"``: the dense formula below; ``"auto"``:
        native when built for the device and dtype (float32 / float64), else torch.

    Returns
    -------
    Tensor
        Scalar mean loss over the 2N anchors.

    Examples
    --------
    >>> import torch
    >>> z = torch.eye(3)
    >>> round(float(nt_xent_loss(z, z, temperature=0.1)), 4)
    0.0002
    """
    z1 = check_embeddings("z1", z1)
    z2 = check_embeddings("z2", z2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape; got {tuple(z1.shape)}, {tuple(z2.shape)}"
        )
    t = check_temperature(temperature)
    if z1.dtype == z2.dtype and resolve_contrastive_backend(backend, z1) == "native":
        return nt_xent_loss_fused(z1, z2, t, backend="native", check_finite=False)
    n = z1.shape[0]
    s = cosine_similarity_matrix(torch.cat([z1, z2])) / t
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=s.device)
    log_denominator = s.masked_fill(self_mask, float("-inf")).logsumexp(dim=1)
    idx = torch.arange(2 * n, device=s.device)
    positive = s[idx, (idx + n) % (2 * n)]
    return (log_denominator - positive).mean()


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent_loss`.

    Parameters
    ----------
    backend : {"auto", "native", "torch"}
        See :func:`nt_xent_loss`.
    temperature : float
        :math:`\\tau`; Table II of the primary paper gives the self-supervised values
        per embedding dimension (see :func:`contrastx.embed.training.default_temperature`).
    """

    def __init__(self, temperature: float = 0.5, *, backend: str = "auto") -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.backend = backend

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent_loss(z1, z2, self.temperature, backend=self.backend)
