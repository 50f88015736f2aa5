"""Particle Transformer encoder: sizes, padding invariance, references, gradients, presets."""

from __future__ import annotations

import json
import math

import pytest
import torch
from contrastx.embed.heads import GaussianBlock, ProjectionHead
from contrastx.embed.losses import supcon_kl_loss
from contrastx.embed.model import build_model
from contrastx.embed.particle_transformer import (
    CPU_ENCODER_KWARGS,
    PRESETS,
    AttentionBlock,
    ParticleTransformerEncoder,
    ParticleTransformerOptions,
    pair_features,
)
from contrastx.options import OptionsError, from_mapping, option_fields

DEFAULT_ENCODER_PARAMETERS = 1_151_566
"""Default encoder (4 + 2 blocks, d = 128, 8 heads, feed-forward 384, latent_dim 6)."""

TRAINING_MODEL_PARAMETERS = 1_157_600
"""The paper's training model: encoder without the last linear layer, four event-level
features, the Gaussian block (128 -> 6) and the two-layer projection head."""

TINY = {
    "n_features": 5,
    "embed_dims": (16,),
    "n_heads": 2,
    "ffn_ratio": 2,
    "n_particle_blocks": 2,
    "n_class_blocks": 1,
    "mlp_dims": (12,),
}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def objects(
    n_events: int = 6,
    n_objects: int = 7,
    n_features: int = 5,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Events with 1..n_objects filled objects (column 0 a positive pT, column 1 eta,
    column 2 phi), padded slots all zero; the last event is entirely padded."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_events, n_objects, n_features, generator=g, dtype=dtype)
    x[..., 0] = 20.0 + 100.0 * torch.rand(n_events, n_objects, generator=g, dtype=dtype)
    x[..., 2] = (2 * torch.rand(n_events, n_objects, generator=g, dtype=dtype) - 1) * math.pi
    n_filled = torch.randint(1, n_objects + 1, (n_events,), generator=g)
    n_filled[-1] = 0
    pad = torch.arange(n_objects)[None, :] >= n_filled[:, None]
    return x.masked_fill(pad[..., None], 0.0), pad


def encoder(seed: int = 0, **overrides) -> ParticleTransformerEncoder:
    torch.manual_seed(seed)
    return ParticleTransformerEncoder(latent_dim=4, **{**TINY, **overrides}).double()


# ------------------------------------------------------------------------------ sizes
def test_default_parameter_count():
    enc = ParticleTransformerEncoder()
    o = enc.options
    assert (o.n_particle_blocks, o.n_class_blocks, o.token_dim, o.n_heads) == (4, 2, 128, 8)
    assert n_params(enc) == DEFAULT_ENCODER_PARAMETERS


def test_training_model_parameter_count():
    model = build_model(
        {
            "encoder": "particle_transformer",
            "latent_dim": 6,
            "gaussian": True,
            "head": "projection",
            "encoder_kwargs": {"n_event_features": 4},
        }
    )
    assert isinstance(model.gaussian, GaussianBlock)
    assert model.gaussian.mean.in_features == 128  # the MLP's last hidden layer
    assert isinstance(model.head, ProjectionHead)
    assert n_params(model) == TRAINING_MODEL_PARAMETERS
    assert 1.0e6 < n_params(model) < 1.2e6


def test_cpu_preset_architecture():
    enc = ParticleTransformerEncoder(**CPU_ENCODER_KWARGS)
    o = enc.options
    assert (o.n_particle_blocks, o.n_class_blocks, o.token_dim) == (2, 1, 64)
    assert n_params(enc) < n_params(ParticleTransformerEncoder()) / 10


@pytest.mark.parametrize("n_event_features", [0, 3])
def test_output_shapes(n_event_features):
    x, _ = objects()
    enc = encoder(n_event_features=n_event_features).eval()
    ev = torch.randn(x.shape[0], 3, dtype=x.dtype) if n_event_features else None
    assert enc(x, event_features=ev).shape == (x.shape[0], 4)
    hidden = encoder(n_event_features=n_event_features, project=False).eval()
    assert hidden.output_dim == 12
    assert hidden(x, event_features=ev).shape == (x.shape[0], 12)


def test_build_model_shapes_and_embed():
    x, pad = objects(dtype=torch.float32)
    model = build_model(
        {
            "encoder": "particle_transformer",
            "latent_dim": 3,
            "gaussian": True,
            "head": "projection",
            "encoder_kwargs": {**TINY, "n_event_features": 2},
        }
    )
    ev = torch.randn(x.shape[0], 2)
    out = model(x, padding_mask=pad, event_features=ev)
    assert out["embedding"].shape == out["mu"].shape == out["logvar"].shape == (6, 3)
    assert out["projection"].shape == (6, 64)
    model.eval()
    torch.testing.assert_close(model.embed(x, event_features=ev), model(x, event_features=ev)["mu"])
    plain = build_model(
        {"encoder": "particle_transformer", "latent_dim": 3, "encoder_kwargs": TINY}
    )
    assert plain.gaussian is None and plain.encoder.output_dim == 3
    assert plain.eval().embed(x).shape == (6, 3)


def test_build_model_refuses_hidden_output_without_gaussian():
    cfg = {"encoder": "particle_transformer", "latent_dim": 3, "encoder_kwargs": {"project": False}}
    with pytest.raises(ValueError, match="must end at latent_dim"):
        build_model(cfg)


def test_settings_round_trip_through_json():
    enc = encoder(interaction_columns=(0, 1, 2), n_event_features=2)
    kwargs = json.loads(json.dumps(enc.settings()))
    torch.manual_seed(0)
    again = ParticleTransformerEncoder(latent_dim=4, **kwargs).double()
    again.load_state_dict(enc.state_dict())
    x, _ = objects()
    ev = torch.randn(x.shape[0], 2, dtype=x.dtype)
    torch.testing.assert_close(again.eval()(x, event_features=ev), enc.eval()(x, event_features=ev))


# ---------------------------------------------------------------------------- padding
def _scramble_padding(x: torch.Tensor, pad: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = 50.0 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return torch.where(pad[..., None], noise, x)


@pytest.mark.parametrize("pairs", [False, True])
def test_padded_values_do_not_change_the_output(pairs):
    x, pad = objects()
    kw = {"interaction_columns": (0, 1, 2)} if pairs else {}
    enc = encoder(**kw, n_event_features=2)
    ev = torch.randn(x.shape[0], 2, dtype=x.dtype)
    scrambled = _scramble_padding(x, pad, seed=1)
    scrambled[pad, 0] = scrambled[pad, 0].abs()  # any pT, even one that looks filled
    enc.eval()
    ref = enc(x, pad, ev)
    torch.testing.assert_close(enc(scrambled, pad, ev), ref, rtol=0, atol=1e-12)
    # Without an explicit mask the all-zero rows are the padding.
    torch.testing.assert_close(enc(x, None, ev), ref, rtol=0, atol=0)
    # Training mode (dropout, pair batch norm): the same random draws give the same output.
    enc.train()
    torch.manual_seed(5)
    a = enc(x, pad, ev)
    torch.manual_seed(5)
    b = enc(scrambled, pad, ev)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("pairs", [False, True])
def test_extra_padded_slots_do_not_change_the_output(pairs):
    x, pad = objects()
    kw = {"interaction_columns": (0, 1, 2)} if pairs else {}
    enc = encoder(**kw).eval()
    ref = enc(x)
    wider = torch.cat([x, torch.zeros(x.shape[0], 5, x.shape[2], dtype=x.dtype)], dim=1)
    torch.testing.assert_close(enc(wider), ref, rtol=0, atol=1e-12)
    # Each event alone with only its filled objects: the same embedding.
    for i in range(x.shape[0]):
        keep = ~pad[i]
        if keep.any():
            alone = enc(x[i : i + 1, keep])
            torch.testing.assert_close(alone, ref[i : i + 1], rtol=0, atol=1e-12)


def test_extra_padded_slots_do_not_change_training_mode_statistics():
    """Without dropout, a training-mode forward pass (pair features batch-normalised over the
    batch's valid pairs) is the same with more padded slots."""
    x, _ = objects()
    no_dropout = {"dropout": 0.0, "attn_dropout": 0.0, "activation_dropout": 0.0}
    enc = encoder(interaction_columns=(0, 1, 2), **no_dropout).train()
    norm = enc.pair_embed.norm
    ref = enc(x)
    assert int(norm.num_batches_tracked) == 1 and norm.running_mean.abs().min() > 0
    enc.eval()
    enc(x)
    assert int(norm.num_batches_tracked) == 1
    enc.train()
    wider = torch.cat([x, torch.zeros(x.shape[0], 5, x.shape[2], dtype=x.dtype)], dim=1)
    torch.testing.assert_close(enc(wider), ref, rtol=0, atol=1e-12)


def test_empty_event_is_finite_and_from_the_class_token_only():
    x, pad = objects()
    enc = encoder(interaction_columns=(0, 1, 2), n_event_features=2).eval()
    ev = torch.randn(x.shape[0], 2, dtype=x.dtype)
    out = enc(x, pad, ev)
    assert pad[-1].all() and torch.isfinite(out).all()
    # An entirely padded event: only the class token and the event features remain.
    one_slot = enc(torch.zeros(1, 1, 5, dtype=x.dtype), None, ev[-1:])
    torch.testing.assert_close(out[-1:], one_slot, rtol=0, atol=1e-12)


def test_filled_object_order_does_not_matter():
    x, _ = objects()
    enc = encoder(interaction_columns=(0, 1, 2)).eval()
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(enc(x[:, perm]), enc(x), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------- references
def _naive_attention(block: AttentionBlock, query: torch.Tensor, context: torch.Tensor,
                     attend: list[bool], bias=None) -> torch.Tensor:  # fmt: skip
    """One event: ``query`` (T, d) attends to the ``context`` (S, d) rows with attend[j]."""
    att = block.attn
    hd = att.head_dim
    q_all = query @ att.query.weight.T + att.query.bias
    kv = context @ att.key_value.weight.T + att.key_value.bias
    d = query.shape[1]
    k_all, v_all = kv[:, :d], kv[:, d:]
    rows = []
    for t in range(query.shape[0]):
        heads = []
        for h in range(att.n_heads):
            sl = slice(h * hd, (h + 1) * hd)
            logits = []
            for j in range(context.shape[0]):
                b = 0.0 if bias is None else float(bias[h, t, j])
                logits.append(float(q_all[t, sl] @ k_all[j, sl]) / math.sqrt(hd) + b)
            m = max(lg for lg, a in zip(logits, attend, strict=True) if a)
            w = [math.exp(lg - m) if a else 0.0 for lg, a in zip(logits, attend, strict=True)]
            s = sum(w)
            o = sum((wj / s) * v_all[j, sl] for j, wj in enumerate(w))
            heads.append(float(att.head_scale[h]) * o)
        rows.append(torch.cat(heads))
    return torch.stack(rows) @ att.out.weight.T + att.out.bias


def _naive_block_tail(block: AttentionBlock, residual: torch.Tensor, a: torch.Tensor):
    y = residual + block.attn_out_norm(a)
    f = block.fc2(block.ffn_mid_norm(torch.nn.functional.gelu(block.fc1(block.ffn_in_norm(y)))))
    return block.residual_scale * y + f


@torch.no_grad()
def test_class_attention_matches_a_naive_loop():
    torch.manual_seed(0)
    block = AttentionBlock(8, 2, 16).double().eval()
    with torch.no_grad():
        block.attn.head_scale.copy_(torch.tensor([0.7, 1.3]))
        block.residual_scale.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 8, generator=g, dtype=torch.float64)
    cls = torch.randn(3, 1, 8, generator=g, dtype=torch.float64)
    pad = torch.tensor([[False, False, True, True], [False] * 4, [True] * 4])
    mask = torch.cat([torch.ones(3, 1, dtype=torch.bool), ~pad], dim=1)[:, None, None, :]
    out = block(x, mask, cls=cls)
    for b in range(3):
        u = block.attn_in_norm(torch.cat([cls[b], x[b]]))
        attend = [True, *(~pad[b]).tolist()]
        a = _naive_attention(block, u[:1], u, attend)
        expected = _naive_block_tail(block, cls[b], a)
        torch.testing.assert_close(out[b], expected, rtol=1e-12, atol=1e-12)


@torch.no_grad()
def test_particle_attention_with_pair_bias_matches_a_naive_loop():
    torch.manual_seed(0)
    block = AttentionBlock(8, 2, 16).double().eval()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 8, generator=g, dtype=torch.float64)
    bias = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)
    pad = torch.tensor([[False, True, False, True], [False] * 4])
    mask = bias.masked_fill(pad[:, None, None, :], float("-inf"))
    out = block(x, mask)
    for b in range(2):
        h = block.attn_in_norm(x[b])
        a = _naive_attention(block, h, h, (~pad[b]).tolist(), bias[b])
        expected = _naive_block_tail(block, x[b], a)
        torch.testing.assert_close(out[b], expected, rtol=1e-12, atol=1e-12)


