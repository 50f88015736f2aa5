import numpy as np
import pytest
import torch
from contrastx.embed.encoders import InputScaler, MLPEncoder, TransformerEncoder
from contrastx.embed.heads import DINOHead, GaussianBlock, ProjectionHead, kl_to_standard_normal
from contrastx.embed.model import build_model, embed
from contrastx.events import Preprocessor


@pytest.mark.parametrize("encoder", ["mlp", "transformer"])
@pytest.mark.parametrize("d", [2, 4, 64])
def test_encoders_map_to_latent_dim(small_sample, encoder, d):
    kw = {"n_layers": 1} if encoder == "transformer" else {}
    m = build_model({"encoder": encoder, "latent_dim": d, "encoder_kwargs": kw})
    z = embed(m, small_sample[:50], batch_size=16)
    assert z.shape == (50, d) and z.dtype == np.float32 and np.isfinite(z).all()


def test_latent_dim_and_input_validation():
    with pytest.raises(ValueError, match="latent_dim"):
        MLPEncoder(latent_dim=1)
    with pytest.raises(ValueError, match="latent_dim"):
        TransformerEncoder(latent_dim=65)
    enc = MLPEncoder(latent_dim=4)
    with pytest.raises(ValueError, match=r"\(N, 19, 3\)"):
        enc(torch.zeros(2, 57))
    with pytest.raises(ValueError, match="NaN"):
        embed(enc, np.full((2, 19, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="unknown encoder"):
        build_model({"encoder": "cnn"})
    with pytest.raises(ValueError, match="unknown model config"):
        build_model({"encodr": "mlp"})
    with pytest.raises(RuntimeError, match=r"CUDA|GPU"):
        embed(enc, np.zeros((2, 19, 3), np.float32), device="cuda:99")


def test_mlp_structure_matches_fig1():
    m = build_model({"encoder": "mlp", "latent_dim": 8, "head": "projection"})
    blocks = list(m.encoder.blocks)
    assert len(blocks) == 4
    for b in blocks:
        assert [type(x).__name__ for x in b] == ["BatchNorm1d", "Linear", "LeakyReLU"]
    assert len(m.head.blocks) == 2
    # the projection head is not used by embed()
    x = torch.randn(5, 19, 3, generator=torch.Generator().manual_seed(1)).abs()
    m.eval()
    torch.testing.assert_close(m.embed(x), m.encoder(x))
    assert m(x)["projection"].shape == (5, 64)


def test_input_scaler_matches_preprocessor(small_sample):
    for kind in ("pt", "log_pt"):
        pre = Preprocessor(kind).fit(small_sample)
        ref = pre.transform(small_sample)
        got = InputScaler(pre.state_dict())(torch.from_numpy(small_sample.particles)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_transformer_masks_padding_but_not_met(small_sample):
    torch.manual_seed(0)
    enc = TransformerEncoder(latent_dim=4, n_layers=2).eval()
    x = torch.from_numpy(small_sample.particles[:8]).clone()
    mask = enc.padding_mask(x)
    assert mask.shape == (8, 20) and not mask[:, :2].any()
    # changing eta/phi of padded slots must not change the output (they are masked and zeroed)
    pad = x[..., 0] == 0
    pad[:, 0] = False
    assert pad.any()
    y = x.clone()
    y[..., 1][pad] = 3.0
    y[..., 2][pad] = -1.0
    torch.testing.assert_close(enc(x), enc(y))
    # MET with pT = 0 is still attended: its type/slot token matters
    x0 = x.clone()
    x0[:, 0, 0] = 0.0
    assert not enc.padding_mask(x0)[:, 1].any()
    # a padded slot's token (type + slot encoding) is ignored with masking, attended without
    assert pad[:, 18].all()
    before = enc(x)
    with torch.no_grad():
        enc.slot_encoding[18] += 1.0
    torch.testing.assert_close(enc(x), before)
    enc.mask_padding = False
    after_unmasked = enc(x)
    with torch.no_grad():
        enc.slot_encoding[18] -= 1.0
    assert not torch.allclose(enc(x), after_unmasked)


def test_transformer_defaults_table_iv():
    enc = TransformerEncoder(latent_dim=4)
    layer = enc.layers.layers[0]
    assert len(enc.layers.layers) == 4
    assert layer.self_attn.embed_dim == 64 and layer.self_attn.num_heads == 8
    assert layer.linear1.out_features == 256 and layer.dropout.p == 0.025
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TransformerEncoder(latent_dim=4, d_model=30, n_heads=8)


def test_dino_head_table_v():
    h = DINOHead(4)
    linears = [m for m in h.mlp if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [256, 256, 64]
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in h.modules())
    g = h.last_layer.parametrizations.weight.original0
    assert g.requires_grad and torch.all(g == 1)
    assert h(torch.randn(3, 4, generator=torch.Generator().manual_seed(2))).shape == (3, 64)
    frozen = DINOHead(4, norm_last_layer=True)
    assert not frozen.last_layer.parametrizations.weight.original0.requires_grad
    assert (
        len([m for m in DINOHead(4, use_bn=True).modules() if isinstance(m, torch.nn.BatchNorm1d)])
        == 2
    )


def test_projection_head_shapes():
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    assert ProjectionHead(4, 16, 8)(z).shape == (5, 8)


def test_gaussian_block_and_kl():
    torch.manual_seed(0)  # the block's weights and its training-mode sample
    g = GaussianBlock(6, 3)
    gen = torch.Generator().manual_seed(4)
    h = torch.randn(10, 6, generator=gen)
    z, mu, lv = g(h)
    assert not torch.allclose(z, mu)  # sampled in training mode
    g.eval()
    z, mu, _ = g(h)
    torch.testing.assert_close(z, mu)
    zero = torch.zeros(4, 3)
    assert float(kl_to_standard_normal(zero, zero)) == 0.0
    mu = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    lv = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    ref = 0.0
    for i in range(4):
        for d in range(3):
            s2 = np.exp(lv[i, d].item())
            m = mu[i, d].item()
            ref += 0.5 * (s2 + m * m - 1 - np.log(s2))
    assert abs(kl_to_standard_normal(mu, lv).item() - ref / 4) < 1e-12


def test_gaussian_model_embeds_mean(small_sample):
    m = build_model({"encoder": "mlp", "latent_dim": 6, "gaussian": True, "head": "projection"})
    a = embed(m, small_sample[:20])
    b = embed(m, small_sample[:20])
    np.testing.assert_array_equal(a, b)  # deterministic at inference
    m.train()
    out = m(torch.from_numpy(small_sample.particles[:20]))
    assert set(out) >= {"mu", "logvar", "embedding", "projection"}
