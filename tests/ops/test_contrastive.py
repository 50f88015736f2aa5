"""Fused contrastive losses: native kernels vs float64 torch references, gradients, checks.

Tolerances (relative): the loss to ``|loss_ref|``, every gradient element to the largest
gradient magnitude ``max|g_ref|`` (gradients of cancelling terms can be ~0 elementwise):
float64 <= 1e-10, float32 <= 1e-5 (the reference is evaluated in float64 on the same
float32-representable inputs).  With D = 1 and normalisation the exact gradient is 0 and
both sides are rounding noise: those cases use a gradient scale of at least ``1 / tau``.
Sizes are chosen off the CPU blocks (32 anchor rows, 128 candidate columns, SIMD widths 8 / 16)
and the CUDA tiles (128 rows, 16 / 32 candidates, 16 / 32 features).
"""

from __future__ import annotations

import pytest
import torch
from contrastx import _native
from contrastx.embed.losses.ntxent import nt_xent_loss
from contrastx.embed.losses.supcon import supcon_loss
from contrastx.embed.losses.vicreg import vicreg_loss
from contrastx.ops.contrastive import (
    nt_xent_loss_fused,
    supcon_loss_fused,
    supcon_loss_reference,
    vicreg_loss_fused,
    vicreg_loss_reference,
)

RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}

# --- SupCon / NT-Xent -------------------------------------------------------------------------


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_supcon_native_cpu_matches_reference(cases, supcon_shape, dtype, normalize):
    m, d, k = supcon_shape
    z = cases.rows(m, d, dtype, seed=m + d, scale=1.0 if normalize else 0.4)
    y = cases.labels(m, k, seed=m)
    t = 0.2
    loss, grad = cases.loss_and_grad(
        lambda v: supcon_loss_fused(v, y, t, normalize=normalize, backend="native"), z
    )
    assert loss.dtype == dtype and grad.dtype == dtype
    ref, gref = cases.loss_and_grad(
        lambda v: supcon_loss_reference(v, y, t, normalize=normalize), z.double()
    )
    cases.assert_close(loss, grad, ref, gref, RTOL[dtype], 1 / t if d == 1 and normalize else 0.0)


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n", "d"), [(1, 1), (1, 4), (16, 1), (65, 7), (100, 64)])
def test_nt_xent_native_cpu_matches_loss(cases, n, d, dtype):
    z1, z2 = cases.rows(n, d, dtype, seed=n), cases.rows(n, d, dtype, seed=n + 100)
    z = torch.cat([z1, z2])
    loss, grad = cases.loss_and_grad(
        lambda v: nt_xent_loss_fused(v[:n], v[n:], 0.3, backend="native"), z
    )
    ref, gref = cases.loss_and_grad(
        lambda v: nt_xent_loss(v[:n], v[n:], 0.3, backend="torch"), z.double()
    )
    cases.assert_close(loss, grad, ref, gref, RTOL[dtype], 1 / 0.3 if d == 1 else 0.0)


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("n_views", [1, 2, 3])
def test_supcon_loss_backend_native_matches_torch(cases, n_views):
    g = torch.Generator().manual_seed(n_views)
    views = [torch.randn(40, 6, generator=g, dtype=torch.float64) for _ in range(n_views)]
    y = torch.randint(0, 5, (40,), generator=g)
    y[0] = 99
    cat = torch.cat(views)
    f = lambda backend: lambda v: supcon_loss(list(v.split(40)), y, 0.1, backend=backend)  # noqa: E731
    loss, grad = cases.loss_and_grad(f("native"), cat)
    ref, gref = cases.loss_and_grad(f("torch"), cat)
    cases.assert_close(loss, grad, ref, gref, 1e-10)
    loss_auto, grad_auto = cases.loss_and_grad(f("auto"), cat)
    assert torch.equal(loss_auto, loss) and torch.equal(grad_auto, grad)  # auto -> native


