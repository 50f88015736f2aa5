"""Transposed Gaussian product K(X, C)^T diag(w) U and weighted Gram K^T diag(w) K: native
CPU kernels and torch references vs an exact float64 computation.

Tolerances are relative to ``scale = K^T |w o U|`` (Gram: ``K^T |w| K``) per element: float64
<= 1e-12, float32 <= 1e-5, float32 with float64 accumulation <= 1e-6 (the reference evaluates
the float32 inputs in float64). Outputs come from ``torch.empty`` and are compared element by
element, so an unwritten entry fails. Sizes are off the CPU blocks (32 / 256 rows, 128
centres, 6 x 16 Gram blocks, SIMD width 8 / 16, 4096-row segments).
"""

from __future__ import annotations

import pytest
import torch
from contrastx.ops import (
    gaussian_kernel_t_matvec,
    gaussian_kernel_t_matvec_reference,
    gaussian_weighted_gram,
)

RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def make(n, m, d, b, dtype, seed=0, weights=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    c = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.2
    u = torch.randn(n, b, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64) if weights else None
    return tuple(None if t is None else t.to(dtype) for t in (x, c, u, w))


def exact(x, c, u, w, sigma):
    x, c, u = x.double(), c.double(), u.double()
    wu = u if w is None else u * w.double()[:, None]
    k = torch.exp(-(x[:, None, :] - c[None, :, :]).pow(2).sum(-1) / (2.0 * sigma * sigma))
    return k.T @ wu, k.T @ wu.abs()


def check(out, ref, scale, rtol):
    assert out.shape == ref.shape and torch.isfinite(out).all()
    err = (out.double() - ref).abs()
    bound = rtol * scale + 1e-300
    assert (err <= bound).all(), f"max error / tolerance = {(err / bound).max().item():.3g}"


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_exact(t_shape, dtype, backend):
    n, m, d, b = t_shape
    x, c, u, w = make(n, m, d, b, dtype, seed=n + m + d + b)
    sigma = 0.5 * d**0.5 + 0.3
    for weights in (w, None):
        out = gaussian_kernel_t_matvec(x, c, u, sigma, row_weights=weights, backend=backend)
        assert out.dtype == dtype
        check(out, *exact(x, c, u, weights, sigma), RTOL[dtype])


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_float32_with_float64_accumulation(backend):
    x, c, u, w = make(700, 200, 6, 5, torch.float32, seed=3)
    out = gaussian_kernel_t_matvec(
        x, c, u, 1.4, row_weights=w, backend=backend, accumulate=torch.float64
    )
    assert out.dtype == torch.float32
    check(out, *exact(x, c, u, w, 1.4), 1e-6)


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_vector_u_and_empty_sizes(backend):
    x, c, u, w = make(50, 20, 3, 1, torch.float64)
    vec = gaussian_kernel_t_matvec(x, c, u[:, 0], 1.0, row_weights=w, backend=backend)
    assert vec.shape == (20,)
    torch.testing.assert_close(vec, exact(x, c, u, w, 1.0)[0][:, 0], rtol=1e-12, atol=0)
    zero = gaussian_kernel_t_matvec(x[:0], c, u[:0], 1.0, backend=backend)
    assert zero.shape == (20, 1) and not zero.any()
    assert gaussian_kernel_t_matvec(x, c[:0], u, 1.0, backend=backend).shape == (0, 1)


@pytest.mark.usefixtures("native_cpu")
def test_native_bitwise_independent_of_threads(one_and_many_threads):
    x, c, u, w = make(20_000, 300, 4, 3, torch.float64, seed=7)
    one, many = one_and_many_threads(
        lambda: gaussian_kernel_t_matvec(x, c, u, 1.0, row_weights=w, backend="native")
    )
    assert torch.equal(one, many)


@pytest.mark.usefixtures("native_cpu")
def test_native_matches_reference_on_non_contiguous_inputs():
    x, c, u, w = make(400, 60, 8, 6, torch.float64, seed=1)
    xs, us = x[:, ::2], u.T.contiguous().T  # a strided x (d = 4) and a transposed-layout u
    ref = gaussian_kernel_t_matvec_reference(xs, c[:, ::2], us, 1.1, row_weights=w)
    out = gaussian_kernel_t_matvec(xs, c[:, ::2], us, 1.1, row_weights=w, backend="native")
    torch.testing.assert_close(out, ref, rtol=1e-11, atol=1e-12)


def test_bad_inputs():
    x, c, u, w = make(10, 4, 2, 3, torch.float64)
    with pytest.raises(ValueError, match="one row per point"):
        gaussian_kernel_t_matvec(x, c, u[:9], 1.0)
    with pytest.raises(ValueError, match="row_weights must have shape"):
        gaussian_kernel_t_matvec(x, c, u, 1.0, row_weights=w[:3])
    with pytest.raises(TypeError, match="u dtype"):
        gaussian_kernel_t_matvec(x, c, u.float(), 1.0)
    bad = u.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="u contains NaN"):
        gaussian_kernel_t_matvec(x, c, bad, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel_t_matvec(x, c, u, 0.0)
    with pytest.raises(ValueError, match="backend"):
        gaussian_kernel_t_matvec(x, c, u, 1.0, backend="gpu")


def exact_gram(x, c, w, sigma):
    x, c = x.double(), c.double()
    k = torch.exp(-(x[:, None, :] - c[None, :, :]).pow(2).sum(-1) / (2.0 * sigma * sigma))
    wd = torch.ones(x.shape[0], dtype=torch.float64) if w is None else w.double()
    return (k * wd[:, None]).T @ k, (k * wd.abs()[:, None]).T @ k


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gram_matches_exact(gram_shape, dtype, backend):
    n, m, d = gram_shape
    x, c, _, w = make(n, m, d, 1, dtype, seed=n + m + d)
    sigma = 0.5 * d**0.5 + 0.3
    for weights in (w, None):
        g = gaussian_weighted_gram(x, c, sigma, row_weights=weights, backend=backend)
        assert g.dtype == dtype and torch.equal(g, g.T)
        check(g, *exact_gram(x, c, weights, sigma), RTOL[dtype])


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_gram_float64_accumulation_and_empty(backend):
    x, c, _, w = make(400, 50, 3, 1, torch.float32, seed=5)
    g = gaussian_weighted_gram(x, c, 1.2, row_weights=w, backend=backend, accumulate=torch.float64)
    check(g, *exact_gram(x, c, w, 1.2), 1e-6)
    zero = gaussian_weighted_gram(x[:0], c, 1.2, backend=backend)
    assert zero.shape == (50, 50) and not zero.any()
    assert gaussian_weighted_gram(x, c[:0], 1.2, backend=backend).shape == (0, 0)


@pytest.mark.usefixtures("native_cpu")
def test_gram_native_bitwise_independent_of_threads(one_and_many_threads):
    x, c, _, w = make(3000, 140, 4, 1, torch.float64, seed=9)
    one, many = one_and_many_threads(
        lambda: gaussian_weighted_gram(x, c, 1.0, row_weights=w, backend="native")
    )
    assert torch.equal(one, many)


def test_gram_bad_inputs():
    x, c, _, w = make(10, 4, 2, 1, torch.float64)
    with pytest.raises(ValueError, match="row_weights must have shape"):
        gaussian_weighted_gram(x, c, 1.0, row_weights=w[:4])
    bad = w.clone()
    bad[0] = float("inf")
    with pytest.raises(ValueError, match="row_weights contains NaN or inf"):
        gaussian_weighted_gram(x, c, 1.0, row_weights=bad)
    with pytest.raises(TypeError, match="centers dtype"):
        gaussian_weighted_gram(x, c.float(), 1.0)


def _t_matvec_on_cuda_matches_exact(n, m, d, b, dtype):
    x, c, u, w = make(n, m, d, b, dtype, seed=n + m + d + b)
    sigma = 0.5 * d**0.5 + 0.3
    for weights in (w, None):
        out = gaussian_kernel_t_matvec(
            x.cuda(),
            c.cuda(),
            u.cuda(),
            sigma,
            row_weights=None if weights is None else weights.cuda(),
            backend="native",
        )
        assert out.device.type == "cuda" and out.dtype == dtype
        check(out.cpu(), *exact(x, c, u, weights, sigma), RTOL[dtype])
    acc = gaussian_kernel_t_matvec(
        x.cuda(), c.cuda(), u.cuda(), sigma, backend="native", accumulate=torch.float64
    )
    check(acc.cpu(), *exact(x, c, u, None, sigma), 1e-6 if dtype == torch.float32 else 1e-12)


def _gram_on_cuda_matches_exact(n, m, d, dtype):
    x, c, _, w = make(n, m, d, 1, dtype, seed=n + m + d)
    sigma = 0.5 * d**0.5 + 0.3
    for weights in (w, None):
        g = gaussian_weighted_gram(
            x.cuda(),
            c.cuda(),
            sigma,
            row_weights=None if weights is None else weights.cuda(),
            backend="native",
        )
        assert g.device.type == "cuda" and torch.equal(g, g.T)
        check(g.cpu(), *exact_gram(x, c, weights, sigma), RTOL[dtype])
    again = gaussian_weighted_gram(x.cuda(), c.cuda(), sigma, row_weights=w.cuda())
    assert torch.equal(
        again, gaussian_weighted_gram(x.cuda(), c.cuda(), sigma, row_weights=w.cuda())
    )


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_cuda_matches_exact(t_shape, dtype):
    _t_matvec_on_cuda_matches_exact(*t_shape, dtype)


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gram_native_cuda_matches_exact(gram_shape, dtype):
    _gram_on_cuda_matches_exact(*gram_shape, dtype)


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_cuda_many_segments_and_no_features(dtype):
    _t_matvec_on_cuda_matches_exact(20_000, 300, 6, 2, dtype)
    _gram_on_cuda_matches_exact(20_000, 70, 6, dtype)
    _gram_on_cuda_matches_exact(100, 300, 0, dtype)
