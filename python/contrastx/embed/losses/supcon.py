r"""SupCon, the supervised contrastive loss (Khosla et al. 2020, :math:`\mathcal{L}^{sup}_{out}`).

For rows :math:`z_1..z_M` (all views of all events stacked) with labels :math:`y`,
:math:`s_{ik} = \cos(z_i, z_k)/\tau` and positives
:math:`P(i) = \{p \ne i : y_p = y_i\}`,

.. math::

    \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
        \log \frac{e^{s_{ip}}}{\sum_{a \ne i} e^{s_{ia}}}, \qquad
    \mathcal{L} = \frac{1}{|A|} \sum_{i \in A} \ell_i,

where :math:`A = \{i : |P(i)| > 0\}`.

**Anchors without positives** (the only event of its class in the batch, seen in
one view) have no defined :math:`\ell_i`; they are left out of the mean but still
serve as negatives for the others. If no anchor has a positive the loss is 0 (a
zero that keeps the autograd graph), never NaN.

With two augmented views of every event and all labels distinct this is
NT-Xent; "supervised SimCLR" in the primary paper is this loss with process labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...ops.contrastive import (
    resolve_contrastive_backend,
    supcon_loss_fused,
    supcon_loss_reference,
)
from ._checks import check_embeddings, check_labels, check_temperature

__all__ = ["SupConLoss", "stack_views", "supcon_loss"]


def stack_views(
    views: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack V views (each (N, D)) into (V N, D) and tile the labels to (V N,)."""
    if isinstance(views, torch.Tensor):
        views = [views]
    views = list(views)
    if not views:
        raise ValueError("need at least one view")
    n = views[0].shape[0]
    for k, v in enumerate(views):
        check_embeddings(f"view {k}", v)
        if v.shape != views[0].shape:
            raise ValueError(
                f"all views must have shape {tuple(views[0].shape)}; view {k} has {tuple(v.shape)}"
            )
    labels = check_labels(labels, n)
    return torch.cat(views), labels.repeat(len(views))


def supcon_loss(
    views: torch.Tensor | Sequence[torch.Tensor],
    labels: torch.Tensor,
    temperature: float = 0.1,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Supervised contrastive loss (see the module docstring).

    Parameters
    ----------
    views : Tensor (N, D) or sequence of Tensors (N, D)
        One or more views of the same N events.
    labels : Tensor of int, shape (N,)
        Class of every event.
    temperature : float
        :math:`\\tau > 0` (0.1 in both papers' supervised runs).
    backend : {"auto", "native", "torch"}
        ``"native"``: the streaming kernels of
        :func:`contrastx.ops.contrastive.supcon_loss_fused` (O(M D) memory, no M x M
        matrix; differentiable once); ``"torch"``: the dense formula; ``"auto"``: native
        when built for the device and dtype (float32 / float64), else torch.

    Returns
    -------
    Tensor
        Scalar mean over the anchors that have at least one positive.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> round(float(supcon_loss(z, torch.tensor([0, 0, 1, 1]), temperature=0.1)), 4)
    0.0001
    """
    z, y = stack_views(views, labels)
    t = check_temperature(temperature)
    if resolve_contrastive_backend(backend, z) == "native" and y.device == z.device:
        return supcon_loss_fused(z, y, t, backend="native", check_finite=False)
    return supcon_loss_reference(z, y, t)


class SupConLoss(nn.Module):
    """Module form of :func:`supcon_loss`."""

    def __init__(self, temperature: float = 0.1, *, backend: str = "auto") -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.backend = backend

    def forward(
        self, views: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor
    ) -> torch.Tensor:
        return supcon_loss(views, labels, self.temperature, backend=self.backend)