@pytest.mark.usefixtures("native_cpu")
def test_supcon_without_positives_is_zero_with_zero_grad(cases):
    z = cases.rows(9, 4, torch.float64, seed=1)
    loss, grad = cases.loss_and_grad(
        lambda v: supcon_loss_fused(v, torch.arange(9), 0.1, backend="native"), z
    )
    assert float(loss) == 0.0 and torch.equal(grad, torch.zeros_like(grad))
    loss, grad = cases.loss_and_grad(  # one row: no candidate at all
        lambda v: supcon_loss_fused(v, torch.zeros(1, dtype=torch.long), backend="native"), z[:1]
    )
    assert float(loss) == 0.0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.usefixtures("native_cpu")
def test_supcon_zero_and_tiny_rows_and_temperatures(cases):
    """Rows below the norm floor use z = x / eps (gradient g / eps), as the reference."""
    z = cases.rows(70, 5, torch.float64, seed=4)
    z[3] = 0.0
    z[10] *= 1e-9
    y = cases.labels(70, 4, seed=4)
    for t in (0.05, 1.0, 7.0):
        loss, grad = cases.loss_and_grad(
            lambda v, t=t: supcon_loss_fused(v, y, t, backend="native"), z
        )
        ref, gref = cases.loss_and_grad(lambda v, t=t: supcon_loss_reference(v, y, t), z)
        cases.assert_close(loss, grad, ref, gref, 1e-10)


@pytest.mark.usefixtures("native_cpu")
def test_supcon_upstream_gradient_is_scaled(cases):
    z = cases.rows(50, 4, torch.float64, seed=5).requires_grad_(True)
    y = cases.labels(50, 3, seed=5)
    (g1,) = torch.autograd.grad(supcon_loss_fused(z, y, backend="native"), z)
    (g3,) = torch.autograd.grad(-2.5 * supcon_loss_fused(z, y, backend="native"), z)
    torch.testing.assert_close(g3, -2.5 * g1, rtol=1e-13, atol=1e-13 * float(g1.abs().max()))


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_supcon_bindings_write_every_output(cases, dtype):
    """NaN-poisoned outputs through the bindings: every element must be written."""
    mod = _native.require_cpu()
    name = {torch.float64: "float64", torch.float32: "float32"}[dtype]
    for m, d in [(1, 3), (37, 5), (131, 20)]:
        z = cases.rows(m, d, dtype, seed=m)
        ids = torch.unique(cases.labels(m, 4, seed=m), return_inverse=True)[1]
        counts = torch.bincount(ids)[ids] - 1
        w = ((counts > 0).double() / max(int((counts > 0).sum()), 1)).to(dtype)
        c = (w.double() / counts.clamp_min(1)).to(dtype)
        lse = torch.full((m,), float("nan"), dtype=dtype)
        row = torch.full((m,), float("nan"), dtype=dtype)
        mod.supcon_forward_cpu(
            z.data_ptr(), ids.data_ptr(), w.data_ptr(), c.data_ptr(), lse.data_ptr(),
            row.data_ptr(), m, d, 0.5, True, 1e-8, name, 2,
        )  # fmt: skip
        assert not torch.isnan(lse).any() and not torch.isnan(row).any()
        assert torch.isinf(lse[w == 0]).all() and (row[w == 0] == 0).all()
        gx = torch.full((m, d), float("nan"), dtype=dtype)
        mod.supcon_backward_cpu(
            z.data_ptr(), ids.data_ptr(), w.data_ptr(), c.data_ptr(), lse.data_ptr(),
            gx.data_ptr(), m, d, 0.5, True, 1e-8, 1.0, name, 2,
        )  # fmt: skip
        assert torch.isfinite(gx).all()


@pytest.mark.usefixtures("native_cpu")
def test_supcon_independent_of_thread_count(cases, one_and_many_threads):
    z = cases.rows(300, 9, torch.float64, seed=11)
    y = cases.labels(300, 6, seed=11)
    one, many = one_and_many_threads(
        lambda: cases.loss_and_grad(lambda v: supcon_loss_fused(v, y, backend="native"), z)
    )
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


@pytest.mark.usefixtures("native_cpu")
def test_supcon_non_contiguous_and_label_dtypes(cases):
    z = cases.rows(40, 12, torch.float64, seed=2)
    y = cases.labels(40, 3, seed=2)
    zs = z[:, ::2]  # strided view: copied
    assert not zs.is_contiguous()
    a = supcon_loss_fused(zs, y, backend="native")
    b = supcon_loss_fused(zs.contiguous(), y.to(torch.int32), backend="native")
    assert torch.equal(a, b)


