"""Gaussian kernel product: native kernels vs an exact float64 reference, and input checks.

Tolerances are relative to ``scale = K |V|`` (the sum of absolute terms), per element:
float64 <= 1e-12, float32 <= 1e-5, float32 with float64 accumulation <= 1e-6, plus an absolute
``2 * tiny(dtype) * sum|V|`` for kernel values below the smallest normal number, which the
kernels may flush to zero.  Every output element is compared, so uninitialised or stale
entries cannot hide.
"""

from __future__ import annotations

import math

import pytest
import torch
from contrastx import _native
from contrastx.ops import (
    gaussian_kernel,
    gaussian_kernel_exp_sum,
    gaussian_kernel_exp_sum_reference,
    gaussian_kernel_matvec,
    gaussian_kernel_matvec_reference,
)

RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def exact(x, c, v, sigma):
    """float64 reference with direct differences (no cancellation); returns (out, scale)."""
    x, c, v = x.double().cpu(), c.double().cpu(), v.double().cpu()
    d2 = (x[:, None, :] - c[None, :, :]).pow(2).sum(-1)
    k = torch.exp(-d2 / (2.0 * sigma * sigma))
    return k @ v, k @ v.abs()


def make(n, m, d, b, dtype, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    c = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.2
    v = torch.randn(m, b, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype=dtype, device=device) for t in (x, c, v))


def assert_close_scaled(out, ref, scale, rtol, vsum=None):
    assert out.shape == ref.shape
    assert torch.isfinite(out).all()
    err = (out.double().cpu() - ref).abs()
    bound = rtol * scale + torch.finfo(torch.float64).tiny
    if vsum is not None:  # kernel values that may be flushed to zero
        bound = bound + 2.0 * torch.finfo(out.dtype).tiny * vsum
    worst = (err / bound).max().item() if err.numel() else 0.0
    assert (err <= bound).all(), f"max error / tolerance = {worst:.3g}"


def sigma_for(d):
    return 0.5 * math.sqrt(d) + 0.3


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_cpu_matches_exact(gauss_shape, dtype):
    n, m, d, b = gauss_shape
    x, c, v = make(n, m, d, b, dtype, seed=n + m + d + b)
    s = sigma_for(d)
    out = gaussian_kernel_matvec(x, c, v, s, backend="native")
    assert out.dtype == dtype and out.shape == (n, b)
    ref, scale = exact(x, c, v, s)
    assert_close_scaled(out, ref, scale, RTOL[dtype])


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize(
    ("n", "m", "d", "b"), [(37, 129, 5, 1), (33, 17, 2, 300), (130, 131, 33, 9)]
)
def test_native_cpu_float32_with_float64_accumulation(n, m, d, b):
    x, c, v = make(n, m, d, b, torch.float32, seed=3)
    s = sigma_for(d)
    out = gaussian_kernel_matvec(x, c, v, s, backend="native", accumulate=torch.float64)
    assert out.dtype == torch.float32
    ref, scale = exact(x, c, v, s)
    assert_close_scaled(out, ref, scale, 1e-6)
    # Same as the float64 computation on the same (float32-representable) inputs, rounded once.
    out64 = gaussian_kernel_matvec(x.double(), c.double(), v.double(), s, backend="native")
    torch.testing.assert_close(out, out64.float(), rtol=2e-7, atol=1e-30)


