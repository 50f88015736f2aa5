"""Every loss against a brute-force per-pair Python loop in float64."""

import math

import numpy as np
import pytest
import torch
from contrastx.embed.heads import kl_to_standard_normal
from contrastx.embed.losses import (
    NTXentLoss,
    SupConKLLoss,
    SupConLoss,
    VICRegCELoss,
    VICRegLoss,
    nt_xent_loss,
    supcon_kl_loss,
    supcon_loss,
    vicreg_ce_loss,
    vicreg_loss,
)
from contrastx.ops.similarity import cosine_similarity_matrix, covariance, off_diagonal


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _rand(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def ref_ntxent(z1, z2, t):
    z = np.concatenate([z1, z2])
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        p = (i + n) % n2
        denom = sum(math.exp(_cos(z[i], z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(_cos(z[i], z[p]) / t) / denom)
    return total / n2


def ref_supcon(views, y, t):
    z = np.concatenate(views)
    yy = np.concatenate([y] * len(views))
    m = len(z)
    losses = []
    for i in range(m):
        pos = [p for p in range(m) if p != i and yy[p] == yy[i]]
        if not pos:
            continue
        denom = sum(math.exp(_cos(z[i], z[a]) / t) for a in range(m) if a != i)
        li = -sum(math.log(math.exp(_cos(z[i], z[p]) / t) / denom) for p in pos) / len(pos)
        losses.append(li)
    return sum(losses) / len(losses) if losses else 0.0


def ref_vicreg(z1, z2, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4):
    n, d = z1.shape
    inv = sum((z1[i, k] - z2[i, k]) ** 2 for i in range(n) for k in range(d)) / (n * d)

    def var(z):
        out = 0.0
        for k in range(d):
            m = sum(z[i, k] for i in range(n)) / n
            v = sum((z[i, k] - m) ** 2 for i in range(n)) / (n - 1)
            out += max(0.0, gamma - math.sqrt(v + eps))
        return out / d

    def cov(z):
        means = [sum(z[i, k] for i in range(n)) / n for k in range(d)]
        out = 0.0
        for a in range(d):
            for b in range(d):
                if a != b:
                    c = sum((z[i, a] - means[a]) * (z[i, b] - means[b]) for i in range(n)) / (n - 1)
                    out += c * c
        return out / d

    return lam * inv + mu * (var(z1) + var(z2)) + nu * (cov(z1) + cov(z2))


def test_similarity_ops():
    a, b = _rand((5, 3), 0), _rand((4, 3), 1)
    s = cosine_similarity_matrix(a, b)
    for i in range(5):
        for j in range(4):
            assert abs(s[i, j].item() - _cos(a[i].numpy(), b[j].numpy())) < 1e-12
    c = covariance(a)
    np.testing.assert_allclose(c.numpy(), np.cov(a.numpy(), rowvar=False), atol=1e-12)
    m = torch.arange(9.0).view(3, 3)
    assert off_diagonal(m).tolist() == [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
    assert torch.isfinite(cosine_similarity_matrix(torch.zeros(2, 3))).all()
    with pytest.raises(ValueError, match="2 rows"):
        covariance(torch.zeros(1, 3))


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_ntxent_matches_loop(t):
    z1, z2 = _rand((6, 4), 2), _rand((6, 4), 3)
    got = nt_xent_loss(z1, z2, t).item()
    assert abs(got - ref_ntxent(z1.numpy(), z2.numpy(), t)) < 1e-10
    assert abs(NTXentLoss(t)(z1, z2).item() - got) < 1e-14


def test_ntxent_masks_self_similarity():
    # identical, orthogonal views: only the positive has similarity 1, all else 0
    z = torch.eye(4, dtype=torch.float64)
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 6 * math.exp(0)))
    assert abs(nt_xent_loss(z, z, t).item() - expected) < 1e-12


@pytest.mark.parametrize("n_views", [1, 2])
def test_supcon_matches_loop(n_views):
    y = torch.tensor([0, 1, 0, 2, 1, 1, 3])  # class 2 and 3 have a single event
    views = [_rand((7, 5), 10 + k) for k in range(n_views)]
    got = supcon_loss(views, y, 0.1).item()
    ref = ref_supcon([v.numpy() for v in views], y.numpy(), 0.1)
    assert abs(got - ref) < 1e-10
    assert abs(SupConLoss(0.1)(views, y).item() - got) < 1e-14


def test_supcon_anchor_without_positive_is_finite_and_zero_if_none():
    z = _rand((4, 3), 5).requires_grad_()
    loss = supcon_loss(z, torch.tensor([0, 1, 2, 3]), 0.1)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(z.grad).all()
    # supervised with all-distinct labels and two views is NT-Xent
    z1, z2 = _rand((5, 3), 6), _rand((5, 3), 7)
    torch.testing.assert_close(
        supcon_loss([z1, z2], torch.arange(5), 0.3), nt_xent_loss(z1, z2, 0.3)
    )


def test_vicreg_matches_loop():
    z1, z2 = _rand((8, 3), 8), _rand((8, 3), 9) * 0.3
    got = vicreg_loss(z1, z2).item()
    assert abs(got - ref_vicreg(z1.numpy(), z2.numpy())) < 1e-10
    w = {"invariance_weight": 2.0, "variance_weight": 3.0, "covariance_weight": 0.5}
    ref = ref_vicreg(z1.numpy(), z2.numpy(), 2.0, 3.0, 0.5, gamma=0.7, eps=1e-3)
    assert abs(VICRegLoss(**w, gamma=0.7, eps=1e-3)(z1, z2).item() - ref) < 1e-10


def test_vicreg_ce_eq11():
    z1, z2 = _rand((6, 3), 11), _rand((6, 3), 12)
    logits = _rand((12, 4), 13)
    y = torch.tensor([0, 1, 2, 3, 0, 1] * 2)
    for alpha in (0.0, 0.3, 1.0):
        ce = 0.0
        for i in range(12):
            row = logits[i].numpy()
            ce += -(row[y[i]] - math.log(sum(math.exp(v) for v in row)))
        ref = alpha * ref_vicreg(z1.numpy(), z2.numpy()) + (1 - alpha) * ce / 12
        assert abs(vicreg_ce_loss(z1, z2, logits, y, alpha).item() - ref) < 1e-10
        assert abs(VICRegCELoss(alpha)(z1, z2, logits, y).item() - ref) < 1e-10
    with pytest.raises(ValueError, match="alpha"):
        vicreg_ce_loss(z1, z2, logits, y, 1.5)


def test_supcon_kl_matches_loop():
    h = _rand((6, 4), 14)
    mu, lv = _rand((6, 3), 15), _rand((6, 3), 16) * 0.5
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    kl = 0.0
    for i in range(6):
        for d in range(3):
            s2 = math.exp(lv[i, d].item())
            kl += 0.5 * (mu[i, d].item() ** 2 + s2 - math.log(s2) - 1)
    ref = ref_supcon([h.numpy()], y.numpy(), 0.2) + 0.7 * kl / 6
    assert abs(supcon_kl_loss(h, y, mu, lv, 0.2, 0.7).item() - ref) < 1e-10
    assert abs(SupConKLLoss(0.2, 0.7)(h, y, mu, lv).item() - ref) < 1e-10
    assert abs(kl_to_standard_normal(mu, lv).item() - kl / 6) < 1e-12


def test_loss_input_errors():
    z = _rand((4, 3), 17).float()
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(z, z, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(z, _rand((5, 3), 18).float())
    with pytest.raises(ValueError, match="NaN"):
        supcon_loss(torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape"):
        supcon_loss(z, torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="integers"):
        supcon_loss(z, torch.zeros(4))
    with pytest.raises(ValueError, match="at least 2 rows"):
        vicreg_loss(z[:1], z[:1])