@pytest.mark.usefixtures("native_cpu")
def test_native_is_differentiable_once_only(cases):
    z = cases.rows(10, 3, torch.float64, seed=3).requires_grad_(True)
    y = cases.labels(10, 2, seed=3)
    (g,) = torch.autograd.grad(supcon_loss_fused(z, y, backend="native"), z, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()
    (g,) = torch.autograd.grad(supcon_loss_fused(z, y, backend="torch"), z, create_graph=True)
    g.sum().backward()  # the torch reference supports double backward


Z43 = torch.randn(4, 3, generator=torch.Generator().manual_seed(20))


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((Z43[0], torch.zeros(4, dtype=torch.long)), ValueError, "shape"),
        ((Z43, torch.zeros(3, dtype=torch.long)), ValueError, "labels must"),
        ((Z43, torch.zeros(4)), TypeError, "integers"),
        (
            (torch.ones(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long)),
            TypeError,
            "floating",
        ),
        (([[1.0]], torch.zeros(1, dtype=torch.long)), TypeError, "torch.Tensor"),
        ((torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long)), ValueError, "NaN"),
    ],
)
def test_supcon_bad_inputs(args, exc, match, backend):
    with pytest.raises(exc, match=match):
        supcon_loss_fused(*args, backend=backend)


def test_bad_options():
    z, y = Z43.clone(), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="backend must be one of"):
        supcon_loss_fused(z, y, backend="gpu")
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            supcon_loss_fused(z, y, t)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss_fused(z, z[:3])
    with pytest.raises(TypeError, match=r"z2 dtype torch\.float64 does not match z1"):
        nt_xent_loss_fused(z, z.double())
    with pytest.raises(TypeError, match="z2 dtype"):
        vicreg_loss_fused(z, z.double())
    with pytest.raises(ValueError, match="at least 2 rows"):
        vicreg_loss_fused(z[:1], z[:1])


@pytest.mark.usefixtures("native_cpu")
def test_native_rejects_unsupported_dtype_auto_falls_back():
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(21), dtype=torch.bfloat16)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(TypeError, match="float32 or float64"):
        supcon_loss_fused(z, y, backend="native")
    ref = supcon_loss_reference(z, y)
    assert torch.equal(supcon_loss_fused(z, y), ref)  # auto -> torch


def test_missing_extension_falls_back_and_native_raises(cases, monkeypatch):
    monkeypatch.setattr(_native, "_tried", True)
    monkeypatch.setattr(_native, "_module", None)
    monkeypatch.setattr(_native, "_error", "ImportError: simulated")
    z, y = cases.rows(12, 3, torch.float64, seed=0), cases.labels(12, 3, seed=0)
    torch.testing.assert_close(supcon_loss_fused(z, y), supcon_loss_reference(z, y))
    with pytest.raises(RuntimeError, match=r"contrastx\._C.*simulated"):
        supcon_loss_fused(z, y, backend="native")
    with pytest.raises(RuntimeError, match="simulated"):
        vicreg_loss_fused(z, z, backend="native")


# --- VICReg -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("native_cpu")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vicreg_native_cpu_matches_reference(cases, vicreg_shape, dtype):
    n, d = vicreg_shape
    z = cases.vicreg_views(n, d, dtype, seed=n * d)
    loss, grad = cases.loss_and_grad(lambda v: vicreg_loss_fused(v[:n], v[n:], backend="native"), z)
    ref, gref = cases.loss_and_grad(lambda v: vicreg_loss_reference(v[:n], v[n:]), z.double())
    cases.assert_close(loss, grad, ref, gref, RTOL[dtype])
    # Non-default weights, through the loss function.
    args = (2.0, 3.0, 0.5, 1.3, 1e-3)
    loss, grad = cases.loss_and_grad(
        lambda v: vicreg_loss(v[:n], v[n:], *args, backend="native"), z
    )
    ref, gref = cases.loss_and_grad(lambda v: vicreg_loss(v[:n], v[n:], *args, backend="torch"), z)
    cases.assert_close(loss, grad, ref, gref, RTOL[dtype])


