"""Event encoders: (N, 19, 3) raw particles -> (N, D) embedding.

Every encoder takes the *raw* ADC2021 array ``(pT [GeV], eta, phi)`` (padded slots
all zero) and applies the fitted input preprocessing itself (:class:`InputScaler`,
built from :meth:`contrastx.events.Preprocessor.state_dict`), so a saved model
embeds raw events with no separate preprocessing step and padding is recognised
exactly as ``pT == 0`` on the raw input.

* :class:`MLPEncoder`: the primary paper's Fig. I backbone, four blocks of
  BatchNorm -> Linear -> LeakyReLU on the flattened 57 inputs.
* :class:`TransformerEncoder`: one token per object (19 tokens from (pT, eta, phi)
  plus an object-type embedding and a learned slot encoding), a CLS token that
  aggregates the event, Table IV sizes by default; padded objects are masked in
  attention (the MET slot never is).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..events.layout import N_FEATURES, N_OBJECTS, PT, SLOT_CLASS_IDS

MIN_LATENT_DIM = 2
MAX_LATENT_DIM = 64

__all__ = [
    "InputScaler",
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


def check_input(x: torch.Tensor) -> torch.Tensor:
    """Validate a raw particle batch: float tensor of shape (N, 19, 3)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or tuple(x.shape[1:]) != (N_OBJECTS, N_FEATURES):
        raise ValueError(
            f"input must have shape (N, {N_OBJECTS}, {N_FEATURES}) = (events, objects, "
            f"(pT, eta, phi)); got {tuple(x.shape)}"
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
        :meth:`Preprocessor.state_dict` for the built-in :class:`InputScaler`.

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
    ) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        hidden_dims = tuple(int(h) for h in hidden_dims)
        if len(hidden_dims) != 3 or min(hidden_dims) <= 0:
            raise ValueError(
                f"hidden_dims must be three positive widths (4 blocks in all); got {hidden_dims}"
            )
        self.scaler = InputScaler(preprocessing)
        dims = (N_OBJECTS * N_FEATURES, *hidden_dims, latent_dim)
        self.blocks = nn.Sequential(
            *(bn_linear_block(a, b, negative_slope) for a, b in itertools.pairwise(dims))
        )

    @property
    def output_dim(self) -> int:
        return self.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.scaler(check_input(x))
        return self.blocks(x.flatten(1))


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
        :meth:`Preprocessor.state_dict` for the built-in :class:`InputScaler`.

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
        self.scaler = InputScaler(preprocessing)
        self.token = nn.Linear(N_FEATURES, d_model)
        self.type_embedding = nn.Embedding(int(SLOT_CLASS_IDS.max()) + 1, d_model)
        self.register_buffer(
            "slot_types", torch.as_tensor(SLOT_CLASS_IDS, dtype=torch.long), persistent=False
        )
        self.slot_encoding = nn.Parameter(torch.zeros(N_OBJECTS, d_model))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.slot_encoding, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward, dropout, batch_first=True
        )
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, latent_dim)

    @property
    def output_dim(self) -> int:
        return self.latent_dim

    def padding_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Key padding mask (N, 1 + 19): True where attention ignores the token."""
        pad = x[..., PT] <= 0
        pad[:, 0] = False  # MET is always attended
        cls = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
        return torch.cat([cls, pad], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_input(x)
        mask = self.padding_mask(x) if self.mask_padding else None
        h = self.token(self.scaler(x)) + self.type_embedding(self.slot_types) + self.slot_encoding
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.layers(h, src_key_padding_mask=mask)
        return self.out(self.norm(h[:, 0]))
