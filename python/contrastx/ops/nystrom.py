r"""Pure-torch chunked Nystrom products for the Gaussian kernel (NPLM's building blocks).

With :math:`X \in \mathbb{R}^{N\times d}` (rows), :math:`C \in \mathbb{R}^{M\times d}`
(centres) and the Gaussian kernel

.. math::

    K(X, C)_{ij} = \exp\!\left(-\frac{\lVert x_i - c_j\rVert^2}{2\sigma^2}\right),

this module computes, streaming over tiles of rows so that the :math:`N\times M`
matrix is never held:

* :func:`gaussian_kernel_tile` -- one dense block :math:`K(X, C)`;
* :func:`kernel_t_matvec` -- :math:`K(X, C)^\top \operatorname{diag}(w)\, U`, shape
  ``(M, B)`` (or ``(M,)``);
* :func:`weighted_gram` -- :math:`G = K(C, X) \operatorname{diag}(w) K(X, C)`, shape
  ``(M, M)``;
* :func:`weighted_gram_rhs` -- :math:`G` and :math:`K(C, X)\,u` in a single pass
  (the two halves of a Nystrom normal-equation system share the kernel tiles);
* :func:`whitened_features` -- the whole whitened matrix :math:`Z = K(X, C)\,T^{-1}`,
  computed tile by tile in the input precision and stored in a (possibly lower)
  storage dtype;
* :func:`masked_row_sums` -- :math:`Z^\top W` (the selections' column sums);
* :func:`masked_gram_matvec` -- :math:`Z^\top (W \odot (Z V))` for a stored
  :math:`Z` and one weight column per right-hand side: the data part of a batch of
  Nystrom normal-equation operators whose points are subsets of one pool.

The Gram functions accept an optional upper-triangular ``whiten`` factor :math:`T`;
the tiles are then :math:`Z = K(X, C)\,T^{-1}` (a triangular solve per tile) and the
outputs are :math:`Z^\top\operatorname{diag}(w)Z = T^{-\top}GT^{-1}` and
:math:`Z^\top u`. With :math:`T^\top T = K_{MM} + \epsilon I` this is Falkon's
variable change: forming :math:`T^{-\top}GT^{-1}` from an explicit :math:`G` amplifies
rounding by :math:`\kappa(K_{MM})` (~1e12 for NPLM) and loses positive
definiteness, while accumulating whitened tiles keeps it a Gram matrix.

**Whitening method.** ``method="blocked"`` (default) inverts :math:`T` once per call
(:math:`M^3/3` flops) and whitens each tile by column-blocked GEMMs against the
triangular :math:`T^{-1}` (:func:`triangular_inverse`, :func:`whiten_blocked`), about
:math:`N M^2 (1 + b/M)` flops at GEMM speed for column blocks of :math:`b`; an
unweighted Gram is accumulated in its upper triangle only, by GEMMs over
:data:`GRAM_BLOCKS` block rows (:math:`(1 + 1/8) N M^2` flops, a GEMM's
:math:`2 N M^2` otherwise). (SciPy's SYRK, used before, runs on OpenBLAS, whose
spinning threads slowed torch's own BLAS threads between the calls by 2-3x.)
``method="solve"`` is the previous path: one triangular solve and one GEMM per tile.
Both are backward stable in the kernel values up to
:math:`\epsilon_\mathrm{mach}\kappa(T)` (the explicit inverse's residual), far below what
moves :math:`t`.

These are the references the native kernels will replace; ``K(X, C) @ V`` itself
is :func:`contrastx.ops.gaussian_kernel_matvec`. Memory is bounded by
``block_rows x M`` kernel entries (plus the ``M x M`` output).

Kernel tiles come from :func:`contrastx.ops.gaussian.gaussian_kernel` (the native kernel
on a CPU, direct differences; elsewhere its torch reference), written into one buffer
reused by every tile of a loop, and evaluated in the dtype of the inputs; use float64 for
NPLM (its ``K_MM`` has a condition number of order :math:`10^{12}`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Literal

import torch
from torch import Tensor

from ._validation import check_like, check_positive, check_tensor
from .gaussian import gaussian_kernel

__all__ = [
    "DEFAULT_TILE_BYTES",
    "gaussian_kernel_tile",
    "kernel_t_matvec",
    "masked_gram_matvec",
    "masked_row_sums",
    "rows_per_tile",
    "triangular_inverse",
    "weighted_gram",
    "weighted_gram_rhs",
    "whiten_blocked",
    "whitened_features",
    "whitened_tile",
    "whitened_tiles",
]

WhitenMethod = Literal["blocked", "solve"]
WHITEN_BLOCK = 256
"""Columns per GEMM of :func:`whiten_blocked`."""

DEFAULT_TILE_BYTES = 64 * 2**20
"""Default memory budget of one kernel tile (64 MiB)."""


def _check_points(x: Tensor, centers: Tensor, sigma: float) -> None:
    check_tensor("x", x)
    check_tensor("centers", centers)
    if x.ndim != 2 or centers.ndim != 2:
        raise ValueError(
            f"x and centers must be 2-D (rows, features); got {tuple(x.shape)} and "
            f"{tuple(centers.shape)}"
        )
    if x.shape[1] != centers.shape[1]:
        raise ValueError(
            f"x and centers must have the same number of features; got {x.shape[1]} and "
            f"{centers.shape[1]}"
        )
    if centers.shape[0] == 0:
        raise ValueError("centers is empty")
    if x.dtype != centers.dtype or not x.dtype.is_floating_point:
        raise TypeError(
            f"x and centers must share a floating dtype; got {x.dtype} and {centers.dtype}"
        )
    check_like("centers", centers, "x", x)
    check_positive("sigma", sigma)


def rows_per_tile(m: int, itemsize: int, tile_bytes: int = DEFAULT_TILE_BYTES) -> int:
    """Rows of an ``(rows, m)`` tile that fit in ``tile_bytes`` (at least 1).

    Two tiles of that size are alive at once (the kernel tile and its weighted copy).
    """
    return max(1, int(tile_bytes) // (2 * max(1, m) * itemsize))


def gaussian_kernel_tile(x: Tensor, centers: Tensor, sigma: float) -> Tensor:
    r"""Dense Gaussian kernel block :math:`K(X, C)`, shape ``(N, M)``.

    .. math:: K_{ij} = \exp(-|x_i - c_j|^2 / (2\sigma^2))

    :func:`contrastx.ops.gaussian.gaussian_kernel` with ``backend="auto"``: the native
    kernel on a CPU (where built), the torch reference elsewhere.

    Parameters
    ----------
    x : Tensor, shape (N, d)
    centers : Tensor, shape (M, d)
    sigma : float
        Kernel width, > 0.
    """
    _check_points(x, centers, sigma)
    return gaussian_kernel(x, centers, sigma)


def _as_rows(v: Tensor | None, n: int, name: str, like: Tensor) -> Tensor | None:
    if v is None:
        return None
    check_tensor(name, v)
    if v.ndim not in (1, 2) or v.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, B); got {tuple(v.shape)}")
    return check_like(name, v, "x", like)


def kernel_t_matvec(
    x: Tensor,
    centers: Tensor,
    u: Tensor,
    sigma: float,
    *,
    row_weights: Tensor | None = None,
    tile_bytes: int = DEFAULT_TILE_BYTES,
) -> Tensor:
    r"""Transposed kernel product :math:`K(X, C)^\top \operatorname{diag}(w)\, U`.

    .. math:: \mathrm{out}_{jb} = \sum_i k(x_i, c_j)\, w_i\, U_{ib}

    Parameters
    ----------
    x : Tensor, shape (N, d)
    centers : Tensor, shape (M, d)
    u : Tensor, shape (N,) or (N, B)
    sigma : float
    row_weights : Tensor, shape (N,), optional
        Per-row weights :math:`w_i` (default 1).
    tile_bytes : int
        Memory budget of one kernel tile.

    Returns
    -------
    Tensor, shape (M,) or (M, B)
    """
    _check_points(x, centers, sigma)
    n, m = x.shape[0], centers.shape[0]
    u = _as_rows(u, n, "u", x)
    row_weights = _as_rows(row_weights, n, "row_weights", x)
    if row_weights is not None and row_weights.ndim != 1:
        raise ValueError("row_weights must be 1-D")
    vec = u.ndim == 1
    u2 = u[:, None] if vec else u
    out = torch.zeros(m, u2.shape[1], dtype=x.dtype, device=x.device)
    step = rows_per_tile(m, x.element_size(), tile_bytes)
    tile = _tile_buffer(x, m, step)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        k = gaussian_kernel(x[lo:hi], centers, sigma, out=tile[: hi - lo])
        ub = u2[lo:hi]
        if row_weights is not None:
            ub = ub * row_weights[lo:hi, None]
        out.addmm_(k.T, ub)
    return out[:, 0] if vec else out


def _tile_buffer(x: Tensor, m: int, step: int, dtype: torch.dtype | None = None) -> Tensor:
    """One (rows, M) tile reused by every tile of a loop (fresh large tensors page-fault), in
    ``dtype`` (default: ``x``'s)."""
    return torch.empty(min(step, x.shape[0]), m, dtype=dtype or x.dtype, device=x.device)


def _check_whiten(whiten: Tensor | None, m: int, like: Tensor, name: str = "whiten") -> None:
    if whiten is None:
        return
    check_tensor(name, whiten)
    if whiten.shape != (m, m):
        raise ValueError(
            f"{name} must be an ({m}, {m}) upper-triangular tensor; got {tuple(whiten.shape)}"
        )
    check_like(name, whiten, "x", like)


def whitened_tile(k: Tensor, whiten: Tensor | None) -> Tensor:
    """``k @ whiten^-1`` for an upper-triangular ``whiten`` (``k`` itself if ``None``)."""
    if whiten is None:
        return k
    return torch.linalg.solve_triangular(whiten, k, upper=True, left=False)


def _check_method(method: str) -> None:
    if method not in ("blocked", "solve"):
        raise ValueError(f"method must be 'blocked' or 'solve'; got {method!r}")


def triangular_inverse(whiten: Tensor) -> Tensor:
    r""":math:`T^{-1}` of an upper-triangular ``whiten`` :math:`T` (upper triangular), by one
    triangular solve against the identity, in ``whiten``'s dtype."""
    eye = torch.eye(whiten.shape[0], dtype=whiten.dtype, device=whiten.device)
    return torch.linalg.solve_triangular(whiten, eye, upper=True)


def whiten_blocked(
    k: Tensor, inverse: Tensor, out: Tensor | None = None, block: int = WHITEN_BLOCK
) -> Tensor:
    r""":math:`K T^{-1}` from the upper-triangular ``inverse`` :math:`T^{-1}`, by column blocks.

    Column block :math:`J = [j_0, j_1)` of the result is :math:`K_{:, :j_1}
    (T^{-1})_{:j_1, J}` (the rows of :math:`T^{-1}` below :math:`j_1` are zero in those
    columns): one GEMM per block, about :math:`N M^2 (1 + b/M)` flops instead of the
    :math:`2 N M^2` of a full product. Each row of the result depends only on the same
    row of ``k``.

    Parameters
    ----------
    k : Tensor, shape (N, M)
    inverse : Tensor, shape (M, M)
        Upper-triangular :math:`T^{-1}` (:func:`triangular_inverse`), ``k``'s dtype.
    out : Tensor, shape (N, M), optional
        Where to write the result (any floating dtype; each block is rounded to it).
    block : int
        Columns per GEMM.
    """
    n, m = k.shape
    if out is None:
        out = torch.empty(n, m, dtype=k.dtype, device=k.device)
    step = max(1, int(block))
    for j0 in range(0, m, step):
        j1 = min(m, j0 + step)
        if out.dtype == k.dtype:
            torch.mm(k[:, :j1], inverse[:j1, j0:j1], out=out[:, j0:j1])
        else:
            out[:, j0:j1] = k[:, :j1] @ inverse[:j1, j0:j1]
    return out


GRAM_BLOCKS = 8
"""Block rows of the upper-triangular Gram accumulation (:func:`_gram_upper_update`)."""


def _gram_upper_update(gram: Tensor, z: Tensor) -> None:
    """``gram += z^T z`` in the upper triangle (and the diagonal blocks' lower parts): one
    GEMM per block row of :data:`GRAM_BLOCKS`, from the diagonal block to the right."""
    m = z.shape[1]
    edges = [round(i * m / GRAM_BLOCKS) for i in range(GRAM_BLOCKS + 1)]
    for i0, i1 in pairwise(edges):
        if i1 > i0:
            gram[i0:i1, i0:].addmm_(z[:, i0:i1].T, z[:, i0:])


def _gram_pass(
    x: Tensor,
    centers: Tensor,
    sigma: float,
    row_weights: Tensor | None,
    rhs: Tensor | None,
    tile_bytes: int,
    whiten: Tensor | None = None,
    accumulate: torch.dtype | None = None,
    method: WhitenMethod = "blocked",
    products: torch.dtype | None = None,
) -> tuple[Tensor, Tensor | None]:
    _check_points(x, centers, sigma)
    _check_whiten(whiten, centers.shape[0], x)
    _check_method(method)
    n, m = x.shape[0], centers.shape[0]
    row_weights = _as_rows(row_weights, n, "row_weights", x)
    if row_weights is not None and row_weights.ndim != 1:
        raise ValueError("row_weights must be 1-D")
    rhs = _as_rows(rhs, n, "rhs", x)
    acc = x.dtype if accumulate is None else accumulate
    if not acc.is_floating_point or torch.finfo(acc).bits < torch.finfo(x.dtype).bits:
        raise ValueError(f"accumulate must be a floating dtype at least as wide as x's; got {acc}")
    prod = x.dtype if products is None else products
    if prod not in (torch.float32, torch.float64) or (
        prod != x.dtype and (prod != torch.float32 or acc != torch.float64)
    ):
        raise ValueError(
            f"products must be x's dtype, or float32 with float64 sums; got {products} for "
            f"{x.dtype} points summed in {acc}"
        )
    gram = torch.zeros(m, m, dtype=acc, device=x.device)
    b = None
    if rhs is not None:
        b = torch.zeros(m, *rhs.shape[1:], dtype=acc, device=x.device)
    step = rows_per_tile(m, x.element_size(), tile_bytes)
    part = None  # one tile's float32 Gram (reduced-precision products)
    if prod != x.dtype:
        part = torch.empty(m, m, dtype=prod, device=x.device)
        low = _tile_buffer(x, m, step, prod)
    blocked = method == "blocked"
    inverse = triangular_inverse(whiten) if blocked and whiten is not None else None
    tile = _tile_buffer(x, m, step)
    white = None if inverse is None else _tile_buffer(x, m, step)
    # Unweighted: only the upper triangle is accumulated; symmetrise from it at the end.
    upper_only = False
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        k = gaussian_kernel(x[lo:hi], centers, sigma, out=tile[: hi - lo])
        if white is not None:
            k = whiten_blocked(k, inverse, out=white[: hi - lo])
        else:
            k = whitened_tile(k, whiten)
        kw = k if row_weights is None else k * row_weights[lo:hi, None]
        if part is not None:  # the tile's products in float32, the sums over tiles in acc
            kl = low[: hi - lo]
            kl.copy_(k)
            klw = kl if row_weights is None else kw.to(prod)
            if blocked and row_weights is None:
                part.zero_()
                _gram_upper_update(part, kl)
                upper_only = True
            else:
                torch.mm(kl.T, klw, out=part)
            gram += part
        elif blocked and row_weights is None and acc == x.dtype:
            _gram_upper_update(gram, k)
            upper_only = True
        elif acc == x.dtype:
            gram.addmm_(k.T, kw)
        else:  # the tile's product in x's dtype, the sum across tiles in acc
            gram += (k.T @ kw).to(acc)
        if b is not None:
            r = rhs[lo:hi]
            if acc != x.dtype:
                b += (k.T @ r).to(acc)
            elif r.ndim == 1:
                b.addmv_(k.T, r)
            else:
                b.addmm_(k.T, r)
    if upper_only:
        gram = torch.triu(gram) + torch.triu(gram, 1).T
    else:  # the accumulation is symmetric up to rounding; make it exactly symmetric
        gram = 0.5 * (gram + gram.T)
    return gram, b


def weighted_gram(
    x: Tensor,
    centers: Tensor,
    sigma: float,
    row_weights: Tensor | None = None,
    *,
    whiten: Tensor | None = None,
    tile_bytes: int = DEFAULT_TILE_BYTES,
    method: WhitenMethod = "blocked",
) -> Tensor:
    r"""Weighted Gram matrix :math:`G = K(C, X)\operatorname{diag}(w)K(X, C)`.

    .. math:: G_{jl} = \sum_i w_i\, k(x_i, c_j)\, k(x_i, c_l)

    accumulated over tiles of rows of ``x``; never holds the ``(N, M)`` matrix.

    Parameters
    ----------
    x : Tensor, shape (N, d)
    centers : Tensor, shape (M, d)
    sigma : float
    row_weights : Tensor, shape (N,), optional
        :math:`w_i` (default 1).
    whiten : Tensor, shape (M, M), optional
        Upper-triangular :math:`T`: return :math:`T^{-\top}GT^{-1}` (see the module notes).
    tile_bytes : int
        Memory budget of one kernel tile.
    method : {"blocked", "solve"}
        How tiles are whitened and summed (see the module notes).

    Returns
    -------
    Tensor, shape (M, M), symmetric.
    """
    return _gram_pass(x, centers, sigma, row_weights, None, tile_bytes, whiten, method=method)[0]


def weighted_gram_rhs(
    x: Tensor,
    centers: Tensor,
    sigma: float,
    row_weights: Tensor | None,
    rhs: Tensor,
    *,
    whiten: Tensor | None = None,
    tile_bytes: int = DEFAULT_TILE_BYTES,
    accumulate: torch.dtype | None = None,
    method: WhitenMethod = "blocked",
    products: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Weighted Gram matrix and a transposed product in one pass over ``x``.

    Returns :math:`G = K(C, X)\operatorname{diag}(w)K(X, C)` and
    :math:`b = K(C, X)\, r` (``rhs`` is not multiplied by ``row_weights``).

    Parameters
    ----------
    x : Tensor, shape (N, d)
    centers : Tensor, shape (M, d)
    sigma : float
    row_weights : Tensor, shape (N,) or None
    rhs : Tensor, shape (N,) or (N, B)
    whiten : Tensor, shape (M, M), optional
        Upper-triangular :math:`T`: return :math:`T^{-\top}GT^{-1}` and
        :math:`T^{-\top}b` (see the module notes).
    tile_bytes : int
    accumulate : torch.dtype, optional
        Dtype of the sums across tiles and of the outputs (default: that of ``x``); e.g.
        float64 for float32 points: each tile's products stay in float32, their sum
        does not accumulate float32 rounding over the tiles.
    method : {"blocked", "solve"}
        How tiles are whitened and summed (see the module notes).
    products : torch.dtype, optional
        ``torch.float32`` for float64 points summed in float64: each (whitened) tile is
        rounded to float32 and its Gram product runs in float32 GEMMs (twice float64's
        rate), the sum over tiles and ``b`` in float64. The Gram then carries float32
        rounding of dot products over one tile's rows (a relative ~1e-6 of its largest
        entries); NPLM's reference system so (the toys) moves t by ~3e-8.

    Returns
    -------
    gram : Tensor, shape (M, M)
    b : Tensor, shape (M,) or (M, B)
    """
    if rhs is None:
        raise ValueError("rhs is required (use weighted_gram for the Gram matrix alone)")
    gram, b = _gram_pass(
        x, centers, sigma, row_weights, rhs, tile_bytes, whiten, accumulate, method, products
    )
    assert b is not None
    return gram, b


def whitened_features(
    x: Tensor,
    centers: Tensor,
    sigma: float,
    whiten: Tensor,
    *,
    out_dtype: torch.dtype | None = None,
    tile_bytes: int = DEFAULT_TILE_BYTES,
    method: WhitenMethod = "blocked",
    inverse: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    r"""Whitened kernel features :math:`Z = K(X, C)\,T^{-1}`, shape ``(N, M)``.

    Each tile of rows is evaluated and whitened (triangular solve) in the dtype of
    ``x`` and then rounded to ``out_dtype``, so a float32 ``Z`` carries only the
    storage rounding (relative :math:`2^{-24}` per entry) and not the float32
    conditioning of :math:`K_{MM}` that a float32 kernel evaluation would suffer.

    Parameters
    ----------
    x : Tensor, shape (N, d)
    centers : Tensor, shape (M, d)
    sigma : float
    whiten : Tensor, shape (M, M)
        Upper-triangular :math:`T` (same dtype and device as ``x``).
    out_dtype : torch.dtype, optional
        Storage dtype (default: that of ``x``).
    tile_bytes : int
        Memory budget of one working tile.
    method : {"blocked", "solve"}
        ``"blocked"``: column-blocked GEMMs against :math:`T^{-1}`, written straight into
        the output; ``"solve"``: a triangular solve per tile (see the module notes). Each
        row of ``Z`` depends only on the same row of ``x`` either way.
    inverse : Tensor, shape (M, M), optional
        ``"blocked"`` only: :math:`T^{-1}` (:func:`triangular_inverse` of ``whiten``), for
        callers that whiten many small sets of rows with one :math:`T` (default: computed
        here, :math:`M^3/3` flops per call).
    out : Tensor, shape (N, M), optional
        Where to write ``Z`` (dtype ``out_dtype``, device of ``x``): a caller that whitens
        many sets of rows reuses one buffer (a fresh large tensor page-faults).

    Returns
    -------
    Tensor, shape (N, M), dtype ``out_dtype`` (``out`` if given)
    """
    _check_points(x, centers, sigma)
    _check_whiten(whiten, centers.shape[0], x)
    _check_whiten(inverse, centers.shape[0], x, "inverse")
    if whiten is None:
        raise ValueError("whiten is required")
    _check_method(method)
    n, m = x.shape[0], centers.shape[0]
    dtype = out_dtype or x.dtype
    if out is None:
        out = torch.empty(n, m, dtype=dtype, device=x.device)
    elif out.shape != (n, m) or out.dtype != dtype or out.device != x.device:
        raise ValueError(
            f"out must be an ({n}, {m}) {dtype} tensor on {x.device}; got "
            f"{tuple(out.shape)} {out.dtype} on {out.device}"
        )
    direct = dtype == x.dtype  # written in place; else each tile rounded into out
    tiles = whitened_tiles(
        x,
        centers,
        sigma,
        whiten,
        tile_bytes=tile_bytes,
        method=method,
        inverse=inverse,
        out=out if direct else None,
    )
    for lo, hi, z in tiles:
        if not direct:
            out[lo:hi] = z
    return out


def whitened_tiles(
    x: Tensor,
    centers: Tensor,
    sigma: float,
    whiten: Tensor,
    *,
    tile_bytes: int = DEFAULT_TILE_BYTES,
    method: WhitenMethod = "blocked",
    inverse: Tensor | None = None,
    out: Tensor | None = None,
) -> Iterator[tuple[int, int, Tensor]]:
    r"""The rows of :math:`Z = K(X, C)\,T^{-1}` tile by tile, in the dtype of ``x``.

    Yields ``(lo, hi, z)``: ``z`` is rows ``lo:hi`` of :math:`Z`, a view of ``out`` (when
    given: ``(N, M)``, ``x``'s dtype and device) or of one buffer reused by every tile
    (valid until the next tile). For callers that store the tiles otherwise (e.g. in 16
    bits, :class:`~contrastx.ops.selections.QuantizedRows`) without a fresh allocation per
    tile. Parameters as :func:`whitened_features` (checked there; here only as given).
    """
    n, m = x.shape[0], centers.shape[0]
    step = rows_per_tile(m, x.element_size(), tile_bytes)
    if method != "blocked":
        inverse = None
    elif inverse is None:
        inverse = triangular_inverse(whiten)
    tile = _tile_buffer(x, m, step)
    white = None
    if inverse is not None and out is None:
        white = _tile_buffer(x, m, step)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        k = gaussian_kernel(x[lo:hi], centers, sigma, out=tile[: hi - lo])
        if inverse is None:
            z = whitened_tile(k, whiten)
            if out is not None:
                out[lo:hi] = z
                z = out[lo:hi]
        else:
            z = whiten_blocked(k, inverse, out=out[lo:hi] if white is None else white[: hi - lo])
        yield lo, hi, z


def _check_masked(z: Tensor, weights: Tensor) -> None:
    check_tensor("z", z)
    check_tensor("weights", weights)
    if z.ndim != 2:
        raise ValueError(f"z must be a 2-D tensor (rows, M); got shape {tuple(z.shape)}")
    if weights.ndim != 2 or weights.shape[0] != z.shape[0]:
        raise ValueError(f"weights must have shape ({z.shape[0]}, B); got {tuple(weights.shape)}")
    if weights.device != z.device:
        raise ValueError(f"weights is on {weights.device} but z on {z.device}")


def masked_gram_matvec(
    z: Tensor,
    weights: Tensor,
    v: Tensor,
    *,
    columns: Tensor | None = None,
    chunk_rows: int = 2048,
) -> Tensor:
    r"""Batched weighted Gram products over one stored feature matrix.

    .. math:: \mathrm{out}_{:, b} = Z^\top \big(W_{:, b} \odot (Z v_b)\big)
              = \Big(\sum_i W_{ib}\, z_i z_i^\top\Big) v_b

    i.e. the Gram matrix of the rows selected (or weighted) by column :math:`b` of
    :math:`W`, applied to :math:`v_b`, for all :math:`b` at once: two GEMMs per chunk of
    rows, shared by every column, and never an :math:`M\times M` matrix per column.
    The GEMMs run in the dtype of ``z``; chunk partial sums are accumulated in float64.

    Parameters
    ----------
    z : Tensor, shape (P, M)
        Stored features (float32 or float64).
    weights : Tensor, shape (P, B_all)
        Row weights per right-hand side (e.g. 0/1 or counts, any real or integer dtype).
    v : Tensor, shape (M, B)
        Right-hand sides (any floating dtype; cast to ``z.dtype``).
    columns : Tensor of int64, shape (B,), optional
        Columns of ``weights`` that belong to the columns of ``v`` (default: all, then
        ``B_all = B``).
    chunk_rows : int
        Rows per chunk (bounds the ``(chunk_rows, B)`` temporaries).

    Returns
    -------
    Tensor, shape (M, B), float64
    """
    _check_masked(z, weights)
    if v.ndim != 2 or v.shape[0] != z.shape[1]:
        raise ValueError(f"v must have shape ({z.shape[1]}, B); got {tuple(v.shape)}")
    nb = weights.shape[1] if columns is None else columns.shape[0]
    if v.shape[1] != nb:
        raise ValueError(f"v has {v.shape[1]} columns for {nb} weight columns")
    vz = v.to(z.dtype).contiguous()
    out = torch.zeros(z.shape[1], v.shape[1], dtype=torch.float64, device=z.device)
    step = max(1, int(chunk_rows))
    for lo in range(0, z.shape[0], step):
        zc = z[lo : lo + step]
        wc = weights[lo : lo + step]
        if columns is not None:
            wc = wc[:, columns]
        y = (zc @ vz).mul_(wc)
        out += (zc.T @ y).to(torch.float64)
    return out


def masked_row_sums(
    z: Tensor,
    weights: Tensor,
    *,
    chunk_rows: int = 2048,
) -> Tensor:
    r"""Weighted column sums of a stored feature matrix for every weight column.

    .. math:: \mathrm{out}_{:, b} = Z^\top W_{:, b} = \sum_i W_{ib}\, z_i

    e.g. :math:`Z_D^\top 1` of every selection :math:`W_{:, b}` (the data gradient).
    The GEMMs run in the dtype of ``z``, accumulated across chunks in float64.

    Parameters
    ----------
    z : Tensor, shape (P, M)
    weights : Tensor, shape (P, B)
    chunk_rows : int

    Returns
    -------
    Tensor, shape (M, B), float64
    """
    _check_masked(z, weights)
    step = max(1, int(chunk_rows))
    out = torch.zeros(z.shape[1], weights.shape[1], dtype=torch.float64, device=z.device)
    for lo in range(0, z.shape[0], step):
        zc = z[lo : lo + step]
        out += (zc.T @ weights[lo : lo + step].to(z.dtype)).to(torch.float64)
    return out
