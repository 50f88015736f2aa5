"""Baseline embeddings of the primary paper, with the same ``embed`` interface as the encoders.

* :class:`RawBaseline`: the 57-D source, the raw (N, 19, 3) particles flattened.
* :class:`LeadingPtBaseline`: 6-D leading-object pT: MET, the two leading electrons,
  the two leading muons and the leading jet (0 where absent).
* :class:`VAE`: the 6-D VAE latent (Govorkova et al., the paper's Ref. [39]): 57 inputs
  -> 32 -> 16 (Linear, BatchNorm, LeakyReLU) -> 3 means + 3 log-variances; the decoder
  mirrors it (3 -> 16 -> 32 -> 57, last layer linear). Loss
  ``(1 - beta) MSE + beta KL`` with beta = 0.8; the embedding is ``(mu, logvar)``.
  :func:`fit_vae` trains one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..events.container import Events
from ..events.layout import (
    ELECTRON_SLOTS,
    JET_SLOTS,
    MET_SLOT,
    MUON_SLOTS,
    N_FEATURES,
    N_OBJECTS,
    PT,
)
from ..events.preprocessing import Preprocessor
from .encoders import InputScaler, check_input
from .heads import kl_to_standard_normal
from .model import resolve_device

__all__ = ["LEADING_PT_SLOTS", "VAE", "LeadingPtBaseline", "RawBaseline", "fit_vae"]

LEADING_PT_SLOTS = (
    MET_SLOT,
    ELECTRON_SLOTS.start,
    ELECTRON_SLOTS.start + 1,
    MUON_SLOTS.start,
    MUON_SLOTS.start + 1,
    JET_SLOTS.start,
)
"""Slots of the 6-D leading-object pT baseline (groups are pT-ordered in the layout)."""


class RawBaseline(nn.Module):
    """The 57-D source representation: raw particles flattened to (N, 57)."""

    latent_dim = N_OBJECTS * N_FEATURES

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return check_input(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


class LeadingPtBaseline(nn.Module):
    """6-D leading-object pT: (MET, e1, e2, mu1, mu2, jet1) in GeV, 0 where absent."""

    latent_dim = len(LEADING_PT_SLOTS)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer(
            "slots", torch.tensor(LEADING_PT_SLOTS, dtype=torch.long), persistent=False
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return check_input(x)[:, self.slots, PT]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def _dense_block(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.LeakyReLU())


class VAE(nn.Module):
    """Variational autoencoder baseline; ``embed`` returns ``cat(mu, logvar)``.

    Parameters
    ----------
    n_latent : int
        Latent Gaussian dimension (3; the embedding has ``2 n_latent`` = 6 columns).
    hidden_dims : sequence of int
        Encoder widths (32, 16); the decoder uses them reversed.
    kl_weight : float
        beta in ``(1 - beta) MSE + beta KL`` (0.8).
    preprocessing : dict, optional
        :meth:`Preprocessor.state_dict` for the built-in :class:`InputScaler`; the
        reconstruction target is the preprocessed, flattened input.
    """

    def __init__(
        self,
        n_latent: int = 3,
        hidden_dims: Sequence[int] = (32, 16),
        kl_weight: float = 0.8,
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if n_latent < 1 or not hidden_dims or min(hidden_dims) < 1:
            raise ValueError("n_latent and hidden_dims must be positive")
        if not 0.0 <= kl_weight <= 1.0:
            raise ValueError(f"kl_weight must be in [0, 1]; got {kl_weight}")
        self.n_latent = int(n_latent)
        self.kl_weight = float(kl_weight)
        self.scaler = InputScaler(preprocessing)
        dims = [N_OBJECTS * N_FEATURES, *[int(h) for h in hidden_dims]]
        self.encoder = nn.Sequential(*(_dense_block(a, b) for a, b in itertools.pairwise(dims)))
        self.mean = nn.Linear(dims[-1], n_latent)
        self.log_var = nn.Linear(dims[-1], n_latent)
        rdims = [n_latent, *dims[:0:-1]]
        self.decoder = nn.Sequential(
            *(_dense_block(a, b) for a, b in itertools.pairwise(rdims)),
            nn.Linear(rdims[-1], dims[0]),
        )

    @property
    def latent_dim(self) -> int:
        return 2 * self.n_latent

    def config(self) -> dict[str, Any]:
        """Model config for :func:`~contrastx.embed.model_file.save_model`."""
        hidden = [m[0].out_features for m in self.encoder]
        return {
            "kind": "vae",
            "n_latent": self.n_latent,
            "hidden_dims": hidden,
            "kl_weight": self.kl_weight,
        }

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(scaled flattened input, mu, logvar)``."""
        inp = self.scaler(check_input(x)).flatten(1)
        h = self.encoder(inp)
        return inp, self.mean(h), self.log_var(h)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        _, mu, logvar = self.encode(x)
        return torch.cat([mu, logvar], dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        inp, mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return {"input": inp, "reconstruction": self.decoder(z), "mu": mu, "logvar": logvar}

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """``(1 - beta) * MSE(reconstruction, input) + beta * KL``."""
        out = self(x)
        mse = nn.functional.mse_loss(out["reconstruction"], out["input"])
        kl = kl_to_standard_normal(out["mu"], out["logvar"])
        return (1.0 - self.kl_weight) * mse + self.kl_weight * kl


def fit_vae(
    events: Events | np.ndarray,
    *,
    n_latent: int = 3,
    kl_weight: float = 0.8,
    preprocessing: str = "pt",
    epochs: int = 20,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[VAE, list[float]]:
    """Train the VAE baseline with Adam on all given events (pass the training folds).

    Returns
    -------
    (VAE, list of float)
        The model in eval mode and the mean training loss per epoch.
    """
    x = torch.from_numpy(events.particles if isinstance(events, Events) else np.asarray(events))
    x = check_input(x.float())
    if epochs <= 0 or batch_size < 2:
        raise ValueError("epochs must be > 0 and batch_size >= 2")
    dev = resolve_device(device)
    pre = Preprocessor(preprocessing).fit(x.numpy())
    torch.manual_seed(seed)
    model = VAE(n_latent, kl_weight=kl_weight, preprocessing=pre.state_dict()).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history: list[float] = []
    for _ in tqdm(range(epochs), disable=not progress, desc="VAE"):
        model.train()
        perm = rng.permutation(x.shape[0])
        total, count = 0.0, 0
        for lo in range(0, x.shape[0], batch_size):
            idx = perm[lo : lo + batch_size]
            if idx.size < 2:
                continue
            loss = model.loss(x[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * idx.size
            count += idx.size
        history.append(total / max(count, 1))
    return model.eval(), history
