"""Blocked whitening (explicit T^-1, column-blocked GEMMs, upper-triangular Grams) against
the triangular solve per tile, in float64, on an ill-conditioned K_MM like NPLM's."""

from __future__ import annotations

import pytest
import torch
from contrastx.ops.nystrom import (
    gaussian_kernel_tile,
    triangular_inverse,
    weighted_gram,
    weighted_gram_rhs,
    whiten_blocked,
    whitened_features,
    whitened_tile,
    whitened_tiles,
)

SIGMA = 1.3


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(700, 3, generator=g, dtype=torch.float64)
    c = torch.randn(90, 3, generator=g, dtype=torch.float64)
    kmm = gaussian_kernel_tile(c, c, SIGMA)
    kmm = 0.5 * (kmm + kmm.T) + 1e-10 * torch.eye(90, dtype=torch.float64)
    t = torch.linalg.cholesky(kmm, upper=True)
    assert float(torch.linalg.cond(kmm)) > 1e6  # whitening is ill-conditioned here
    return x, c, t


def test_triangular_inverse_and_blocked_whitening(problem):
    x, c, t = problem
    inv = triangular_inverse(t)
    assert torch.equal(inv, torch.triu(inv))
    k = gaussian_kernel_tile(x, c, SIGMA)
    ref = whitened_tile(k, t)
    for block in (1, 7, 32, 256):
        z = whiten_blocked(k, inv, block=block)
        assert float((z - ref).abs().max()) <= 1e-8 * float(ref.abs().max())
    out = torch.full((x.shape[0], c.shape[0]), float("nan"), dtype=torch.float32)
    whiten_blocked(k, inv, out=out, block=32)
    assert torch.isfinite(out).all()
    assert float((out.double() - ref).abs().max()) <= 1e-6 * float(ref.abs().max())


@pytest.mark.parametrize("out_dtype", [torch.float64, torch.float32])
def test_whitened_features_methods_agree(problem, out_dtype):
    x, c, t = problem
    tile = 41 * 8 * 2 * 90  # 41 rows per tile: several tiles and a remainder
    a = whitened_features(x, c, SIGMA, t, out_dtype=out_dtype, tile_bytes=tile, method="solve")
    b = whitened_features(x, c, SIGMA, t, out_dtype=out_dtype, tile_bytes=tile)
    tol = 1e-8 if out_dtype == torch.float64 else 1e-6
    assert b.dtype == out_dtype
    assert float((a.double() - b.double()).abs().max()) <= tol * float(a.abs().max())
    # Each row depends on its own point only.
    part = whitened_features(x[5:50], c, SIGMA, t, out_dtype=out_dtype, tile_bytes=tile)
    assert torch.equal(part, b[5:50])
    # A precomputed T^-1 gives the same rows bitwise; a wrong-sized one is refused.
    inv = triangular_inverse(t)
    given = whitened_features(x, c, SIGMA, t, out_dtype=out_dtype, tile_bytes=tile, inverse=inv)
    assert torch.equal(given, b)
    with pytest.raises(ValueError, match=r"inverse must be an \(90, 90\)"):
        whitened_features(x, c, SIGMA, t, inverse=inv[:5, :5])
    # Into a given tensor: the same values, that tensor returned; a wrong one refused.
    into = torch.full_like(b, float("nan"))
    assert whitened_features(x, c, SIGMA, t, out_dtype=out_dtype, tile_bytes=tile, out=into) is into
    assert torch.equal(into, b)
    with pytest.raises(ValueError, match=r"out must be an \(700, 90\)"):
        whitened_features(x, c, SIGMA, t, out_dtype=out_dtype, out=into[:3])


@pytest.mark.parametrize("method", ["blocked", "solve"])
def test_whitened_tiles_are_whitened_features(problem, method):
    """The tiles (in a reused buffer, or in a given out) are the rows of whitened_features."""
    x, c, t = problem
    tile = 41 * 8 * 2 * 90
    want = whitened_features(x, c, SIGMA, t, tile_bytes=tile, method=method)
    seen, buffers = [], set()
    for lo, hi, z in whitened_tiles(x, c, SIGMA, t, tile_bytes=tile, method=method):
        assert torch.equal(z, want[lo:hi])
        seen.append((lo, hi))
        buffers.add(z.data_ptr())
    assert seen[0][0] == 0 and seen[-1][1] == 700 and len(seen) == 18
    if method == "blocked":
        assert len(buffers) == 1  # one buffer for every tile
    out = torch.empty_like(want)
    for lo, hi, z in whitened_tiles(x, c, SIGMA, t, tile_bytes=tile, method=method, out=out):
        assert z.data_ptr() == out[lo:hi].data_ptr()
    assert torch.equal(out, want)