@pytest.mark.usefixtures("native_cpu")
def test_vicreg_bindings_write_every_output_and_auto_is_native(cases):
    mod = _native.require_cpu()
    z1, z2 = cases.rows(33, 7, torch.float64, seed=1), cases.rows(33, 7, torch.float64, seed=2)
    out = torch.full((4,), float("nan"), dtype=torch.float64)
    g1 = torch.full((33, 7), float("nan"), dtype=torch.float64)
    g2 = g1.clone()
    params = (25.0, 25.0, 1.0, 1.0, 1e-4)
    state = torch.full((mod.vicreg_state_size(7),), float("nan"), dtype=torch.float64)
    mod.vicreg_forward_cpu(z1.data_ptr(), z2.data_ptr(), out.data_ptr(), state.data_ptr(), 33, 7,
                           *params, "float64", 2)  # fmt: skip
    assert torch.isfinite(state).all()
    mod.vicreg_backward_cpu(z1.data_ptr(), z2.data_ptr(), state.data_ptr(), g1.data_ptr(),
                            g2.data_ptr(), 33, 7, params[0], 1.0, "float64", 2)  # fmt: skip
    assert torch.isfinite(out).all() and torch.isfinite(g1).all() and torch.isfinite(g2).all()
    torch.testing.assert_close(out[0], out[1] * 25 + out[2] * 25 + out[3], rtol=1e-14, atol=0)
    assert torch.equal(vicreg_loss(z1, z2), vicreg_loss_fused(z1, z2, backend="native"))


# --- CUDA -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_supcon_native_cuda_matches_reference(cases, supcon_shape, dtype, normalize):
    m, d, k = supcon_shape
    z = cases.rows(m, d, dtype, seed=m + d, device="cuda", scale=1.0 if normalize else 0.4)
    y = cases.labels(m, k, seed=m, device="cuda")
    loss, grad = cases.loss_and_grad(
        lambda v: supcon_loss_fused(v, y, 0.2, normalize=normalize, backend="native"), z
    )
    assert loss.device.type == "cuda" and grad.device.type == "cuda"
    ref, gref = cases.loss_and_grad(
        lambda v: supcon_loss_reference(v, y.cpu(), 0.2, normalize=normalize), z.double().cpu()
    )
    cases.assert_close(
        loss.cpu(), grad, ref, gref, RTOL[dtype], 5.0 if d == 1 and normalize else 0.0
    )


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
def test_supcon_native_cuda_side_stream_and_errors(cases):
    z = cases.rows(300, 20, torch.float32, seed=1, device="cuda")
    y = cases.labels(300, 5, seed=1, device="cuda")
    ref = supcon_loss_reference(z.double().cpu(), y.cpu())
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        loss = supcon_loss_fused(z, y, backend="native")
    side.synchronize()
    assert abs(float(loss) - float(ref)) <= 1e-5 * abs(float(ref))
    with pytest.raises(ValueError, match="labels are on"):
        supcon_loss_fused(z, y.cpu())


@pytest.mark.usefixtures("cuda_kernels")
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vicreg_native_cuda_matches_reference(cases, vicreg_shape, dtype):
    n, d = vicreg_shape
    z = cases.vicreg_views(n, d, dtype, seed=n * d + 1)
    ref, gref = cases.loss_and_grad(lambda v: vicreg_loss_reference(v[:n], v[n:]), z.double())
    zc = z.cuda()
    side = torch.cuda.Stream()  # the kernels run on the current stream
    with torch.cuda.stream(side):
        loss, grad = cases.loss_and_grad(
            lambda v: vicreg_loss_fused(v[:n], v[n:], backend="native"), zc
        )
    side.synchronize()
    assert loss.device.type == "cuda" and grad.device.type == "cuda"
    cases.assert_close(loss.cpu(), grad.cpu(), ref, gref, RTOL[dtype])
    auto = vicreg_loss_fused(zc[:n], zc[n:])  # auto picks the CUDA kernel
    assert abs(float(auto) - float(ref)) <= RTOL[dtype] * abs(float(ref)) + 1e-300
