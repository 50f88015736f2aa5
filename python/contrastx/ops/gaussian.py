r"""Gaussian kernel products.

For rows :math:`x_i` of ``x`` (N, d), centres :math:`c_j` of ``centers`` (M, d) and a width
:math:`\sigma`,

.. math::

    K_{ij} = \exp\left(-\frac{\lVert x_i - c_j \rVert^2}{2\sigma^2}\right), \qquad
    \mathrm{out} = K V \in \mathbb{R}^{N \times B},

for ``v`` (M, B) (or (M,), giving an (N,) result).  :func:`gaussian_kernel_matvec` computes the
product without materialising :math:`K` (native C++/CUDA kernels), and
:func:`gaussian_kernel_matvec_reference` is the pure-torch reference, chunked over rows.
:func:`gaussian_kernel_t_matvec` is the transposed product
:math:`K^\top\operatorname{diag}(w)\,U` (native C++ kernel; reference
:func:`gaussian_kernel_t_matvec_reference`), and :func:`gaussian_weighted_gram` the fused Gram
matrix :math:`K^\top\operatorname{diag}(w)K` (native C++ kernel; reference
:func:`gaussian_weighted_gram_reference`). :func:`gaussian_kernel` writes the dense block
:math:`K` (native C++ kernel on a CPU, torch reference otherwise), and
:func:`gaussian_kernel_exp_sum` sums :math:`\exp(KV)` over the rows (native C++ kernel;
reference :func:`gaussian_kernel_exp_sum_reference`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .. import _native
from ._backend import NATIVE_DTYPES as _DTYPE_NAMES
from ._backend import resolve_backend
from ._validation import check_like, check_positive, check_tensor

__all__ = [
    "gaussian_kernel",
    "gaussian_kernel_exp_sum",
    "gaussian_kernel_exp_sum_reference",
    "gaussian_kernel_matvec",
    "gaussian_kernel_matvec_reference",
    "gaussian_kernel_t_matvec",
    "gaussian_kernel_t_matvec_reference",
    "gaussian_weighted_gram",
    "gaussian_weighted_gram_reference",
]

_FLOAT_DTYPES = (torch.float32, torch.float64)
# Rows per chunk in the torch reference are chosen so that a chunk of K holds about this many
# elements (8 MiB in float64; larger chunks fall out of cache and are slower).
_DEFAULT_CHUNK_ELEMENTS = 1 << 20


def _check_sigma(sigma: float) -> float:
    return check_positive("sigma", sigma)


def _check_matrix(name: str, t: object) -> torch.Tensor:
    check_tensor(name, t)
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    return t


def _check_inputs(
    x: torch.Tensor, centers: torch.Tensor, v: torch.Tensor | None, *, check_finite: bool
) -> tuple[torch.Tensor, bool]:
    """Validate; return v as a 2-D (M, B) tensor (or None) and whether v was 1-D."""
    _check_matrix("x", x)
    _check_matrix("centers", centers)
    if x.shape[1] != centers.shape[1]:
        raise ValueError(
            f"x and centers must have the same number of features, got x {tuple(x.shape)} "
            f"and centers {tuple(centers.shape)}"
        )
    check_like("centers", centers, "x", x)
    vector = False
    if v is not None:
        check_tensor("v", v)
        if v.dim() == 1:
            vector = True
            v = v.unsqueeze(1)
        elif v.dim() != 2:
            raise ValueError(f"v must be 1-D (M,) or 2-D (M, B), got shape {tuple(v.shape)}")
        if v.shape[0] != centers.shape[0]:
            raise ValueError(
                f"v must have one row per centre: v has {v.shape[0]} rows, centers has "
                f"{centers.shape[0]}"
            )
        check_like("v", v, "x", x)
    if check_finite:
        for name, t in (("x", x), ("centers", centers), ("v", v)):
            # One reduction per tensor; the sum is non-finite iff an element is NaN or inf
            # (or the sum overflows, which would make the product meaningless as well).
            if t is not None and t.numel() and not torch.isfinite(t.sum()):
                if not bool(torch.isfinite(t).all()):
                    raise ValueError(f"{name} contains NaN or inf values")
    return v, vector


def _accumulate_dtype(dtype: torch.dtype, accumulate: torch.dtype | None) -> torch.dtype:
    if accumulate is None:
        return dtype
    if accumulate not in _FLOAT_DTYPES:
        raise TypeError(
            f"accumulate must be None, torch.float32 or torch.float64, got {accumulate}"
        )
    if dtype == torch.float64 and accumulate == torch.float32:
        raise ValueError("accumulate=torch.float32 is not supported for float64 inputs")
    return accumulate


def gaussian_kernel(
    x: torch.Tensor,
    centers: torch.Tensor,
    sigma: float,
    *,
    backend: str = "auto",
    accumulate: torch.dtype | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Dense Gaussian kernel block.

    .. math:: K_{ij} = \exp\left(-\lVert x_i - c_j \rVert^2 / (2\sigma^2)\right)

    Parameters
    ----------
    x : torch.Tensor
        (N, d) float32 or float64.
    centers : torch.Tensor
        (M, d), same dtype and device as ``x``.
    sigma : float
        Kernel width, finite and > 0.
    backend : {"auto", "native", "torch"}
        ``"native"``: the C++ kernel (CPU tensors only; the values of
        :func:`gaussian_kernel_matvec`'s native kernel, written out); ``"torch"``: the
        pure-torch reference below; ``"auto"`` (default): native for CPU tensors when built
        and no gradient is needed, else torch.
    accumulate : torch.dtype, optional
        ``torch.float64`` evaluates float32 inputs' distances and exp in float64 (the
        result keeps the input dtype).
    out : torch.Tensor, optional
        A C-contiguous (N, M) tensor of ``x``'s dtype and device to write into (and
        return). Loops over tiles reuse one: a fresh large tensor per tile costs page faults
        that exceed the kernel's own time.

    Returns
    -------
    torch.Tensor
        (N, M) kernel matrix, dtype and device of ``x``.  Holds N x M elements: for large
        inputs use :func:`gaussian_kernel_matvec`.

    Notes
    -----
    The torch reference computes squared distances as :math:`|x|^2 + |c|^2 - 2 x \cdot c`
    after shifting both sets by the mean of the centres (the kernel is translation
    invariant; the shift reduces cancellation), clamped at 0; the native kernel uses direct
    differences (never negative) and ``torch.get_num_threads()`` OpenMP threads, each value
    bitwise independent of the thread count.
    """
    s = _check_sigma(sigma)
    _check_inputs(x, centers, None, check_finite=False)
    acc = _accumulate_dtype(x.dtype, accumulate)
    native = resolve_backend(
        backend,
        x.device,
        op="the dense Gaussian kernel block",
        cuda_ok=False,
        needs_grad=torch.is_grad_enabled() and (x.requires_grad or centers.requires_grad),
    )
    n, d = x.shape
    m = centers.shape[0]
    if out is not None:
        check_tensor("out", out)
        if out.shape != (n, m) or not out.is_contiguous():
            raise ValueError(
                f"out must be a C-contiguous ({n}, {m}) tensor; got {tuple(out.shape)}"
                + ("" if out.is_contiguous() else " (not contiguous)")
            )
        check_like("out", out, "x", x)
    if native != "native":
        shift = centers.mean(dim=0) if m else None
        k = _kernel_block(x.to(acc), centers.to(acc), s, shift)
        return k.to(x.dtype) if out is None else out.copy_(k)
    if out is None:
        out = torch.empty((n, m), dtype=x.dtype, device=x.device)
    if n and m:
        xc, cc = x.contiguous(), centers.contiguous()
        acc64 = x.dtype == torch.float32 and acc == torch.float64
        _native.require_cpu().gaussian_tile_cpu(
            xc.data_ptr(), cc.data_ptr(), out.data_ptr(), n, m, d, s,
            _DTYPE_NAMES[x.dtype], acc64, torch.get_num_threads(),
        )  # fmt: skip
    return out


