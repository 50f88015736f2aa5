r"""Gram products of row selections of one stored matrix (NPLM toys drawn from a pool).

An NPLM toy's data are a subset :math:`S_b` of the rows of a stored whitened pool
:math:`Z` (:math:`n\times M`), and its CG operator needs

.. math::

    \mathrm{out}_b = Z_{S_b}^\top Z_{S_b} v_b = \sum_{i\in S_b} z_i\,(z_i\cdot v_b)
    \qquad\text{and}\qquad g_b = Z_{S_b}^\top 1 = \sum_{i\in S_b} z_i

for a block of toys at once. :class:`RowSelection` holds the subsets (sorted row lists,
CSC layout). :func:`selected_gram_matvec` and :func:`selected_row_sums` compute the products:

* ``backend="native"`` (CPU): the C++ kernel touches only the selected rows, :math:`4M|S_b|`
  flops per toy, float64 arithmetic for any storage, or (``arithmetic="float32"``, float32
  or 16-bit :math:`Z`) float32 products summed in float32 over each chunk of 128 rows and
  in float64 across chunks (twice the SIMD lanes, half the bytes per entry; the rounding of
  float32 dot products of length :math:`M`), and each toy's result is independent of the
  other toys in the call and of the thread count;
* ``backend="torch"`` (the reference, and the path on a GPU): the dense masked product
  :func:`contrastx.ops.nystrom.masked_gram_matvec`, :math:`Z^\top(W\odot ZV)` with the 0/1
  matrix :math:`W` of the selections: :math:`4Mn` flops per toy (two GEMMs over all rows),
  which is what a GPU does best and a CPU does :math:`n/|S_b|` times more work for.

With a data pool ten times a toy's size (``contrastx-toys``), the native kernel does a tenth
of the dense flops.

:class:`QuantizedRows` stores such a matrix in 16 bits per entry (int16 with float64 scales
per row and per column, a quarter of float64's memory); both functions accept it wherever
they accept a tensor. The native kernel widens each chunk's selected rows to the
arithmetic's type once (int16, and float32 for float64 arithmetic), into a buffer every
right-hand side of the thread reads, so reduced storage is no slower than float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _native
from ._backend import NATIVE_DTYPES as _DTYPE_NAMES
from ._backend import resolve_backend
from .nystrom import masked_gram_matvec, masked_row_sums

__all__ = ["QuantizedRows", "RowSelection", "selected_gram_matvec", "selected_row_sums"]

_INT16_MAX = 32767


class RowSelection:
    r"""Subsets of the rows ``0 .. n_rows - 1`` of a matrix, one per column.

    Selection :math:`s` is ``rows[ptr[s]:ptr[s + 1]]``, strictly increasing (a row is
    selected at most once: draws without replacement).

    Parameters
    ----------
    ptr : array_like of int, shape (B + 1,)
        Offsets, ``ptr[0] == 0``, non-decreasing.
    rows : array_like of int, shape (ptr[-1],)
    n_rows : int
        Rows of the matrix the selections index (< 2**31).

    Examples
    --------
    >>> sel = RowSelection.from_lists([[3, 0], [1]], n_rows=4)
    >>> sel.dense().T.tolist()
    [[1, 0, 0, 1], [0, 1, 0, 0]]
    """

    def __init__(self, ptr: np.ndarray, rows: np.ndarray, n_rows: int) -> None:
        self.n_rows = int(n_rows)
        if not 0 <= self.n_rows < 2**31:
            raise ValueError(f"n_rows must be in [0, 2**31); got {n_rows}")
        ptr = np.ascontiguousarray(ptr, dtype=np.int64)
        rows = np.asarray(rows)
        if rows.dtype != np.int32:
            rows = np.asarray(rows, dtype=np.int64)
        if ptr.ndim != 1 or ptr.size < 1 or ptr[0] != 0:
            raise ValueError("ptr must be a 1-D array starting with 0")
        sizes = np.diff(ptr)
        if np.any(sizes < 0) or ptr[-1] != rows.size:
            raise ValueError(
                f"ptr must be non-decreasing and end at len(rows) = {rows.size}; got {ptr[-1]}"
            )
        if rows.size:
            if rows.min() < 0 or rows.max() >= self.n_rows:
                raise ValueError(f"row indices must be in [0, {self.n_rows})")
            rows = np.ascontiguousarray(rows, dtype=np.int32)  # in range: exact
            step = np.diff(rows)  # no overflow: rows are in [0, 2**31)
            starts = ptr[1:-1][(ptr[1:-1] > 0) & (ptr[1:-1] < rows.size)]
            step[starts - 1] = 1  # no order constraint across selections
            if np.any(step <= 0):
                at = int(np.flatnonzero(step <= 0)[0])
                if step[at] == 0:
                    k = int(np.searchsorted(ptr, at, side="right")) - 1
                    raise ValueError(f"selection {k} repeats a row")
                raise ValueError("rows of each selection must be strictly increasing")
        self.ptr = torch.from_numpy(ptr)
        self.rows = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int32))
        self._dense: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    @classmethod
    def from_lists(cls, lists: Sequence[np.ndarray | Sequence[int]], n_rows: int) -> RowSelection:
        """Selections from lists of distinct row indices (any order; sorted here)."""
        arrays = [np.asarray(r).reshape(-1) for r in lists]
        ptr = np.zeros(len(arrays) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([a.size for a in arrays])
        rows = np.empty(int(ptr[-1]), dtype=np.int64)
        for a, lo, hi in zip(arrays, ptr[:-1], ptr[1:], strict=True):
            if a.size and not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"row indices must be integers; got {a.dtype}")
            seg = rows[lo:hi]
            seg[...] = a
            seg.sort()  # in place: one copy of the rows in all
        return cls(ptr, rows, n_rows)

    def __len__(self) -> int:
        return self.ptr.shape[0] - 1

    @property
    def sizes(self) -> np.ndarray:
        """Rows per selection."""
        return np.diff(self.ptr.numpy())

    def dense(self, dtype: torch.dtype = torch.uint8, device: str | torch.device = "cpu") -> Tensor:
        """The ``(n_rows, B)`` 0/1 matrix of the selections (cached per dtype and device)."""
        dev = torch.device(device)
        key = (dtype, dev)
        if key not in self._dense:
            cols = torch.repeat_interleave(torch.arange(len(self)), torch.from_numpy(self.sizes))
            out = torch.zeros(self.n_rows, len(self), dtype=dtype)
            out[self.rows.long(), cols] = 1
            self._dense[key] = out.to(dev)
        return self._dense[key]


class QuantizedRows:
    r"""A matrix stored as 16-bit integers with a float64 scale per row and per column.

    Entry :math:`z_{ij} = r_i c_j q_{ij}` with int16 :math:`q_{ij}`. The column scales
    :math:`c_j` take out the spread between columns (a whitened kernel feature matrix has
    columns of very different sizes: a common scale would leave the small ones a few
    levels); given a matrix, they are its columns' largest magnitudes. The row scales are
    then :math:`r_i = \max_j |z_{ij}/c_j| / 32767` and
    :math:`q_{ij} = \operatorname{round}(z_{ij}/(r_i c_j))`, so every entry is within
    :math:`r_i c_j / 2` of the original: for :math:`|z_{ij}/c_j|` near the row's largest, a
    relative :math:`1.5\cdot10^{-5}`. A quarter of float64's memory, half of float32's.

    Parameters
    ----------
    values : Tensor of int16, shape (n, M)
    row_scale : Tensor of float64, shape (n,)
    col_scale : Tensor of float64, shape (M,)
        On the device of ``values``, finite and > 0.
    """

    def __init__(self, values: Tensor, row_scale: Tensor, col_scale: Tensor) -> None:
        if not isinstance(values, Tensor) or values.dtype != torch.int16 or values.ndim != 2:
            raise TypeError("values must be a 2-D int16 tensor")
        for name, t, size in (
            ("row_scale", row_scale, values.shape[0]),
            ("col_scale", col_scale, values.shape[1]),
        ):
            if not isinstance(t, Tensor) or t.dtype != torch.float64:
                raise TypeError(f"{name} must be a float64 tensor")
            if t.shape != (size,) or t.device != values.device:
                raise ValueError(
                    f"{name} must have shape ({size},) on {values.device}; got "
                    f"{tuple(t.shape)} on {t.device}"
                )
        if not (torch.isfinite(col_scale).all() and (col_scale > 0).all()):
            raise ValueError("col_scale must be finite and > 0")
        self.values = values
        self.row_scale = row_scale
        self.col_scale = col_scale

    @classmethod
    def empty(cls, n: int, col_scale: Tensor) -> QuantizedRows:
        """Storage for ``n`` rows with these column scales, to fill with :meth:`assign`."""
        col_scale = torch.as_tensor(col_scale, dtype=torch.float64)
        dev = col_scale.device
        return cls(
            torch.empty(n, col_scale.shape[0], dtype=torch.int16, device=dev),
            torch.empty(n, dtype=torch.float64, device=dev),
            col_scale,
        )

    @classmethod
    def quantize(cls, z: Tensor, col_scale: Tensor | None = None) -> QuantizedRows:
        """The rows of a floating ``z`` ``(n, M)`` in 16 bits (column scales: ``col_scale``,
        or the columns' largest magnitudes, 1 for an all-zero column)."""
        if col_scale is None:
            amax = z.abs().amax(0).to(torch.float64) if z.shape[0] else z.new_ones(z.shape[1])
            col_scale = torch.where(amax > 0, amax, torch.ones_like(amax))
        out = cls.empty(z.shape[0], col_scale.to(z.device, torch.float64))
        out.assign(0, z)
        return out

    def assign(self, start: int, z: Tensor) -> None:
        """Store the floating rows ``z`` as rows ``start .. start + len(z) - 1``.

        On a CPU with the native kernels, one pass over ``z`` (``quantize_rows_cpu``: the
        same operations in the same order as the torch path here, so the same values
        bitwise) instead of five float64 temporaries of ``z``'s size.
        """
        if not isinstance(z, Tensor) or not z.dtype.is_floating_point or z.ndim != 2:
            raise TypeError("z must be a 2-D floating tensor")
        stop = start + z.shape[0]
        if z.shape[1] != self.values.shape[1] or not 0 <= start <= stop <= self.values.shape[0]:
            raise ValueError(
                f"rows [{start}, {stop}) of width {z.shape[1]} do not fit "
                f"{tuple(self.values.shape)}"
            )
        if self.values.device.type == "cpu" and _native.cpu_available():
            zc = z.to("cpu", torch.float64).contiguous()
            q, rs = self.values[start:stop], self.row_scale[start:stop]
            ok = _native.require_cpu().quantize_rows_cpu(
                zc.data_ptr(), zc.shape[0], zc.shape[1], self.col_scale.contiguous().data_ptr(),
                q.data_ptr(), rs.data_ptr(), torch.get_num_threads(),
            )  # fmt: skip
            if not ok:
                raise ValueError("z contains NaN or inf: it cannot be quantized")
            return
        self._assign_torch(start, stop, z)

    def _assign_torch(self, start: int, stop: int, z: Tensor) -> None:
        """The torch reference of :meth:`assign` (and its path off the CPU)."""
        # In place on one float64 copy (large tiles: every temporary costs page faults).
        # (float64: the float64 column scales promote any floating z.)
        u = torch.div(z.to(self.values.device), self.col_scale)
        if u.shape[1]:
            amax = torch.linalg.vector_norm(u, ord=float("inf"), dim=1)
        else:
            amax = u.new_zeros(u.shape[0])
        if not torch.isfinite(amax).all():
            raise ValueError("z contains NaN or inf: it cannot be quantized")
        scale = amax / _INT16_MAX
        u.div_(torch.where(scale > 0, scale, torch.ones_like(scale))[:, None])
        self.values[start:stop] = u.round_().clamp_(-_INT16_MAX, _INT16_MAX)
        self.row_scale[start:stop] = scale

    def rows(self, start: int, stop: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """Rows ``start .. stop - 1`` as a floating tensor."""
        r = self.row_scale[start:stop, None].to(dtype)
        return self.values[start:stop].to(dtype) * r * self.col_scale.to(dtype)

    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return 2

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def nbytes(self) -> int:
        """Bytes held (values and scales)."""
        return 2 * self.values.numel() + 8 * (self.row_scale.numel() + self.col_scale.numel())


def _columns(sel: RowSelection, columns: Tensor | None) -> Tensor:
    if columns is None:
        return torch.arange(len(sel), dtype=torch.int64)
    cols = torch.as_tensor(columns).to("cpu", torch.int64).reshape(-1).contiguous()
    if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= len(sel)):
        raise ValueError(f"columns must be in [0, {len(sel)})")
    return cols


def _check(z: Tensor | QuantizedRows, sel: RowSelection) -> None:
    if not isinstance(z, (Tensor, QuantizedRows)):
        raise TypeError(f"z must be a torch.Tensor or QuantizedRows, got {type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(f"z must be a 2-D tensor (rows, M); got shape {tuple(z.shape)}")
    if not isinstance(sel, RowSelection):
        raise TypeError(f"sel must be a RowSelection, got {type(sel).__name__}")
    if sel.n_rows != z.shape[0]:
        raise ValueError(f"the selection indexes {sel.n_rows} rows but z has {z.shape[0]}")


#: What the native row-selection kernel computes (for :func:`resolve_backend`'s messages).
_OP = "the row-selection Gram products"


def _use_torch(z: Tensor | QuantizedRows, backend: str) -> bool:
    dtype = torch.float64 if isinstance(z, QuantizedRows) else z.dtype
    return resolve_backend(backend, z.device, op=_OP, dtype=dtype, cuda_ok=False) == "torch"


ARITHMETIC = ("float64", "float32")
"""The native kernel's arithmetic choices (see :func:`selected_gram_matvec`)."""


def _check_arithmetic(arithmetic: str) -> None:
    if arithmetic not in ARITHMETIC:
        raise ValueError(f"arithmetic must be one of {ARITHMETIC}; got {arithmetic!r}")


def _native_args(z: Tensor | QuantizedRows) -> tuple[Tensor, str, int]:
    """The stored matrix, its dtype name and its row scales' address (0: none); the column
    scales of :class:`QuantizedRows` are applied by the callers."""
    if isinstance(z, QuantizedRows):
        return z.values.contiguous(), "int16", z.row_scale.contiguous().data_ptr()
    zc = z.contiguous()
    return zc, _DTYPE_NAMES[zc.dtype], 0


def _quantized_chunks(
    z: QuantizedRows, chunk_rows: int, fn: Callable[[Tensor, int, int], Tensor]
) -> Tensor:
    """``sum fn(rows, lo, hi)`` over chunks of floating rows (float32 on a GPU, else float64)."""
    dtype = torch.float32 if z.device.type == "cuda" else torch.float64
    step = max(1, int(chunk_rows))
    total = None
    for lo in range(0, z.shape[0], step):
        hi = min(z.shape[0], lo + step)
        part = fn(z.rows(lo, hi, dtype), lo, hi)
        total = part if total is None else total + part
    return total


def selected_gram_matvec(
    z: Tensor,
    sel: RowSelection,
    v: Tensor,
    *,
    columns: Tensor | None = None,
    backend: str = "auto",
    chunk_rows: int = 2048,
    arithmetic: str = "float64",
) -> Tensor:
    r""":math:`\mathrm{out}_{:,b} = \sum_{i\in S_{c_b}} z_i\,(z_i\cdot v_{:,b})` for every column.

    Parameters
    ----------
    z : Tensor or QuantizedRows, shape (n, M)
        Stored features, float32, float64 or 16-bit.
    sel : RowSelection
        Selections of the rows of ``z``.
    v : Tensor, shape (M, B)
        Right-hand sides (cast to float64 for the native kernel, to ``z.dtype`` for torch).
    columns : Tensor of int, shape (B,), optional
        Selection of each right-hand side (default: selection ``b`` for column ``b``).
    backend : {"auto", "native", "torch"}
        ``"auto"``: the native kernel for CPU tensors, the dense torch product elsewhere.
    chunk_rows : int
        Rows per GEMM chunk of the torch path.
    arithmetic : {"float64", "float32"}
        Native kernel: ``"float64"`` converts every stored value to float64;
        ``"float32"`` computes the products of float32 or 16-bit ``z`` in float32 and sums
        them in float64 across chunks of 128 rows (see the module notes; float64 ``z`` is
        still computed in float64). The torch path computes in ``z``'s dtype (float32 for
        16-bit ``z`` on a GPU) either way.

    Returns
    -------
    Tensor, shape (M, B), float64
    """
    _check(z, sel)
    _check_arithmetic(arithmetic)
    cols = _columns(sel, columns)
    if v.ndim != 2 or v.shape[0] != z.shape[1] or v.shape[1] != cols.numel():
        raise ValueError(f"v must have shape ({z.shape[1]}, {cols.numel()}); got {tuple(v.shape)}")
    if _use_torch(z, backend):
        w = sel.dense(device=z.device)
        c = None if columns is None else cols.to(z.device)
        if isinstance(z, QuantizedRows):
            return _quantized_chunks(
                z,
                chunk_rows,
                lambda zc, lo, hi: masked_gram_matvec(
                    zc, w[lo:hi], v, columns=c, chunk_rows=chunk_rows
                ),
            )
        return masked_gram_matvec(z, w, v, columns=c, chunk_rows=chunk_rows)
    zc, dtype, scale = _native_args(z)
    vt = v.T.to(torch.float64)  # (B, M): one right-hand side per row
    if isinstance(z, QuantizedRows):  # Z = R Q C: (Z^T Z) v = C (Q^T R^2 Q) (C v)
        vt = vt * z.col_scale
    vt = vt.contiguous()
    out = torch.empty_like(vt)
    _native.require_cpu().selected_gram_matvec_cpu(
        zc.data_ptr(), zc.shape[0], zc.shape[1], sel.ptr.data_ptr(), sel.rows.data_ptr(),
        len(sel), cols.data_ptr(), cols.numel(), vt.data_ptr(), out.data_ptr(),
        dtype, torch.get_num_threads(), scale, arithmetic,
    )  # fmt: skip
    if isinstance(z, QuantizedRows):
        out *= z.col_scale
    return out.T


def selected_row_sums(
    z: Tensor,
    sel: RowSelection,
    *,
    columns: Tensor | None = None,
    backend: str = "auto",
    chunk_rows: int = 2048,
    arithmetic: str = "float64",
) -> Tensor:
    r""":math:`\mathrm{out}_{:,b} = \sum_{i\in S_{c_b}} z_i` (:math:`Z_S^\top 1`) for every column.

    Parameters as :func:`selected_gram_matvec`; returns an ``(M, B)`` float64 tensor.
    """
    _check(z, sel)
    _check_arithmetic(arithmetic)
    cols = _columns(sel, columns)
    if _use_torch(z, backend):
        w = sel.dense(device=z.device)
        if columns is not None:
            w = w[:, cols.to(z.device)]
        if isinstance(z, QuantizedRows):
            return _quantized_chunks(
                z,
                chunk_rows,
                lambda zc, lo, hi: masked_row_sums(zc, w[lo:hi], chunk_rows=chunk_rows),
            )
        return masked_row_sums(z, w, chunk_rows=chunk_rows)
    zc, dtype, scale = _native_args(z)
    out = torch.empty(cols.numel(), zc.shape[1], dtype=torch.float64)
    _native.require_cpu().selected_row_sums_cpu(
        zc.data_ptr(), zc.shape[0], zc.shape[1], sel.ptr.data_ptr(), sel.rows.data_ptr(),
        len(sel), cols.data_ptr(), cols.numel(), out.data_ptr(), dtype,
        torch.get_num_threads(), scale, arithmetic,
    )  # fmt: skip
    if isinstance(z, QuantizedRows):
        out *= z.col_scale
    return out.T
