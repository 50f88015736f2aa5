"""Particle Transformer encoder: objects (B, N, F) [+ event features (B, E)] -> (B, D).

The encoder of Li, Nachman, Noll ("Signal-Aware Contrastive Latent Spaces for Anomaly
Detection"), after the Particle Transformer (ParT) of Qu, Li, Qian (arXiv 2202.03772):

1. every object (a row of ``F`` preprocessed features) is embedded by
   ``LayerNorm -> Linear -> GELU`` layers (``embed_dims``) into a token of width ``d``;
2. ``n_particle_blocks`` *particle attention blocks* (pre-norm multi-head self-attention
   with ParT's extra normalisations and head / residual scales) update the tokens; with
   ``interaction_columns`` set, ParT's pairwise interaction features
   (``ln dR``, ``ln kT``, ``ln z``, ``ln m^2`` of every pair of filled objects) are
   embedded per pair and added to the attention logits as a bias, one per head;
3. ``n_class_blocks`` *class attention blocks* (CaiT, Touvron et al. 2021) let a learned
   class token attend to itself and the filled objects; its normalised output summarises
   the event;
4. the class token is concatenated with the event-level features and passed through an
   MLP (``mlp_dims``, ``Linear -> GELU``); with ``project`` a last linear layer maps it to
   the embedding dimension, otherwise the MLP's last hidden layer is the output (for an
   output block such as :class:`~contrastx.embed.heads.GaussianBlock`, which
   :func:`~contrastx.embed.model.build_model` adds for ``gaussian=True``).

Padding: a padded object (by default an all-zero row; or as given by ``padding_mask``)
is zeroed on input, never attended to (particle and class attention mask it as a key)
and excluded from the pair features and their normalisation, so neither its values nor
the number of padded slots change the output.
The model has no slot encoding: the object order only matters through the features
(the layouts carry a one-hot object type). An event without any filled object is
embedded from the class token and its event-level features alone.

The inputs are *preprocessed* features (e.g. log pT and masses, standardised over filled
objects, padding at zero); pair features need *raw* kinematics (pT in GeV > 0, eta,
phi[, E]), read from the columns ``interaction_columns`` of ``kinematics`` (or of the
objects themselves when no ``kinematics`` tensor is given).

The module also holds the training presets of this encoder (:data:`PRESETS`): the
paper's setup and a CPU-sized one, as :class:`~contrastx.embed.training.TrainConfig`
mappings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..options import OptionsError, from_mapping, key_name, option, options
from ..options import to_dict as options_to_dict
from .encoders import check_latent_dim

__all__ = [
    "CPU_ENCODER_KWARGS",
    "PAIR_FEATURES",
    "PRESETS",
    "AttentionBlock",
    "MultiHeadAttention",
    "PairEmbedding",
    "ParticleTransformerEncoder",
    "ParticleTransformerOptions",
    "pair_features",
]

PAIR_FEATURES = ("ln_delta_r", "ln_kt", "ln_z", "ln_m2")
"""The pairwise interaction features of ParT, in the order :func:`pair_features` returns."""

_EPS = 1e-8


@options(section="particle_transformer")
class ParticleTransformerOptions:
    """Architecture of :class:`ParticleTransformerEncoder` (defaults: the paper's 4 + 2 blocks).

    The token width, heads and feed-forward expansion follow ParT except the
    feed-forward expansion (3 instead of ParT's 4), which brings the 4 + 2 block model to
    the paper's "approximately 1.1M trainable parameters".
    """

    n_features: int = option(12, "Features per object F (the diphoton layout: 12).", ge=1)
    n_event_features: int = option(
        0, "Event-level features E concatenated with the class token (0: none).", ge=0
    )
    embed_dims: tuple[int, ...] = option(
        (128, 512, 128),
        "Widths of the per-object embedding layers (LayerNorm -> Linear -> GELU); the last "
        "is the token width d.",
        ge=1,
    )
    n_heads: int = option(8, "Attention heads (d must be a multiple).", ge=1)
    ffn_ratio: int = option(3, "Feed-forward width of every block, as a multiple of d.", ge=1)
    n_particle_blocks: int = option(4, "Particle (self-)attention blocks.", ge=0)
    n_class_blocks: int = option(2, "Class attention blocks.", ge=1)
    dropout: float = option(
        0.1, "Dropout on the attention and feed-forward outputs (particle blocks).", ge=0, lt=1
    )
    attn_dropout: float = option(
        0.1, "Dropout on the attention weights (particle blocks).", ge=0, lt=1
    )
    activation_dropout: float = option(
        0.1, "Dropout after the feed-forward activation (particle blocks).", ge=0, lt=1
    )
    mlp_dims: tuple[int, ...] = option(
        (128,),
        "Widths of the MLP (Linear -> GELU) on the class token and the event features.",
        ge=1,
    )
    project: bool = option(
        True,
        "End with a linear layer to the embedding dimension; false: the MLP's last hidden "
        "layer is the output (for an output block such as the Gaussian block).",
    )
    interaction_columns: tuple[int, ...] = option(
        (),
        "Columns (pT, eta, phi) or (pT, eta, phi, E) of the raw kinematics from which the "
        "pairwise interaction features are computed; empty: no pair features.",
        ge=0,
    )
    pair_embed_dims: tuple[int, ...] = option(
        (64, 64, 64), "Hidden widths of the per-pair MLP giving one attention bias per head.", ge=1
    )

    def _check(self) -> None:
        if not self.embed_dims:
            raise OptionsError(f"{key_name(self, 'embed_dims')} must name at least one width")
        d = self.embed_dims[-1]
        if d % self.n_heads:
            raise OptionsError(
                f"{key_name(self, 'embed_dims')}[-1] (the token width, {d}) must be a multiple "
                f"of {key_name(self, 'n_heads')} ({self.n_heads})"
            )
        if not self.mlp_dims:
            raise OptionsError(f"{key_name(self, 'mlp_dims')} must name at least one width")
        cols = self.interaction_columns
        if cols and len(cols) not in (3, 4):
            raise OptionsError(
                f"{key_name(self, 'interaction_columns')} must name 3 columns (pT, eta, phi) "
                f"or 4 (pT, eta, phi, E); got {cols}"
            )
        if len(set(cols)) != len(cols):
            raise OptionsError(
                f"{key_name(self, 'interaction_columns')} must name distinct columns; got {cols}"
            )
        if cols and not self.pair_embed_dims:
            raise OptionsError(f"{key_name(self, 'pair_embed_dims')} must name at least one width")

    @property
    def token_dim(self) -> int:
        """The token width d (last embedding width)."""
        return self.embed_dims[-1]


# ----------------------------------------------------------------------------- pairs
def pair_features(kinematics: torch.Tensor) -> torch.Tensor:
    """ParT's pairwise interaction features of every pair of objects.

    For objects ``a`` and ``b`` with transverse momenta ``pT``, pseudorapidities and
    azimuths: ``ln dR`` (``dR^2 = d_eta^2 + d_phi^2``, ``d_phi`` wrapped into
    ``[-pi, pi)``), ``ln kT`` (``kT = min(pT_a, pT_b) dR``), ``ln z``
    (``z = min(pT_a, pT_b) / (pT_a + pT_b)``) and ``ln m^2`` of the pair's four-momentum
    sum; every argument of a logarithm is clamped at ``1e-8``.

    Parameters
    ----------
    kinematics : Tensor, shape (B, N, 3) or (B, N, 4)
        ``(pT, eta, phi)`` (massless four-momenta, ``E = pT cosh eta``) or
        ``(pT, eta, phi, E)``.

    Returns
    -------
    Tensor, shape (B, N, N, 4)
        The features in the order of :data:`PAIR_FEATURES`; symmetric in the two object
        indices.
    """
    pt, eta, phi = kinematics[..., 0], kinematics[..., 1], kinematics[..., 2]
    energy = kinematics[..., 3] if kinematics.shape[-1] == 4 else pt * torch.cosh(eta)
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)

    def pairs(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return v.unsqueeze(-1), v.unsqueeze(-2)

    (pt_a, pt_b), (eta_a, eta_b), (phi_a, phi_b) = pairs(pt), pairs(eta), pairs(phi)
    dphi = torch.remainder(phi_a - phi_b + math.pi, 2 * math.pi) - math.pi
    delta = torch.sqrt((eta_a - eta_b).square() + dphi.square())
    pt_min = torch.minimum(pt_a, pt_b)
    ln_delta = torch.log(delta.clamp(min=_EPS))
    ln_kt = torch.log((pt_min * delta).clamp(min=_EPS))
    ln_z = torch.log((pt_min / (pt_a + pt_b).clamp(min=_EPS)).clamp(min=_EPS))
    e_sum = energy.unsqueeze(-1) + energy.unsqueeze(-2)
    p2 = sum((v.unsqueeze(-1) + v.unsqueeze(-2)).square() for v in (px, py, pz))
    ln_m2 = torch.log((e_sum.square() - p2).clamp(min=_EPS))
    return torch.stack([ln_delta, ln_kt, ln_z, ln_m2], dim=-1)


class PairEmbedding(nn.Module):
    """Per-pair MLP from the interaction features to one attention bias per head.

    The features of the valid pairs (two distinct filled objects) are batch-normalised
    over the valid pairs only and passed through ``Linear -> GELU`` layers and a last
    linear layer to ``n_heads``; every other pair (padding, and an object with itself)
    gets a zero bias.

    Parameters
    ----------
    n_heads : int
        Attention heads (outputs per pair).
    hidden_dims : tuple of int
        Hidden widths of the MLP.
    """

    def __init__(self, n_heads: int, hidden_dims: tuple[int, ...] = (64, 64, 64)) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm = nn.BatchNorm1d(len(PAIR_FEATURES))
        layers: list[nn.Module] = []
        width = len(PAIR_FEATURES)
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, n_heads))
        self.mlp = nn.Sequential(*layers)
        # Set while the model trains over several processes (see
        # contrastx.embed.distributed.synchronised_batch_norm): f(features, self.norm)
        # normalises with the statistics of the pairs of every process.
        self.distributed_batch_norm = None

    def forward(self, kinematics: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """Attention biases (B, H, N, N) from raw kinematics (B, N, 3|4) and padding (B, N)."""
        b, n = padding.shape
        filled = ~padding
        valid = filled.unsqueeze(-1) & filled.unsqueeze(-2)
        valid &= ~torch.eye(n, dtype=torch.bool, device=padding.device)
        feats = pair_features(kinematics)[valid]  # (P, 4)
        # Batch statistics over the valid pairs only; running statistics where the batch
        # has too few pairs to normalise (BatchNorm needs two values per channel).
        use_batch = self.training and feats.shape[0] > 1
        if self.training and self.distributed_batch_norm is not None:
            feats = self.distributed_batch_norm(feats, self.norm)
        else:
            feats = F.batch_norm(
                feats,
                self.norm.running_mean,
                self.norm.running_var,
                self.norm.weight,
                self.norm.bias,
                training=use_batch,
                momentum=self.norm.momentum if use_batch else 0.0,
                eps=self.norm.eps,
            )
            if use_batch:
                self.norm.num_batches_tracked.add_(1)
        out = self.mlp(feats)
        bias = out.new_zeros(b, n, n, self.n_heads)
        bias = bias.index_put((valid,), out)
        return bias.permute(0, 3, 1, 2)


# ------------------------------------------------------------------------- attention
class MultiHeadAttention(nn.Module):
    """Multi-head attention with a learned per-head output scale (ParT's ``c_attn``).

    ``softmax(q k^T / sqrt(d_head) + bias) v`` per head (torch's
    :func:`~torch.nn.functional.scaled_dot_product_attention`), each head's output
    multiplied by a learned scale (initialised to 1), then the output projection.

    Parameters
    ----------
    dim : int
        Token width d.
    n_heads : int
        Heads (``dim`` must be a multiple).
    attn_dropout : float
        Dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, n_heads: int, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.attn_dropout = attn_dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.head_scale = nn.Parameter(torch.ones(n_heads))

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Attend from ``query`` (B, T, d) to ``context`` (B, S, d).

        ``mask`` is boolean (True: attend), broadcastable to (B, H, T, S), or a float
        bias of that shape with ``-inf`` at the keys not attended to. Every query must
        attend to at least one key.
        """
        b, t, dim = query.shape
        s = context.shape[1]
        q = self.query(query).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        kv = self.key_value(context).view(b, s, 2, self.n_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0
        )
        o = o * self.head_scale.view(1, -1, 1, 1).to(o.dtype)
        return self.out(o.transpose(1, 2).reshape(b, t, dim))


class AttentionBlock(nn.Module):
    """ParT's transformer block: particle attention, or class attention with ``cls``.

    ``y = x + Dropout(LN(Attn(LN(x))))``, then
    ``out = w * y + Dropout(fc2(LN(Dropout(GELU(fc1(LN(y)))))))`` with a learned
    per-channel residual scale ``w`` (initialised to 1). In class-attention mode the
    class token (B, 1, d) is the query and the residual, and attends to the normalised
    ``[class token, objects]``.

    Parameters
    ----------
    dim, n_heads, ffn_dim : int
        Token width, heads, feed-forward width.
    dropout, attn_dropout, activation_dropout : float
        Dropout rates (see :class:`ParticleTransformerOptions`).
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        activation_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.attn_in_norm = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads, attn_dropout)
        self.attn_out_norm = nn.LayerNorm(dim)
        self.ffn_in_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.ffn_mid_norm = nn.LayerNorm(ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.residual_scale = nn.Parameter(torch.ones(dim))
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cls: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Particle attention on ``x`` (B, N, d); with ``cls`` (B, 1, d), class attention.

        ``mask``: see :meth:`MultiHeadAttention.forward` (keys are the N objects, or the
        class token followed by the N objects).
        """
        if cls is None:
            residual = x
            h = self.attn_in_norm(x)
            a = self.attn(h, h, mask)
        else:
            residual = cls
            u = self.attn_in_norm(torch.cat([cls, x], dim=1))
            a = self.attn(u[:, :1], u, mask)
        y = residual + self.dropout(self.attn_out_norm(a))
        f = self.activation_dropout(F.gelu(self.fc1(self.ffn_in_norm(y))))
        f = self.fc2(self.ffn_mid_norm(f))
        return self.residual_scale * y + self.dropout(f)


# --------------------------------------------------------------------------- encoder
def _check_tensor(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    return x


class ParticleTransformerEncoder(nn.Module):
    """Particle Transformer with class attention and an event-feature MLP.

    See the module documentation for the architecture and the padding rules.

    Parameters
    ----------
    latent_dim : int
        Embedding dimension D in [2, 64] (the output width with ``project``).
    preprocessing : None
        Must be None: the encoder takes preprocessed features (accepted as a keyword for
        :func:`~contrastx.embed.model.build_model`, which passes it to every encoder).
    options : ParticleTransformerOptions, optional
        The architecture; or give its settings as keywords (``n_features=11, ...``),
        validated by :class:`ParticleTransformerOptions`.

    Attributes
    ----------
    options : ParticleTransformerOptions
    output_dim : int
        ``latent_dim`` with ``project``, else the last MLP width.

    Examples
    --------
    >>> import torch
    >>> enc = ParticleTransformerEncoder(
    ...     latent_dim=4, n_features=5, n_event_features=2, embed_dims=(16,), n_heads=2,
    ...     n_particle_blocks=1, n_class_blocks=1, mlp_dims=(16,),
    ... ).eval()
    >>> x = torch.randn(3, 7, 5)
    >>> x[:, 4:] = 0  # three padded objects per event
    >>> enc(x, event_features=torch.randn(3, 2)).shape
    torch.Size([3, 4])
    """

    def __init__(
        self,
        latent_dim: int = 6,
        preprocessing: Mapping[str, Any] | None = None,
        options: ParticleTransformerOptions | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        if preprocessing is not None:
            raise ValueError(
                "the particle transformer takes preprocessed object features and has no "
                "built-in input preprocessing; got a preprocessing state (preprocess the "
                "events with their layout's preprocessing and pass preprocessing=None)"
            )
        if options is not None and settings:
            raise TypeError(
                f"give either options or keyword settings, not both; got {sorted(settings)}"
            )
        if options is None:
            options = from_mapping(ParticleTransformerOptions, settings)
        elif not isinstance(options, ParticleTransformerOptions):
            raise TypeError(
                f"options must be a ParticleTransformerOptions; got {type(options).__name__}"
            )
        self.options = o = options
        d = o.token_dim

        layers: list[nn.Module] = []
        width = o.n_features
        for w in o.embed_dims:
            layers += [nn.LayerNorm(width), nn.Linear(width, w), nn.GELU()]
            width = w
        self.embed = nn.Sequential(*layers)
        self.pair_embed = (
            PairEmbedding(o.n_heads, o.pair_embed_dims) if o.interaction_columns else None
        )
        self.particle_blocks = nn.ModuleList(
            AttentionBlock(
                d, o.n_heads, o.ffn_ratio * d, o.dropout, o.attn_dropout, o.activation_dropout
            )
            for _ in range(o.n_particle_blocks)
        )
        # ParT: no dropout in the class attention blocks.
        self.class_blocks = nn.ModuleList(
            AttentionBlock(d, o.n_heads, o.ffn_ratio * d) for _ in range(o.n_class_blocks)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.norm = nn.LayerNorm(d)
        mlp: list[nn.Module] = []
        width = d + o.n_event_features
        for w in o.mlp_dims:
            mlp += [nn.Linear(width, w), nn.GELU()]
            width = w
        if o.project:
            mlp.append(nn.Linear(width, self.latent_dim))
            width = self.latent_dim
        self.mlp = nn.Sequential(*mlp)
        self._output_dim = width

    @property
    def output_dim(self) -> int:
        return self._output_dim

    def settings(self) -> dict[str, Any]:
        """The architecture as a JSON-friendly dict (``encoder_kwargs`` of a model config)."""
        return options_to_dict(self.options)

    def _check_inputs(
        self,
        objects: Any,
        padding_mask: Any,
        event_features: Any,
        kinematics: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        o = self.options
        x = _check_tensor(objects, "objects")
        if x.dim() != 3 or x.shape[-1] != o.n_features or x.shape[1] < 1:
            raise ValueError(
                f"objects must have shape (events, objects >= 1, {o.n_features} features); "
                f"got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"objects must be floating point; got {x.dtype}")
        b, n = x.shape[:2]
        if padding_mask is None:
            pad = (x == 0).all(dim=-1)
        else:
            pad = _check_tensor(padding_mask, "padding_mask")
            if pad.dtype != torch.bool:
                raise TypeError(f"padding_mask must be boolean (True: padded); got {pad.dtype}")
            if tuple(pad.shape) != (b, n):
                raise ValueError(
                    f"padding_mask must have shape {(b, n)} (events, objects); "
                    f"got {tuple(pad.shape)}"
                )
            pad = pad.to(x.device)
        ev = None
        if o.n_event_features:
            if event_features is None:
                raise ValueError(
                    f"event_features of shape ({b}, {o.n_event_features}) are required "
                    f"(n_event_features = {o.n_event_features})"
                )
            ev = _check_tensor(event_features, "event_features")
            if tuple(ev.shape) != (b, o.n_event_features):
                raise ValueError(
                    f"event_features must have shape {(b, o.n_event_features)}; "
                    f"got {tuple(ev.shape)}"
                )
            if not ev.is_floating_point():
                raise TypeError(f"event_features must be floating point; got {ev.dtype}")
            ev = ev.to(x.device, x.dtype)
        elif event_features is not None:
            raise ValueError(
                "event_features given but the encoder has n_event_features = 0; build it "
                "with n_event_features set to their number"
            )
        kin = None
        if o.interaction_columns:
            src = x if kinematics is None else _check_tensor(kinematics, "kinematics")
            if src.dim() != 3 or tuple(src.shape[:2]) != (b, n):
                raise ValueError(
                    f"kinematics must have shape ({b}, {n}, columns); got {tuple(src.shape)}"
                )
            if max(o.interaction_columns) >= src.shape[-1]:
                raise ValueError(
                    f"interaction_columns {o.interaction_columns} out of range for "
                    f"{'objects' if kinematics is None else 'kinematics'} with "
                    f"{src.shape[-1]} columns"
                )
            kin = src[..., list(o.interaction_columns)].to(x.device, x.dtype)
            if bool((kin[..., 0] <= 0)[~pad].any()):
                raise ValueError(
                    f"pair features need the raw pT (> 0 for every filled object) in column "
                    f"{o.interaction_columns[0]} of "
                    f"{'objects' if kinematics is None else 'kinematics'}; pass the raw "
                    "kinematics as kinematics= when the objects are preprocessed"
                )
            kin = kin.masked_fill(pad.unsqueeze(-1), 0.0)
        elif kinematics is not None:
            raise ValueError(
                "kinematics given but the encoder computes no pair features (set "
                "interaction_columns)"
            )
        return x, pad, ev, kin

    def forward(
        self,
        objects: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        event_features: torch.Tensor | None = None,
        kinematics: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed a batch of events.

        Parameters
        ----------
        objects : Tensor, shape (B, N, F), float
            Preprocessed object features.
        padding_mask : Tensor of bool, shape (B, N), optional
            True where the slot is padding; default: the all-zero rows of ``objects``.
        event_features : Tensor, shape (B, E), optional
            Event-level features (required when ``n_event_features > 0``).
        kinematics : Tensor, shape (B, N, C), optional
            Raw kinematics for the pair features (columns ``interaction_columns``);
            default: the columns of ``objects``.

        Returns
        -------
        Tensor, shape (B, output_dim)
        """
        x, pad, ev, kin = self._check_inputs(objects, padding_mask, event_features, kinematics)
        b = x.shape[0]
        h = self.embed(x.masked_fill(pad.unsqueeze(-1), 0.0))
        if self.particle_blocks:
            # An event without filled objects attends to all its slots in the particle
            # blocks so that no softmax row is empty; the class attention masks them all.
            empty = pad.all(dim=1, keepdim=True)
            attend = (~pad | empty)[:, None, None, :]  # (B, 1, 1, N)
            if self.pair_embed is not None:
                bias = self.pair_embed(kin, pad)
                mask = bias.masked_fill(~attend, float("-inf"))
            else:
                mask = attend
            for block in self.particle_blocks:
                h = block(h, mask)
        cls = self.cls_token.to(h.dtype).expand(b, 1, -1)
        attend_cls = torch.cat([torch.ones_like(pad[:, :1]), ~pad], dim=1)[:, None, None, :]
        for block in self.class_blocks:
            cls = block(h, attend_cls, cls=cls)
        z = self.norm(cls[:, 0])
        if ev is not None:
            z = torch.cat([z, ev], dim=1)
        return self.mlp(z)


# --------------------------------------------------------------------------- presets
CPU_ENCODER_KWARGS: dict[str, Any] = {
    "embed_dims": [64],
    "n_heads": 4,
    "ffn_ratio": 2,
    "n_particle_blocks": 2,
    "n_class_blocks": 1,
    "dropout": 0.0,
    "attn_dropout": 0.0,
    "activation_dropout": 0.0,
    "mlp_dims": [64],
}
"""The CPU-sized architecture: 2 + 1 blocks of width 64 (4 heads, feed-forward 128), a
single-layer object embedding, no dropout."""

# Li, Nachman, Noll: SupCon + KL, batch 8192 with uniform per-class sampling, Adam with 5
# epochs of linear warm-up and cosine annealing, <= 100 epochs, early stopping with
# patience 10, D = 6, no augmentation, a two-layer projection head. Their learning rate,
# temperature and KL weight are not legible in our copy of the paper: 1e-3, 0.1 and 0.1
# here (as the supcon-kl-transformer preset).
_PAPER_PRESET: dict[str, Any] = {
    "method": "supcon_kl",
    "encoder": "particle_transformer",
    "latent_dim": 6,
    "batch_size": 8192,
    "epochs": 100,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "warmup_epochs": 5,
    "sampling": "balanced",
    "augmentation": None,
    "patience": 10,
    "head": "projection",
    "temperature": 0.1,
    "kl_weight": 0.1,
    "encoder_kwargs": {},
}

PRESETS: dict[str, dict[str, Any]] = {
    "supcon-kl-particle-transformer": _PAPER_PRESET,
    # Not from the paper: the same objective with CPU_ENCODER_KWARGS and batch 1024 (more
    # steps per event), 30 epochs.
    "supcon-kl-particle-transformer-cpu": {
        **_PAPER_PRESET,
        "batch_size": 1024,
        "epochs": 30,
        "warmup_epochs": 3,
        "encoder_kwargs": dict(CPU_ENCODER_KWARGS),
    },
}
"""Training presets of this encoder as :class:`~contrastx.embed.training.TrainConfig`
mappings (``encoder_kwargs`` add the layout's ``n_features`` / ``n_event_features``)."""