@pytest.mark.usefixtures("native_cpu")
def test_native_writes_every_output_element():
    """Call the binding directly on a NaN-poisoned output: every element must be overwritten."""
    mod = _native.require_cpu()
    for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
        for n, m, d, b in [(37, 129, 5, 1), (33, 17, 2, 19), (5, 3, 2, 300)]:
            x, c, v = make(n, m, d, b, dtype)
            out = torch.full((n, b), float("nan"), dtype=dtype)
            mod.gaussian_matvec_cpu(
                x.data_ptr(), c.data_ptr(), v.data_ptr(), out.data_ptr(),
                n, m, d, b, 1.3, name, False, 2,
            )  # fmt: skip
            assert not torch.isnan(out).any()
            ref, scale = exact(x, c, v, 1.3)
            assert_close_scaled(out, ref, scale, RTOL[dtype])


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_far_from_origin_and_small_sigma(dtype):
    """Direct differences: no cancellation for data far from the origin; tiny K underflows."""
    x, c, v = make(40, 150, 3, 2, torch.float64, seed=7)
    x, c = x + 1000.0, c + 1000.0
    x, c, v = x.to(dtype), c.to(dtype), v.to(dtype)
    for s in (0.05, 1.0, 30.0):
        out = gaussian_kernel_matvec(x, c, v, s, backend="native")
        ref, scale = exact(x, c, v, s)
        assert_close_scaled(out, ref, scale, RTOL[dtype], vsum=v.double().abs().sum(0))


@pytest.mark.usefixtures("native_cpu")
def test_native_independent_of_thread_count(one_and_many_threads):
    x, c, v = make(301, 260, 6, 5, torch.float64, seed=11)
    one, many = one_and_many_threads(lambda: gaussian_kernel_matvec(x, c, v, 1.1, backend="native"))
    assert torch.equal(one, many)


