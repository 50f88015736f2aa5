"""Baseline embeddings of the primary paper, with the same ``embed`` interface as the encoders.

* :class:`RawBaseline`: the 57-D source, the raw (N, 19, 3) particles flattened; for
  another event layout, the encoder inputs flattened (the features of the encoder's
  slots, then the encoder's event-level features; raw, or preprocessed with a fitted
  ``"layout"`` state).
* :class:`LeadingPtBaseline`: 6-D leading-object pT: MET, the two leading electrons,
  the two leading muons and the leading jet (0 where absent); for another layout, the
  leading pT of every object group the encoder sees.
* :class:`VAE`: the 6-D VAE latent (Govorkova et al., the paper's Ref. [39]): 57 inputs
  -> 32 -> 16 (Linear, BatchNorm, LeakyReLU) -> 3 means + 3 log-variances; the decoder
  mirrors it (3 -> 16 -> 32 -> 57, last layer linear). Loss
  ``(1 - beta) MSE + beta KL`` with beta = 0.8; the embedding is ``(mu, logvar)``.
  :func:`fit_vae` trains one. For another layout its input is the flattened encoder
  inputs of a fitted ``"layout"`` preprocessing.

Every baseline has a ``layout`` (the layout of the raw events it takes; ADC2021 by
default) and finds the columns it needs by name.
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
    ADC2021,
    ELECTRON_SLOTS,
    JET_SLOTS,
    MET_SLOT,
    MUON_SLOTS,
    N_FEATURES,
    N_OBJECTS,
    PT,
    EventLayout,
)
from ..events.preprocessing import Preprocessor
from .encoders import InputScaler, LayoutScaler, check_input
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


def _check_layout(layout: Any) -> EventLayout:
    if not isinstance(layout, EventLayout):
        raise TypeError(f"layout must be an EventLayout; got {type(layout).__name__}")
    return layout


def _layout_scaler(
    preprocessing: dict[str, Any] | None, layout: EventLayout | None, what: str
) -> LayoutScaler | None:
    """The LayoutScaler of a ``"layout"`` state (checked against ``layout``), else None."""
    if preprocessing is None or preprocessing.get("kind") != "layout":
        return None
    scaler = LayoutScaler(preprocessing)
    if layout is not None and scaler.layout != layout:
        raise ValueError(
            f"{what}: the preprocessing state is for layout {scaler.layout.name!r}, not "
            f"{layout.name!r}"
        )
    return scaler


def _event_features(layout: EventLayout, x: torch.Tensor, event_features: Any) -> torch.Tensor:
    """The raw encoder event-level features (B, E_enc) of ``layout``."""
    cols = layout.encoder_event_features
    if not cols.size:
        return x.new_zeros((x.shape[0], 0))
    shape = (x.shape[0], layout.n_event_features)
    if not isinstance(event_features, torch.Tensor) or tuple(event_features.shape) != shape:
        got = None if event_features is None else tuple(getattr(event_features, "shape", ()))
        raise ValueError(
            f"layout {layout.name!r} has event-level encoder features: pass event_features "
            f"of shape {shape} ({', '.join(layout.event_feature_names)}); got {got}"
        )
    return event_features.to(x.device, x.dtype)[:, torch.as_tensor(cols, device=x.device)]


class RawBaseline(nn.Module):
    """The 57-D source representation: raw particles flattened to (N, 57).

    Parameters
    ----------
    layout : EventLayout
        The layout of the events (default ADC2021: the 19 x 3 raw particles). For
        another layout the embedding is the encoder inputs flattened: every feature of
        the encoder's slots (slot by slot), then the encoder's event-level features.
    preprocessing : dict, optional
        A fitted ``"layout"`` :meth:`Preprocessor.state_dict`: the encoder inputs are
        then the preprocessed ones (what an encoder sees), otherwise the raw values.
    """

    def __init__(
        self, layout: EventLayout = ADC2021, preprocessing: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.layout = _check_layout(layout)
        self.input_scaler = _layout_scaler(preprocessing, self.layout, "RawBaseline")
        if preprocessing is not None and self.input_scaler is None:
            raise ValueError("RawBaseline takes a 'layout' preprocessing state only")
        if layout == ADC2021 and self.input_scaler is None:
            self.latent_dim = N_OBJECTS * N_FEATURES
        else:
            n_slots = int(layout.encoder_slots.size)
            self.latent_dim = n_slots * layout.n_features + int(layout.encoder_event_features.size)

    def embed(self, x: torch.Tensor, event_features: torch.Tensor | None = None) -> torch.Tensor:
        layout = self.layout
        if layout == ADC2021 and self.input_scaler is None:
            return check_input(x).flatten(1)
        if self.input_scaler is not None:
            objects, _, ev, _ = self.input_scaler(x, event_features)
            ev = objects.new_zeros((x.shape[0], 0)) if ev is None else ev
        else:
            objects = check_input(x, layout)[:, torch.as_tensor(layout.encoder_slots)]
            ev = _event_features(layout, x, event_features)
        return torch.cat([objects.flatten(1), ev], dim=1)

    def forward(self, x: torch.Tensor, event_features: torch.Tensor | None = None) -> torch.Tensor:
        return self.embed(x, event_features)


class LeadingPtBaseline(nn.Module):
    """6-D leading-object pT: (MET, e1, e2, mu1, mu2, jet1) in GeV, 0 where absent.

    Parameters
    ----------
    layout : EventLayout
        The layout of the events (default ADC2021: the six slots above). For another
        layout: the highest pT of every object group the encoder sees, in group order
        (0 where the group is empty), e.g. (jet, large-R jet, electron, muon, MET) for
        the diphoton layout.
    """

    def __init__(self, layout: EventLayout = ADC2021) -> None:
        super().__init__()
        self.layout = _check_layout(layout)
        self.pt = layout.feature_index("pt")
        if layout == ADC2021:
            slots = list(LEADING_PT_SLOTS)
            self.groups: tuple[str, ...] = ()
        else:
            self.groups = tuple(g.name for g in layout.groups if g.encoder)
            slots = []
        self.register_buffer("slots", torch.tensor(slots, dtype=torch.long), persistent=False)
        self.latent_dim = len(slots) if layout == ADC2021 else len(self.groups)

    def embed(self, x: torch.Tensor, event_features: torch.Tensor | None = None) -> torch.Tensor:
        if self.layout == ADC2021:
            return check_input(x)[:, self.slots, PT]
        pt = check_input(x, self.layout)[..., self.pt]
        cols = [pt[:, self.layout.group_slots(g)].amax(dim=1) for g in self.groups]
        return torch.stack(cols, dim=1)

    def forward(self, x: torch.Tensor, event_features: torch.Tensor | None = None) -> torch.Tensor:
        return self.embed(x, event_features)


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
        :meth:`Preprocessor.state_dict` for the built-in :class:`InputScaler` (ADC2021),
        or a ``"layout"`` state (any layout): the input is then the flattened encoder
        inputs of that layout (:class:`LayoutScaler`: preprocessed objects of the
        encoder's slots and event-level features). The reconstruction target is the
        preprocessed, flattened input.
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
        self.input_scaler = _layout_scaler(preprocessing, None, "VAE")
        if self.input_scaler is None:
            self.scaler = InputScaler(preprocessing)
            n_inputs = N_OBJECTS * N_FEATURES
        else:
            layout = self.input_scaler.layout
            n_inputs = int(layout.encoder_slots.size) * layout.n_features
            n_inputs += self.input_scaler.n_event_features
        dims = [n_inputs, *[int(h) for h in hidden_dims]]
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

    @property
    def layout(self) -> EventLayout:
        """The layout of the raw events it takes (ADC2021 without a layout state)."""
        return ADC2021 if self.input_scaler is None else self.input_scaler.layout

    def config(self) -> dict[str, Any]:
        """Model config for :func:`~contrastx.embed.model_file.save_model`."""
        hidden = [m[0].out_features for m in self.encoder]
        return {
            "kind": "vae",
            "n_latent": self.n_latent,
            "hidden_dims": hidden,
            "kl_weight": self.kl_weight,
        }

    def _inputs(self, x: torch.Tensor, event_features: torch.Tensor | None) -> torch.Tensor:
        if self.input_scaler is None:
            if event_features is not None:
                raise ValueError("this VAE takes raw ADC2021 particles only (no event_features)")
            return self.scaler(check_input(x)).flatten(1)
        objects, _, ev, _ = self.input_scaler(x, event_features)
        return objects.flatten(1) if ev is None else torch.cat([objects.flatten(1), ev], dim=1)

    def encode(
        self, x: torch.Tensor, event_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(scaled flattened input, mu, logvar)``."""
        inp = self._inputs(x, event_features)
        h = self.encoder(inp)
        return inp, self.mean(h), self.log_var(h)

    def embed(self, x: torch.Tensor, event_features: torch.Tensor | None = None) -> torch.Tensor:
        _, mu, logvar = self.encode(x, event_features)
        return torch.cat([mu, logvar], dim=1)

    def forward(
        self, x: torch.Tensor, event_features: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        inp, mu, logvar = self.encode(x, event_features)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return {"input": inp, "reconstruction": self.decoder(z), "mu": mu, "logvar": logvar}

    def loss(self, x: torch.Tensor, event_features: torch.Tensor | None = None) -> torch.Tensor:
        """``(1 - beta) * MSE(reconstruction, input) + beta * KL``."""
        out = self(x, event_features)
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

    ``preprocessing`` is a :class:`~contrastx.events.Preprocessor` kind; events of a
    layout other than ADC2021 need ``"layout"`` (the input is then their flattened
    encoder inputs).

    Returns
    -------
    (VAE, list of float)
        The model in eval mode and the mean training loss per epoch.
    """
    layout = events.layout if isinstance(events, Events) else ADC2021
    if layout != ADC2021 and preprocessing != "layout":
        raise ValueError(
            f"events in layout {layout.name!r} need preprocessing 'layout' for the VAE; got "
            f"{preprocessing!r}"
        )
    x = torch.from_numpy(events.particles if isinstance(events, Events) else np.asarray(events))
    x = check_input(x.float(), layout)
    ev = None
    if isinstance(events, Events) and layout.encoder_event_features.size:
        ev = torch.from_numpy(events.event_features)
    if epochs <= 0 or batch_size < 2:
        raise ValueError("epochs must be > 0 and batch_size >= 2")
    dev = resolve_device(device)
    if preprocessing == "layout":
        fit_on = events if isinstance(events, Events) else x.numpy()
        pre = Preprocessor("layout", layout).fit(fit_on)
    else:
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
            evb = None if ev is None else ev[idx].to(dev)
            loss = model.loss(x[idx].to(dev), evb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * idx.size
            count += idx.size
        history.append(total / max(count, 1))
    return model.eval(), history
