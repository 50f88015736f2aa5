"""Event encoders: (N, 19, 3) raw particles -> (N, D) embedding, or any event layout.

With the ADC2021 layout (the primary paper), every encoder takes the *raw* array
``(pT [GeV], eta, phi)`` (padded slots all zero) and applies the fitted input
preprocessing itself (:class:`InputScaler`, built from
:meth:`contrastx.events.Preprocessor.state_dict`), so a saved model embeds raw events
with no separate preprocessing step and padding is recognised exactly as ``pT == 0``
on the raw input.

For any other layout (:class:`~contrastx.events.layout.EventLayout`), the model holds a
:class:`LayoutScaler` (the fitted ``Preprocessor("layout", layout)`` as a torch module)
that turns raw events into the encoder inputs: the preprocessed objects of the
encoder's groups, their padding mask and the encoder's event-level features. An encoder
built with ``layout=`` takes those inputs (``encoder(objects, padding_mask=...,
event_features=...)``); :class:`~contrastx.embed.model.EmbeddingModel` wires the two.

* :class:`MLPEncoder`: the primary paper's Fig. I backbone, four blocks of
  BatchNorm -> Linear -> LeakyReLU on the flattened 57 inputs (with a layout: the
  flattened encoder objects and event-level features).
* :class:`TransformerEncoder`: one token per object (19 tokens from (pT, eta, phi)
  plus an object-type embedding and a learned slot encoding), a CLS token that
  aggregates the event, Table IV sizes by default; padded objects are masked in
  attention (the MET slot never is). With a layout: one token per encoder slot, the
  object type from the slot's group, the event-level features joined to the CLS output.
* :class:`~contrastx.embed.particle_transformer.ParticleTransformerEncoder` (the second
  paper's encoder, its own module) takes the encoder inputs of any layout.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..events.layout import ADC2021, N_FEATURES, N_OBJECTS, PT, SLOT_CLASS_IDS, EventLayout

MIN_LATENT_DIM = 2
MAX_LATENT_DIM = 64

__all__ = [
    "InputScaler",
    "LayoutScaler",
    "MLPEncoder",
    "TransformerEncoder",
    "bn_linear_block",
    "check_input",
    "check_latent_dim",
]


def check_latent_dim(latent_dim: int) -> int:
    """Validate the embedding dimension D (an int in [2, 64])."""
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int):
        raise TypeError(f"latent_dim must be an int; got {type(latent_dim).__name__}")
    if not MIN_LATENT_DIM <= latent_dim <= MAX_LATENT_DIM:
        raise ValueError(
            f"latent_dim must be in [{MIN_LATENT_DIM}, {MAX_LATENT_DIM}]; got {latent_dim}"
        )
    return latent_dim


def check_input(x: torch.Tensor, layout: EventLayout = ADC2021) -> torch.Tensor:
    """Validate a raw particle batch: float tensor of shape (N, 19, 3), or of ``layout``.

    Parameters
    ----------
    x : Tensor
    layout : EventLayout
        The layout the batch must have (default ADC2021):
        ``(N, layout.n_objects, layout.n_features)``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if layout == ADC2021:
        if x.dim() != 3 or tuple(x.shape[1:]) != (N_OBJECTS, N_FEATURES):
            raise ValueError(
                f"input must have shape (N, {N_OBJECTS}, {N_FEATURES}) = (events, objects, "
                f"(pT, eta, phi)); got {tuple(x.shape)}"
            )
    elif x.dim() != 3 or tuple(x.shape[1:]) != (layout.n_objects, layout.n_features):
        raise ValueError(
            f"input must have shape (N, {layout.n_objects}, {layout.n_features}) = (events, "
            f"objects, features) for layout {layout.name!r}; got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"input must be floating point; got {x.dtype}")
    return x


class InputScaler(nn.Module):
    """The fitted :class:`~contrastx.events.Preprocessor` as a torch module.

    ``pT -> (f(pT) - mean) / std`` with ``f`` the identity (``kind="pt"``) or ``log``
    (``kind="log_pt"``) on filled slots (raw pT > 0); eta and phi unchanged; padded
    slots all zero.

    Parameters
    ----------
    state : dict, optional
        :meth:`Preprocessor.state_dict` output. Without it the scaler is the
        identity on pT (mean 0, std 1, ``kind="pt"``) until :meth:`load_state` is called.
    """

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("std", torch.ones((), dtype=torch.float64))
        self.register_buffer("log_pt", torch.zeros((), dtype=torch.bool))
        if state is not None:
            self.load_state(state)

    def load_state(self, state: dict[str, Any]) -> None:
        """Set the statistics from a :meth:`Preprocessor.state_dict`."""
        from ..events.preprocessing import Preprocessor

        pre = Preprocessor.from_state_dict(state)  # validates
        self.mean.fill_(pre.mean_)
        self.std.fill_(pre.std_)
        self.log_pt.fill_(pre.kind == "log_pt")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pt = x[..., PT]
        filled = pt > 0
        v = torch.where(filled, pt, torch.ones_like(pt))
        if bool(self.log_pt):
            v = torch.log(v)
        scaled = ((v - self.mean.to(x.dtype)) / self.std.to(x.dtype)).unsqueeze(-1)
        out = torch.cat([scaled, x[..., PT + 1 :]], dim=-1)
        return out * filled.unsqueeze(-1).to(x.dtype)


class LayoutScaler(nn.Module):
    """The fitted ``"layout"`` Preprocessor as a torch module: raw events -> encoder inputs.

    Computes what :meth:`contrastx.events.Preprocessor.encoder_inputs` computes, on
    torch tensors inside the model: the logged features (pT, masses) become
    ``log(1 + x)``, every object feature is standardised with its fitted mean and
    standard deviation (one-hot columns have mean 0 and std 1), padded slots (raw
    pT == 0) stay all zero; only the encoder's groups are kept; the encoder's
    event-level features are taken from the raw ones, logged where the layout says so,
    and standardised.

    Parameters
    ----------
    state : dict
        :meth:`Preprocessor.state_dict` of a fitted ``"layout"`` preprocessor (it
        carries the layout).

    Attributes
    ----------
    layout : EventLayout
        The layout of the raw events it takes.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__()
        from ..events.preprocessing import Preprocessor

        if not isinstance(state, dict) or state.get("kind") != "layout":
            kind = state.get("kind") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"LayoutScaler needs a 'layout' preprocessing state; got {kind!r}")
        pre = Preprocessor.from_state_dict(state)  # validates
        layout = self.layout = pre.layout
        self.n_fitted, self.n_events = int(pre.n_fitted_), int(pre.n_events_)
        self.pt = layout.feature_index("pt")
        ev_cols = layout.encoder_event_features
        ev_log = [layout.event_features[c].log for c in ev_cols]
        self.register_buffer("object_mean", torch.as_tensor(pre.object_mean_, dtype=torch.float64))
        self.register_buffer("object_std", torch.as_tensor(pre.object_std_, dtype=torch.float64))
        self.register_buffer("event_mean", torch.as_tensor(pre.event_mean_, dtype=torch.float64))
        self.register_buffer("event_std", torch.as_tensor(pre.event_std_, dtype=torch.float64))
        for name, value in (
            ("log_features", torch.as_tensor(layout.log_features)),
            ("encoder_slots", torch.as_tensor(layout.encoder_slots, dtype=torch.long)),
            ("event_columns", torch.as_tensor(ev_cols, dtype=torch.long)),
            ("event_log", torch.as_tensor(ev_log, dtype=torch.bool)),
        ):
            self.register_buffer(name, value, persistent=False)

    @property
    def n_event_features(self) -> int:
        """Event-level features the encoder gets (the layout's encoder event features)."""
        return int(self.event_columns.numel())

    def preprocessing_state(self) -> dict[str, Any]:
        """The :meth:`Preprocessor.state_dict` of the statistics it holds now."""
        return {
            "kind": "layout",
            "layout": self.layout.to_dict(),
            "object_mean": self.object_mean.tolist(),
            "object_std": self.object_std.tolist(),
            "event_mean": self.event_mean.tolist(),
            "event_std": self.event_std.tolist(),
            "n_fitted": self.n_fitted,
            "n_events": self.n_events,
        }

    def forward(
        self, x: torch.Tensor, event_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Encoder inputs of raw events.

        Parameters
        ----------
        x : Tensor, shape (B, layout.n_objects, layout.n_features)
            Raw objects (pT in GeV, padded slots zero).
        event_features : Tensor, shape (B, layout.n_event_features), optional
            Raw event-level features in the layout's order; required when the layout has
            event-level encoder features, ignored otherwise.

        Returns
        -------
        objects : Tensor, shape (B, n_encoder_slots, n_features)
            Preprocessed objects of the encoder's groups (padded slots zero), ``x.dtype``.
        padding_mask : Tensor of bool, shape (B, n_encoder_slots)
            True where the slot is padding (raw pT == 0).
        event_features : Tensor, shape (B, n_encoder_event_features), or None
            Standardised encoder event-level features; None when the layout has none.
        kinematics : Tensor, shape (B, n_encoder_slots, n_features)
            The raw objects of the encoder's groups (for pair features).
        """
        layout = self.layout
        x = check_input(x, layout)
        raw = x[:, self.encoder_slots]
        filled = raw[..., self.pt] > 0
        v = raw.to(torch.float64)
        v = torch.where(self.log_features, torch.log1p(v.clamp_min(0)), v)
        z = (v - self.object_mean) / self.object_std * filled.unsqueeze(-1)
        ev = None
        if self.n_event_features:
            if event_features is None:
                raise ValueError(
                    f"layout {layout.name!r} has event-level encoder features "
                    f"({', '.join(layout.event_features[int(c)].name for c in self.event_columns)})"
                    f": pass event_features of shape ({x.shape[0]}, {layout.n_event_features})"
                )
            if not isinstance(event_features, torch.Tensor):
                raise TypeError(
                    f"event_features must be a torch.Tensor; got {type(event_features).__name__}"
                )
            if tuple(event_features.shape) != (x.shape[0], layout.n_event_features):
                raise ValueError(
                    f"event_features must have shape ({x.shape[0]}, {layout.n_event_features}) "
                    f"({', '.join(layout.event_feature_names)}) for layout {layout.name!r}; "
                    f"got {tuple(event_features.shape)}"
                )
            e = event_features.to(x.device, torch.float64)[:, self.event_columns]
            e = torch.where(self.event_log, torch.log1p(e.clamp_min(0)), e)
            ev = ((e - self.event_mean) / self.event_std).to(x.dtype)
        return z.to(x.dtype), ~filled, ev, raw


def bn_linear_block(in_dim: int, out_dim: int, negative_slope: float = 0.01) -> nn.Sequential:
    """The primary paper's building block: BatchNorm1d -> Linear -> LeakyReLU."""
    return nn.Sequential(
        nn.BatchNorm1d(in_dim), nn.Linear(in_dim, out_dim), nn.LeakyReLU(negative_slope)
    )


class MLPEncoder(nn.Module):
    """MLP backbone (primary paper, Fig. I): four BatchNorm-Linear-LeakyReLU blocks.

    Parameters
    ----------
    latent_dim : int
        Embedding dimension D in [2, 64] (output of the fourth block).
    hidden_dims : sequence of int
        Widths of the first three blocks (the paper does not list them; default
        ``(256, 128, 64)``).
    negative_slope : float
        LeakyReLU slope.
    preprocessing : dict, optional
        :meth:`Preprocessor.state_dict` for the built-in :class:`InputScaler` (ADC2021).
    layout : EventLayout, optional
        Take the encoder inputs of this layout instead of raw ADC2021 particles:
        ``forward(objects, padding_mask=None, event_features=None)`` with the
        preprocessed objects of the encoder's groups (padded slots zero) and the
        encoder's event-level features (see :class:`LayoutScaler`); the input of the
        first block is the flattened objects followed by the event-level features.

    Examples
    --------
    >>> import torch
    >>> enc = MLPEncoder(latent_dim=4).eval()
    >>> enc(torch.zeros(2, 19, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        latent_dim: int = 8,
        hidden_dims: Sequence[int] = (256, 128, 64),
        negative_slope: float = 0.01,
        preprocessing: dict[str, Any] | None = None,
        layout: EventLayout | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        hidden_dims = tuple(int(h) for h in hidden_dims)
        if len(hidden_dims) != 3 or min(hidden_dims) <= 0:
            raise ValueError(
                f"hidden_dims must be three positive widths (4 blocks in all); got {hidden_dims}"
            )
        self.layout = _check_encoder_layout(layout, preprocessing)
        if layout is None:
            self.scaler = InputScaler(preprocessing)
            n_inputs = N_OBJECTS * N_FEATURES
        else:
            n_inputs = layout.encoder_slots.size * layout.n_features + _n_event(layout)
        dims = (n_inputs, *hidden_dims, latent_dim)
        self.blocks = nn.Sequential(
            *(bn_linear_block(a, b, negative_slope) for a, b in itertools.pairwise(dims))
        )

    @property
    def output_dim(self) -> int:
        return self.latent_dim

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        event_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.layout is None:
            if padding_mask is not None or event_features is not None:
                raise ValueError(
                    "this MLP takes raw ADC2021 particles only (built without a layout)"
                )
            x = self.scaler(check_input(x))
            return self.blocks(x.flatten(1))
        x, event_features = _check_layout_inputs(self.layout, x, event_features)
        h = x.flatten(1)
        if event_features is not None:
            h = torch.cat([h, event_features], dim=1)
        return self.blocks(h)


def _n_event(layout: EventLayout) -> int:
    return int(layout.encoder_event_features.size)


def _check_encoder_layout(
    layout: EventLayout | None, preprocessing: dict[str, Any] | None
) -> EventLayout | None:
    if layout is None:
        return None
    if not isinstance(layout, EventLayout):
        raise TypeError(f"layout must be an EventLayout; got {type(layout).__name__}")
    if preprocessing is not None:
        raise ValueError(
            "an encoder built with a layout takes preprocessed inputs (the model's "
            "LayoutScaler preprocesses them); pass preprocessing=None"
        )
    return layout


def _check_layout_inputs(
    layout: EventLayout, x: torch.Tensor, event_features: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check the encoder inputs of ``layout``: (B, n_encoder_slots, F) and (B, E_enc)."""
    n_slots, n_ev = int(layout.encoder_slots.size), _n_event(layout)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"objects must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != 3 or tuple(x.shape[1:]) != (n_slots, layout.n_features):
        raise ValueError(
            f"objects must have shape (N, {n_slots}, {layout.n_features}) = (events, encoder "
            f"slots, features) for layout {layout.name!r}; got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"objects must be floating point; got {x.dtype}")
    if n_ev == 0:
        if event_features is not None and event_features.shape[-1] != 0:
            raise ValueError(
                f"layout {layout.name!r} has no event-level encoder features; got "
                f"event_features of shape {tuple(event_features.shape)}"
            )
        return x, None
    if event_features is None or tuple(event_features.shape) != (x.shape[0], n_ev):
        got = None if event_features is None else tuple(event_features.shape)
        raise ValueError(
            f"event_features of shape ({x.shape[0]}, {n_ev}) are required for layout "
            f"{layout.name!r}; got {got}"
        )
    return x, event_features.to(x.dtype)


class TransformerEncoder(nn.Module):
    """Transformer over the 19 objects with a CLS token (primary paper, Table IV).

    Each object becomes one token: ``Linear(pT, eta, phi)`` + an embedding of its
    object type (MET, electron, muon, jet; from the slot) + a learned slot encoding.
    A learned CLS token is prepended; after the encoder layers its output, layer
    normalised and projected by a linear layer, is the D-dimensional embedding.

    Parameters
    ----------
    latent_dim : int
        Embedding dimension D in [2, 64].
    d_model, n_heads, dim_feedforward, n_layers, dropout
        Table IV defaults: 64, 8, 256, 4, 0.025.
    mask_padding : bool
        Mask padded objects (raw pT == 0) as attention keys; the MET slot and the CLS
        token are never masked.
    preprocessing : dict, optional
        :meth:`Preprocessor.state_dict` for the built-in :class:`InputScaler` (ADC2021).
    layout : EventLayout, optional
        Take the encoder inputs of this layout (see :class:`MLPEncoder`): one token per
        encoder slot from its features, the object type of its group and a slot
        encoding; padded slots (``padding_mask``) are masked as keys; the encoder's
        event-level features are joined to the normalised CLS output before the last
        linear layer.

    Examples
    --------
    >>> import torch
    >>> enc = TransformerEncoder(latent_dim=4, n_layers=1).eval()
    >>> enc(torch.zeros(2, 19, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        latent_dim: int = 8,
        d_model: int = 64,
        n_heads: int = 8,
        dim_feedforward: int = 256,
        n_layers: int = 4,
        dropout: float = 0.025,
        mask_padding: bool = True,
        preprocessing: dict[str, Any] | None = None,
        layout: EventLayout | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        if d_model <= 0 or n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be a positive multiple of n_heads ({n_heads})"
            )
        if n_layers <= 0 or dim_feedforward <= 0:
            raise ValueError("n_layers and dim_feedforward must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        self.mask_padding = bool(mask_padding)
        self.layout = _check_encoder_layout(layout, preprocessing)
        if layout is None:
            self.scaler = InputScaler(preprocessing)
            n_features, n_slots, n_event = N_FEATURES, N_OBJECTS, 0
            slot_types = torch.as_tensor(SLOT_CLASS_IDS, dtype=torch.long)
        else:
            n_features, n_slots = layout.n_features, int(layout.encoder_slots.size)
            n_event = _n_event(layout)
            slot_types = torch.as_tensor(layout.slot_group[layout.encoder_slots], dtype=torch.long)
        self.token = nn.Linear(n_features, d_model)
        self.type_embedding = nn.Embedding(int(slot_types.max()) + 1, d_model)
        self.register_buffer("slot_types", slot_types, persistent=False)
        self.slot_encoding = nn.Parameter(torch.zeros(n_slots, d_model))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.slot_encoding, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward, dropout, batch_first=True
        )
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model + n_event, latent_dim)

    @property
    def output_dim(self) -> int:
        return self.latent_dim

    def padding_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Key padding mask (N, 1 + 19): True where attention ignores the token."""
        pad = x[..., PT] <= 0
        pad[:, 0] = False  # MET is always attended
        cls = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
        return torch.cat([cls, pad], dim=1)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        event_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.layout is None:
            if padding_mask is not None or event_features is not None:
                raise ValueError(
                    "this Transformer takes raw ADC2021 particles only (built without a layout)"
                )
            x = check_input(x)
            mask = self.padding_mask(x) if self.mask_padding else None
            h = self.token(self.scaler(x))
        else:
            x, event_features = _check_layout_inputs(self.layout, x, event_features)
            mask = None
            if self.mask_padding:
                pad = (x == 0).all(dim=-1) if padding_mask is None else padding_mask.to(x.device)
                cls = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
                mask = torch.cat([cls, pad.bool()], dim=1)
            h = self.token(x)
        h = h + self.type_embedding(self.slot_types) + self.slot_encoding
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.layers(h, src_key_padding_mask=mask)
        z = self.norm(h[:, 0])
        if event_features is not None:
            z = torch.cat([z, event_features], dim=1)
        return self.out(z)
