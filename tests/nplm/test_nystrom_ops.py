"""Chunked Nystrom references (contrastx.ops.nystrom) against dense float64 products."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from contrastx.nplm.kernel import kernel_matvec
from contrastx.ops.nystrom import (
    gaussian_kernel_tile,
    kernel_t_matvec,
    masked_gram_matvec,
    masked_row_sums,
    weighted_gram,
    weighted_gram_rhs,
    whitened_features,
)
from scipy.spatial.distance import cdist

SIGMA = 1.3


def points(seed):
    """Events, centres and their dense float64 Gaussian kernel, drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1037, 3, generator=g, dtype=torch.float64)
    c = torch.randn(41, 3, generator=g, dtype=torch.float64)
    k = np.exp(-cdist(x.numpy(), c.numpy(), "sqeuclidean") / (2 * SIGMA**2))
    return x, c, k


@pytest.fixture
def pts():
    return points(0)


def assert_sum_close(out, ref, terms):
    """Compare sums of products computed in different orders.

    Reordering a float64 sum changes it by a few ulp of the sum of the absolute
    terms, not of the (possibly cancelled, near-zero) result, so a pure ``rtol``
    fails for entries close to zero. ``terms`` is the sum of |terms| per entry
    (the same product with absolute values); 1e-14 of it is ~45 ulp, far above the
    reordering error and far below any indexing or weighting mistake (O(1) of it).
    """
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14 * np.max(terms))


def test_tile_and_matvecs(pts, seed=2):
    x, c, k = pts
    g = torch.Generator().manual_seed(seed)
    np.testing.assert_allclose(gaussian_kernel_tile(x, c, SIGMA).numpy(), k, atol=1e-14)
    u = torch.randn(1037, 5, generator=g, dtype=torch.float64)
    w = torch.rand(1037, generator=g, dtype=torch.float64)
    tiny = 41 * 8 * 2 * 100  # 100-row tiles: exercises the chunking
    out = kernel_t_matvec(x, c, u, SIGMA, row_weights=w, tile_bytes=tiny)
    wu = w.numpy()[:, None] * u.numpy()
    assert_sum_close(out.numpy(), k.T @ wu, k.T @ np.abs(wu))
    v1 = kernel_t_matvec(x, c, u[:, 0], SIGMA)
    assert v1.shape == (41,)
    u0 = u[:, 0].numpy()
    assert_sum_close(v1.numpy(), k.T @ u0, k.T @ np.abs(u0))
    a = torch.randn(41, generator=g, dtype=torch.float64).numpy()
    assert_sum_close(kernel_matvec(x, c, torch.from_numpy(a), SIGMA).numpy(), k @ a, k @ np.abs(a))


def test_weighted_gram_and_whitening(pts, seed=3):
    x, c, k = pts
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(1037, generator=gen, dtype=torch.float64)
    tiny = 41 * 8 * 2 * 64
    g = weighted_gram(x, c, SIGMA, w, tile_bytes=tiny)
    # K > 0 and w > 0: every term is positive, nothing cancels, a relative tolerance holds.
    np.testing.assert_allclose(g.numpy(), k.T @ (w.numpy()[:, None] * k), rtol=1e-11)
    assert torch.equal(g, g.T)
    kmm = gaussian_kernel_tile(c, c, SIGMA) + 1e-3 * torch.eye(41, dtype=torch.float64)
    t = torch.linalg.cholesky(kmm, upper=True)
    r = torch.randn(1037, generator=gen, dtype=torch.float64)
    s, b = weighted_gram_rhs(x, c, SIGMA, w, r, whiten=t, tile_bytes=tiny)
    z = np.linalg.solve(t.numpy().T, k.T).T  # K T^-1
    # |z| <= 1 and the entries are O(1..100); the two routes (triangular solve per tile vs.
    # one dense solve) differ by ~1e-13 absolute, so atol 1e-9 leaves four orders of margin.
    np.testing.assert_allclose(s.numpy(), z.T @ (w.numpy()[:, None] * z), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b.numpy(), z.T @ r.numpy(), rtol=1e-9, atol=1e-9)


def test_errors(pts):
    x, c, _ = pts
    with pytest.raises(ValueError, match="sigma"):
        weighted_gram(x, c, 0.0)
    with pytest.raises(ValueError, match="features"):
        weighted_gram(x, c[:, :2], 1.0)
    with pytest.raises(TypeError, match="dtype"):
        weighted_gram(x, c.float(), 1.0)
    with pytest.raises(ValueError, match="u must have shape"):
        kernel_t_matvec(x, c, torch.ones(5, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="whiten"):
        weighted_gram(x, c, 1.0, whiten=torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="rhs"):
        weighted_gram_rhs(x, c, 1.0, None, None)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_whitened_pool_products(pts, dtype):
    x, c, k = pts
    kmm = np.exp(-cdist(c.numpy(), c.numpy(), "sqeuclidean") / (2 * SIGMA**2))
    t = np.linalg.cholesky(kmm + 1e-8 * np.eye(41)).T  # upper, T^T T = K_MM + eps
    z_ref = np.linalg.solve(t.T, k.T).T  # K T^-1
    z = whitened_features(x, c, SIGMA, torch.from_numpy(t), out_dtype=dtype, tile_bytes=41 * 8 * 60)
    assert z.dtype == dtype
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(z.double().numpy(), z_ref, atol=tol * np.abs(z_ref).max())
    g = torch.Generator().manual_seed(1)
    w = (torch.rand(1037, 5, generator=g) < 0.3).to(torch.uint8)
    v = torch.randn(41, 5, generator=g, dtype=torch.float64)
    out = masked_gram_matvec(z, w, v, chunk_rows=100)
    zz = z.double().numpy()
    for b in range(5):
        sel = w[:, b].numpy().astype(bool)
        dense = zz[sel].T @ (zz[sel] @ v[:, b].numpy())
        np.testing.assert_allclose(out[:, b].numpy(), dense, rtol=10 * tol, atol=tol)
    cols = torch.tensor([3, 1])
    sub = masked_gram_matvec(z, w, v[:, [3, 1]], columns=cols, chunk_rows=333)
    np.testing.assert_allclose(sub.numpy(), out[:, [3, 1]].numpy(), rtol=10 * tol, atol=tol)
    np.testing.assert_allclose(
        masked_row_sums(z, w).numpy(), zz.T @ w.double().numpy(), rtol=10 * tol, atol=tol
    )
    with pytest.raises(ValueError, match="weights"):
        masked_gram_matvec(z, w[:10], v)
    with pytest.raises(ValueError, match="columns"):
        masked_gram_matvec(z, w, v[:, :2])
