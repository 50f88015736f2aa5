"""Every instruction-set level of the CPU kernels against float64 references, and the level API.

The CPU kernels exist once per level (AVX-512, AVX2, baseline: 64-, 32- and 16-byte vectors,
csrc/cpu/isa.hpp) and the best the CPU supports runs by default, so the other tests exercise
only that one.  Here each op runs at every level this machine supports (higher levels skip)
on sizes off every block and vector width, against the float64 references of the other test
modules, with their tolerances: Gaussian products 1e-12 relative to K|V| (float64) / 1e-5
(float32); row-selection products 1e-12 of the largest reference entry; losses 1e-10 / 1e-5
of max(|loss|, 1) and of max(largest gradient entry, 1).  The levels must also agree with each other
to 1e-13 in float64 (they differ only in summation order and exp rounding).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from contrastx import _native
from contrastx.ops import (
    QuantizedRows,
    RowSelection,
    cpu_isa,
    cpu_isa_levels,
    gaussian_kernel_exp_sum,
    gaussian_kernel_matvec,
    gaussian_kernel_t_matvec,
    gaussian_weighted_gram,
    selected_gram_matvec,
    selected_row_sums,
    set_cpu_isa,
    supcon_loss_fused,
    supcon_loss_reference,
    use_cpu_isa,
    vicreg_loss_fused,
    vicreg_loss_reference,
)

pytestmark = pytest.mark.usefixtures("native_cpu")

LEVELS = ["avx512", "avx2", "baseline"]
RTOL_GAUSS = {torch.float64: 1e-12, torch.float32: 1e-5}
RTOL_LOSS = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(params=LEVELS)
def level(request: pytest.FixtureRequest):
    if request.param not in cpu_isa_levels():
        pytest.skip(f"{request.param} not supported here (best: {cpu_isa_levels()[-1]})")
    with use_cpu_isa(request.param) as active:
        assert active == request.param
        yield request.param


def _gauss_case(n, m, d, b, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    c = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.2
    v = torch.randn(m, b, generator=g, dtype=torch.float64)
    u = torch.randn(n, b, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64) + 0.5
    return [t.to(dtype) for t in (x, c, v, u, w)]


def _kernel64(x, c, sigma):
    d2 = (x.double()[:, None, :] - c.double()[None, :, :]).pow(2).sum(-1)
    return torch.exp(-d2 / (2.0 * sigma * sigma))


def _check(out, ref, scale, rtol):
    assert out.shape == ref.shape and torch.isfinite(out).all()
    err = (out.double() - ref).abs()
    assert bool((err <= rtol * scale + 1e-300).all()), float((err / scale.clamp_min(1e-300)).max())


# (N, M, d, B): not multiples of 32 rows, 128 centres, 8 / 16 / 4 / 2 lanes, 6 x 16 Gram blocks.
GAUSS_SHAPES = [(1, 1, 1, 1), (37, 129, 5, 1), (33, 17, 2, 9), (130, 131, 4, 300), (200, 250, 3, 1)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n", "m", "d", "b"), GAUSS_SHAPES)
def test_gaussian_products_at_each_level(level, n, m, d, b, dtype):
    x, c, v, u, w = _gauss_case(n, m, d, b, dtype)
    sigma = 0.9
    k = _kernel64(x, c, sigma)
    rtol = RTOL_GAUSS[dtype]
    out = gaussian_kernel_matvec(x, c, v, sigma, backend="native")
    _check(out, k @ v.double(), k @ v.double().abs(), rtol)
    wu = w.double()[:, None] * u.double()
    out_t = gaussian_kernel_t_matvec(x, c, u, sigma, row_weights=w, backend="native")
    _check(out_t, k.T @ wu, k.T @ wu.abs(), rtol)
    gram = gaussian_weighted_gram(x, c, sigma, row_weights=w, backend="native")
    ref = k.T @ (w.double()[:, None] * k)
    _check(gram, ref, ref.abs(), rtol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_selected_products_at_each_level(level, dtype):
    rng = np.random.default_rng(3)
    n, m, b = 700, 67, 9
    z = torch.from_numpy(rng.normal(size=(n, m))).to(dtype)
    lists = [rng.choice(n, size=k, replace=False) for k in (0, 1, 13, 150, 333, 700, 41, 5, 64)]
    v = torch.from_numpy(rng.normal(size=(m, b)))
    sel = RowSelection.from_lists(lists, n)
    zz = z.double().numpy()
    gram = np.stack([zz[r].T @ (zz[r] @ v[:, j].numpy()) for j, r in enumerate(lists)], 1)
    sums = np.stack([zz[r].sum(0) for r in lists], 1)
    out = selected_gram_matvec(z, sel, v, backend="native")
    np.testing.assert_allclose(out.numpy(), gram, rtol=0, atol=1e-12 * np.abs(gram).max())
    s = selected_row_sums(z, sel, backend="native")
    np.testing.assert_allclose(s.numpy(), sums, rtol=0, atol=1e-12 * np.abs(sums).max())


@pytest.mark.parametrize(("n", "m", "d", "b"), GAUSS_SHAPES)
def test_gaussian_exp_sum_at_each_level(level, n, m, d, b):
    x, c, v, _, _ = _gauss_case(n, m, d, b, torch.float64)
    v = 0.3 * v
    k = _kernel64(x, c, 0.9)
    ref = torch.exp(k @ v).sum(0)
    out = gaussian_kernel_exp_sum(x, c, v, 0.9, backend="native")
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("storage", ["float32", "int16"])
def test_float32_selected_products_and_quantisation_at_each_level(level, storage):
    """float32 arithmetic within 1e-5 (as in test_selections); the native 16-bit
    quantisation bitwise the torch reference at every level."""
    rng = np.random.default_rng(5)
    n, m, b = 700, 67, 9
    z64 = torch.from_numpy(rng.normal(size=(n, m)) * np.logspace(0, -3, m))
    if storage == "float32":
        z, stored = z64.float(), z64.float().double()
    else:
        z = QuantizedRows.quantize(z64)
        ref = QuantizedRows.empty(n, z.col_scale)
        ref._assign_torch(0, n, z64)
        assert torch.equal(z.values, ref.values) and torch.equal(z.row_scale, ref.row_scale)
        stored = z.rows(0, n)
    lists = [rng.choice(n, size=k, replace=False) for k in (0, 1, 13, 150, 333, 700, 41, 5, 64)]
    v = torch.from_numpy(rng.normal(size=(m, b)))
    sel = RowSelection.from_lists(lists, n)
    zz = stored.numpy()
    gram = np.stack([zz[r].T @ (zz[r] @ v[:, j].numpy()) for j, r in enumerate(lists)], 1)
    sums = np.stack([zz[r].sum(0) for r in lists], 1)
    out = selected_gram_matvec(z, sel, v, backend="native", arithmetic="float32")
    np.testing.assert_allclose(out.numpy(), gram, rtol=0, atol=1e-5 * np.abs(gram).max())
    s = selected_row_sums(z, sel, backend="native", arithmetic="float32")
    np.testing.assert_allclose(s.numpy(), sums, rtol=0, atol=1e-5 * np.abs(sums).max())


def _close(got, ref, rtol):
    # Relative to max(|value|, 1): a loss that nearly cancels (a few rows, random labels) is
    # still computed from terms of order 1 / temperature.
    (loss, grad), (loss_ref, grad_ref) = got, ref
    assert abs(float(loss) - float(loss_ref)) <= rtol * max(abs(float(loss_ref)), 1.0)
    err = float((grad.double() - grad_ref).abs().max())
    assert err <= rtol * max(float(grad_ref.abs().max()), 1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("m", "d", "k"), [(3, 2, 2), (129, 17, 7), (257, 3, 2), (130, 64, 40)])
def test_supcon_at_each_level(cases, level, m, d, k, dtype):
    g = torch.Generator().manual_seed(m + d)
    z = torch.randn(m, d, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, k, (m,), generator=g)
    got = cases.loss_and_grad(lambda t: supcon_loss_fused(t, y, 0.2, backend="native"), z)
    ref = cases.loss_and_grad(lambda t: supcon_loss_reference(t, y, 0.2), z.double())
    _close(got, ref, RTOL_LOSS[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n", "d"), [(2, 1), (37, 5), (64, 64), (130, 17), (40, 133)])
def test_vicreg_at_each_level(cases, level, n, d, dtype):
    z = cases.vicreg_views(n, d, dtype, seed=n * d)
    got = cases.loss_and_grad(lambda t: vicreg_loss_fused(t[:n], t[n:], backend="native"), z)
    ref = cases.loss_and_grad(lambda t: vicreg_loss_reference(t[:n], t[n:]), z.double())
    _close(got, ref, RTOL_LOSS[dtype])


def test_levels_agree_with_each_other(cases):
    levels = cpu_isa_levels()
    if len(levels) < 2:
        pytest.skip("one instruction-set level here")
    x, c, v, u, w = _gauss_case(300, 260, 4, 5, torch.float64, seed=7)
    z = torch.randn(150, 33, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    y = torch.arange(150) % 7
    results = {}
    for name in levels:
        with use_cpu_isa(name):
            results[name] = [
                gaussian_kernel_matvec(x, c, v, 1.1, backend="native"),
                gaussian_kernel_t_matvec(x, c, u, 1.1, row_weights=w, backend="native"),
                gaussian_weighted_gram(x, c, 1.1, backend="native"),
                *cases.loss_and_grad(lambda t: supcon_loss_fused(t, y, 0.1, backend="native"), z),
            ]
    best = results[levels[-1]]
    for name in levels[:-1]:
        for a, b in zip(results[name], best, strict=True):
            assert torch.allclose(a, b, rtol=1e-13, atol=1e-13 * float(b.abs().max())), name


def test_kernel_values_are_accurate_to_a_few_ulp(level):
    # K@V with V = identity returns the kernel matrix: each value within a few ulp of the
    # exact exp of the (exactly computed) exponent, over 60 orders of magnitude.
    g = torch.Generator().manual_seed(11)
    x = torch.randn(400, 3, generator=g, dtype=torch.float64) * 3
    c = torch.randn(64, 3, generator=g, dtype=torch.float64) * 3
    k = gaussian_kernel_matvec(x, c, torch.eye(64, dtype=torch.float64), 1.0, backend="native")
    xl, cl = x.numpy().astype(np.longdouble), c.numpy().astype(np.longdouble)
    arg = -((xl[:, None, :] - cl[None, :, :]) ** 2).sum(-1) / 2
    ref = np.exp(arg)
    rel = np.abs(k.numpy() - ref) / ref
    # The exponent's float64 rounding (differences, squares, sum, scale: a few eps relative)
    # contributes up to ~4 |arg| eps relative to the kernel value; the exp itself ~2 ulp.
    bound = (4.0 + 4.0 * np.abs(arg)) * np.finfo(np.float64).eps
    assert bool((rel <= bound).all()), float((rel / bound).max())
    assert ref.min() < 1e-60  # the test covers small values


def test_level_api_errors_and_restore():
    best = cpu_isa_levels()[-1]
    assert cpu_isa() == best
    with pytest.raises(ValueError, match="unknown instruction-set level"):
        set_cpu_isa("sse9")
    with use_cpu_isa("baseline"):
        assert cpu_isa() == "baseline"
        assert _native.native_info()["cpu_isa"] == "baseline"
    assert cpu_isa() == best
    if best != "avx512":
        with pytest.raises(ValueError, match="not available"):
            set_cpu_isa("avx512")
    set_cpu_isa(None)
    assert cpu_isa() == best


def _run_with_env(value: str) -> subprocess.CompletedProcess[str]:
    code = "from contrastx.ops import cpu_isa; print(cpu_isa())"
    env = {**os.environ, _native.CPU_ISA_ENV: value}
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True
    )


def test_environment_variable_sets_the_level():
    r = _run_with_env("baseline")
    assert r.returncode == 0 and r.stdout.strip() == "baseline", r.stderr
    r = _run_with_env("nonsense")
    assert r.returncode == 0 and r.stdout.strip() == cpu_isa_levels()[-1]
    assert "CONTRASTX_CPU_ISA='nonsense' ignored" in r.stderr
