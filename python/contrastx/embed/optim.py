r"""LARS and the warm-up + cosine learning-rate schedule of the primary paper.

:class:`LARS` follows the layer-wise adaptive rate scaling of You et al. (2017) in
the form used by the SimCLR/Barlow Twins PyTorch code the paper builds on: for a
parameter :math:`w` with gradient :math:`g`,

.. math::

    u = g + \lambda w, \qquad
    q = \begin{cases} \eta\, \lVert w \rVert / \lVert u \rVert & \lVert w\rVert > 0,\
        \lVert u\rVert > 0 \\ 1 & \text{otherwise} \end{cases}, \qquad
    m \leftarrow \beta m + q u, \qquad w \leftarrow w - \mathrm{lr}\, m,

with trust coefficient :math:`\eta` (0.001) and momentum :math:`\beta` (0.9). Biases
and normalisation parameters (every 1-D parameter) get neither weight decay nor the
trust ratio (``exclude_bias_and_norm=True``).

:func:`warmup_cosine` is the schedule factor: linear warm-up over ``warmup_steps``,
then a cosine decay from 1 to ``final_factor`` (1/1000) at ``total_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

__all__ = ["LARS", "warmup_cosine", "warmup_cosine_scheduler"]


class LARS(torch.optim.Optimizer):
    """LARS optimiser (see the module docstring).

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups.
    lr : float
        Base learning rate (Table I: 0.8 self-supervised, 1.2 supervised).
    weight_decay : float
        :math:`\\lambda` (Table I: 1e-6).
    momentum : float
    trust_coefficient : float
        :math:`\\eta`.
    exclude_bias_and_norm : bool
        Skip weight decay and the trust ratio for 1-D parameters.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
        exclude_bias_and_norm: bool = True,
    ) -> None:
        if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1 or trust_coefficient <= 0:
            raise ValueError(
                f"invalid LARS settings: lr={lr}, weight_decay={weight_decay}, "
                f"momentum={momentum}, trust_coefficient={trust_coefficient}"
            )
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "trust_coefficient": trust_coefficient,
            "exclude_bias_and_norm": exclude_bias_and_norm,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                excluded = group["exclude_bias_and_norm"] and p.ndim == 1
                if not excluded:
                    update = update.add(p, alpha=group["weight_decay"])
                    w_norm = torch.linalg.vector_norm(p)
                    u_norm = torch.linalg.vector_norm(update)
                    one = torch.ones_like(w_norm)
                    q = torch.where(
                        (w_norm > 0) & (u_norm > 0),
                        group["trust_coefficient"] * w_norm / u_norm,
                        one,
                    )
                    update = update.mul(q)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(update)
                p.add_(buf, alpha=-group["lr"])
        return loss


def warmup_cosine(
    step: int, warmup_steps: int, total_steps: int, final_factor: float = 1e-3
) -> float:
    """Learning-rate factor at ``step`` (0-based): linear warm-up, then cosine to ``final_factor``.

    ``(step + 1) / warmup_steps`` during warm-up; afterwards
    ``final + (1 - final) (1 + cos(pi t)) / 2`` with ``t`` going from 0 to 1 over the
    remaining steps (clamped at 1).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = max(total_steps - warmup_steps, 1)
    t = min((step - warmup_steps) / remaining, 1.0)
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


def warmup_cosine_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    final_factor: float = 1e-3,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step :class:`~torch.optim.lr_scheduler.LambdaLR` with :func:`warmup_cosine`."""
    if warmup_steps < 0 or total_steps <= 0:
        raise ValueError(
            f"need warmup_steps >= 0 and total_steps > 0; got {warmup_steps}, {total_steps}"
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup_steps, total_steps, final_factor)
    )