@pytest.mark.usefixtures("native_cpu")
def test_non_contiguous_inputs_are_copied():
    x, c, v = make(50, 40, 6, 8, torch.float64, seed=5)
    xs = torch.cat([x, x], dim=1)[:, ::2]  # strided view
    vt = v.T.contiguous().T  # column-major
    assert not xs.is_contiguous() and not vt.is_contiguous()
    torch.testing.assert_close(
        gaussian_kernel_matvec(xs, c, vt, 0.9, backend="native"),
        gaussian_kernel_matvec(xs.contiguous(), c, v, 0.9, backend="native"),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("backend", ["torch", "native"])
def test_vector_v_returns_vector(backend):
    x, c, v = make(20, 30, 3, 1, torch.float64)
    out = gaussian_kernel_matvec(x, c, v[:, 0], 1.0, backend=backend)
    assert out.shape == (20,)
    ref, scale = exact(x, c, v, 1.0)
    assert_close_scaled(out, ref[:, 0], scale[:, 0], 1e-12)


@pytest.mark.parametrize("backend", ["auto", "torch", "native"])
def test_empty_sizes(backend):
    x, c, v = make(0, 10, 3, 4, torch.float64)
    out = gaussian_kernel_matvec(x, c, v, 1.0, backend=backend)
    assert out.shape == (0, 4) and out.dtype == torch.float64
    assert gaussian_kernel_matvec(x, c, v[:, 0], 1.0, backend=backend).shape == (0,)
    x, c, v = make(6, 0, 3, 4, torch.float32)
    out = gaussian_kernel_matvec(x, c, v, 1.0, backend=backend)
    assert out.shape == (6, 4) and torch.equal(out, torch.zeros(6, 4))
    x, c, v = make(6, 5, 3, 0, torch.float32)
    assert gaussian_kernel_matvec(x, c, v, 1.0, backend=backend).shape == (6, 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reference_matches_exact_and_chunking(dtype):
    x, c, v = make(57, 70, 4, 3, dtype, seed=2)
    ref, scale = exact(x, c, v, 0.8)
    for chunk in (None, 1, 7, 1000):
        out = gaussian_kernel_matvec_reference(x, c, v, 0.8, chunk_size=chunk)
        assert out.dtype == dtype
        assert_close_scaled(out, ref, scale, 1e-11 if dtype == torch.float64 else 1e-5)
    out = gaussian_kernel_matvec(x, c, v, 0.8, backend="torch")
    assert_close_scaled(out, ref, scale, 1e-11 if dtype == torch.float64 else 1e-5)


def test_reference_float64_accumulation():
    x, c, v = make(30, 20, 3, 2, torch.float32, seed=4)
    out = gaussian_kernel_matvec_reference(x, c, v, 1.0, accumulate=torch.float64)
    ref, scale = exact(x, c, v, 1.0)
    assert out.dtype == torch.float32
    assert_close_scaled(out, ref, scale, 1e-6)


def test_gaussian_kernel_dense_block():
    x, c, _ = make(9, 11, 3, 1, torch.float64)
    k = gaussian_kernel(x, c, 0.7)
    d2 = (x[:, None, :] - c[None, :, :]).pow(2).sum(-1)
    torch.testing.assert_close(k, torch.exp(-d2 / (2 * 0.49)), rtol=1e-13, atol=1e-15)
    assert ((k >= 0) & (k <= 1)).all()


def _dense_exact(x, c, sigma):
    d2 = (x.double()[:, None, :] - c.double()[None, :, :]).pow(2).sum(-1)
    return torch.exp(-d2 / (2.0 * sigma * sigma))


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("n, m, d", [(1, 1, 1), (37, 130, 6), (300, 129, 16), (65, 1000, 4)])
def test_native_dense_block_matches_direct_differences(n, m, d):
    # float64: within 2e-15 (absolute; values lie in [0, 1]) of the direct-difference
    # reference; float32 within 2e-7, and 1e-7 with float64 evaluation.
    x, c, _ = make(n, m, d, 1, torch.float64, seed=n)
    s = sigma_for(d)
    ref = _dense_exact(x, c, s)
    k = gaussian_kernel(x, c, s, backend="native")
    assert k.dtype == torch.float64 and k.shape == (n, m)
    torch.testing.assert_close(k, ref, rtol=0, atol=2e-15)
    torch.testing.assert_close(gaussian_kernel(x, c, s, backend="torch"), ref, rtol=0, atol=2e-15)
    xf, cf = x.float(), c.float()
    ref32 = _dense_exact(xf, cf, s)
    k32 = gaussian_kernel(xf, cf, s, backend="native")
    assert k32.dtype == torch.float32
    torch.testing.assert_close(k32.double(), ref32, rtol=0, atol=2e-7)
    k64 = gaussian_kernel(xf, cf, s, backend="native", accumulate=torch.float64)
    torch.testing.assert_close(k64.double(), ref32, rtol=0, atol=1e-7)


@pytest.mark.usefixtures("native_cpu")
def test_native_dense_block_into_out_and_thread_independent(one_and_many_threads):
    x, c, _ = make(301, 260, 5, 1, torch.float64, seed=3)
    one, many = one_and_many_threads(lambda: gaussian_kernel(x, c, 0.9, backend="native"))
    assert torch.equal(one, many)
    buf = torch.full((301, 260), float("nan"), dtype=torch.float64)
    for backend in ("native", "torch"):
        got = gaussian_kernel(x, c, 0.9, backend=backend, out=buf)
        assert got.data_ptr() == buf.data_ptr() and not torch.isnan(buf).any()
        buf.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"out must be a C-contiguous \(301, 260\)"):
        gaussian_kernel(x, c, 0.9, out=torch.empty(300, 260, dtype=torch.float64))
    with pytest.raises(ValueError, match="not contiguous"):
        gaussian_kernel(x, c, 0.9, out=torch.empty(260, 301, dtype=torch.float64).T)
    with pytest.raises(TypeError, match="out"):
        gaussian_kernel(x, c, 0.9, out=torch.empty(301, 260, dtype=torch.float32))


@pytest.mark.usefixtures("native_cpu")
def test_auto_uses_native_on_cpu():
    x, c, v = make(40, 50, 3, 2, torch.float64)
    native = gaussian_kernel_matvec(x, c, v, 1.0, backend="native")
    assert torch.equal(gaussian_kernel_matvec(x, c, v, 1.0), native)


def test_missing_extension_falls_back_and_native_raises(monkeypatch):
    monkeypatch.setattr(_native, "_tried", True)
    monkeypatch.setattr(_native, "_module", None)
    monkeypatch.setattr(_native, "_error", "ImportError: simulated")
    x, c, v = make(10, 12, 2, 1, torch.float64)
    ref, scale = exact(x, c, v, 1.0)
    assert_close_scaled(gaussian_kernel_matvec(x, c, v, 1.0), ref, scale, 1e-12)
    with pytest.raises(RuntimeError, match=r"contrastx\._C.*simulated"):
        gaussian_kernel_matvec(x, c, v, 1.0, backend="native")
    info = _native.native_info()
    assert info["cpu_kernels"] is False and info["import_error"] == "ImportError: simulated"


# --- input validation ---------------------------------------------------------------------


def _ok():
    return make(5, 4, 3, 2, torch.float64)


@pytest.mark.parametrize(
    ("mutate", "exc", "match"),
    [
        (lambda x, c, v: (x[0], c, v), ValueError, "x must be 2-D"),
        (lambda x, c, v: (x, c[None], v), ValueError, "centers must be 2-D"),
        (lambda x, c, v: (x, c[:, :2], v), ValueError, "same number of features"),
        (lambda x, c, v: (x, c, v[:3]), ValueError, "one row per centre"),
        (lambda x, c, v: (x, c, v[None]), ValueError, "v must be 1-D"),
        (lambda x, c, v: (x, c.float(), v), TypeError, "centers dtype"),
        (lambda x, c, v: (x, c, v.float()), TypeError, "v dtype"),
        (lambda x, c, v: (x.long(), c.long(), v), TypeError, "x must be float32 or float64"),
        (lambda x, c, v: (x.half(), c.half(), v.half()), TypeError, "float32 or float64"),
        (lambda x, c, v: (x.numpy(), c, v), TypeError, "x must be a torch.Tensor"),
        (lambda x, c, v: (x, c, [1.0] * 4), TypeError, "v must be a torch.Tensor"),
    ],
)
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_bad_inputs(mutate, exc, match, backend):
    x, c, v = mutate(*_ok())
    with pytest.raises(exc, match=match):
        gaussian_kernel_matvec(x, c, v, 1.0, backend=backend)


@pytest.mark.parametrize("which", ["x", "centers", "v"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs(which, bad):
    x, c, v = _ok()
    {"x": x, "centers": c, "v": v}[which][1, 0] = bad
    with pytest.raises(ValueError, match=f"{which} contains NaN or inf"):
        gaussian_kernel_matvec(x, c, v, 1.0)
    with pytest.raises(ValueError, match=f"{which} contains NaN or inf"):
        gaussian_kernel_matvec_reference(x, c, v, 1.0)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        gaussian_kernel_matvec(*_ok(), sigma)
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        gaussian_kernel(*_ok()[:2], sigma)


def test_bad_options():
    with pytest.raises(ValueError, match="backend must be one of"):
        gaussian_kernel_matvec(*_ok(), 1.0, backend="cuda")
    with pytest.raises(ValueError, match=r"accumulate=torch\.float32 is not supported"):
        gaussian_kernel_matvec(*_ok(), 1.0, accumulate=torch.float32)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        gaussian_kernel_matvec_reference(*_ok(), 1.0, chunk_size=0)
    with pytest.raises(TypeError, match="sigma must be a real number"):
        gaussian_kernel_matvec(*_ok(), "wide")


def test_sigma_as_tensor():
    x, c, v = _ok()
    torch.testing.assert_close(
        gaussian_kernel_matvec(x, c, v, torch.tensor(0.9)),
        gaussian_kernel_matvec(x, c, v, 0.9),
    )


# --- CUDA -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_cuda_matches_exact(gauss_shape, dtype):
    n, m, d, b = gauss_shape
    x, c, v = make(n, m, d, b, dtype, seed=n * m + d, device="cuda")
    s = sigma_for(d)
    out = gaussian_kernel_matvec(x, c, v, s, backend="native")
    assert out.device.type == "cuda" and out.dtype == dtype and out.shape == (n, b)
    ref, scale = exact(x, c, v, s)
    assert_close_scaled(out, ref, scale, RTOL[dtype])


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
def test_native_cuda_options_and_edge_cases():
    x, c, v = make(300, 70, 20, 5, torch.float32, seed=1, device="cuda")
    ref, scale = exact(x, c, v, 2.0)
    out = gaussian_kernel_matvec(x, c, v, 2.0, backend="native", accumulate=torch.float64)
    assert_close_scaled(out, ref, scale, 1e-6)
    assert gaussian_kernel_matvec(x, c, v[:, 0], 2.0).shape == (300,)  # auto -> CUDA
    # Poisoned output through the binding: every element is written.
    mod = _native.require_cuda()
    out = torch.full((300, 5), float("nan"), device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    mod.gaussian_matvec_cuda(
        x.data_ptr(), c.data_ptr(), v.data_ptr(), out.data_ptr(),
        300, 70, 20, 5, 2.0, "float32", False, stream,
    )  # fmt: skip
    torch.cuda.synchronize()
    assert_close_scaled(out, ref, scale, 1e-5)
    # A side stream is honoured.
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        out = gaussian_kernel_matvec(x, c, v, 2.0, backend="native")
    side.synchronize()
    assert_close_scaled(out, ref, scale, 1e-5)
    # Empty sizes.
    assert gaussian_kernel_matvec(x[:0], c, v, 2.0, backend="native").shape == (0, 5)
    assert torch.equal(
        gaussian_kernel_matvec(x, c[:0], v[:0], 2.0, backend="native"),
        torch.zeros(300, 5, device="cuda"),
    )
    with pytest.raises(ValueError, match="centers is on"):
        gaussian_kernel_matvec(x, c.cpu(), v, 2.0)


def test_auto_keeps_autograd():
    x, c, v = make(20, 15, 3, 2, torch.float64)
    x.requires_grad_(True)
    out = gaussian_kernel_matvec(x, c, v, 1.0)
    assert out.requires_grad
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        ref, scale = exact(x.detach(), c, v, 1.0)
    assert_close_scaled(out.detach(), ref, scale, 1e-12)


@pytest.mark.parametrize("backend", ["torch", "native"])
def test_zero_features_gives_unit_kernel(backend):
    x, c, v = make(5, 3, 0, 2, torch.float64)
    out = gaussian_kernel_matvec(x, c, v, 1.0, backend=backend)
    torch.testing.assert_close(out, v.sum(0).expand(5, 2), rtol=1e-15, atol=0)


# ------------------------------------------------------------------------------ exp sums
# gaussian_kernel_exp_sum: sum over rows of exp(K(X, C) V). References: the float64
# direct-difference product (exact above) exponentiated and summed (rtol 1e-12: the kernel
# values and products carry ~1e-15 relative rounding, which e^f passes on to each term), and
# the torch reference (kernel values from the expanded squared distance: 1e-10). Bitwise: a
# column's sum does not depend on the other columns or the thread count.

EXP_SUM_SHAPES = [(1, 1, 1, 1), (127, 5, 3, 2), (300, 129, 4, 7), (1000, 64, 6, 17)]
EXP_SUM_SHAPES += [(257, 1000, 2, 25)]


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize(("n", "m", "d", "b"), EXP_SUM_SHAPES)
def test_exp_sum_native_matches_float64_exponentials(n, m, d, b):
    x, c, v = make(n, m, d, b, torch.float64, seed=n + m + b)
    v = v * 0.4  # products of order one: sums of terms of different sizes
    s = sigma_for(d)
    out = gaussian_kernel_exp_sum(x, c, v, s, backend="native")
    assert out.shape == (b,) and out.dtype == torch.float64
    f, _ = exact(x, c, v, s)
    expected = torch.exp(f).sum(0)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=0)
    ref = gaussian_kernel_exp_sum_reference(x, c, v, s)
    torch.testing.assert_close(ref, expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(gaussian_kernel_exp_sum(x, c, v, s, backend="torch"), ref)


@pytest.mark.usefixtures("native_cpu")
def test_exp_sum_order_and_column_and_thread_independence(one_and_many_threads):
    x, c, v = make(1000, 130, 4, 9, torch.float64, seed=3)
    v = v * 0.3
    s = sigma_for(4)
    one, two = one_and_many_threads(lambda: gaussian_kernel_exp_sum(x, c, v, s, backend="native"))
    assert torch.equal(one, two)
    alone = gaussian_kernel_exp_sum(x, c, v[:, 5], s, backend="native")
    assert alone.ndim == 0 and torch.equal(alone, one[5])
    # The kernel's order: blocks of 128 rows in row order, then the blocks in order.
    e = torch.exp(gaussian_kernel_matvec(x, c, v, s, backend="native"))
    blocks = []
    for lo in range(0, 1000, 128):
        acc = torch.zeros(9, dtype=torch.float64)
        for r in range(lo, min(lo + 128, 1000)):
            acc = acc + e[r]
        blocks.append(acc)
    total = torch.zeros(9, dtype=torch.float64)
    for blk in blocks:
        total = total + blk
    # torch.exp and the kernel's vectorised exp may differ in the last bit of a term.
    torch.testing.assert_close(one, total, rtol=1e-14, atol=0)


@pytest.mark.usefixtures("native_cpu")
def test_exp_sum_exp_range_overflow_and_empty_sizes():
    x = torch.zeros(3, 1, dtype=torch.float64)
    c = torch.zeros(1, 1, dtype=torch.float64)  # K = 1: f = v
    v = torch.tensor([[-800.0, -50.0, 0.0, 1.5, 300.0, 709.0, 711.0, 1e308]], dtype=torch.float64)
    out = gaussian_kernel_exp_sum(x, c, v, 1.0, backend="native")
    expected = 3.0 * torch.exp(v[0])
    torch.testing.assert_close(out[:6], expected[:6], rtol=1e-14, atol=1e-300)
    assert out[-2:].isinf().all() and (out[-2:] > 0).all()
    # No rows: 0; no centres: f = 0, so e^0 per row; no columns: empty.
    zero_rows = gaussian_kernel_exp_sum(x[:0], c, v[:, :2], 1.0, backend="native")
    assert zero_rows.tolist() == [0.0, 0.0]
    no_centres = gaussian_kernel_exp_sum(x, c[:0], v[:0, :2], 1.0, backend="native")
    assert no_centres.tolist() == [3.0, 3.0]
    assert gaussian_kernel_exp_sum(x, c, v[:, :0], 1.0, backend="native").shape == (0,)
    torch.testing.assert_close(
        gaussian_kernel_exp_sum_reference(x, c[:0], v[:0, :2], 1.0), no_centres
    )


def test_exp_sum_float32_and_bad_inputs():
    x, c, v = make(50, 7, 3, 2, torch.float32, seed=1)
    out = gaussian_kernel_exp_sum(x, c, v, 1.0)  # auto: the torch reference for float32
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out.double(), gaussian_kernel_exp_sum(x.double(), c.double(), v.double(), 1.0)
    )
    with pytest.raises(TypeError, match=r"needs float64 CPU tensors; got torch\.float32"):
        gaussian_kernel_exp_sum(x, c, v, 1.0, backend="native")
    with pytest.raises(ValueError, match="v must have one row per centre"):
        gaussian_kernel_exp_sum(x.double(), c.double(), v.double()[:3], 1.0)
    bad = v.double().clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="v contains NaN or inf"):
        gaussian_kernel_exp_sum(x.double(), c.double(), bad, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel_exp_sum(x.double(), c.double(), v.double(), 0.0)
