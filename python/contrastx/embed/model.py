"""An encoder with its training-time heads, built from a JSON-friendly config, and :func:`embed`.

:class:`EmbeddingModel` composes an encoder (:mod:`.encoders`), an optional
Gaussian output block, an optional projection head (used by the loss, dropped at
inference) and an optional linear classifier (for VICReg + cross-entropy).
:func:`build_model` makes one from a plain dict, which is what a model file stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..events.container import Events, check_particles
from ..ops._backend import require_device
from .encoders import MLPEncoder, TransformerEncoder, check_input, check_latent_dim
from .heads import DINOHead, GaussianBlock, ProjectionHead
from .particle_transformer import ParticleTransformerEncoder

__all__ = ["ENCODERS", "HEADS", "Embedder", "EmbeddingModel", "build_model", "embed"]

ENCODERS = {
    "mlp": MLPEncoder,
    "transformer": TransformerEncoder,
    "particle_transformer": ParticleTransformerEncoder,
}
HEADS = {"projection": ProjectionHead, "dino": DINOHead}


class Embedder(Protocol):
    """Anything :func:`embed` accepts: a module with ``embed(x) -> (N, D)``."""

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...


class EmbeddingModel(nn.Module):
    """Encoder + optional Gaussian output block, projection head and classifier.

    Parameters
    ----------
    encoder : nn.Module
        Maps raw (N, 19, 3) particles to (N, D); must have ``output_dim``.
    head : nn.Module, optional
        Projection head applied to the (sampled) embedding during training.
    gaussian : GaussianBlock, optional
        VAE-like output block (second paper); the embedding is its mean at inference.
    classifier : nn.Module, optional
        Linear layer on the embedding giving class logits (VICReg + CE).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module | None = None,
        gaussian: GaussianBlock | None = None,
        classifier: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.gaussian = gaussian
        self.head = head
        self.classifier = classifier

    @property
    def latent_dim(self) -> int:
        return self.gaussian.latent_dim if self.gaussian is not None else self.encoder.output_dim

    def forward(self, x: torch.Tensor, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward pass.

        ``inputs`` are passed to the encoder with ``x`` (the particle transformer's
        ``padding_mask``, ``event_features``, ``kinematics``).

        Returns
        -------
        dict
            ``embedding`` (N, D) (a reparameterised sample with a Gaussian block in
            training mode), ``projection`` (head output, or the embedding without a
            head), and, where present, ``mu``/``logvar`` and ``logits``.
        """
        h = self.encoder(x, **inputs)
        out: dict[str, torch.Tensor] = {}
        if self.gaussian is not None:
            h, out["mu"], out["logvar"] = self.gaussian(h)
        out["embedding"] = h
        out["projection"] = self.head(h) if self.head is not None else h
        if self.classifier is not None:
            out["logits"] = self.classifier(h)
        return out

    def embed(self, x: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The inference embedding (N, D): encoder output, or the Gaussian mean."""
        h = self.encoder(x, **inputs)
        if self.gaussian is not None:
            h = self.gaussian.mean(h)
        return h


def build_model(config: Mapping[str, Any]) -> EmbeddingModel:
    """Build an :class:`EmbeddingModel` from a JSON-friendly config.

    Parameters
    ----------
    config : mapping
        ``encoder`` ("mlp", "transformer" or "particle_transformer"), ``latent_dim`` (2..64),
        ``encoder_kwargs`` (dict), ``head`` ("projection", "dino" or None),
        ``head_kwargs`` (dict), ``gaussian`` (bool), ``n_classes`` (int or None:
        adds a linear classifier), ``preprocessing`` (Preprocessor state or None).

    Examples
    --------
    >>> m = build_model({"encoder": "mlp", "latent_dim": 4, "head": "projection"})
    >>> m.latent_dim
    4
    """
    known = {
        "encoder",
        "latent_dim",
        "encoder_kwargs",
        "head",
        "head_kwargs",
        "gaussian",
        "n_classes",
        "preprocessing",
    }
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
    name = config.get("encoder", "mlp")
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    latent_dim = check_latent_dim(int(config.get("latent_dim", 8)))
    gaussian = bool(config.get("gaussian", False))
    enc_kwargs = dict(config.get("encoder_kwargs") or {})
    if name == "particle_transformer":
        # Its MLP feeds the Gaussian block directly; without one it ends at latent_dim.
        enc_kwargs.setdefault("project", not gaussian)
    encoder = ENCODERS[name](
        latent_dim=latent_dim, preprocessing=config.get("preprocessing"), **enc_kwargs
    )
    if not gaussian and encoder.output_dim != latent_dim:
        raise ValueError(
            f"encoder {name!r} outputs {encoder.output_dim} values but latent_dim is "
            f"{latent_dim}; without the Gaussian block the encoder must end at latent_dim"
        )
    block = GaussianBlock(encoder.output_dim, latent_dim) if gaussian else None
    head_name = config.get("head")
    head = None
    if head_name is not None:
        if head_name not in HEADS:
            raise ValueError(f"unknown head {head_name!r}; choose one of {sorted(HEADS)} or None")
        head = HEADS[head_name](latent_dim, **dict(config.get("head_kwargs") or {}))
    n_classes = config.get("n_classes")
    classifier = None
    if n_classes is not None:
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2; got {n_classes}")
        classifier = nn.Linear(latent_dim, int(n_classes))
    return EmbeddingModel(encoder, head=head, gaussian=block, classifier=classifier)


def _as_particles(data: Events | np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(data, Events):
        return torch.from_numpy(data.particles)
    if isinstance(data, torch.Tensor):
        x = check_input(data)
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or inf")
        return x.detach().to("cpu", torch.float32)
    return torch.from_numpy(check_particles(data))


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device with a clear error when CUDA is asked for but absent."""
    return require_device(device)


@torch.no_grad()
def embed(
    model: Embedder,
    data: Events | np.ndarray | torch.Tensor,
    batch_size: int = 4096,
    device: str | torch.device | None = "cpu",
) -> np.ndarray:
    """Embed raw events in batches, without gradients, in eval mode.

    Parameters
    ----------
    model : EmbeddingModel or baseline
        Any module with ``embed(x)``; it is moved to ``device`` and put in eval mode
        (its training mode is restored afterwards).
    data : Events, ndarray or Tensor, shape (N, 19, 3)
        Raw particles (pT in GeV, padded slots zero).
    batch_size : int
        Events per forward pass.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Returns
    -------
    ndarray, shape (N, D), float32
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    dev = resolve_device(device)
    x = _as_particles(data)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.to(dev).eval()
    try:
        parts = [
            model.embed(x[i : i + batch_size].to(dev)).float().cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
    finally:
        if isinstance(model, nn.Module) and was_training:
            model.train()
    if not parts:
        d = getattr(model, "latent_dim", 0)
        return np.zeros((0, d), dtype=np.float32)
    return torch.cat(parts).numpy()
