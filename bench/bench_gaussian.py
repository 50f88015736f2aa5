"""Gaussian kernel products K(X, C) @ V and K(X, C)^T U: native kernels vs chunked torch.

N = 200,000 rows, M = 1,000 centres, d in {4, 16}, B in {1, 64}, float64 and float32, on the
CPU with torch's thread count for both. ``exp_sum``: sum_i exp((K V)_ib) (NPLM's reference
term for B toys), the fused native pass against the previous path (native K V in tiles of
4,194 rows, then torch's exp, transpose and row sums, as the toys did) and the torch
reference, float64, d = 4, B in {64, 256}.  Each (dtype, d, B) pair shares a benchmark group so the
ratio is visible; the session summary prints the speed-ups.

    pytest bench/ --benchmark-only
"""

from __future__ import annotations

import functools

import pytest
import torch
from contrastx import _native
from contrastx.ops import (
    gaussian_kernel_exp_sum,
    gaussian_kernel_matvec,
    gaussian_kernel_t_matvec,
    gaussian_weighted_gram,
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


@pytest.fixture
def timed(benchmark, record_time):
    """``timed(group, impl, fn, *args, name=impl, **info)``: time ``fn(*args, backend=impl)``.

    Three rounds after one warm-up; the group gets the thread count appended, the time is
    recorded as ``name`` and ``info`` goes to the benchmark's extra info. Returns the result
    of the last call.
    """

    def run(group: str, impl: str, fn, *args, name: str | None = None, **info):
        threads = torch.get_num_threads()
        benchmark.group = f"{group} T={threads}"
        benchmark.extra_info.update(n=N, m=M, threads=threads, **info)
        out = benchmark.pedantic(
            fn, args=args, kwargs={"backend": impl}, rounds=3, iterations=1, warmup_rounds=1
        )
        record_time(benchmark.group, name or impl, benchmark)
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


def _exp_sum_previous(x, c, v, sigma, backend="native", step=4194):
    """The toys' previous reference term: native K V per tile, torch exp and row sums."""
    out = torch.zeros(v.shape[1], dtype=torch.float64)
    for lo in range(0, x.shape[0], step):
        f = gaussian_kernel_matvec(x[lo : lo + step], c, v, sigma, backend=backend)
        out += torch.exp(f).T.contiguous().sum(1)
    return out


@pytest.mark.parametrize("impl", ["native", "previous", "torch"])
@pytest.mark.parametrize("b", [64, 256])
def test_gaussian_exp_sum(timed, b, impl):
    x, c, v = inputs(torch.float64, 4, b)
    v = v * 1e-2  # products of order 1e-1, as NPLM's f
    fn = _exp_sum_previous if impl == "previous" else gaussian_kernel_exp_sum
    backend = "native" if impl == "previous" else impl
    out = timed(f"exp_sum f64 d=4 B={b}", backend, fn, x, c, v, SIGMA, name=impl, d=4, b=b)
    assert out.shape == (b,) and torch.isfinite(out).all()
