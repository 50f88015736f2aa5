"""Row-selection Gram product (the NPLM pool CG operator): native kernel vs dense torch.

``out_b = Z_{S_b}^T Z_{S_b} v_b`` for B toys whose selections S_b are N_D = n / 10 random
rows of a stored pool Z (n x M), as in ``contrastx-toys`` (pool = 10 N(B)). The torch
reference is the dense masked product Z^T (W o (Z V)) (two GEMMs over all n rows, which is
what the engine runs on a GPU); the native kernel visits the selected rows only, in float64
arithmetic for float64 and float32 storage. n = 200,000, M = 1,000, B in {64, 250}.
``arithmetic``: float32 and int16 storage, the native kernel's float32 products (what the
toys run with the "average" preconditioner) against its float64 ones (the previous path).

    pytest bench/bench_selections.py --benchmark-only
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from contrastx import _native
from contrastx.ops.selections import QuantizedRows, RowSelection, selected_gram_matvec

N, M, FRACTION = 200_000, 1_000, 0.1

pytestmark = pytest.mark.skipif(
    not _native.cpu_available(), reason=f"contrastx._C not importable: {_native.load_error()}"
)


@functools.lru_cache(maxsize=1)
def pool() -> torch.Tensor:
    return torch.randn(N, M, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@functools.lru_cache(maxsize=2)
def selections(b: int) -> tuple[RowSelection, torch.Tensor]:
    rng = np.random.default_rng(b)
    sel = RowSelection.from_lists(
        [rng.choice(N, size=int(FRACTION * N), replace=False) for _ in range(b)], N
    )
    return sel, torch.from_numpy(rng.normal(size=(M, b)))


@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("b", [64, 250])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_selected_gram_matvec(benchmark, record_time, dtype, b, impl):
    z = pool().to(dtype)
    sel, v = selections(b)
    sel.dense()  # the dense 0/1 matrix is built once per block in the engine: not timed
    group = f"selected gram {str(dtype)[6:]} B={b} T={torch.get_num_threads()}"
    benchmark.group = group
    benchmark.extra_info.update(n=N, m=M, b=b, fraction=FRACTION, threads=torch.get_num_threads())
    out = benchmark.pedantic(
        selected_gram_matvec,
        args=(z, sel, v),
        kwargs={"backend": impl},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    assert out.shape == (M, b)
    record_time(group, impl, benchmark)


@pytest.mark.parametrize("arithmetic", ["float32", "float64"])
@pytest.mark.parametrize("b", [64, 250])
@pytest.mark.parametrize("storage", ["float32", "int16"])
def test_selected_gram_matvec_arithmetic(benchmark, record_time, storage, b, arithmetic):
    z = pool().float() if storage == "float32" else QuantizedRows.quantize(pool())
    sel, v = selections(b)
    group = f"selected gram {storage} storage B={b} T={torch.get_num_threads()}"
    benchmark.group = group
    benchmark.extra_info.update(n=N, m=M, b=b, fraction=FRACTION, arithmetic=arithmetic)
    out = benchmark.pedantic(
        selected_gram_matvec,
        args=(z, sel, v),
        kwargs={"backend": "native", "arithmetic": arithmetic},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    assert out.shape == (M, b)
    record_time(group, "native" if arithmetic == "float32" else "previous", benchmark)
