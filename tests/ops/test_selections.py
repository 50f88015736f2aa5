"""Row-selection Gram products: native kernel and dense torch path vs a float64 loop.

Reference: for every selection, ``Z_S^T (Z_S v)`` and ``Z_S^T 1`` in float64 numpy on the
selected rows (float32 storage: on the float32 values). Tolerance, relative to the largest
reference magnitude: 1e-12 for float64 arithmetic (native kernel, any storage; torch with
float64 storage), 1e-5 for the torch path with float32 storage (float32 GEMMs) and for the
native kernel's float32 arithmetic (float32 products and sums within a 128-row chunk; the
float32 rounding of dot products of up to 129 terms is ~1e-7 of the result). Sizes are off
the kernel's blocks (8 doubles or 16 floats per vector, 8 rows per dot group, 8-vector
accumulator blocks, 128-row chunks).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from contrastx.ops.selections import (
    QuantizedRows,
    RowSelection,
    selected_gram_matvec,
    selected_row_sums,
)

# (rows, M, selections, rows per selection)
SHAPES = [(1, 1, 1, 1), (50, 7, 3, 9), (300, 37, 300, 17), (1000, 129, 5, 301), (777, 64, 2, 0)]
BACKENDS = ["native", "torch"]  # "native" skips without the extension (conftest)


def _case(n, m, b, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = torch.from_numpy(rng.normal(size=(n, m))).to(dtype)
    lists = [rng.choice(n, size=min(k, n), replace=False) for _ in range(b)]
    v = torch.from_numpy(rng.normal(size=(m, b)))
    return z, lists, v


def _reference(z, lists, v):
    zz = z.double().numpy()
    gram = np.stack([zz[rows].T @ (zz[rows] @ v[:, j].numpy()) for j, rows in enumerate(lists)], 1)
    sums = np.stack([zz[rows].sum(0) for rows in lists], 1)
    return gram, sums


def _rtol(backend, dtype):
    return 1e-5 if (backend == "torch" and dtype == torch.float32) else 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n", "m", "b", "k"), SHAPES)
def test_matches_float64_loop(n, m, b, k, dtype, backend):
    z, lists, v = _case(n, m, b, k, dtype)
    sel = RowSelection.from_lists(lists, n)
    gram, sums = _reference(z, lists, v)
    out = selected_gram_matvec(z, sel, v, backend=backend)
    assert out.shape == (m, b) and out.dtype == torch.float64
    scale = max(np.abs(gram).max(), 1e-300)
    np.testing.assert_allclose(out.numpy(), gram, rtol=0, atol=_rtol(backend, dtype) * scale)
    s = selected_row_sums(z, sel, backend=backend)
    scale = max(np.abs(sums).max(), 1e-300)
    np.testing.assert_allclose(s.numpy(), sums, rtol=0, atol=_rtol(backend, dtype) * scale)
    if k == 0:  # empty selections give exact zeros (every output element is written)
        assert not out.any() and not s.any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_columns_pick_selections(backend):
    z, lists, v = _case(400, 33, 4, 50, torch.float64, seed=1)
    sel = RowSelection.from_lists(lists, 400)
    cols = torch.tensor([3, 0, 3])  # repeated and permuted
    out = selected_gram_matvec(z, sel, v[:, :3], columns=cols, backend=backend)
    gram, _ = _reference(z, [lists[3], lists[0], lists[3]], v[:, :3])
    np.testing.assert_allclose(out.numpy(), gram, rtol=0, atol=1e-12 * np.abs(gram).max())
    sums = selected_row_sums(z, sel, columns=cols, backend=backend)
    assert sums.shape == (33, 3)
    tol = 0.0 if backend == "native" else 1e-12  # a GEMM may round equal columns apart
    torch.testing.assert_close(sums[:, 0], sums[:, 2], rtol=0, atol=tol * sums.abs().max())


@pytest.mark.usefixtures("native_cpu")
def test_native_column_independent_of_block_and_threads(one_and_many_threads):
    """A column's result is bitwise the same alone, inside a block, and on 1 or 2 threads."""
    z, lists, v = _case(2000, 100, 9, 200, torch.float64, seed=2)
    sel = RowSelection.from_lists(lists, 2000)
    one, two = one_and_many_threads(lambda: selected_gram_matvec(z, sel, v, backend="native"))
    alone = selected_gram_matvec(z, sel, v[:, [4]], columns=torch.tensor([4]), backend="native")
    assert torch.equal(one, two)
    assert torch.equal(alone[:, 0], one[:, 4])


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("storage", ["float32", "int16"])
@pytest.mark.parametrize(("n", "m", "b", "k"), SHAPES)
def test_float32_arithmetic_matches_float64_loop(n, m, b, k, storage):
    z, lists, v = _case(n, m, b, k, torch.float64, seed=7)
    zs = z.float() if storage == "float32" else QuantizedRows.quantize(z)
    stored = zs.double() if storage == "float32" else zs.rows(0, n)
    sel = RowSelection.from_lists(lists, n)
    gram, sums = _reference(stored, lists, v)
    out = selected_gram_matvec(zs, sel, v, backend="native", arithmetic="float32")
    exact = selected_gram_matvec(zs, sel, v, backend="native")
    assert out.shape == (m, b) and out.dtype == torch.float64
    scale = max(np.abs(gram).max(), 1e-300)
    np.testing.assert_allclose(out.numpy(), gram, rtol=0, atol=1e-5 * scale)
    s = selected_row_sums(zs, sel, backend="native", arithmetic="float32")
    scale = max(np.abs(sums).max(), 1e-300)
    np.testing.assert_allclose(s.numpy(), sums, rtol=0, atol=1e-5 * scale)
    if k == 0:
        assert not out.any() and not s.any()
    elif m >= 16 and k >= 8:  # whole float32 vectors: float32 arithmetic did run
        assert not torch.equal(out, exact)


