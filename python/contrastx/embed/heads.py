"""Heads on top of an encoder: projection heads (dropped at inference) and output blocks.

* :class:`ProjectionHead`: two BatchNorm-Linear-LeakyReLU blocks (primary paper, Fig. I).
* :class:`DINOHead`: the DINO projection head (Caron et al. 2021; primary paper, Table V):
  an MLP to a bottleneck, L2 normalisation, then a weight-normalised linear layer
  without bias whose norm is optionally frozen at 1 ("normalize last layer").
* :class:`GaussianBlock`: the second paper's VAE-like output block: a mean and a
  log-variance, a reparameterised sample while training, the mean at inference;
  :func:`kl_to_standard_normal` is its KL term toward N(0, 1).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .encoders import bn_linear_block

__all__ = ["DINOHead", "GaussianBlock", "ProjectionHead", "kl_to_standard_normal"]


class ProjectionHead(nn.Module):
    """Two BatchNorm-Linear-LeakyReLU blocks: ``in_dim -> hidden_dim -> out_dim``.

    Parameters
    ----------
    in_dim : int
        Embedding dimension D.
    hidden_dim, out_dim : int
        Widths of the two blocks (the paper does not list them; defaults 64, 64).
    """

    def __init__(
        self, in_dim: int, hidden_dim: int = 64, out_dim: int = 64, negative_slope: float = 0.01
    ) -> None:
        super().__init__()
        if min(in_dim, hidden_dim, out_dim) <= 0:
            raise ValueError("ProjectionHead dimensions must be positive")
        self.out_dim = out_dim
        self.blocks = nn.Sequential(
            bn_linear_block(in_dim, hidden_dim, negative_slope),
            bn_linear_block(hidden_dim, out_dim, negative_slope),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class DINOHead(nn.Module):
    """DINO projection head (Table V defaults: 3 layers, hidden 256, bottleneck 64, out 64).

    ``Linear-GELU`` layers (``n_layers - 1`` of them to ``hidden_dim``, then one to
    ``bottleneck_dim``), L2 normalisation, then ``weight_norm(Linear(bottleneck, out,
    bias=False))`` with its magnitude initialised to 1.

    Parameters
    ----------
    in_dim : int
        Embedding dimension D.
    out_dim, hidden_dim, bottleneck_dim, n_layers : int
        Table V: 64, 256, 64, 3.
    use_bn : bool
        BatchNorm after each hidden linear layer (Table V: False).
    norm_last_layer : bool
        Freeze the last layer's weight magnitude at 1 (Table V: False, trainable).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 64,
        hidden_dim: int = 256,
        bottleneck_dim: int = 64,
        n_layers: int = 3,
        use_bn: bool = False,
        norm_last_layer: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1; got {n_layers}")
        if min(in_dim, out_dim, hidden_dim, bottleneck_dim) <= 0:
            raise ValueError("DINOHead dimensions must be positive")
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(n_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim))
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            dim = hidden_dim
        layers.append(nn.Linear(dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        g = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1.0)
        g.requires_grad_(not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(h)


class GaussianBlock(nn.Module):
    """VAE-like output block: mean, log-variance and the reparameterisation trick.

    ``mu = W_mu h + b_mu``, ``logvar = W_v h + b_v``; in training mode the output is
    ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, 1)`` (global torch RNG), in
    eval mode ``z = mu``.

    Parameters
    ----------
    in_dim : int
        Width of the encoder output.
    latent_dim : int
        Dimension of the latent Gaussian.
    """

    def __init__(self, in_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.mean = nn.Linear(in_dim, latent_dim)
        self.log_var = nn.Linear(in_dim, latent_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(z, mu, logvar)``."""
        mu = self.mean(h)
        logvar = self.log_var(h)
        if self.training:
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            z = mu
        return z, mu, logvar


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""KL divergence of N(mu, exp(logvar)) from N(0, 1), summed over dimensions, mean over rows.

    .. math:: \mathrm{KL} = \frac{1}{N}\sum_i \frac12 \sum_d
              \left(\mu_{id}^2 + e^{v_{id}} - v_{id} - 1\right)
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(
            f"mu and logvar must be 2-D of the same shape; got {tuple(mu.shape)}, "
            f"{tuple(logvar.shape)}"
        )
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1.0).sum(dim=1).mean()
