import math

import numpy as np
import pytest
import torch
from contrastx.embed.augmentations import (
    Compose,
    DetectorCropping,
    GaussianResampling,
    NaiveMasking,
    PhiRotation,
    PtSmearing,
    parse_augmentation,
    wrap_phi,
)

ALL = [
    NaiveMasking(0.5),
    GaussianResampling(0.2),
    PtSmearing(0.2),
    PhiRotation(),
    DetectorCropping(1.0),
    DetectorCropping(1.0, center="random"),
    Compose([PhiRotation(), NaiveMasking(0.3)]),
]


@pytest.fixture
def x(small_sample):
    return torch.from_numpy(small_sample.particles[:200]).clone()


@pytest.mark.parametrize("aug", ALL, ids=repr)
def test_seeded_padding_preserved_and_input_untouched(x, aug):
    x0 = x.clone()
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(x, x0)
    pad = x[..., 0] == 0
    assert (a[pad] == 0).all()
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert (a[..., 2].abs() <= math.pi + 1e-6).all()


def test_masking_probability(x):
    a = NaiveMasking(0.5)(x, torch.Generator().manual_seed(0))
    filled = x != 0
    frac = ((a == 0) & filled).sum() / filled.sum()
    assert abs(frac.item() - 0.5) < 0.03
    assert torch.equal(NaiveMasking(0.0)(x), x)
    assert (NaiveMasking(1.0)(x) == 0).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NaiveMasking(1.5)


def test_rotation_one_angle_per_event(x):
    a = PhiRotation()(x, torch.Generator().manual_seed(1))
    filled = x[..., 0] > 0
    d = wrap_phi(a[..., 2] - x[..., 2])
    for i in range(20):
        di = d[i][filled[i]]
        assert torch.allclose(wrap_phi(di - di[0]), torch.zeros_like(di), atol=1e-5)
    # pT and eta unchanged
    torch.testing.assert_close(a[..., :2], x[..., :2])


def test_cropping_radius(x):
    r = 0.8
    a = DetectorCropping(r)(x)
    vis = x[:, 1:]
    lead = vis[..., 0].argmax(1)
    for i in range(50):
        if vis[i, :, 0].max() == 0:
            continue
        ce, cp = vis[i, lead[i], 1].item(), vis[i, lead[i], 2].item()
        for s in range(18):
            if vis[i, s, 0] == 0:
                continue
            dphi = (vis[i, s, 2].item() - cp + math.pi) % (2 * math.pi) - math.pi
            inside = (vis[i, s, 1].item() - ce) ** 2 + dphi**2 <= r * r
            kept = a[i, s + 1, 0].item() > 0
            assert kept == inside
    torch.testing.assert_close(a[:, 0], x[:, 0])  # MET kept


def test_smearing_and_gauss(x):
    a = PtSmearing(0.1)(x, torch.Generator().manual_seed(0))
    filled = x[..., 0] > 0
    ratio = a[..., 0][filled] / x[..., 0][filled]
    assert abs(ratio.std().item() - 0.1) < 0.02 and (ratio > 0).all()
    g = GaussianResampling(0.1, features=("eta",))(x, torch.Generator().manual_seed(0))
    assert (g[:, 0, 1] == 0).all()  # MET eta untouched
    torch.testing.assert_close(g[..., 2], x[..., 2])
    with pytest.raises(ValueError, match="PtSmearing"):
        GaussianResampling(features=("pt",))


def test_parse_augmentation():
    aug = parse_augmentation("mask:0.25,rotate,crop:1.2:random")
    assert isinstance(aug, Compose) and len(aug.augmentations) == 3
    assert aug.augmentations[0].p == 0.25 and aug.augmentations[2].center == "random"
    with pytest.raises(ValueError, match="unknown augmentation"):
        parse_augmentation("flip")
    with pytest.raises(ValueError, match=r"\(N, 19, 3\)"):
        NaiveMasking()(torch.zeros(3, 57))


def test_vectorised_speed_sanity():
    # no per-event loop: 100k events in well under a second
    import time

    big = torch.rand(100_000, 19, 3, generator=torch.Generator().manual_seed(4))
    t = time.perf_counter()
    parse_augmentation("mask,rotate,crop")(big, torch.Generator().manual_seed(0))
    assert time.perf_counter() - t < 5.0
    assert np.isfinite(big.numpy()).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cpu_generator_augments_a_cuda_batch_like_a_cpu_one() -> None:
    # The trainer seeds one CPU generator; batches on a GPU must take their draws from it
    # (torch refuses a CPU generator for CUDA draws) and get the CPU run's numbers.
    from contrastx.embed.augmentations import parse_augmentation
    from contrastx.embed.training import same_label_partners
    from contrastx.events.generators import generate_sample

    x = torch.from_numpy(generate_sample({"W": 64, "Ato4l": 64}, seed=3).particles)
    aug = parse_augmentation("mask:0.3,smear:0.1,gauss:0.05,rotate,crop")
    cpu = aug(x, torch.Generator().manual_seed(5))
    gpu = aug(x.cuda(), torch.Generator().manual_seed(5))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)
    y = torch.arange(128) % 3
    p_cpu = same_label_partners(y, torch.Generator().manual_seed(2))
    p_gpu = same_label_partners(y.cuda(), torch.Generator().manual_seed(2))
    assert torch.equal(p_gpu.cpu(), p_cpu)