@pytest.mark.usefixtures("native_cpu")
def test_float32_arithmetic_column_independent_of_block_and_threads(one_and_many_threads):
    z, lists, v = _case(2000, 100, 9, 200, torch.float32, seed=8)
    sel = RowSelection.from_lists(lists, 2000)

    def run(cols=None, vv=v):
        return selected_gram_matvec(
            z, sel, vv, columns=cols, backend="native", arithmetic="float32"
        )

    one, two = one_and_many_threads(run)
    alone = run(torch.tensor([4]), v[:, [4]])
    assert torch.equal(one, two) and torch.equal(alone[:, 0], one[:, 4])


@pytest.mark.usefixtures("native_cpu")
def test_float64_storage_keeps_float64_arithmetic():
    z, lists, v = _case(500, 40, 3, 100, torch.float64, seed=9)
    sel = RowSelection.from_lists(lists, 500)
    assert torch.equal(
        selected_gram_matvec(z, sel, v, backend="native", arithmetic="float32"),
        selected_gram_matvec(z, sel, v, backend="native"),
    )


def test_dense_matrix_and_sizes():
    sel = RowSelection.from_lists([[4, 1], [], [0, 2, 3]], n_rows=5)
    assert len(sel) == 3 and sel.sizes.tolist() == [2, 0, 3]
    assert sel.dense().T.tolist() == [[0, 1, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0]]


def test_bad_selections_are_rejected():
    with pytest.raises(ValueError, match="repeats a row"):
        RowSelection.from_lists([[1, 1]], n_rows=3)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        RowSelection.from_lists([[3]], n_rows=3)
    with pytest.raises(ValueError, match="strictly increasing"):
        RowSelection(np.array([0, 2]), np.array([2, 1]), n_rows=3)
    with pytest.raises(ValueError, match="end at len"):
        RowSelection(np.array([0, 3]), np.array([0, 1]), n_rows=3)
    with pytest.raises(ValueError, match="selection 1 repeats a row"):
        RowSelection(np.array([0, 1, 3]), np.array([0, 2, 2]), n_rows=3)
    with pytest.raises(TypeError, match="row indices must be integers; got float64"):
        RowSelection.from_lists([[0, 1], [1.5]], n_rows=3)
    # Order across selections is free; int32 rows are taken as they are.
    RowSelection(np.array([0, 1, 2]), np.array([2, 1]), n_rows=3)
    sel = RowSelection(np.array([0, 2]), np.array([0, 2], dtype=np.int32), n_rows=3)
    assert sel.rows.dtype == torch.int32 and sel.rows.tolist() == [0, 2]


