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
from contrastx.ops import gaussian_kernel_matvec, gaussian_kernel_t_matvec, gaussian_weighted_gram

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


@pytest.fixture
def timed(benchmark, record_time):
    """``timed(group, impl, fn, *args, **info)``: time ``fn(*args, backend=impl)``.

    Three rounds after one warm-up; the group gets the thread count appended and ``info``
    goes to the benchmark's extra info. Returns the result of the last call.
    """

    def run(group: str, impl: str, fn, *args, **info):
        threads = torch.get_num_threads()
        benchmark.group = f"{group} T={threads}"
        benchmark.extra_info.update(n=N, m=M, threads=threads, **info)
        out = benchmark.pedantic(
            fn, args=args, kwargs={"backend": impl}, rounds=3, iterations=1, warmup_rounds=1
        )
        record_time(benchmark.group, impl, benchmark)
        return out

    return run


IMPLS = ["native", "torch"]
DTYPES = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("b", [1, 64])
@pytest.mark.parametrize("d", [4, 16])
@DTYPES
@pytest.mark.parametrize("transposed", [False, True], ids=["K_V", "Kt_U"])
def test_gaussian_products(timed, transposed, dtype, d, b, impl):
    """K(X, C) V, (N, B), and K(X, C)^T U, (M, B)."""
    x, c, v = inputs(dtype, d, b)
    group = f"gaussian{'^T' if transposed else ''} {str(dtype)[6:]} d={d} B={b}"
    if transposed:
        u = torch.randn(N, b, generator=torch.Generator().manual_seed(1), dtype=dtype)
        out = timed(group, impl, gaussian_kernel_t_matvec, x, c, u, SIGMA, d=d, b=b)
    else:
        out = timed(group, impl, gaussian_kernel_matvec, x, c, v, SIGMA, d=d, b=b)
    assert out.shape == ((M if transposed else N), b)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("d", [4, 16])
@DTYPES
def test_gaussian_weighted_gram(timed, dtype, d, impl):
    x, c, _ = inputs(dtype, d, 1)
    out = timed(f"gram {str(dtype)[6:]} d={d}", impl, gaussian_weighted_gram, x, c, SIGMA, d=d)
    assert out.shape == (M, M)