def _kernel_block(
    x: torch.Tensor, centers: torch.Tensor, sigma: float, shift: torch.Tensor | None
) -> torch.Tensor:
    if shift is not None:
        x = x - shift
        centers = centers - shift
    x2 = x.pow(2).sum(dim=1, keepdim=True)
    c2 = centers.pow(2).sum(dim=1)
    d2 = torch.addmm(x2 + c2, x, centers.T, alpha=-2.0)
    d2.clamp_min_(0.0)
    return d2.mul_(-1.0 / (2.0 * sigma * sigma)).exp_()


def _row_step(chunk_size: int | None, m: int) -> int:
    """Rows per block of the torch references: ``chunk_size`` (>= 1), by default about
    :data:`_DEFAULT_CHUNK_ELEMENTS` kernel values per block."""
    if chunk_size is None:
        return max(1, _DEFAULT_CHUNK_ELEMENTS // max(m, 1))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return chunk_size


def _kernel_blocks(
    x: torch.Tensor, centers: torch.Tensor, sigma: float, acc: torch.dtype, step: int
) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(rows, K(x[rows], centers))`` for consecutive blocks of ``step`` rows, in ``acc``.

    The kernel blocks are shifted by the mean of the centres (at least one centre needed).
    """
    c = centers.to(acc)
    shift = c.mean(dim=0)
    for start in range(0, x.shape[0], step):
        rows = slice(start, start + step)
        yield rows, _kernel_block(x[rows].to(acc), c, sigma, shift)


def gaussian_kernel_matvec_reference(
    x: torch.Tensor,
    centers: torch.Tensor,
    v: torch.Tensor,
    sigma: float,
    *,
    chunk_size: int | None = None,
    accumulate: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Pure-torch reference for :func:`gaussian_kernel_matvec`.

    Computes :math:`\mathrm{out} = K(x, c) V` with
    :math:`K_{ij} = \exp(-\lVert x_i - c_j \rVert^2 / (2\sigma^2))`, chunked over the rows of
    ``x`` so that at most ``chunk_size`` x M kernel values exist at a time.

    Parameters
    ----------
    x, centers, v, sigma
        As in :func:`gaussian_kernel_matvec`.
    chunk_size : int, optional
        Rows per chunk; default: about 1 Mi kernel values per chunk.
    accumulate : torch.dtype, optional
        Compute dtype (``torch.float64`` for float32 inputs evaluates everything in float64);
        default: the input dtype.  The output has the input dtype.

    Returns
    -------
    torch.Tensor
        (N, B), or (N,) if ``v`` is 1-D.
    """
    s = _check_sigma(sigma)
    v2, vector = _check_inputs(x, centers, v, check_finite=True)
    acc = _accumulate_dtype(x.dtype, accumulate)
    out = _reference(x, centers, v2, s, acc, _row_step(chunk_size, centers.shape[0]))
    return out.squeeze(1) if vector else out


def _reference(
    x: torch.Tensor,
    centers: torch.Tensor,
    v: torch.Tensor,
    sigma: float,
    acc: torch.dtype,
    step: int,
) -> torch.Tensor:
    """Chunked torch product on validated inputs (v 2-D); differentiable."""
    n, m = x.shape[0], centers.shape[0]
    if not (n and m and v.shape[1]):
        return torch.zeros((n, v.shape[1]), dtype=x.dtype, device=x.device)
    vv = v.to(acc)
    parts = [(k @ vv).to(x.dtype) for _, k in _kernel_blocks(x, centers, sigma, acc, step)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def gaussian_kernel_matvec(
    x: torch.Tensor,
    centers: torch.Tensor,
    v: torch.Tensor,
    sigma: float,
    *,
    backend: str = "auto",
    accumulate: torch.dtype | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Fused Gaussian kernel product :math:`K(x, c) V` without materialising :math:`K`.

    .. math::

        \mathrm{out}_{ib} = \sum_{j=1}^{M}
        \exp\left(-\frac{\lVert x_i - c_j \rVert^2}{2\sigma^2}\right) V_{jb}

    Parameters
    ----------
    x : torch.Tensor
        (N, d) points, float32 or float64.
    centers : torch.Tensor
        (M, d) centres, same dtype and device as ``x``.
    v : torch.Tensor
        (M, B) weights, or (M,) (treated as one column; the result is then (N,)).
    sigma : float
        Kernel width, finite and > 0.
    backend : {"auto", "native", "torch"}
        ``"native"``: the C++ kernels (CPU tensors) or CUDA kernels (CUDA tensors); raises
        ``RuntimeError`` if they are not available.  ``"torch"``: the chunked pure-torch
        reference.  ``"auto"`` (default): native when built for the tensors' device and no
        gradient is needed, else torch.
    accumulate : torch.dtype, optional
        ``torch.float64`` evaluates distances, exp and sums in float64 for float32 inputs.
        Default: the input dtype.  The output always has the input dtype.
    check_finite : bool
        Raise ``ValueError`` if an input contains NaN or inf (one reduction per input).

    Returns
    -------
    torch.Tensor
        (N, B) (or (N,) for 1-D ``v``), dtype and device of ``x``.  Empty N gives an empty
        (0, B) result; M = 0 gives zeros.

    Notes
    -----
    Non-contiguous inputs are copied with ``.contiguous()``.  The native CPU kernel uses
    ``torch.get_num_threads()`` OpenMP threads and direct differences for the distances; the
    CUDA kernel runs on the current stream of the tensors' device.  The native result carries
    no gradient; ``backend="auto"`` uses the (differentiable) torch path when an input requires
    grad.

    Examples
    --------
    >>> x, c = torch.randn(1000, 4, dtype=torch.float64), torch.randn(50, 4, dtype=torch.float64)
    >>> gaussian_kernel_matvec(x, c, torch.ones(50, dtype=torch.float64), 1.0).shape
    torch.Size([1000])
    """
    s = _check_sigma(sigma)
    v2, vector = _check_inputs(x, centers, v, check_finite=check_finite)
    acc = _accumulate_dtype(x.dtype, accumulate)

    if not _use_native(backend, x, (x, centers, v2), "the Gaussian kernel product"):
        out = _reference(x, centers, v2, s, acc, _row_step(None, centers.shape[0]))
        return out.squeeze(1) if vector else out

    n, d = x.shape
    m, b = v2.shape
    out = torch.empty((n, b), dtype=x.dtype, device=x.device)
    if n and b:
        xc, cc, vc = x.contiguous(), centers.contiguous(), v2.contiguous()
        dtype = _DTYPE_NAMES[x.dtype]
        acc64 = x.dtype == torch.float32 and acc == torch.float64
        if x.device.type == "cpu":
            mod = _native.require_cpu()
            mod.gaussian_matvec_cpu(
                xc.data_ptr(), cc.data_ptr(), vc.data_ptr(), out.data_ptr(),
                n, m, d, b, s, dtype, acc64, torch.get_num_threads(),
            )  # fmt: skip
        else:
            mod = _native.require_cuda()
            with torch.cuda.device(x.device):
                stream = torch.cuda.current_stream(x.device).cuda_stream
                mod.gaussian_matvec_cuda(
                    xc.data_ptr(), cc.data_ptr(), vc.data_ptr(), out.data_ptr(),
                    n, m, d, b, s, dtype, acc64, stream,
                )  # fmt: skip
    return out.squeeze(1) if vector else out


def gaussian_kernel_exp_sum_reference(
    x: torch.Tensor, centers: torch.Tensor, v: torch.Tensor, sigma: float
) -> torch.Tensor:
    r"""Pure-torch :math:`\sum_i \exp\big((K(x, c)\,V)_{ib}\big)` (see
    :func:`gaussian_kernel_exp_sum`), chunked over rows, in the dtype of ``x``."""
    s = _check_sigma(sigma)
    v2, _ = _check_inputs(x, centers, v, check_finite=False)
    out = torch.zeros(v2.shape[1], dtype=x.dtype, device=x.device)
    if centers.shape[0] == 0:
        return out + x.shape[0]
    for _, k in _kernel_blocks(x, centers, s, x.dtype, _row_step(None, centers.shape[0])):
        out += torch.exp(k @ v2).sum(0)
    return out


def gaussian_kernel_exp_sum(
    x: torch.Tensor,
    centers: torch.Tensor,
    v: torch.Tensor,
    sigma: float,
    *,
    backend: str = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Sums over the rows of the exponentiated kernel products, :math:`K` never formed.

    .. math:: \mathrm{out}_b = \sum_{i=1}^{N} \exp\Big(\sum_{j=1}^{M} K(x_i, c_j)\,V_{jb}\Big)

    NPLM's reference term :math:`\sum_{x\in R} e^{f_b(x)}` for many models
    :math:`f_b = K(\cdot, C)\,\alpha_b` at once. The native CPU kernel (float64) exponentiates
    :func:`gaussian_kernel_matvec`'s values as it makes them and sums them per block of 128
    rows in row order, then the blocks' sums in order: no ``(N, B)`` matrix is written, and
    each column's sum is bitwise independent of the other columns and of the thread count.

    Parameters
    ----------
    x : torch.Tensor
        (N, d) points.
    centers : torch.Tensor
        (M, d) centres, same dtype and device as ``x``.
    v : torch.Tensor
        (M, B) weights, or (M,) (one column; the result is then a 0-d tensor).
    sigma : float
        Kernel width, finite and > 0.
    backend : {"auto", "native", "torch"}
        ``"native"``: the C++ kernel (float64 CPU tensors); ``"torch"``:
        :func:`gaussian_kernel_exp_sum_reference`; ``"auto"``: native where it applies.
    check_finite : bool
        Raise ``ValueError`` if an input contains NaN or inf.

    Returns
    -------
    torch.Tensor
        (B,) (0-d for 1-D ``v``), dtype and device of ``x``; ``inf`` where a product
        exceeds the exponential's range (:math:`\approx 709.7` in float64).
    """
    s = _check_sigma(sigma)
    v2, vector = _check_inputs(x, centers, v, check_finite=check_finite)
    op = "the Gaussian kernel exp-sum"
    native = _use_native(backend, x, (x, centers, v2), op)
    if native and (x.dtype != torch.float64 or x.device.type != "cpu"):
        if backend == "native":
            raise TypeError(
                f"backend='native' for {op} needs float64 CPU tensors; got {x.dtype} on {x.device}"
            )
        native = False
    if not native:
        out = gaussian_kernel_exp_sum_reference(x, centers, v2, s)
        return out[0] if vector else out
    n, d = x.shape
    m, b = v2.shape
    out = torch.empty(b, dtype=torch.float64)
    if b:
        xc, cc, vc = x.contiguous(), centers.contiguous(), v2.contiguous()
        _native.require_cpu().gaussian_matvec_exp_sum_cpu(
            xc.data_ptr(), cc.data_ptr(), vc.data_ptr(), out.data_ptr(),
            n, m, d, b, s, torch.get_num_threads(),
        )  # fmt: skip
    return out[0] if vector else out


def _use_native(backend: str, x: torch.Tensor, tensors: tuple[torch.Tensor, ...], op: str) -> bool:
    """Whether ``op`` runs natively (:func:`resolve_backend`; the kernels have no backward)."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return resolve_backend(backend, x.device, op=op, needs_grad=needs_grad) == "native"


def _check_t_inputs(
    x: torch.Tensor,
    centers: torch.Tensor,
    u: torch.Tensor | None,
    row_weights: torch.Tensor | None,
    *,
    check_finite: bool,
) -> tuple[torch.Tensor | None, bool]:
    """Validate the transposed product's (or, without ``u``, the Gram's) inputs.

    Returns ``u`` as (N, B) and whether it was 1-D.
    """
    _check_inputs(x, centers, None, check_finite=check_finite)
    tensors = []
    vector = False
    u2 = None
    if u is not None:
        check_tensor("u", u)
        vector = u.dim() == 1
        u2 = u.unsqueeze(1) if vector else u
        if u2.dim() != 2 or u2.shape[0] != x.shape[0]:
            raise ValueError(
                f"u must be ({x.shape[0]},) or ({x.shape[0]}, B) (one row per point of x), got "
                f"shape {tuple(u.shape)}"
            )
        tensors.append(("u", u2))
    if row_weights is not None:
        check_tensor("row_weights", row_weights)
        if row_weights.shape != (x.shape[0],):
            raise ValueError(
                f"row_weights must have shape ({x.shape[0]},), got {tuple(row_weights.shape)}"
            )
        tensors.append(("row_weights", row_weights))
    for name, t in tensors:
        check_like(name, t, "x", x)
        if check_finite and t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf values")
    return u2, vector


def gaussian_kernel_t_matvec_reference(
    x: torch.Tensor,
    centers: torch.Tensor,
    u: torch.Tensor,
    sigma: float,
    *,
    row_weights: torch.Tensor | None = None,
    chunk_size: int | None = None,
    accumulate: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Pure-torch reference for :func:`gaussian_kernel_t_matvec`, chunked over the rows of x.

    Parameters and result as :func:`gaussian_kernel_t_matvec`; ``chunk_size`` is the rows of
    ``x`` per kernel block (default: about 1 Mi kernel values per block).
    """
    s = _check_sigma(sigma)
    u2, vector = _check_t_inputs(x, centers, u, row_weights, check_finite=True)
    acc = _accumulate_dtype(x.dtype, accumulate)
    m = centers.shape[0]
    step = _row_step(chunk_size, m)
    out = torch.zeros((m, u2.shape[1]), dtype=acc, device=x.device)
    if m:
        for rows, k in _kernel_blocks(x, centers, s, acc, step):
            ub = u2[rows].to(acc)
            if row_weights is not None:
                ub = ub * row_weights[rows, None].to(acc)
            out += k.T @ ub
    out = out.to(x.dtype)
    return out.squeeze(1) if vector else out


def gaussian_kernel_t_matvec(
    x: torch.Tensor,
    centers: torch.Tensor,
    u: torch.Tensor,
    sigma: float,
    *,
    row_weights: torch.Tensor | None = None,
    backend: str = "auto",
    accumulate: torch.dtype | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Transposed fused product :math:`K(x, c)^\top \operatorname{diag}(w)\, U`.

    .. math::

        \mathrm{out}_{jb} = \sum_{i=1}^{N} \exp\left(-\frac{\lVert x_i - c_j \rVert^2}
        {2\sigma^2}\right) w_i U_{ib}

    Parameters
    ----------
    x : torch.Tensor
        (N, d) points, float32 or float64.
    centers : torch.Tensor
        (M, d) centres, same dtype and device as ``x``.
    u : torch.Tensor
        (N, B) right-hand sides, or (N,) (the result is then (M,)).
    sigma : float
        Kernel width, finite and > 0.
    row_weights : torch.Tensor, optional
        (N,) per-point weights :math:`w_i` (default 1).
    backend : {"auto", "native", "torch"}
        As in :func:`gaussian_kernel_matvec` (native: C++ for CPU tensors, CUDA for CUDA
        tensors).
    accumulate : torch.dtype, optional
        ``torch.float64`` computes in float64 for float32 inputs.
    check_finite : bool
        Raise ``ValueError`` if an input contains NaN or inf.

    Returns
    -------
    torch.Tensor
        (M, B) (or (M,)), dtype and device of ``x``; N = 0 gives zeros.

    Notes
    -----
    The native kernels split the rows into fixed segments (depending on N only) and sum them
    in order, so their results are bitwise independent of the thread count / launch timing
    (CPU and CUDA differ from each other by rounding). No gradient.
    """
    s = _check_sigma(sigma)
    u2, vector = _check_t_inputs(x, centers, u, row_weights, check_finite=check_finite)
    acc = _accumulate_dtype(x.dtype, accumulate)
    tensors = (x, centers, u2) if row_weights is None else (x, centers, u2, row_weights)
    if not _use_native(backend, x, tensors, "the transposed Gaussian kernel product"):
        return gaussian_kernel_t_matvec_reference(
            x, centers, u, s, row_weights=row_weights, accumulate=accumulate
        )
    n, d = x.shape
    m, b = centers.shape[0], u2.shape[1]
    out = torch.empty((m, b), dtype=x.dtype, device=x.device)
    if m and b:
        xc, cc, uc = x.contiguous(), centers.contiguous(), u2.contiguous()
        wc = None if row_weights is None else row_weights.contiguous()
        w_ptr = 0 if wc is None else wc.data_ptr()
        acc64 = x.dtype == torch.float32 and acc == torch.float64
        dtype = _DTYPE_NAMES[x.dtype]
        if x.device.type == "cpu":
            _native.require_cpu().gaussian_t_matvec_cpu(
                xc.data_ptr(), cc.data_ptr(), uc.data_ptr(), w_ptr, out.data_ptr(),
                n, m, d, b, s, dtype, acc64, torch.get_num_threads(),
            )  # fmt: skip
        else:
            mod = _native.require_cuda()
            in_double = x.dtype == torch.float64 or acc64
            nbytes = mod.gaussian_t_workspace_bytes(n, m, b, in_double)
            ws = torch.empty(max(1, nbytes), dtype=torch.uint8, device=x.device)
            with torch.cuda.device(x.device):
                stream = torch.cuda.current_stream(x.device).cuda_stream
                mod.gaussian_t_matvec_cuda(
                    xc.data_ptr(), cc.data_ptr(), uc.data_ptr(), w_ptr, ws.data_ptr(),
                    out.data_ptr(), n, m, d, b, s, dtype, acc64, stream,
                )  # fmt: skip
    return out.squeeze(1) if vector else out


def gaussian_weighted_gram_reference(
    x: torch.Tensor,
    centers: torch.Tensor,
    sigma: float,
    *,
    row_weights: torch.Tensor | None = None,
    chunk_size: int | None = None,
    accumulate: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Pure-torch reference for :func:`gaussian_weighted_gram`, chunked over the rows of x."""
    s = _check_sigma(sigma)
    _check_t_inputs(x, centers, None, row_weights, check_finite=True)
    acc = _accumulate_dtype(x.dtype, accumulate)
    m = centers.shape[0]
    step = _row_step(chunk_size, m)
    out = torch.zeros((m, m), dtype=acc, device=x.device)
    if m:
        for rows, k in _kernel_blocks(x, centers, s, acc, step):
            kw = k if row_weights is None else k * row_weights[rows, None].to(acc)
            out += kw.T @ k
        out = 0.5 * (out + out.T)
    return out.to(x.dtype)


def gaussian_weighted_gram(
    x: torch.Tensor,
    centers: torch.Tensor,
    sigma: float,
    *,
    row_weights: torch.Tensor | None = None,
    backend: str = "auto",
    accumulate: torch.dtype | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Fused weighted Gram matrix :math:`G = K(x, c)^\top \operatorname{diag}(w) K(x, c)`.

    .. math:: G_{jl} = \sum_{i=1}^{N} w_i\, k(x_i, c_j)\, k(x_i, c_l)

    accumulated over blocks of rows without holding the (N, M) kernel matrix.

    Parameters
    ----------
    x : torch.Tensor
        (N, d) points, float32 or float64.
    centers : torch.Tensor
        (M, d) centres, same dtype and device as ``x``.
    sigma : float
        Kernel width, finite and > 0.
    row_weights : torch.Tensor, optional
        (N,) per-point weights :math:`w_i` (default 1).
    backend : {"auto", "native", "torch"}
        As in :func:`gaussian_kernel_matvec` (native: C++ for CPU tensors, CUDA for CUDA
        tensors).
    accumulate : torch.dtype, optional
        ``torch.float64`` computes in float64 for float32 inputs.
    check_finite : bool
        Raise ``ValueError`` if an input contains NaN or inf.

    Returns
    -------
    torch.Tensor
        (M, M), exactly symmetric, dtype and device of ``x``.

    Notes
    -----
    The native CPU kernel computes the upper triangle only (packed kernel tiles shared by
    the threads, a 6 x 16 register-blocked update per block of G) and sums every entry over
    the rows in order: bitwise independent of the thread count. The CUDA kernel sums fixed
    row segments in order (deterministic; it needs ``segments x M x M`` accumulators of
    device scratch, at most 32 segments). No gradient. For NPLM's
    whitened systems use :func:`contrastx.ops.nystrom.weighted_gram` with ``whiten``
    (whitening an explicit :math:`G` afterwards amplifies its rounding by
    :math:`\kappa(K_{MM})`).
    """
    s = _check_sigma(sigma)
    _check_t_inputs(x, centers, None, row_weights, check_finite=check_finite)
    acc = _accumulate_dtype(x.dtype, accumulate)
    tensors = (x, centers) if row_weights is None else (x, centers, row_weights)
    if not _use_native(backend, x, tensors, "the weighted Gaussian Gram matrix"):
        return gaussian_weighted_gram_reference(
            x, centers, s, row_weights=row_weights, accumulate=accumulate
        )
    n, d = x.shape
    m = centers.shape[0]
    out = torch.empty((m, m), dtype=x.dtype, device=x.device)
    if m:
        xc, cc = x.contiguous(), centers.contiguous()
        wc = None if row_weights is None else row_weights.contiguous()
        w_ptr = 0 if wc is None else wc.data_ptr()
        acc64 = x.dtype == torch.float32 and acc == torch.float64
        dtype = _DTYPE_NAMES[x.dtype]
        if x.device.type == "cpu":
            _native.require_cpu().gaussian_weighted_gram_cpu(
                xc.data_ptr(), cc.data_ptr(), w_ptr, out.data_ptr(), n, m, d, s, dtype, acc64,
                torch.get_num_threads(),
            )  # fmt: skip
        else:
            mod = _native.require_cuda()
            nbytes = mod.gaussian_gram_workspace_bytes(n, m, x.dtype == torch.float64 or acc64)
            ws = torch.empty(max(1, nbytes), dtype=torch.uint8, device=x.device)
            with torch.cuda.device(x.device):
                stream = torch.cuda.current_stream(x.device).cuda_stream
                mod.gaussian_weighted_gram_cuda(
                    xc.data_ptr(), cc.data_ptr(), w_ptr, ws.data_ptr(), out.data_ptr(),
                    n, m, d, s, dtype, acc64, stream,
                )  # fmt: skip
    return out