def test_bad_arguments_are_rejected():
    z, lists, v = _case(20, 4, 2, 5, torch.float64)
    sel = RowSelection.from_lists(lists, 20)
    with pytest.raises(ValueError, match="indexes 20 rows but z has 19"):
        selected_gram_matvec(z[:19], sel, v)
    with pytest.raises(ValueError, match="v must have shape"):
        selected_gram_matvec(z, sel, v[:, :1])
    with pytest.raises(ValueError, match="columns must be in"):
        selected_row_sums(z, sel, columns=torch.tensor([2]))
    with pytest.raises(ValueError, match="backend must be"):
        selected_row_sums(z, sel, backend="fast")
    with pytest.raises(ValueError, match=r"arithmetic must be one of .* got 'float16'"):
        selected_gram_matvec(z, sel, v, arithmetic="float16")
    with pytest.raises(ValueError, match=r"arithmetic must be one of .* got 'half'"):
        selected_row_sums(z, sel, arithmetic="half")
    with pytest.raises(TypeError, match="float32 or float64"):
        selected_row_sums(z.half(), sel, backend="native")
    with pytest.raises(TypeError, match="RowSelection"):
        selected_row_sums(z, [lists])


def _spread_columns(n, m, seed):
    """Rows whose columns span four decades (as whitened kernel features do)."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(n, m)) * np.logspace(0, -4, m))


def test_quantized_rows_round_trip_bound():
    z = _spread_columns(500, 40, seed=3)
    z[7] = 0.0
    q = QuantizedRows.quantize(z)
    assert q.values.dtype == torch.int16 and q.shape == (500, 40)
    assert q.nbytes == 2 * 500 * 40 + 8 * (500 + 40)
    back = q.rows(0, 500)
    # Every entry within half a step r_i c_j / 2 (plus float64 rounding).
    bound = 0.5 * q.row_scale[:, None] * q.col_scale[None, :] * (1 + 1e-9) + 1e-300
    assert ((back - z).abs() <= bound).all()
    assert not back[7].any()
    # Relative to each column's size the error is ~1e-5, where one scale per row (the
    # columns' spread left to the integers) would lose the small columns entirely.
    col_err = ((back - z).abs().amax(0) / z.abs().amax(0)).max()
    assert col_err < 1e-4
    # Filling by parts with given column scales gives the same storage.
    parts = QuantizedRows.empty(500, q.col_scale)
    parts.assign(0, z[:123])
    parts.assign(123, z[123:])
    assert torch.equal(parts.values, q.values) and torch.equal(parts.row_scale, q.row_scale)


@pytest.mark.usefixtures("native_cpu")
def test_native_quantization_is_the_torch_reference_bitwise(one_and_many_threads):
    """QuantizedRows.assign's native pass gives the torch reference's values and scales
    bitwise (the same divisions, rounding half to even), on one and two threads."""
    z = _spread_columns(3000, 77, seed=11)
    z[5] = 0.0  # a zero row: scale 0, values 0
    z[6] = torch.linspace(-3.0, 3.0, 77, dtype=torch.float64)  # exact multiples: ties
    z[7, :] = 1e-300  # tiny
    col = z.abs().amax(0)
    ref = QuantizedRows.empty(3000, col)
    ref._assign_torch(0, 3000, z)

    def native():
        q = QuantizedRows.empty(3000, col)
        q.assign(0, z[:1000])
        q.assign(1000, z[1000:].float().double())  # any floating dtype, any offset
        return q

    q1, q2 = one_and_many_threads(native)
    for q in (q1, q2):
        assert torch.equal(q.values[:1000], ref.values[:1000])
        assert torch.equal(q.row_scale[:1000], ref.row_scale[:1000])
    ref._assign_torch(1000, 3000, z[1000:].float().double())
    assert torch.equal(q1.values, ref.values) and torch.equal(q1.row_scale, ref.row_scale)
    assert not q1.values[5].any() and q1.row_scale[5] == 0


def test_quantized_rows_errors():
    z = _spread_columns(20, 5, seed=0)
    q = QuantizedRows.quantize(z)
    with pytest.raises(ValueError, match=r"rows \[15, 35\) of width 5 do not fit \(20, 5\)"):
        q.assign(15, z)
    bad = z.clone()
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        QuantizedRows.quantize(bad, q.col_scale)
    with pytest.raises(ValueError, match="col_scale must be finite and > 0"):
        QuantizedRows.empty(3, torch.tensor([1.0, 0.0], dtype=torch.float64))
    with pytest.raises(TypeError, match="values must be a 2-D int16 tensor"):
        QuantizedRows(q.values.float(), q.row_scale, q.col_scale)
    with pytest.raises(ValueError, match=r"row_scale must have shape \(20,\)"):
        QuantizedRows(q.values, q.row_scale[:3], q.col_scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantized_rows_products_match_their_values(backend):
    """The products over QuantizedRows equal those over its dequantised float64 rows."""
    rng = np.random.default_rng(4)
    z = _spread_columns(700, 45, seed=4)
    q = QuantizedRows.quantize(z)
    lists = [rng.choice(700, size=k, replace=False) for k in (1, 90, 300, 0)]
    sel = RowSelection.from_lists(lists, 700)
    v = torch.from_numpy(rng.normal(size=(45, 4)))
    gram, sums = _reference(q.rows(0, 700), lists, v)
    out = selected_gram_matvec(q, sel, v, backend=backend)
    np.testing.assert_allclose(out.numpy(), gram, rtol=0, atol=1e-12 * np.abs(gram).max())
    s = selected_row_sums(q, sel, backend=backend)
    np.testing.assert_allclose(s.numpy(), sums, rtol=0, atol=1e-12 * np.abs(sums).max())
    assert not out[:, 3].any() and not s[:, 3].any()


@pytest.mark.usefixtures("native_cpu")
def test_quantized_native_column_independent_of_block_and_threads(one_and_many_threads):
    rng = np.random.default_rng(5)
    q = QuantizedRows.quantize(_spread_columns(1500, 70, seed=5))
    lists = [rng.choice(1500, size=200, replace=False) for _ in range(6)]
    sel = RowSelection.from_lists(lists, 1500)
    v = torch.from_numpy(rng.normal(size=(70, 6)))
    one, two = one_and_many_threads(lambda: selected_gram_matvec(q, sel, v, backend="native"))
    alone = selected_gram_matvec(q, sel, v[:, [2]], columns=torch.tensor([2]), backend="native")
    assert torch.equal(one, two) and torch.equal(alone[:, 0], one[:, 2])


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("storage", ["float32", "int16"])
@pytest.mark.parametrize("arithmetic", ["float64", "float32"])
def test_widened_rows_give_the_direct_results_bitwise(storage, arithmetic, one_and_many_threads):
    """Many right-hand sides selecting each row several times (the kernel widens float32
    and int16 chunks to float64, and int16 chunks to float32 for float32 arithmetic, once)
    give bitwise the results of each one alone (converted on every load), on one and two
    threads."""
    rng = np.random.default_rng(6)
    z = _spread_columns(1200, 96, seed=6)
    zs = z.float() if storage == "float32" else QuantizedRows.quantize(z)
    lists = [rng.choice(1200, size=700, replace=False) for _ in range(24)]
    sel = RowSelection.from_lists(lists, 1200)
    v = torch.from_numpy(rng.normal(size=(96, 24)))
    kw = {"backend": "native", "arithmetic": arithmetic}
    one, two = one_and_many_threads(lambda: selected_gram_matvec(zs, sel, v, **kw))
    assert torch.equal(one, two)
    for j in (0, 13):
        alone = selected_gram_matvec(zs, sel, v[:, [j]], columns=torch.tensor([j]), **kw)
        assert torch.equal(alone[:, 0], one[:, j])
    sums = selected_row_sums(zs, sel, **kw)
    alone = selected_row_sums(zs, sel, columns=torch.tensor([5]), **kw)
    assert torch.equal(alone[:, 0], sums[:, 5])
