"""An encoder with its training-time heads, built from a JSON-friendly config, and :func:`embed`.

:class:`EmbeddingModel` composes an encoder (:mod:`.encoders`), an optional
Gaussian output block, an optional projection head (used by the loss, dropped at
inference) and an optional linear classifier (for VICReg + cross-entropy).
:func:`build_model` makes one from a plain dict, which is what a model file stores.

A model takes raw events of one event layout (:attr:`EmbeddingModel.layout`): ADC2021
models preprocess inside their encoder; a model built with a ``"layout"`` preprocessing
state holds a :class:`~contrastx.embed.encoders.LayoutScaler` that turns raw events of
its layout into the encoder inputs. :func:`embed` refuses events of another layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..events.container import Events, check_particles
from ..events.layout import ADC2021, EventLayout
from ..ops._backend import require_device
from .encoders import (
    LayoutScaler,
    MLPEncoder,
    TransformerEncoder,
    check_input,
    check_latent_dim,
)
from .heads import DINOHead, GaussianBlock, ProjectionHead
from .particle_transformer import ParticleTransformerEncoder

__all__ = [
    "ENCODERS",
    "HEADS",
    "Embedder",
    "EmbeddingModel",
    "build_model",
    "check_layout_match",
    "embed",
    "model_layout",
]

ENCODERS = {
    "mlp": MLPEncoder,
    "transformer": TransformerEncoder,
    "particle_transformer": ParticleTransformerEncoder,
}
HEADS = {"projection": ProjectionHead, "dino": DINOHead}


class Embedder(Protocol):
    """Anything :func:`embed` accepts: a module with ``embed(x) -> (N, D)``.

    A model of a layout other than ADC2021 has a ``layout`` attribute and takes the raw
    event-level features as ``embed(x, event_features=...)`` when the layout has any.
    """

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
    input_scaler : LayoutScaler, optional
        Turns raw events of its layout into the encoder inputs (objects, padding mask,
        event-level features, and the raw kinematics for an encoder with pair
        features); the model then takes raw events ``(N, n_objects, n_features)`` and
        their raw event-level features as ``event_features=``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module | None = None,
        gaussian: GaussianBlock | None = None,
        classifier: nn.Module | None = None,
        input_scaler: LayoutScaler | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.gaussian = gaussian
        self.head = head
        self.classifier = classifier
        self.input_scaler = input_scaler

    @property
    def latent_dim(self) -> int:
        return self.gaussian.latent_dim if self.gaussian is not None else self.encoder.output_dim

    @property
    def layout(self) -> EventLayout | None:
        """The layout of the raw events the model takes.

        The input scaler's layout; ADC2021 for an encoder that takes raw ADC2021
        particles; None for an encoder fed its inputs directly (a particle transformer
        without an input scaler).
        """
        if self.input_scaler is not None:
            return self.input_scaler.layout
        if isinstance(self.encoder, (MLPEncoder, TransformerEncoder)):
            return ADC2021  # built without a layout: raw ADC2021 particles
        return None

    def _encode(self, x: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.input_scaler is None:
            return self.encoder(x, **inputs)
        inputs = dict(inputs)
        objects, pad, ev, raw = self.input_scaler(x, inputs.pop("event_features", None))
        if inputs:
            raise ValueError(
                f"a model with an input scaler takes raw events and event_features only; got "
                f"{sorted(inputs)}"
            )
        kw: dict[str, torch.Tensor] = {"padding_mask": pad}
        if ev is not None:
            kw["event_features"] = ev
        if getattr(getattr(self.encoder, "options", None), "interaction_columns", ()):
            kw["kinematics"] = raw
        return self.encoder(objects, **kw)

    def forward(self, x: torch.Tensor, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward pass.

        ``inputs`` are passed to the encoder with ``x`` (the particle transformer's
        ``padding_mask``, ``event_features``, ``kinematics``). With an input scaler, ``x``
        is the raw events and ``inputs`` only ``event_features`` (raw, in the layout's
        order).

        Returns
        -------
        dict
            ``embedding`` (N, D) (a reparameterised sample with a Gaussian block in
            training mode), ``projection`` (head output, or the embedding without a
            head), and, where present, ``mu``/``logvar`` and ``logits``.
        """
        h = self._encode(x, inputs)
        out: dict[str, torch.Tensor] = {}
        if self.gaussian is not None:
            h, out["mu"], out["logvar"] = self.gaussian(h)
        out["embedding"] = h
        out["projection"] = self.head(h) if self.head is not None else h
        if self.classifier is not None:
            out["logits"] = self.classifier(h)
        return out

    def embed(
        self, x: torch.Tensor, *, noise: torch.Tensor | None = None, **inputs: torch.Tensor
    ) -> torch.Tensor:
        """The inference embedding (N, D): encoder output, or the Gaussian mean.

        With a Gaussian output block and ``noise`` (N, D) standard-normal draws, the
        embedding is the reparameterised sample ``mu + exp(logvar / 2) * noise`` instead.
        """
        h = self._encode(x, inputs)
        if self.gaussian is None:
            if noise is not None:
                raise ValueError("noise needs a model with a Gaussian output block")
            return h
        mu = self.gaussian.mean(h)
        if noise is None:
            return mu
        if noise.shape != mu.shape:
            raise ValueError(f"noise must have shape {tuple(mu.shape)}; got {tuple(noise.shape)}")
        return mu + torch.exp(0.5 * self.gaussian.log_var(h)) * noise