def test_pair_features_match_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    kin = torch.stack(
        [
            10 + 90 * torch.rand(2, 3, generator=g, dtype=torch.float64),
            torch.randn(2, 3, generator=g, dtype=torch.float64),
            (2 * torch.rand(2, 3, generator=g, dtype=torch.float64) - 1) * math.pi,
        ],
        dim=-1,
    )
    mass = torch.tensor([[0.0, 5.0, 80.0], [1.0, 0.0, 20.0]], dtype=torch.float64)
    energy = torch.sqrt((kin[..., 0] * torch.cosh(kin[..., 1])).square() + mass.square())
    for k in (kin, torch.cat([kin, energy[..., None]], dim=-1)):
        feats = pair_features(k)
        for b in range(2):
            for i in range(3):
                for j in range(3):
                    if i == j:
                        continue
                    pti, etai, phii = (float(v) for v in k[b, i, :3])
                    ptj, etaj, phij = (float(v) for v in k[b, j, :3])
                    dphi = (phii - phij + math.pi) % (2 * math.pi) - math.pi
                    dr = math.hypot(etai - etaj, dphi)

                    def p4(pt, eta, phi, e):
                        return (pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta), e)

                    ei = float(k[b, i, 3]) if k.shape[-1] == 4 else pti * math.cosh(etai)
                    ej = float(k[b, j, 3]) if k.shape[-1] == 4 else ptj * math.cosh(etaj)
                    s = [a + c for a, c in zip(p4(pti, etai, phii, ei), p4(ptj, etaj, phij, ej),
                                               strict=True)]  # fmt: skip
                    m2 = s[3] ** 2 - s[0] ** 2 - s[1] ** 2 - s[2] ** 2
                    expected = [
                        math.log(dr),
                        math.log(min(pti, ptj) * dr),
                        math.log(min(pti, ptj) / (pti + ptj)),
                        math.log(m2),
                    ]
                    torch.testing.assert_close(
                        feats[b, i, j], torch.tensor(expected, dtype=torch.float64),
                        rtol=1e-9, atol=1e-9,
                    )  # fmt: skip
        torch.testing.assert_close(feats, feats.transpose(1, 2))


