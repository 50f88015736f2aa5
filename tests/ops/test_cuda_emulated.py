"""The CUDA kernels (csrc/cuda/*.cu) run on the CPU through tools/cuda_emulation: no GPU needed.

A session fixture converts the ``.cu`` files with ``tools/cuda_emulation/convert.py``, compiles
them with g++ (C++20, -O1) against ``cuda_emulation.hpp`` together with the ``extern "C"``
wrappers ``contrastx_capi.cpp`` and the emulator's own test kernels ``selftest.cu``, and loads
the library with ctypes.  The kernels are the real sources, unmodified; what is emulated: every
CUDA thread of a block is a fiber on the calling thread, blocks run in order, ``__syncthreads``
is a barrier that aborts on divergence (threads at different call sites, or returned while
others wait), ``__shared__`` is per-block static storage, launch configurations are checked as
on an sm_90 device and errors come back through ``cudaGetLastError``.  Not emulated: warps
(shuffles, warp-synchronous code), the weak memory model and races between blocks, CUDA's
device math library (host libm is used), registers and timing; see the README there.  The
threads of a block run serially in alternating order between barriers, so a missing barrier
gives wrong results deterministically.

Every input, output and workspace lives inside a larger allocation with guard regions before
and after it, filled with a NaN whose payload is unique to the buffer; outputs and workspaces
are pre-filled with it too.  After every call all guards must be bit-for-bit intact (no
out-of-bounds write, not even of a NaN read from another buffer's guard) and the inputs
unchanged; an out-of-bounds read of an input guard or of an unwritten workspace entry shows up
as a NaN output, and an unwritten output entry stays NaN.

Tolerances are those of the real CUDA tests, against the float64 torch references of
``contrastx.ops`` (float32 inputs evaluated in float64):

* Gaussian products (``gaussian_kernel_matvec_reference``, ``gaussian_kernel_t_matvec_reference``
  with and without row weights, ``gaussian_weighted_gram_reference``): per element, relative
  to ``scale`` = the same product with absolute values (``K |V|``, ``K^T |w o U|``,
  ``K^T |w| K``): float64 <= 1e-12, float32 <= 1e-5, float32 with float64 accumulation
  <= 1e-6; the Gram matrix must be exactly symmetric.
* SupCon / NT-Xent (``supcon_loss_reference``, weights as the ops wrappers pass them) and VICReg
  (``vicreg_loss_reference``): the loss relative to ``|loss_ref|``, every gradient element
  relative to ``max |grad_ref|`` (at least 5 for SupCon with D = 1 and normalisation, at least
  1 / tau for NT-Xent with D = 1, where the exact gradient is 0): float64 <= 1e-10,
  float32 <= 1e-5.

The emulation runs one fiber per CUDA thread, so the sizes are small: the awkward sizes that
test_gaussian.py, test_gaussian_nystrom.py and test_contrastive.py also use (the ``*_shape``
fixtures of conftest.py).
"""

from __future__ import annotations

import ctypes
import importlib.util
import itertools
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from contrastx.ops import (
    gaussian_kernel_matvec_reference,
    gaussian_kernel_t_matvec_reference,
    gaussian_weighted_gram_reference,
    supcon_loss_reference,
    vicreg_loss_reference,
)
from contrastx.ops.contrastive import _anchor_weights

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools" / "cuda_emulation"

GAUSS_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}
GAUSS_RTOL_ACC64 = 1e-6
LOSS_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}
DTYPE_NAME = {torch.float64: b"float64", torch.float32: b"float32"}

# Guard / poison bit patterns: quiet NaNs whose payload differs from buffer to buffer (so a NaN
# read from one buffer's guard and written into another's is seen), for int64 labels an absurd
# class id.
_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.int64: torch.int64}
_POISON_BASE = {
    torch.float64: 0x7FF8_0000_00C0_0000,
    torch.float32: 0x7FC0_0000,
    torch.int64: -0x3EAD_BEEF_0000_0000,
}
_poison_ids = itertools.count(1)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"cxemu_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the emulated library -------------------------------------------------------------------------