@pytest.mark.parametrize("method", ["blocked", "solve"])
@pytest.mark.parametrize("weighted", [False, True])
def test_float32_gram_products(problem, weighted, method):
    """products=float32: each tile's Gram in float32, summed in float64: within 1e-6 of
    the float64 Gram's largest entry (float32 dot products of a 41-row tile), exactly
    symmetric, and b (float64 products) bitwise the same."""
    x, c, t = problem
    g = torch.Generator().manual_seed(4)
    w = torch.rand(x.shape[0], generator=g, dtype=torch.float64) if weighted else None
    r = torch.randn(x.shape[0], generator=g, dtype=torch.float64)
    tile = 41 * 8 * 2 * 90
    kw = {"whiten": t, "tile_bytes": tile, "method": method}
    g64, b64 = weighted_gram_rhs(x, c, SIGMA, w, r, **kw)
    g32, b32 = weighted_gram_rhs(x, c, SIGMA, w, r, products=torch.float32, **kw)
    assert g32.dtype == torch.float64 and torch.equal(g32, g32.T) and torch.equal(b32, b64)
    err = float((g32 - g64).abs().max() / g64.abs().max())
    assert 0 < err < 1e-6
    with pytest.raises(ValueError, match="products must be x's dtype, or float32 with float64"):
        weighted_gram_rhs(x.float(), c.float(), SIGMA, None, r.float(), products=torch.float64)
    with pytest.raises(ValueError, match="products must be"):
        weighted_gram_rhs(x, c, SIGMA, None, r, products=torch.float16)


@pytest.mark.parametrize("weighted", [False, True])
def test_gram_methods_agree(problem, weighted):
    x, c, t = problem
    g = torch.Generator().manual_seed(3)
    w = torch.rand(x.shape[0], generator=g, dtype=torch.float64) if weighted else None
    r = torch.randn(x.shape[0], generator=g, dtype=torch.float64)
    tile = 41 * 8 * 2 * 90
    s0, b0 = weighted_gram_rhs(x, c, SIGMA, w, r, whiten=t, tile_bytes=tile, method="solve")
    s1, b1 = weighted_gram_rhs(x, c, SIGMA, w, r, whiten=t, tile_bytes=tile)
    assert torch.equal(s1, s1.T)
    scale = float(s0.abs().max())
    assert float((s0 - s1).abs().max()) <= 1e-9 * scale
    assert float((b0 - b1).abs().max()) <= 1e-9 * float(b0.abs().max())
    # The exact whitened Gram, from the whole Z at once.
    z = whitened_tile(gaussian_kernel_tile(x, c, SIGMA), t)
    exact = z.T @ (z if w is None else z * w[:, None])
    assert float((s1 - exact).abs().max()) <= 1e-9 * scale
    # Unwhitened, unweighted: the upper-triangular block-row Gram against the plain product.
    k = gaussian_kernel_tile(x, c, SIGMA)
    g1 = weighted_gram(x, c, SIGMA, w, tile_bytes=tile)
    kw = k if w is None else k * w[:, None]
    assert float((g1 - k.T @ kw).abs().max()) <= 1e-12 * float(g1.abs().max())


def test_float32_points_with_float64_sums(problem):
    x, c, t = problem
    r = torch.ones(x.shape[0], dtype=torch.float32)
    s0, _ = weighted_gram_rhs(
        x.float(),
        c.float(),
        SIGMA,
        None,
        r,
        whiten=t.float(),
        method="solve",
        accumulate=torch.float64,
    )
    s1, _ = weighted_gram_rhs(
        x.float(), c.float(), SIGMA, None, r, whiten=t.float(), accumulate=torch.float64
    )
    assert s1.dtype == torch.float64 and torch.equal(s1, s1.T)
    assert torch.isfinite(s1).all() and float(s1.abs().max()) > 0
    assert s0.shape == s1.shape


def test_bad_method(problem):
    x, c, t = problem
    with pytest.raises(ValueError, match="method must be 'blocked' or 'solve'; got 'fast'"):
        whitened_features(x, c, SIGMA, t, method="fast")
    with pytest.raises(ValueError, match="method must be"):
        weighted_gram(x, c, SIGMA, method="trsm")
