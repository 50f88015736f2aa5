import numpy as np
import pytest
import torch
from contrastx.embed import (
    VAE,
    LeadingPtBaseline,
    RawBaseline,
    embed,
    fit_vae,
    linear_evaluation,
    load_model,
    read_embedding,
    save_model,
    write_embedding,
)
from contrastx.embed.heads import kl_to_standard_normal


def test_raw_and_leading_pt(small_sample):
    z = embed(RawBaseline(), small_sample)
    np.testing.assert_array_equal(z, small_sample.particles.reshape(len(small_sample), 57))
    lp = embed(LeadingPtBaseline(), small_sample)
    p = small_sample.particles
    assert lp.shape == (len(small_sample), 6)
    for i in range(20):
        e = sorted(p[i, 1:5, 0], reverse=True)
        m = sorted(p[i, 5:9, 0], reverse=True)
        expected = [p[i, 0, 0], e[0], e[1], m[0], m[1], max(p[i, 9:, 0])]
        np.testing.assert_allclose(lp[i], expected)


def test_vae_architecture_and_loss(small_sample):
    torch.manual_seed(0)
    vae = VAE()
    assert [m[0].out_features for m in vae.encoder] == [32, 16]
    assert [type(x).__name__ for x in vae.encoder[0]] == ["Linear", "BatchNorm1d", "LeakyReLU"]
    assert vae.mean.out_features == 3 and vae.decoder[-1].out_features == 57
    x = torch.from_numpy(small_sample.particles[:64])
    vae.eval()
    out = vae(x)
    mse = torch.nn.functional.mse_loss(out["reconstruction"], out["input"])
    kl = kl_to_standard_normal(out["mu"], out["logvar"])
    torch.testing.assert_close(vae.loss(x), 0.2 * mse + 0.8 * kl)


def test_fit_vae_and_roundtrip(small_sample, tmp_path):
    vae, hist = fit_vae(small_sample, epochs=4, batch_size=64, seed=1)
    assert hist[-1] < hist[0]
    z = embed(vae, small_sample)
    assert z.shape == (len(small_sample), 6)
    path = save_model(tmp_path / "vae.pt", vae, vae.config())
    np.testing.assert_array_equal(load_model(path).embed(small_sample), z)


def test_linear_evaluation_separates_informative_embedding():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3, 4], 100)  # label 4 is a signal: excluded by default
    names = ("W", "QCD", "Z", "ttbar", "Ato4l")
    good = rng.normal(0, 0.3, (500, 2)) + np.stack([y, -y], 1)
    bad = rng.normal(0, 1, (500, 2))
    r_good = linear_evaluation(good, y, process_names=names)
    r_bad = linear_evaluation(bad, y, process_names=names)
    assert r_good.classes == (0, 1, 2, 3)
    assert r_good.mean > 0.9 and r_bad.mean < 0.45
    assert r_good.accuracies.shape == (5,) and r_good.sem >= 0
    with pytest.raises(ValueError, match="NaN"):
        linear_evaluation(np.full((10, 2), np.nan), np.zeros(10, int))


def test_embedding_file_roundtrip(tmp_path):
    z = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    y = np.arange(10) % 3
    p = write_embedding(
        tmp_path / "e.h5", z, y, ("W", "QCD", "Z"), source_file="ev.h5", model_config={"a": 1}
    )
    d = read_embedding(p)
    np.testing.assert_array_equal(d.embedding, z)
    assert d.labels.dtype == np.int64 and d.process_names == ("W", "QCD", "Z")
    assert d.source_file == "ev.h5" and d.model_config == {"a": 1}
    assert d.select("Z").shape == (3, 4)
    with pytest.raises(FileExistsError):
        write_embedding(p, z, y, ("W", "QCD", "Z"))
