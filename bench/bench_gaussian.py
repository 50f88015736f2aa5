"""Gaussian kernel products K(X, C) @ V and K(X, C)^T U: native kernels vs chunked torch.

N = 200,000 rows, M = 1,000 centres, d in {4, 16}, B in {1, 64}, float64 and float32, on the
CPU with torch's thread count for both.  Each (dtype, d, B) pair shares a benchmark group so the
ratio is visible; the session summary prints the speed-ups.

    pytest bench/ --benchmark-only
"""

from __future__ import annotations

import functools

import pytest
import torch
from contrastx import _native
from contrastx.ops import (
    gaussian_kernel_matvec,
    gaussian_kernel_matvec_reference,
    gaussian_kernel_t_matvec,
    gaussian_kernel_t_matvec_reference,
    gaussian_weighted_gram,
    gaussian_weighted_gram_reference,
)

N, M = 200_000, 1_000
SIGMA = 1.0

pytestmark = pytest.mark.skipif(
    not _native.cpu_available(), reason=f"contrastx._C not importable: {_native.load_error()}"
)


@functools.lru_cache(maxsize=2)
def inputs(dtype: torch.dtype, d: int, b: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, d, generator=g, dtype=dtype)
    c = torch.randn(M, d, generator=g, dtype=dtype)
    v = torch.randn(M, b, generator=g, dtype=dtype)
    return x, c, v


IMPLS = {
    "native": lambda x, c, v: gaussian_kernel_matvec(x, c, v, SIGMA, backend="native"),
    "torch": lambda x, c, v: gaussian_kernel_matvec_reference(x, c, v, SIGMA),
}


@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("b", [1, 64])
@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_gaussian_matvec(benchmark, record_time, dtype, d, b, impl):
    x, c, v = inputs(dtype, d, b)
    group = f"gaussian {str(dtype)[6:]} d={d} B={b} T={torch.get_num_threads()}"
    benchmark.group = group
    benchmark.extra_info.update(n=N, m=M, d=d, b=b, threads=torch.get_num_threads())
    fn = IMPLS[impl]
    out = benchmark.pedantic(fn, args=(x, c, v), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (N, b)
    record_time(group, impl, benchmark)


T_IMPLS = {
    "native": lambda x, c, u: gaussian_kernel_t_matvec(x, c, u, SIGMA, backend="native"),
    "torch": lambda x, c, u: gaussian_kernel_t_matvec_reference(x, c, u, SIGMA),
}


@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("b", [1, 64])
@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_gaussian_t_matvec(benchmark, record_time, dtype, d, b, impl):
    x, c, _ = inputs(dtype, d, b)
    u = torch.randn(N, b, generator=torch.Generator().manual_seed(1), dtype=dtype)
    group = f"gaussian^T {str(dtype)[6:]} d={d} B={b} T={torch.get_num_threads()}"
    benchmark.group = group
    benchmark.extra_info.update(n=N, m=M, d=d, b=b, threads=torch.get_num_threads())
    out = benchmark.pedantic(T_IMPLS[impl], args=(x, c, u), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (M, b)
    record_time(group, impl, benchmark)


G_IMPLS = {
    "native": lambda x, c: gaussian_weighted_gram(x, c, SIGMA, backend="native"),
    "torch": lambda x, c: gaussian_weighted_gram_reference(x, c, SIGMA),
}


@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_gaussian_weighted_gram(benchmark, record_time, dtype, d, impl):
    x, c, _ = inputs(dtype, d, 1)
    group = f"gram {str(dtype)[6:]} d={d} T={torch.get_num_threads()}"
    benchmark.group = group
    benchmark.extra_info.update(n=N, m=M, d=d, threads=torch.get_num_threads())
    out = benchmark.pedantic(G_IMPLS[impl], args=(x, c), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (M, M)
    record_time(group, impl, benchmark)