def build_model(config: Mapping[str, Any]) -> EmbeddingModel:
    """Build an :class:`EmbeddingModel` from a JSON-friendly config.

    Parameters
    ----------
    config : mapping
        ``encoder`` ("mlp", "transformer" or "particle_transformer"), ``latent_dim`` (2..64),
        ``encoder_kwargs`` (dict), ``head`` ("projection", "dino" or None),
        ``head_kwargs`` (dict), ``gaussian`` (bool), ``n_classes`` (int or None:
        adds a linear classifier), ``preprocessing`` (Preprocessor state or None).
        A ``"layout"`` preprocessing state (any event layout) becomes the model's
        :class:`~contrastx.embed.encoders.LayoutScaler` and the encoder is built for
        that layout's encoder inputs (the particle transformer's ``n_features`` and
        ``n_event_features`` are the layout's unless ``encoder_kwargs`` sets them, which
        must then agree); other states go to the encoder's own
        :class:`~contrastx.embed.encoders.InputScaler` (ADC2021).

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
    preprocessing = config.get("preprocessing")
    scaler = None
    if isinstance(preprocessing, Mapping) and preprocessing.get("kind") == "layout":
        scaler = LayoutScaler(dict(preprocessing))
        layout = scaler.layout
        if name == "particle_transformer":
            sizes = {"n_features": layout.n_features, "n_event_features": scaler.n_event_features}
            for key, value in sizes.items():
                if enc_kwargs.setdefault(key, value) != value:
                    raise ValueError(
                        f"encoder_kwargs {key} = {enc_kwargs[key]!r} does not match layout "
                        f"{layout.name!r}, whose encoder inputs have {key} = {value}"
                    )
            encoder = ENCODERS[name](latent_dim=latent_dim, **enc_kwargs)
        else:
            if "layout" in enc_kwargs:
                raise ValueError("encoder_kwargs must not set 'layout' (it is the preprocessing's)")
            encoder = ENCODERS[name](latent_dim=latent_dim, layout=layout, **enc_kwargs)
    else:
        encoder = ENCODERS[name](latent_dim=latent_dim, preprocessing=preprocessing, **enc_kwargs)
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
    return EmbeddingModel(
        encoder, head=head, gaussian=block, classifier=classifier, input_scaler=scaler
    )


def model_layout(model: Any) -> EventLayout | None:
    """The layout of the raw events ``model`` takes (its ``layout``; ADC2021 when it has none).

    None for a model fed encoder inputs directly (no layout to check).
    """
    return getattr(model, "layout", ADC2021)


def _layout_text(layout: EventLayout) -> str:
    return f"layout {layout.name!r} (fingerprint {layout.fingerprint[:12]})"


def check_layout_match(
    model: EventLayout, events: EventLayout, *, model_name: str = "the model", data: str = "events"
) -> None:
    """Raise a clear ValueError when the events' layout is not the model's.

    Parameters
    ----------
    model, events : EventLayout
        The layout the model was trained on and the layout of the events.
    model_name, data : str
        How the message names the model and the events (e.g. file names).
    """
    if events == model:
        return
    same_name = " (same name, different definition)" if events.name == model.name else ""
    raise ValueError(
        f"{model_name} was trained on events in {_layout_text(model)} but {data} are in "
        f"{_layout_text(events)}{same_name}; embed events of the model's layout or train a "
        "model on this layout"
    )


def _as_inputs(
    data: Events | np.ndarray | torch.Tensor, layout: EventLayout | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw particles (N, n_objects, F) float32 on the CPU and the raw event features (or None)."""
    if isinstance(data, Events):
        if layout is None:
            return torch.from_numpy(data.particles), None
        check_layout_match(layout, data.layout)
        if not layout.encoder_event_features.size:
            return torch.from_numpy(data.particles), None
        return torch.from_numpy(data.particles), torch.from_numpy(data.event_features)
    if layout is None or layout == ADC2021:
        if isinstance(data, torch.Tensor):
            x = data if layout is None else check_input(data)
            if not torch.isfinite(x).all():
                raise ValueError("input contains NaN or inf")
            return x.detach().to("cpu", torch.float32), None
        if layout is None:
            arr = np.asarray(data, dtype=np.float32)
            if not np.isfinite(arr).all():
                raise ValueError("input contains NaN or inf")
            return torch.from_numpy(arr), None
        return torch.from_numpy(check_particles(data)), None
    if layout.encoder_event_features.size:
        names = ", ".join(layout.event_features[c].name for c in layout.encoder_event_features)
        raise ValueError(
            f"the model's layout {layout.name!r} has event-level encoder features ({names}): "
            "pass Events (with their event_features), not a particle array"
        )
    arr = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else data
    return torch.from_numpy(check_particles(arr, layout=layout)), None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device with a clear error when CUDA is asked for but absent."""
    return require_device(device)


@torch.no_grad()
def embed(
    model: Embedder,
    data: Events | np.ndarray | torch.Tensor,
    batch_size: int = 4096,
    device: str | torch.device | None = "cpu",
    *,
    sample_seed: int | None = None,
) -> np.ndarray:
    """Embed raw events in batches, without gradients, in eval mode.

    Parameters
    ----------
    model : EmbeddingModel or baseline
        Any module with ``embed(x)``; it is moved to ``device`` and put in eval mode
        (its training mode is restored afterwards).
    data : Events, ndarray or Tensor
        Raw events in the model's layout (:func:`model_layout`): ADC2021 particles
        (N, 19, 3) (pT in GeV, padded slots zero), or :class:`Events` of another layout
        (an array of particles does for a layout without event-level encoder features).
    batch_size : int
        Events per forward pass.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    sample_seed : int, optional
        For a model with a Gaussian output block (SupCon + KL): embed every event as a
        draw ``mu + sigma * eps`` of its latent Gaussian instead of its mean ``mu``
        (``eps`` standard normal, drawn on the CPU from this seed for all events at once,
        so the result does not depend on ``batch_size`` or the device). The mean maps
        events with the same encoder inputs to one point, the draw spreads them over a
        density, which a density estimator (CATHODE's flow) can model.

    Returns
    -------
    ndarray, shape (N, D), float32

    Raises
    ------
    ValueError
        Events of another layout than the model's (the message names both), or
        invalid values.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    dev = resolve_device(device)
    layout = model_layout(model)
    x, ev = _as_inputs(data, layout)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.to(dev).eval()
    noise = None
    if sample_seed is not None:
        d = getattr(getattr(model, "gaussian", None), "latent_dim", None)
        if d is None:
            raise ValueError("sample_seed needs a model with a Gaussian output block (supcon_kl)")
        gen = torch.Generator().manual_seed(int(sample_seed))
        noise = torch.randn(x.shape[0], d, generator=gen)
    try:
        parts = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(dev)
            kw: dict[str, Any] = {}
            if noise is not None:
                kw["noise"] = noise[i : i + batch_size].to(dev)
            if ev is not None:
                kw["event_features"] = ev[i : i + batch_size].to(dev)
            z = model.embed(xb, **kw)
            parts.append(z.float().cpu())
    finally:
        if isinstance(model, nn.Module) and was_training:
            model.train()
    if not parts:
        d = getattr(model, "latent_dim", 0)
        return np.zeros((0, d), dtype=np.float32)
    return torch.cat(parts).numpy()