_P, _I64, _F64, _INT, _STR = (
    ctypes.c_void_p,
    ctypes.c_int64,
    ctypes.c_double,
    ctypes.c_int,
    ctypes.c_char_p,
)
_OUT_I64 = ctypes.POINTER(ctypes.c_int64)
_SIGNATURES = {
    "cx_gaussian_matvec": [_P, _P, _P, _P, _I64, _I64, _I64, _I64, _F64, _STR, _INT],
    "cx_gaussian_t_segments": [_I64, _OUT_I64],
    "cx_gaussian_t_workspace_bytes": [_I64, _I64, _I64, _INT, _OUT_I64],
    "cx_gaussian_t_matvec": [_P, _P, _P, _P, _P, _P, _I64, _I64, _I64, _I64, _F64, _STR, _INT],
    "cx_gaussian_gram_segments": [_I64, _OUT_I64],
    "cx_gaussian_gram_workspace_bytes": [_I64, _I64, _INT, _OUT_I64],
    "cx_gaussian_weighted_gram": [_P, _P, _P, _P, _P, _I64, _I64, _I64, _F64, _STR, _INT],
    "cx_supcon_forward": [_P] * 7 + [_I64, _I64, _F64, _INT, _F64, _STR],
    "cx_supcon_backward": [_P] * 7 + [_I64, _I64, _F64, _INT, _F64, _F64, _STR],
    "cx_vicreg_cuda_workspace_bytes": [_I64, _I64, _OUT_I64],
    "cx_vicreg_forward": [_P] * 5 + [_I64, _I64] + [_F64] * 5 + [_STR],
    "cx_vicreg_backward": [_P] * 5 + [_I64, _I64, _F64, _F64, _STR],
    "cxemu_set_max_threads_per_block": [ctypes.c_uint],
    "cxemu_set_report_divergence": [_INT],
    "cxemu_selftest_indices": [_P] + [ctypes.c_uint] * 6,
    "cxemu_selftest_block_sum": [_P, _P, _INT, _INT],
    "cxemu_selftest_stage": [_P, _INT, _INT, _INT],
    "cxemu_selftest_launch": [ctypes.c_uint] * 6
    + [ctypes.c_size_t, _INT, ctypes.POINTER(_INT), ctypes.POINTER(_INT)],
    "cxemu_selftest_no_args": [_INT],
    "cxemu_selftest_divergent": [_INT],
}


class Emulated:
    """The loaded library: ``call`` runs an entry point and checks every buffer's guards.

    Parameters
    ----------
    path : Path
        The shared library built by ``tools/cuda_emulation/build.py``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        for name, argtypes in _SIGNATURES.items():
            getattr(self.lib, name).argtypes = argtypes
        self.lib.cx_last_error.restype = ctypes.c_char_p
        self.lib.cxemu_last_error_detail.restype = ctypes.c_char_p
        self.lib.cxemu_launch_count.restype = ctypes.c_ulonglong
        # A divergent __syncthreads fails the launch (a RuntimeError with the emulator's
        # message) instead of aborting pytest, whose captured stderr would be lost.
        self.lib.cxemu_set_report_divergence(1)

    def call(self, name: str, *args, buffers: tuple[Buffer, ...] = ()) -> None:
        """Run ``name(*args)``; raise ValueError / RuntimeError as pybind11 would.

        Every buffer's guards (and the inputs' contents) are checked first, also on error.
        """
        rc = getattr(self.lib, name)(*args)
        for buf in buffers:
            buf.check(name)
        if rc != 0:
            msg = self.lib.cx_last_error().decode()
            raise (ValueError if rc == 1 else RuntimeError)(msg)

    def query(self, name: str, *args) -> int:
        """An int64 result of ``name(*args, &result)`` (workspace sizes, segments)."""
        out = ctypes.c_int64(-1)
        self.call(name, *args, ctypes.byref(out))
        return out.value


@pytest.fixture(scope="session")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Emulated:
    """Build and load the emulated kernels once; skip without a usable C++20 toolchain.

    A toolchain that cannot build a trivial C++20 shared library skips the tests that need the
    library; a failure to convert or compile the kernels (or the emulator) fails them.
    """
    build = _load("build")
    cxx = os.environ.get("CXEMU_CXX", "g++")
    try:
        build.probe_toolchain(cxx)
    except build.ToolchainError as e:
        pytest.skip(f"no usable C++20 toolchain for the CUDA emulation: {e}")
    try:
        lib = build.build(tmp_path_factory.mktemp("cuda_emu"), cxx=cxx)
    except build.BuildError as e:
        pytest.fail(str(e), pytrace=False)
    return Emulated(lib)


# --- guarded buffers ------------------------------------------------------------------------------


class Buffer:
    """A tensor placed inside a larger allocation between two poisoned guard regions.

    Parameters
    ----------
    shape : tuple of int
        Shape of the tensor.
    dtype : torch.dtype
        float64, float32 or int64.
    data : torch.Tensor, optional
        Contents (an input); without it the tensor is poisoned (an output or workspace).
    """

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, data=None) -> None:
        self.numel = math.prod(shape)
        self.guard = max(64, self.numel)  # catches off-by-a-row/tile accesses, and worse
        self.dtype = dtype
        self.poison = _POISON_BASE[dtype] + next(_poison_ids) % 0x10_0000
        self.raw = torch.empty(self.numel + 2 * self.guard, dtype=dtype)
        self.raw.view(_BITS[dtype]).fill_(self.poison)
        self.tensor = self.raw[self.guard : self.guard + self.numel].view(shape)
        self.input = None
        if data is not None:
            self.tensor.copy_(data)
            self.input = self.tensor.clone()

    @classmethod
    def of(cls, t: torch.Tensor | None) -> Buffer | None:
        """An input buffer holding ``t`` (None stays None)."""
        return None if t is None else cls(tuple(t.shape), t.dtype, t)

    @property
    def ptr(self) -> int:
        """Address of the tensor's first element."""
        return self.tensor.data_ptr()

    def check(self, what: str) -> None:
        """Assert the guards are bit-for-bit intact and an input was not modified."""
        bits = self.raw.view(_BITS[self.dtype])
        g, n = self.guard, self.numel
        for name, region in (("before", bits[:g].flip(0)), ("after", bits[g + n :])):
            bad = (region != self.poison).nonzero().flatten().tolist()
            assert not bad, (
                f"{what}: out-of-bounds write {name} a buffer of {n} {self.dtype} "
                f"(the nearest at distance {bad[0] + 1})"
            )
        if self.input is not None:
            same = self.tensor.view(_BITS[self.dtype]) == self.input.view(_BITS[self.dtype])
            assert bool(same.all()), f"{what}: an input buffer was modified"