# -------------------------------------------------------------------------- gradients
def test_gradients_reach_every_parameter():
    x, pad = objects(dtype=torch.float32)
    torch.manual_seed(0)
    model = build_model(
        {
            "encoder": "particle_transformer",
            "latent_dim": 3,
            "gaussian": True,
            "head": "projection",
            "encoder_kwargs": {**TINY, "n_event_features": 2, "interaction_columns": [0, 1, 2]},
        }
    )
    ev = torch.randn(x.shape[0], 2)
    out = model(x, padding_mask=pad, event_features=ev)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    supcon_kl_loss(out["projection"], labels, out["mu"], out["logvar"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_cpu_preset_learns_a_toy_separation():
    """Two classes whose objects differ by a shift of one feature: a few Adam steps of
    SupCon + KL on the CPU architecture pull their embeddings apart."""
    g = torch.Generator().manual_seed(0)
    n, n_obj = 128, 6
    x = torch.randn(n, n_obj, 12, generator=g)
    y = torch.arange(n) % 2
    x[..., 5] += y[:, None].float()
    x[:, 4:] = 0
    torch.manual_seed(0)
    model = build_model(
        {
            "encoder": "particle_transformer",
            "latent_dim": 6,
            "gaussian": True,
            "head": "projection",
            "encoder_kwargs": CPU_ENCODER_KWARGS,
        }
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def separation() -> float:
        model.eval()
        with torch.no_grad():
            z = model.embed(x)
        model.train()
        gap = (z[y == 0].mean(0) - z[y == 1].mean(0)).norm()
        spread = 0.5 * (z[y == 0].std(0).norm() + z[y == 1].std(0).norm())
        return float(gap / spread)

    before = separation()
    assert before < 1.0
    for _ in range(30):
        out = model(x)
        loss = supcon_kl_loss(out["projection"], y, out["mu"], out["logvar"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert separation() > 3.0


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_are_refused_with_clear_messages():
    enc = encoder(n_event_features=2).eval()
    x, pad = objects()
    ev = torch.zeros(x.shape[0], 2, dtype=x.dtype)
    with pytest.raises(ValueError, match=r"objects must have shape \(events, objects >= 1, 5"):
        enc(x[..., :4], event_features=ev)
    with pytest.raises(TypeError, match=r"objects must be a torch\.Tensor"):
        enc(x.numpy(), event_features=ev)
    with pytest.raises(TypeError, match="padding_mask must be boolean"):
        enc(x, pad.long(), ev)
    with pytest.raises(ValueError, match="padding_mask must have shape"):
        enc(x, pad[:, :3], ev)
    with pytest.raises(ValueError, match=r"event_features of shape .* are required"):
        enc(x)
    with pytest.raises(ValueError, match="event_features must have shape"):
        enc(x, event_features=ev[:, :1])
    with pytest.raises(ValueError, match="n_event_features = 0"):
        encoder()(x, event_features=ev)
    with pytest.raises(ValueError, match="no pair features"):
        encoder()(x, kinematics=x)


def test_pair_features_need_raw_pt():
    x, pad = objects()
    enc = encoder(interaction_columns=(3, 1, 2))  # column 3 is standard normal
    with pytest.raises(ValueError, match=r"raw pT .* in column 3 of objects"):
        enc(x)
    kin = x[..., :3].clone()
    enc = encoder(interaction_columns=(0, 1, 2)).eval()
    preprocessed = x.clone()
    preprocessed[..., 0] = torch.where(pad, 0.0, torch.log(x[..., 0]) - 4.0)
    with pytest.raises(ValueError, match="pass the raw kinematics as kinematics="):
        enc(preprocessed, pad)
    assert enc(preprocessed, pad, kinematics=kin).shape == (x.shape[0], 4)
    with pytest.raises(ValueError, match="out of range for kinematics with 2 columns"):
        enc(preprocessed, pad, kinematics=kin[..., :2])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"interaction_columns": (0, 1)}, "particle_transformer.interaction_columns must name 3"),
        ({"interaction_columns": (0, 1, 1)}, "distinct columns"),
        ({"embed_dims": (30,), "n_heads": 4}, r"must be a multiple of particle_transformer.n_h"),
        ({"n_class_blocks": 0}, "particle_transformer.n_class_blocks"),
        ({"dropout": 1.0}, "particle_transformer.dropout"),
        ({"n_layers": 2}, "unknown key particle_transformer.n_layers"),
    ],
)
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(OptionsError, match=message):
        ParticleTransformerEncoder(**settings)


def test_preprocessing_state_is_refused():
    with pytest.raises(ValueError, match="takes preprocessed object features"):
        ParticleTransformerEncoder(preprocessing={"kind": "pt"})
    with pytest.raises(TypeError, match="either options or keyword settings"):
        ParticleTransformerEncoder(options=ParticleTransformerOptions(), n_features=3)


# ---------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_train_configs(name):
    from contrastx.embed.training import TrainConfig

    preset = PRESETS[name]
    assert set(preset) <= {f.name for f in option_fields(TrainConfig)}
    # Every value validates as a TrainConfig once the encoder name is one it knows.
    cfg = from_mapping(TrainConfig, {**preset, "encoder": "transformer"})
    assert (cfg.method, cfg.latent_dim, cfg.sampling, cfg.augmentation) == (
        "supcon_kl", 6, "balanced", None,
    )  # fmt: skip
    enc = ParticleTransformerEncoder(latent_dim=cfg.latent_dim, **preset["encoder_kwargs"])
    assert enc.output_dim == 6


def test_paper_preset_values():
    p = PRESETS["supcon-kl-particle-transformer"]
    assert (p["batch_size"], p["optimizer"], p["warmup_epochs"], p["patience"]) == (
        8192, "adam", 5, 10,
    )  # fmt: skip
    assert p["encoder_kwargs"] == {}  # the default 4 + 2 architecture


# ------------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_and_trains():
    x, pad = objects(dtype=torch.float32)
    enc = encoder(interaction_columns=(0, 1, 2), n_event_features=2).float().eval()
    ev = torch.randn(x.shape[0], 2)
    ref = enc(x, pad, ev)
    gpu = enc.to("cuda")
    out = gpu(x.cuda(), pad.cuda(), ev.cuda())
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    gpu.train()
    gpu(x.cuda(), pad.cuda(), ev.cuda()).square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in gpu.parameters() if p.grad is not None)