def _ptr(buf: Buffer | None) -> int:
    return 0 if buf is None else buf.ptr


def _bufs(*bufs: Buffer | None) -> tuple[Buffer, ...]:
    return tuple(b for b in bufs if b is not None)


# --- the contrastx::cuda functions, called as the Python CUDA wrappers call them ------------------


def emu_gaussian_matvec(emu, x, c, v, sigma, acc64=False):
    """``gaussian_kernel_matvec`` on CUDA: out (n, b) = K(x, c) v."""
    (n, d), (m, b) = x.shape, v.shape
    bx, bc, bv = Buffer.of(x), Buffer.of(c), Buffer.of(v)
    out = Buffer((n, b), x.dtype)
    emu.call(
        "cx_gaussian_matvec", bx.ptr, bc.ptr, bv.ptr, out.ptr, n, m, d, b, sigma,
        DTYPE_NAME[x.dtype], acc64, buffers=(bx, bc, bv, out),
    )  # fmt: skip
    return out.tensor.clone()


def emu_gaussian_t_matvec(emu, x, c, u, w, sigma, acc64=False):
    """``gaussian_kernel_t_matvec`` on CUDA: out (m, b) = K(x, c)^T diag(w) u."""
    (n, d), m, b = x.shape, c.shape[0], u.shape[1]
    in_double = x.dtype == torch.float64 or acc64
    nbytes = emu.query("cx_gaussian_t_workspace_bytes", n, m, b, in_double)
    ws_dtype = torch.float64 if in_double else torch.float32
    ws = Buffer((max(1, nbytes // ws_dtype.itemsize),), ws_dtype)
    bx, bc, bu, bw = Buffer.of(x), Buffer.of(c), Buffer.of(u), Buffer.of(w)
    out = Buffer((m, b), x.dtype)
    emu.call(
        "cx_gaussian_t_matvec", bx.ptr, bc.ptr, bu.ptr, _ptr(bw), ws.ptr, out.ptr, n, m, d, b,
        sigma, DTYPE_NAME[x.dtype], acc64, buffers=_bufs(bx, bc, bu, bw, ws, out),
    )  # fmt: skip
    return out.tensor.clone()


def emu_gaussian_weighted_gram(emu, x, c, w, sigma, acc64=False):
    """``gaussian_weighted_gram`` on CUDA: out (m, m) = K(x, c)^T diag(w) K(x, c)."""
    (n, d), m = x.shape, c.shape[0]
    in_double = x.dtype == torch.float64 or acc64
    nbytes = emu.query("cx_gaussian_gram_workspace_bytes", n, m, in_double)
    ws_dtype = torch.float64 if in_double else torch.float32
    ws = Buffer((max(1, nbytes // ws_dtype.itemsize),), ws_dtype)
    bx, bc, bw = Buffer.of(x), Buffer.of(c), Buffer.of(w)
    out = Buffer((m, m), x.dtype)
    emu.call(
        "cx_gaussian_weighted_gram", bx.ptr, bc.ptr, _ptr(bw), ws.ptr, out.ptr, n, m, d, sigma,
        DTYPE_NAME[x.dtype], acc64, buffers=_bufs(bx, bc, bw, ws, out),
    )  # fmt: skip
    return out.tensor.clone()


def emu_supcon(emu, z, ids, w, c, tau, normalize, eps=1e-8):
    """SupCon forward and backward as ``_SupConFunction``: (loss, grad, lse, row_loss)."""
    m, d = z.shape
    dtype = DTYPE_NAME[z.dtype]
    bz, bids, bw, bc = Buffer.of(z), Buffer.of(ids), Buffer.of(w), Buffer.of(c)
    lse, row_loss, inv = Buffer((m,), z.dtype), Buffer((m,), z.dtype), Buffer((m,), z.dtype)
    emu.call(
        "cx_supcon_forward", bz.ptr, bids.ptr, bw.ptr, bc.ptr, lse.ptr, row_loss.ptr, inv.ptr,
        m, d, tau, normalize, eps, dtype, buffers=(bz, bids, bw, bc, lse, row_loss, inv),
    )  # fmt: skip
    blse = Buffer.of(lse.tensor)
    grad, inv2 = Buffer((m, d), z.dtype), Buffer((m,), z.dtype)
    emu.call(
        "cx_supcon_backward", bz.ptr, bids.ptr, bw.ptr, bc.ptr, blse.ptr, grad.ptr, inv2.ptr,
        m, d, tau, normalize, eps, 1.0, dtype, buffers=(bz, bids, bw, bc, blse, grad, inv2),
    )  # fmt: skip
    return row_loss.tensor.sum(), grad.tensor.clone(), lse.tensor.clone(), row_loss.tensor.clone()


def vicreg_state_size(d: int) -> int:
    """float64 entries of the VICReg state: 2 d + 2 d gp, gp = d rounded up to 64."""
    return 2 * d + 2 * d * (-(-d // 64) * 64)


def emu_vicreg(emu, z1, z2, params):
    """VICReg forward and backward as ``_VICRegFunction``: (out (4,), g1, g2, state)."""
    n, d = z1.shape
    dtype = DTYPE_NAME[z1.dtype]
    nbytes = emu.query("cx_vicreg_cuda_workspace_bytes", n, d)
    ws = Buffer((nbytes // 8,), torch.float64)
    b1, b2 = Buffer.of(z1), Buffer.of(z2)
    out, state = Buffer((4,), z1.dtype), Buffer((vicreg_state_size(d),), torch.float64)
    emu.call(
        "cx_vicreg_forward", b1.ptr, b2.ptr, out.ptr, state.ptr, ws.ptr, n, d, *params, dtype,
        buffers=(b1, b2, out, state, ws),
    )  # fmt: skip
    bstate = Buffer.of(state.tensor)
    g1, g2 = Buffer((n, d), z1.dtype), Buffer((n, d), z1.dtype)
    emu.call(
        "cx_vicreg_backward", b1.ptr, b2.ptr, bstate.ptr, g1.ptr, g2.ptr, n, d, params[0], 1.0,
        dtype, buffers=(b1, b2, bstate, g1, g2),
    )  # fmt: skip
    return out.tensor.clone(), g1.tensor.clone(), g2.tensor.clone(), state.tensor.clone()


# --- comparisons ----------------------------------------------------------------------------------


def assert_close_scaled(out, ref, scale, rtol):
    """Every element within ``rtol * scale`` of the float64 reference (NaN fails)."""
    assert out.shape == ref.shape
    assert torch.isfinite(out).all(), "non-finite output (unwritten entry or bad read)"
    err = (out.double() - ref).abs()
    bound = rtol * scale + torch.finfo(torch.float64).tiny
    worst = (err / bound).max().item() if err.numel() else 0.0
    assert (err <= bound).all(), f"max error / tolerance = {worst:.3g}"


# --- Gaussian kernel products ---------------------------------------------------------------------

DTYPE_MODES = [
    pytest.param(torch.float64, False, id="float64"),
    pytest.param(torch.float32, False, id="float32"),
    pytest.param(torch.float32, True, id="float32-acc64"),
]


def _rtol(dtype, acc64):
    return GAUSS_RTOL_ACC64 if acc64 else GAUSS_RTOL[dtype]


def _sigma(d):
    return 0.5 * math.sqrt(d) + 0.3


def _make(n, m, d, b, seed):
    """float64 x (n, d), c (m, d), v (m, b), u (n, b), w (n) in [0, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    c = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.2
    v = torch.randn(m, b, generator=g, dtype=torch.float64)
    u = torch.randn(n, b, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    return x, c, v, u, w


@pytest.mark.parametrize(("dtype", "acc64"), DTYPE_MODES)
def test_gaussian_matvec(emu, gauss_shape, dtype, acc64):
    n, m, d, b = gauss_shape
    x, c, v, _, _ = (t.to(dtype) for t in _make(n, m, d, b, seed=n * m + d))
    s = _sigma(d)
    out = emu_gaussian_matvec(emu, x, c, v, s, acc64)
    x64, c64, v64 = x.double(), c.double(), v.double()
    ref = gaussian_kernel_matvec_reference(x64, c64, v64, s)
    scale = gaussian_kernel_matvec_reference(x64, c64, v64.abs(), s)
    assert_close_scaled(out, ref, scale, _rtol(dtype, acc64))


@pytest.mark.parametrize(("dtype", "acc64"), DTYPE_MODES)
def test_gaussian_t_matvec(emu, t_shape, dtype, acc64):
    n, m, d, b = t_shape
    x, c, _, u, w = (t.to(dtype) for t in _make(n, m, d, b, seed=n + m + d + b))
    s = _sigma(d)
    x64, c64, u64 = x.double(), c.double(), u.double()
    for weights in (w, None):
        out = emu_gaussian_t_matvec(emu, x, c, u, weights, s, acc64)
        w64 = None if weights is None else weights.double()
        ref = gaussian_kernel_t_matvec_reference(x64, c64, u64, s, row_weights=w64)
        scale = gaussian_kernel_t_matvec_reference(
            x64, c64, u64.abs(), s, row_weights=None if w64 is None else w64.abs()
        )
        assert_close_scaled(out, ref, scale, _rtol(dtype, acc64))


@pytest.mark.parametrize(("dtype", "acc64"), DTYPE_MODES)
def test_gaussian_weighted_gram(emu, gram_shape, dtype, acc64):
    n, m, d = gram_shape
    x, c, _, _, w = (t.to(dtype) for t in _make(n, m, d, 1, seed=n + m + d))
    s = _sigma(d)
    x64, c64 = x.double(), c.double()
    for weights in (w, None):
        g = emu_gaussian_weighted_gram(emu, x, c, weights, s, acc64)
        w64 = None if weights is None else weights.double()
        ref = gaussian_weighted_gram_reference(x64, c64, s, row_weights=w64)
        scale = gaussian_weighted_gram_reference(
            x64, c64, s, row_weights=None if w64 is None else w64.abs()
        )
        assert_close_scaled(g, ref, scale, _rtol(dtype, acc64))
        assert torch.equal(g, g.T), "not exactly symmetric"


def test_workspace_sizes_and_segments(emu):
    """The segment counts and workspace sizes the header comments promise."""
    for n, seg in [(0, 1), (1, 1), (4096, 1), (4097, 2), (9000, 3), (10**9, 64)]:
        assert emu.query("cx_gaussian_t_segments", n) == seg
    for n, seg in [(0, 1), (8192, 1), (8193, 2), (10**9, 32)]:
        assert emu.query("cx_gaussian_gram_segments", n) == seg
    assert emu.query("cx_gaussian_t_workspace_bytes", 9000, 7, 5, 1) == 3 * 7 * 5 * 8
    assert emu.query("cx_gaussian_t_workspace_bytes", 9000, 7, 5, 0) == 3 * 7 * 5 * 4
    assert emu.query("cx_gaussian_gram_workspace_bytes", 8193, 7, 1) == 2 * 7 * 7 * 8
    assert emu.query("cx_gaussian_gram_workspace_bytes", 8193, 7, 0) == 2 * 7 * 7 * 4
    d = 5
    assert emu.query("cx_vicreg_cuda_workspace_bytes", 10, d) == (2 * d * d + 4 * d + 128) * 8


# --- SupCon / NT-Xent ----------------------------------------------------------------------------


def _supcon_args(labels, m, dtype):
    """Class ids and anchor weights as ``supcon_loss_fused`` passes them (zeros without
    anchors, where the wrapper skips the kernels: the kernels must then give 0)."""
    ids = torch.unique(labels, return_inverse=True)[1].to(torch.int64)
    weights = _anchor_weights(ids, m, dtype)
    if weights is None:
        weights = (torch.zeros(m, dtype=dtype), torch.zeros(m, dtype=dtype))
    return ids, *weights


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_supcon(emu, cases, supcon_shape, dtype, normalize):
    m, d, k = supcon_shape
    z = cases.rows(m, d, dtype, seed=m + d, scale=1.0 if normalize else 0.4)
    y = cases.labels(m, k, seed=m)
    ids, w, c = _supcon_args(y, m, dtype)
    loss, grad, lse, row_loss = emu_supcon(emu, z, ids, w, c, 0.2, normalize)
    assert not lse.isnan().any() and not row_loss.isnan().any(), "unwritten lse / row_loss"
    assert torch.isinf(lse[w == 0]).all() and (row_loss[w == 0] == 0).all()
    ref, gref = cases.loss_and_grad(
        lambda v: supcon_loss_reference(v, y, 0.2, normalize=normalize), z.double()
    )
    floor = 5.0 if d == 1 and normalize else 0.0
    cases.assert_close(loss, grad, ref, gref, LOSS_RTOL[dtype], floor)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n", "d"), [(1, 1), (1, 4), (16, 1), (65, 7), (100, 64)])
def test_nt_xent(emu, cases, n, d, dtype):
    """NT-Xent: SupCon of cat(z1, z2), labels (0..N-1, 0..N-1), w = c = 1 / (2N)."""
    z = torch.cat([cases.rows(n, d, dtype, seed=n), cases.rows(n, d, dtype, seed=n + 100)])
    ids = torch.arange(n).repeat(2)
    w = torch.full((2 * n,), 1.0 / (2 * n), dtype=dtype)
    loss, grad, _, _ = emu_supcon(emu, z, ids, w, w, 0.3, True)
    ref, gref = cases.loss_and_grad(lambda v: supcon_loss_reference(v, ids, 0.3), z.double())
    cases.assert_close(loss, grad, ref, gref, LOSS_RTOL[dtype], 1 / 0.3 if d == 1 else 0.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_supcon_zero_tiny_and_huge_rows(emu, cases, dtype):
    """Rows below the norm floor (z = x / eps), and float32 rows whose squared norm overflows
    float32 (the norms are summed in float64)."""
    z = cases.rows(70, 5, torch.float64, seed=4)
    z[3] = 0.0
    z[10] *= 1e-9
    z[20] *= 1e19
    z[21] *= 3e19
    z = z.to(dtype)
    y = cases.labels(70, 4, seed=4)
    ids, w, c = _supcon_args(y, 70, dtype)
    for t in (0.05, 1.0, 7.0):
        loss, grad, _, _ = emu_supcon(emu, z, ids, w, c, t, True)
        ref, gref = cases.loss_and_grad(lambda v, t=t: supcon_loss_reference(v, y, t), z.double())
        cases.assert_close(loss, grad, ref, gref, LOSS_RTOL[dtype])


# --- VICReg ---------------------------------------------------------------------------------------

VICREG_DEFAULT = (25.0, 25.0, 1.0, 1.0, 1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vicreg(emu, cases, vicreg_shape, dtype):
    n, d = vicreg_shape
    z = cases.vicreg_views(n, d, dtype, seed=n * d + 1)
    params_list = [VICREG_DEFAULT] + ([(2.0, 3.0, 0.5, 1.3, 1e-3)] if n * d < 1000 else [])
    for params in params_list:
        out, g1, g2, state = emu_vicreg(emu, z[:n].contiguous(), z[n:].contiguous(), params)
        assert torch.isfinite(out).all() and torch.isfinite(state).all(), "unwritten entry"
        lam, mu, nu = params[:3]
        total = lam * float(out[1]) + mu * float(out[2]) + nu * float(out[3])
        assert abs(float(out[0]) - total) <= LOSS_RTOL[dtype] * abs(total)
        ref, gref = cases.loss_and_grad(
            lambda v, p=params: vicreg_loss_reference(v[:n], v[n:], *p), z.double()
        )
        cases.assert_close(out[0], torch.cat([g1, g2]), ref, gref, LOSS_RTOL[dtype])


# --- errors ---------------------------------------------------------------------------------------


def test_invalid_launch_is_reported(emu):
    """A launch the device refuses (here: a device emulated with at most 64 threads per block)
    comes back through cudaGetLastError as the code's error; nothing is written."""
    x, c, v, _, _ = _make(10, 7, 3, 2, seed=0)
    emu.lib.cxemu_set_max_threads_per_block(64)
    try:
        with pytest.raises(RuntimeError, match="kernel launch: cudaErrorInvalidConfiguration"):
            emu_gaussian_matvec(emu, x, c, v, 1.0)
        with pytest.raises(RuntimeError, match="mean kernel launch: cudaErrorInvalidConf"):
            emu_vicreg(emu, x, x + 1.0, VICREG_DEFAULT)
        ids, w, cc = _supcon_args(torch.tensor([0, 0, 1, 1, 2, 2, 2, 3, 3, 3]), 10, x.dtype)
        with pytest.raises(RuntimeError, match="norm kernel launch: cudaErrorInvalidConf"):
            emu_supcon(emu, x, ids, w, cc, 0.5, True)
        bx, bc, bv = Buffer.of(x), Buffer.of(c), Buffer.of(v)
        out = Buffer((10, 2), x.dtype)
        with pytest.raises(RuntimeError, match=r"invalid configuration argument.*cxemu: too many"):
            emu.call(
                "cx_gaussian_matvec", bx.ptr, bc.ptr, bv.ptr, out.ptr, 10, 7, 3, 2, 1.0,
                b"float64", 0, buffers=(bx, bc, bv, out),
            )  # fmt: skip
        assert torch.isnan(out.tensor).all()
    finally:
        emu.lib.cxemu_set_max_threads_per_block(1024)
    assert torch.isfinite(emu_gaussian_matvec(emu, x, c, v, 1.0)).all()  # not sticky


def test_sizes_the_code_rejects(emu):
    """Arguments the host code must refuse before launching (ValueError, nothing runs)."""
    null = 0
    before = emu.lib.cxemu_launch_count()
    p4, p5, p6, p7 = (null,) * 4, (null,) * 5, (null,) * 6, (null,) * 7
    f64 = b"float64"
    big16 = 16 * 65535 + 1  # 65536 blocks of 16 columns: gridDim.y > 65535
    big32 = 32 * 65535 + 1  # 65536 Gram tiles / gradient feature groups of 32
    cases = [
        ("too many rows or columns", "cx_gaussian_matvec", (*p4, 1, 1, 1, big16, 1.0, f64, 0)),
        ("too many centres or col", "cx_gaussian_t_matvec", (*p6, 1, 1, 1, big16, 1.0, f64, 0)),
        ("too many centres", "cx_gaussian_weighted_gram", (*p5, 1, big32, 1, 1.0, f64, 0)),
        ("too many features", "cx_supcon_backward", (*p7, 1, big32, 0.5, 1, 1e-8, 1.0, f64)),
        ("negative size", "cx_gaussian_matvec", (*p4, -1, 1, 1, 1, 1.0, f64, 0)),
        ("sigma must be > 0", "cx_gaussian_weighted_gram", (*p5, 1, 1, 1, 0.0, f64, 0)),
        ("tau must be > 0", "cx_supcon_forward", (*p7, 1, 1, 0.0, 1, 1e-8, f64)),
        ("at least 2 rows", "cx_vicreg_forward", (*p5, 1, 3, 1.0, 1.0, 1.0, 1.0, 1e-4, f64)),
        ("dtype must be", "cx_gaussian_matvec", (*p4, 1, 1, 1, 1, 1.0, b"float16", 0)),
    ]
    for match, name, args in cases:
        with pytest.raises(ValueError, match=match):
            emu.call(name, *args)
    with pytest.raises(ValueError, match="at least 1 feature"):
        emu.query("cx_vicreg_cuda_workspace_bytes", 5, 0)
    assert emu.lib.cxemu_launch_count() == before


# --- the emulator itself --------------------------------------------------------------------------


def test_runtime_queries(emu):
    assert emu.lib.cx_device_count() == 1
    assert emu.lib.cx_runtime_version() == 0 and emu.lib.cx_driver_version() == 0


def test_builtin_variables(emu):
    grid, block = (3, 2, 2), (4, 3, 2)
    nb, nt = math.prod(grid), math.prod(block)
    out = torch.full((nb * nt, 6), -1, dtype=torch.int32)
    assert emu.lib.cxemu_selftest_indices(out.data_ptr(), *grid, *block) == 0
    expected = []
    for bz in range(grid[2]):
        for by in range(grid[1]):
            for bx in range(grid[0]):
                for tz in range(block[2]):
                    for ty in range(block[1]):
                        for tx in range(block[0]):
                            expected.append([tx, ty, tz, bx, by, bz])
    assert torch.equal(out, torch.tensor(expected, dtype=torch.int32))


def test_shared_memory_reduction(emu):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1000, generator=g, dtype=torch.float64)
    out = torch.full((3,), float("nan"), dtype=torch.float64)
    assert emu.lib.cxemu_selftest_block_sum(x.data_ptr(), out.data_ptr(), 3, 1000) == 0
    assert ((out - x.sum(1)).abs() <= 1e-13 * x.abs().sum(1)).all(), (out, x.sum(1))


def test_missing_barrier_gives_wrong_results(emu):
    """The serial, alternating thread order makes a missing __syncthreads visible."""
    blocks, threads = 2, 64
    t = torch.arange(threads, dtype=torch.int32)
    expected = (1000 + 2 * ((t + 1) % threads)).repeat(blocks)
    for variant in (0, 1, 2):
        out = torch.full((blocks * threads,), -1, dtype=torch.int32)
        assert emu.lib.cxemu_selftest_stage(out.data_ptr(), blocks, threads, variant) == 0
        assert torch.equal(out, expected) == (variant == 0), variant


@pytest.mark.parametrize(
    ("config", "error", "runs"),
    [
        ((1, 1, 1, 1, 1, 1, 0, 0), 0, True),
        ((3, 2, 2, 8, 4, 2, 0, 0), 0, True),
        ((0, 1, 1, 32, 1, 1, 0, 0), 9, False),
        ((1, 1, 1, 0, 1, 1, 0, 0), 9, False),
        ((1, 1, 1, 1025, 1, 1, 0, 0), 9, False),
        ((1, 1, 1, 32, 32, 2, 0, 0), 9, False),
        ((1, 1, 1, 1, 1, 65, 0, 0), 9, False),
        ((2**31, 1, 1, 1, 1, 1, 0, 0), 9, False),
        ((1, 65536, 1, 1, 1, 1, 0, 0), 9, False),
        ((1, 1, 65536, 1, 1, 1, 0, 0), 9, False),
        ((1, 65535, 1, 1, 1, 1, 0, 0), 0, True),
        ((1, 1, 1, 32, 1, 1, 48 * 1024, 0), 0, True),
        ((1, 1, 1, 32, 1, 1, 48 * 1024 + 1, 0), 1, False),
        ((1, 1, 1, 32, 1, 1, 48 * 1024 + 1, 64 * 1024), 0, True),
        ((1, 1, 1, 32, 1, 1, 64 * 1024 + 1, 64 * 1024), 1, False),
    ],
)
def test_launch_checks(emu, config, error, runs):
    """Launch limits of an sm_90 device: cudaErrorInvalidConfiguration (9) for bad grids and
    blocks, cudaErrorInvalidValue (1) for dynamic shared memory beyond the opt-in; the error
    is cleared by cudaGetLastError and the kernel does not run."""
    ran, after = ctypes.c_int(-1), ctypes.c_int(-1)
    err = emu.lib.cxemu_selftest_launch(*config, ctypes.byref(ran), ctypes.byref(after))
    assert (err, bool(ran.value), after.value) == (error, runs, 0)


def test_launch_without_arguments(emu):
    assert emu.lib.cxemu_selftest_no_args(5) == 5


DIVERGENT = [
    (0, r"threadIdx \(0, 0, 0\) waits at .*selftest\.cu:\d+ but threadIdx \(16, 0, 0\) waits at"),
    (1, r"threadIdx \(0, 0, 0\) waits at .*selftest\.cu:\d+ but threadIdx \(5, 0, 0\) has retu"),
]


@pytest.mark.parametrize(("which", "message"), DIVERGENT)
def test_divergent_barrier_aborts(emu, which, message):
    """By default a divergent __syncthreads (threads of a block at different call sites, or
    returned while others wait) aborts the process with a message naming the kernel, the
    block, the threads and the source lines."""
    code = "import ctypes, sys; ctypes.CDLL(sys.argv[1]).cxemu_selftest_divergent(int(sys.argv[2]))"
    res = subprocess.run(
        [sys.executable, "-c", code, str(emu.path), str(which)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == -signal.SIGABRT, res.stderr
    assert "cxemu: error: divergent __syncthreads in kernel" in res.stderr
    assert re.search(message, res.stderr), res.stderr


@pytest.mark.parametrize(("which", "message"), DIVERGENT)
def test_divergent_barrier_reported(emu, which, message):
    """In report mode (as in these tests) it fails the launch with cudaErrorLaunchFailure."""
    assert emu.lib.cxemu_selftest_divergent(which) == 719
    detail = emu.lib.cxemu_last_error_detail().decode()
    assert detail.startswith("divergent __syncthreads in kernel") and re.search(message, detail)
    assert emu.lib.cxemu_selftest_no_args(3) == 3  # the emulator goes on working


# --- the converter (no compiler needed) -----------------------------------------------------------


def test_converter_rewrites_launches_and_keeps_lines():
    convert = _load("convert")
    src = (
        "#include <cuda_runtime.h>\n"
        "// k<<<1, 2>>>(x) in a comment\n"
        'const char* s = "a<<<b>>>(c)";\n'
        "void f(float* x, int n, cudaStream_t st) {\n"
        "    k<float, 4><<<dim3(n, 2), 128, 0, st>>>(x, n);\n"
        "    ns::g\n"
        "        <<<static_cast<unsigned>(n),\n"
        "           64>>>(\n"
        "            x);\n"
        "    h<<<1, 32>>>();\n"
        "}\n"
    )
    out = convert.convert_source(src, "demo.cu")
    lines = out.splitlines()
    assert lines[1] == '#include "cuda_emulation.hpp"' and lines[2] == '#line 1 "demo.cu"'
    body = lines[3:]
    assert len(body) == len(src.splitlines())
    assert body[1] == src.splitlines()[1] and body[2] == src.splitlines()[2]
    assert body[4].strip() == (
        '::cxemu::Launch({__FILE__, __LINE__, "k<float, 4>"}, dim3(n, 2), 128, 0, st)'
        "(&k<float, 4>, x, n);"
    )
    assert (
        body[5]
        .strip()
        .startswith('::cxemu::Launch({__FILE__, __LINE__, "ns::g"}, static_cast<unsigned>(n),')
    )
    assert body[8].strip() == "x);"
    assert body[9].strip() == '::cxemu::Launch({__FILE__, __LINE__, "h"}, 1, 32)(&h);'
    with pytest.raises(convert.ConversionError, match=r"demo\.cu:2: #include <cuda_fp16\.h>"):
        convert.convert_source("#include <cuda_runtime.h>\n#include <cuda_fp16.h>\n", "demo.cu")
    with pytest.raises(convert.ConversionError, match="no >>>"):
        convert.convert_source("void f() { k<<<1, 2(x); }\n", "demo.cu")
