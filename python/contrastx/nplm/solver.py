r"""The NPLM fit: Falkon's logistic Nystrom solver, reimplemented.

Model and objective (the primary paper's NPLM configuration of Falkon's
``LogisticFalkon``):

.. math::

    f(x) = \sum_{j=1}^M \alpha_j k(x, c_j), \qquad
    L(\alpha) = \frac1N \sum_{i=1}^N \ell(y_i, f(x_i))
               + \frac\lambda2 \alpha^\top K_{MM}\alpha,

    \ell(y, f) = y \log(1 + e^{-f}) + w (1 - y) \log(1 + e^{f}),

with data (:math:`y = 1`) and reference (:math:`y = 0`, weight
:math:`w = N(B)/N_R`) points, :math:`N = N_D + N_R`.

**Newton step.** With :math:`T` the upper Cholesky factor of
:math:`K_{MM} + \epsilon M I` and :math:`\beta = T\alpha`, one (Falkon) Newton step
from :math:`\beta` solves

.. math::

    \left(T^{-\top} H T^{-1} + \lambda I\right)\Delta = T^{-\top} g + \lambda\beta,
    \qquad \beta \leftarrow \beta - \Delta,

    H = \frac1N K_{MN}\operatorname{diag}(\ell''(y, f)) K_{NM}, \qquad
    g = \frac1N K_{MN}\,\ell'(y, f).

From :math:`\alpha = 0` (:math:`\ell'' = 1/4, w/4`; :math:`\ell' = -1/2, w/2`) this is
exactly the weighted kernel ridge system
:math:`(H + \lambda(K_{MM} + \epsilon M I))\alpha = -g`. Falkon solves it with
conjugate gradient preconditioned by :math:`A`, the upper Cholesky factor of
:math:`\frac1N T\,\operatorname{diag}(W)T^\top + \lambda I`, where
:math:`W_j = \ell''(y_{c_j}, (T^\top\beta)_j)` is the loss curvature at the centres
(this is why the centres' labels matter), stopping when the preconditioned
residual :math:`\lVert r\rVert_2 <` ``cg_tol`` (absolute; default
:math:`\sqrt{10^{-7}}`), recomputing the residual from scratch every 10 iterations.

**What is different from Falkon.** Falkon never stores :math:`H`: every CG iteration
streams twice over the :math:`N` training points. Here :math:`H` and :math:`g` are
accumulated once per Newton step in one pass over the points
(:func:`contrastx.ops.nystrom.weighted_gram_rhs`, memory bounded by ``tile_bytes``),
after which CG is :math:`O(M^2)` per iteration. With ``preconditioner="falkon"`` the
arithmetic of the CG (preconditioner, residual recomputation, stopping rule, per-step
iteration limit) follows Falkon's, so the truncated step matches Falkon's to rounding.
``solver="exact"`` instead solves the same :math:`M\times M` system by Cholesky (the
limit of the CG).

**The 'average' preconditioner** (the default) replaces Falkon's
:math:`\frac1N T\operatorname{diag}(W)T^\top + \lambda I` by the whitened system the
fit would have if its :math:`N_D` data points were distributed as the reference,

.. math::

    P = \frac cN S_R + \lambda I, \qquad S_R = \sum_{x\in R} \ell''(0, f(x))\,
    z(x) z(x)^\top, \qquad c = 1 + \frac{N_D}{w N_R}

(:func:`average_curvature_factor`; :math:`z(x) = T^{-\top}k(C, x)`; the reference's
:math:`\ell''` carries its weight :math:`w`): the reference term plus its expectation
for the data. A data set's own system differs from :math:`P` by
the fluctuation of its Gram about that expectation, of relative size about
:math:`\sqrt{M/N_D}` in the preconditioned space, so CG converges in a few iterations
(gaining about a decade each when :math:`N_D \gg M`), which is what makes its default
tolerance (:data:`~contrastx.nplm.options.AVERAGE_CG_TOL`, about a thirtieth of Falkon's)
cheap: the step is then much closer to the exact one-step solution than Falkon's
truncated step is. For toys sharing a reference, :math:`S_R` is computed once
(:mod:`contrastx.nplm.toys`).

The :math:`M\times M` algebra and the sums across kernel tiles always run in float64;
``dtype`` selects the precision of the kernel evaluations (float64 by default:
:math:`K_{MM}` has a condition number of order :math:`10^{12}`). float32 is refused
where that condition number would make it inaccurate (:func:`check_float32`).

References
----------
.. [1] G. Grosso, M. Letizia, M. Pierini, A. Wulzer, "Goodness of fit by Neyman-Pearson
   testing", SciPost Phys. 16 (2024) 123; M. Letizia et al., "Learning new physics
   efficiently with nonparametric methods", EPJC 82 (2022) 879.
.. [2] U. Marteau-Ferey, F. Bach, A. Rudi, "Globally Convergent Newton Methods for
   Ill-conditioned Generalized Self-concordant Losses", NeurIPS 32 (2019).
.. [3] G. Meanti, L. Carratino, L. Rosasco, A. Rudi, "Kernel methods through the roof:
   handling billions of points efficiently", NeurIPS 33 (2020) (Falkon).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from contrastx.ops.nystrom import (
    gaussian_kernel_tile,
    rows_per_tile,
    whitened_tile,
)
from contrastx.ops.selections import RowSelection, selected_gram_matvec, selected_row_sums

from .kernel import (
    as_points,
    check_sigma,
    kernel_matvec,
    resolve_device,
    select_centers,
    sigma_heuristic,
)
from .options import DEFAULT_CG_TOL, SolverOptions

__all__ = [
    "DEFAULT_CG_TOL",
    "FLOAT32_MAX_CONDITION",
    "FalkonPreconditioner",
    "NPLMFit",
    "average_curvature_factor",
    "check_float32",
    "falkon_cg",
    "newton_step",
    "nplm_t",
    "pc_epsilon_default",
    "pooled_newton_step",
]

_PC_EPS = 1e-13

SolverName = Literal["cg", "exact"]

FLOAT32_MAX_CONDITION = 1e7
"""Largest condition number of :math:`K_{MM} + \\epsilon M I` at which ``dtype="float32"``
is accepted (:func:`check_float32`).

The whitened features :math:`Z = K T^{-1}` carry the float32 rounding of the kernel
values (relative :math:`2^{-24}`) amplified by up to the condition number; below this
bound the effect on :math:`t` stays far inside the 1e-3 relative target (the tests
measure it), above it grows in proportion and at NPLM's usual conditioning
(:math:`10^{12}` and more) it changes :math:`t` completely."""


def pc_epsilon_default(dtype: torch.dtype | None = None) -> float:
    """The default jitter :math:`\\epsilon` of :math:`K_{MM} + \\epsilon M I`: Falkon's
    float64 value 1e-13, for either ``dtype``.

    Falkon's float32 default (1e-5) is not used: it adds :math:`10^{-5}\\lambda M
    \\lVert\\alpha\\rVert^2` to the penalty, a different model whose :math:`t` is far
    lower; float32 is instead refused where it cannot be accurate (:func:`check_float32`).
    """
    return _PC_EPS


def check_float32(kmm: Tensor, eps: float, sigma: float) -> float:
    r"""Refuse float32 kernels where they cannot give an accurate :math:`t`.

    Computes the condition number :math:`\kappa` of :math:`K_{MM} + \epsilon M I`
    (float64 eigenvalues) and raises unless :math:`\kappa \le`
    :data:`FLOAT32_MAX_CONDITION`.

    Parameters
    ----------
    kmm : Tensor, shape (M, M)
        Kernel matrix of the centres (evaluated in float64).
    eps : float
        Jitter :math:`\epsilon`.
    sigma : float
        Kernel width (for the message).

    Returns
    -------
    float
        :math:`\kappa`.

    Raises
    ------
    ValueError
        If :math:`\kappa` exceeds :data:`FLOAT32_MAX_CONDITION`; the message says why
        and what to use instead.
    """
    m = kmm.shape[0]
    k64 = kmm.to(torch.float64)
    jitter = torch.eye(m, dtype=torch.float64, device=k64.device) * (eps * m)
    evals = torch.linalg.eigvalsh(k64 + jitter)
    lo, hi = float(evals[0]), float(evals[-1])
    kappa = math.inf if lo <= 0 else hi / lo
    if kappa > FLOAT32_MAX_CONDITION:
        raise ValueError(
            f"dtype='float32' cannot give an accurate t here: K_MM + eps M I (M = {m}, "
            f"sigma = {sigma:g}, eps = {eps:g}) has condition number {kappa:.1e} > "
            f"{FLOAT32_MAX_CONDITION:.0e}, and whitening the kernel values amplifies their "
            "float32 rounding by up to that factor (Falkon's float32 jitter eps = 1e-5 "
            "hides it by changing the model, which biases t low). Use dtype='float64'; "
            "pool_dtype='float32' halves a toy pool's memory at float64 accuracy"
        )
    return kappa


def _to_tensor_1d(v: Any, name: str) -> Tensor:
    t = v.detach() if isinstance(v, Tensor) else torch.as_tensor(np.asarray(v))
    if t.ndim != 1:
        t = t.reshape(-1)
    if not t.dtype.is_floating_point:
        t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t.to(torch.float64)


def nplm_t(f_data: Any, f_ref: Any, weight: float) -> float:
    r"""NPLM test statistic from the fitted log-density ratio.

    .. math:: t = 2\Big[w \sum_{x\in R} \big(1 - e^{f(x)}\big) + \sum_{x\in D} f(x)\Big]

    Parameters
    ----------
    f_data : array_like, shape (N_D,)
        :math:`f` on the data points.
    f_ref : array_like, shape (N_R,)
        :math:`f` on the reference points.
    weight : float
        Reference weight :math:`w = N(B)/N_R` (> 0).

    Returns
    -------
    float
    """
    w = float(weight)
    if not (math.isfinite(w) and w > 0):
        raise ValueError(f"weight must be finite and > 0; got {weight!r}")
    fd = _to_tensor_1d(f_data, "f_data")
    fr = _to_tensor_1d(f_ref, "f_ref")
    return float(2.0 * (w * (1.0 - torch.exp(fr)).sum() + fd.sum()))


class FalkonPreconditioner:
    r"""Falkon's logistic preconditioner, batched over independent systems.

    .. math::

        T = \operatorname{chol}(K_{MM} + \epsilon M I), \qquad
        A_b = \operatorname{chol}\Big(\frac{1}{N_b} T\operatorname{diag}(W_b)T^\top
              + \lambda_b I\Big)

    (upper factors, :math:`T^\top T = K_{MM} + \epsilon M I`). Float64 throughout.

    Parameters
    ----------
    kmm : Tensor, shape (M, M)
        Kernel matrix of the centres.
    eps : float
        Jitter :math:`\epsilon` (Falkon's ``pc_epsilon``).
    """

    def __init__(self, kmm: Tensor, eps: float) -> None:
        kmm = kmm.to(torch.float64)
        m = kmm.shape[0]
        jitter = torch.eye(m, dtype=torch.float64, device=kmm.device) * (eps * m)
        t, info = torch.linalg.cholesky_ex(kmm + jitter, upper=True)
        if int(info) != 0:
            raise np.linalg.LinAlgError(
                f"K_MM + eps*M*I is not positive definite (eps={eps}); duplicate centres or "
                "too small a jitter"
            )
        self.T = t
        self.A: Tensor | None = None

    @classmethod
    def from_factor(cls, t: Tensor) -> FalkonPreconditioner:
        """A preconditioner with a known upper factor ``T`` (e.g. loaded from a cache)."""
        if t.ndim != 2 or t.shape[0] != t.shape[1]:
            raise ValueError(f"T must be a square matrix; got shape {tuple(t.shape)}")
        out = cls.__new__(cls)
        out.T = t.to(torch.float64)
        out.A = None
        return out

    def init(self, center_curvature: Tensor, penalty: float, n_points: Tensor) -> None:
        r"""Set :math:`A_b` from the curvature at the centres ``(B, M)`` and :math:`N_b` ``(B,)``.

        Rows of ``center_curvature`` that are all equal share one
        :math:`T\operatorname{diag}(W)T^\top` product.
        """
        w = center_curvature.to(torch.float64)
        if w.shape[0] > 1 and bool((w == w[:1]).all()):
            self.init_from_twt(self.twt(w[0]), penalty, n_points)
            return
        tw = self.T.unsqueeze(0) * w.sqrt().unsqueeze(1)  # T diag(sqrt W), (B, M, M)
        self.init_from_twt(tw @ tw.transpose(1, 2), penalty, n_points)

    def twt(self, curvature: Tensor) -> Tensor:
        r""":math:`T\operatorname{diag}(W)T^\top` for one curvature vector ``(M,)``."""
        tw = self.T * curvature.to(torch.float64).sqrt()
        return tw @ tw.T

    def init_from_twt(self, twt: Tensor, penalty: float, n_points: Tensor) -> None:
        r""":math:`A_b = \operatorname{chol}(\mathrm{twt}_b / N_b + \lambda I)`; ``twt`` is
        ``(M, M)`` (shared) or ``(B, M, M)``."""
        n = n_points.to(torch.float64).view(-1, 1, 1)
        mat = twt.unsqueeze(0) / n if twt.ndim == 2 else twt / n
        mat.diagonal(dim1=1, dim2=2).add_(penalty)
        a, info = torch.linalg.cholesky_ex(mat, upper=True)
        if bool((info != 0).any()):
            raise np.linalg.LinAlgError("preconditioner factor A is not positive definite")
        self.A = a

    # Triangular solves on (B, M) batches of vectors.
    def inv_t(self, v: Tensor) -> Tensor:
        """:math:`T^{-1}v`."""
        return torch.linalg.solve_triangular(self.T, v.T, upper=True).T

    def inv_tt(self, v: Tensor) -> Tensor:
        """:math:`T^{-\\top}v`."""
        return torch.linalg.solve_triangular(self.T.T, v.T, upper=False).T

    def inv_a(self, v: Tensor) -> Tensor:
        """:math:`A^{-1}v`."""
        assert self.A is not None
        return torch.linalg.solve_triangular(self.A, v.unsqueeze(-1), upper=True)[..., 0]

    def inv_at(self, v: Tensor) -> Tensor:
        """:math:`A^{-\\top}v`."""
        assert self.A is not None
        return torch.linalg.solve_triangular(self.A.transpose(1, 2), v.unsqueeze(-1), upper=False)[
            ..., 0
        ]


def falkon_cg(
    mmv: Any,
    b: Tensor,
    *,
    tol: float,
    max_iter: int,
    full_gradient_every: int = 10,
    eps: float = 1e-15,
    compact: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""Conjugate gradient for ``B`` independent SPD systems, Falkon's variant.

    Solves :math:`\mathcal{A}_b x_b = b_b` from :math:`x = 0`. Each system stops on its
    own when :math:`\lVert r_b\rVert_2 <` ``tol`` (its columns are then frozen), so the
    result for every system equals a single-system run. Step sizes carry Falkon's
    ``eps`` in the denominators; the residual is recomputed as :math:`b - \mathcal{A}x`
    every ``full_gradient_every`` iterations.

    Parameters
    ----------
    mmv : callable
        ``mmv(P) -> A P`` on ``(B, M)`` batches; with ``compact=True``,
        ``mmv(P_act, idx) -> A_idx P_act`` on the rows ``idx`` (int64 indices of the
        still-active systems) only, so finished systems cost nothing.
    b : Tensor, shape (B, M)
    tol : float
        Absolute tolerance on the residual norm.
    max_iter : int
    full_gradient_every : int
    eps : float
    compact : bool
        Call ``mmv`` on the active systems only (same arithmetic per system).

    Returns
    -------
    x : Tensor, shape (B, M)
    n_iter : Tensor of int64, shape (B,)
        Iterations each system took.
    """
    if compact:
        return _falkon_cg_compact(mmv, b, tol, max_iter, full_gradient_every, eps)
    x = torch.zeros_like(b)
    r = b.clone()
    p = r
    rs_old = (r * r).sum(1)
    n_iter = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
    active = torch.ones(b.shape[0], dtype=torch.bool, device=b.device)
    for i in range(max_iter):
        ap = mmv(p)
        step = torch.where(active, rs_old / ((p * ap).sum(1) + eps), torch.zeros_like(rs_old))
        x = x + p * step[:, None]
        if (i + 1) % full_gradient_every == 0:
            r = torch.where(active[:, None], b - mmv(x), r)
        else:
            r = r - ap * step[:, None]
        rs_new = (r * r).sum(1)
        n_iter += active.to(torch.int64)
        active = active & ~(rs_new.sqrt() < tol)
        if not bool(active.any()):
            break
        p = torch.where(active[:, None], r + p * (rs_new / (rs_old + eps))[:, None], p)
        rs_old = torch.where(active, rs_new, rs_old)
    return x, n_iter


def _falkon_cg_compact(
    mmv: Any, b: Tensor, tol: float, max_iter: int, full_gradient_every: int, eps: float
) -> tuple[Tensor, Tensor]:
    """:func:`falkon_cg` calling ``mmv(P_act, idx)`` on the active systems only."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs_old = (r * r).sum(1)
    n_iter = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
    idx = torch.arange(b.shape[0], device=b.device)
    for i in range(max_iter):
        pa = p[idx]
        ap = mmv(pa, idx)
        step = rs_old[idx] / ((pa * ap).sum(1) + eps)
        xa = x[idx] + pa * step[:, None]
        x[idx] = xa
        if (i + 1) % full_gradient_every == 0:
            ra = b[idx] - mmv(xa, idx)
        else:
            ra = r[idx] - ap * step[:, None]
        r[idx] = ra
        rs_new = (ra * ra).sum(1)
        n_iter[idx] += 1
        keep = ~(rs_new.sqrt() < tol)
        if not bool(keep.any()):
            break
        idx, ra, pa, rs_new = idx[keep], ra[keep], pa[keep], rs_new[keep]
        p[idx] = ra + pa * (rs_new / (rs_old[idx] + eps))[:, None]
        rs_old[idx] = rs_new
    return x, n_iter


def newton_step(
    precond: FalkonPreconditioner,
    s_mat: Tensor,
    r_vec: Tensor,
    beta: Tensor,
    penalty: float,
    *,
    solver: SolverName = "cg",
    cg_tol: float = DEFAULT_CG_TOL,
    max_iter: int = 1000,
    full_gradient_every: int = 10,
) -> tuple[Tensor, Tensor]:
    r"""One Falkon Newton step in the preconditioned variable, batched.

    Solves :math:`(S_b + \lambda I)\Delta_b = r_b + \lambda\beta_b` and returns
    :math:`\beta_b - \Delta_b`, where :math:`S_b = T^{-\top}H_bT^{-1}` and
    :math:`r_b = T^{-\top}g_b` are the whitened Hessian and gradient (accumulate them
    with :func:`contrastx.ops.nystrom.weighted_gram_rhs` and ``whiten=T``).

    Parameters
    ----------
    precond : FalkonPreconditioner
        With :meth:`FalkonPreconditioner.init` called for this step (needed for ``"cg"``).
    s_mat : Tensor, shape (B, M, M)
        :math:`S_b` (float64, symmetric positive semi-definite).
    r_vec : Tensor, shape (B, M)
        :math:`r_b` (float64).
    beta : Tensor, shape (B, M)
        Current :math:`\beta = T\alpha`.
    penalty : float
        :math:`\lambda`.
    solver : {"cg", "exact"}
        Falkon's preconditioned CG (default): :math:`\mathcal{A} = A^{-\top}(S + \lambda
        I)A^{-1}`, right-hand side :math:`A^{-\top}(r + \lambda\beta)`,
        :math:`\Delta = A^{-1}x`; or a Cholesky solve of the same system.
    cg_tol, max_iter, full_gradient_every
        CG settings (see :func:`falkon_cg`).

    Returns
    -------
    beta : Tensor, shape (B, M)
    n_iter : Tensor of int64, shape (B,)
        CG iterations (0 for ``"exact"``).
    """
    rhs0 = r_vec + penalty * beta
    if solver == "exact":
        mat = s_mat.clone()
        mat.diagonal(dim1=1, dim2=2).add_(penalty)
        chol, info = torch.linalg.cholesky_ex(mat)
        if bool((info != 0).any()):
            raise np.linalg.LinAlgError("Newton system is not positive definite")
        delta = torch.cholesky_solve(rhs0.unsqueeze(-1), chol)[..., 0]
        return beta - delta, torch.zeros(beta.shape[0], dtype=torch.int64, device=beta.device)
    if solver != "cg":
        raise ValueError(f"solver must be 'cg' or 'exact'; got {solver!r}")

    def mmv(v: Tensor) -> Tensor:
        va = precond.inv_a(v)
        sv = torch.bmm(s_mat, va.unsqueeze(-1))[..., 0]
        return precond.inv_at(sv + penalty * va)

    b = precond.inv_at(rhs0)
    x, n_iter = falkon_cg(
        mmv, b, tol=cg_tol, max_iter=max_iter, full_gradient_every=full_gradient_every
    )
    return beta - precond.inv_a(x), n_iter


ROW_BLOCK = 32
"""Rows per call of :func:`row_blocked`."""


def row_blocked(fn: Callable[[Tensor], Tensor], x: Tensor, rows: int = ROW_BLOCK) -> Tensor:
    r"""``fn(x)`` for a row-wise ``fn`` (row ``i`` of the result depends on row ``i`` of
    ``x`` only), evaluated in calls of exactly ``rows`` rows, the last zero-padded.

    BLAS and LAPACK pick their kernels and blocking from the shapes, so row ``i`` of
    ``x @ Q`` or of a triangular solve can round differently with the number of other
    rows in the call. With one fixed shape per call, each row of the result is a function
    of its own row of ``x`` (for a given library build): a toy's :math:`t` does not
    depend on the other toys of its block. The calls run on one thread (the process-wide
    torch setting is restored afterwards): for blocks this small a thread team costs
    more in synchronisation than it saves, above all on a busy machine. CPU tensors only;
    on other devices this is ``fn(x)``.
    """
    n = x.shape[0]
    if x.device.type != "cpu" or n == 0:
        return fn(x)
    x = x.contiguous()
    out = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for lo in range(0, n, rows):
            part = x[lo : lo + rows]
            k = part.shape[0]
            if k < rows:
                part = torch.cat([part, part.new_zeros((rows - k, *part.shape[1:]))])
            out.append(fn(part)[:k])
    finally:
        torch.set_num_threads(threads)
    return torch.cat(out)


def pooled_newton_step(
    s_ref: Tensor,
    g_ref: Tensor,
    weight: float,
    parts: Sequence[tuple[Tensor, RowSelection]],
    n_points: Tensor,
    twt: Tensor,
    penalty: float,
    *,
    cg_tol: float = DEFAULT_CG_TOL,
    max_iter: int = 1000,
    full_gradient_every: int = 10,
    chunk_rows: int = 2048,
    twt_eigh: tuple[Tensor, Tensor] | None = None,
    backend: str = "auto",
    precond_points: Tensor | None = None,
    arithmetic: str = "float64",
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Falkon's first Newton step for a batch of data sets drawn from stored pools.

    The reference (label 0, weight :math:`w`) is shared and enters through its whitened
    Gram :math:`S_R = Z_R^\top Z_R` and :math:`g_R = Z_R^\top 1`; data set :math:`b`
    (label 1) is the rows :math:`S_{p,b}` of the whitened pools selected by selection
    :math:`b` of their :class:`~contrastx.ops.selections.RowSelection`,
    :math:`Z_{D_b}^\top Z_{D_b} = \sum_p Z_{p,S_{p,b}}^\top Z_{p,S_{p,b}}`, never formed: the
    CG operator applies it with :func:`~contrastx.ops.selections.selected_gram_matvec` (on a
    CPU the native kernel over the selected rows only; elsewhere two dense GEMMs per pool).
    From :math:`\beta = 0`:

    .. math::

        \Big(\tfrac{1}{N_b}\big(\tfrac w4 S_R + \tfrac14 Z_{D_b}^\top Z_{D_b}\big)
        + \lambda I\Big)\Delta_b = \tfrac{1}{N_b}\big(\tfrac w2 g_R
        - \tfrac12 Z_{D_b}^\top 1\big), \qquad \beta_b = -\Delta_b,

    solved by Falkon's CG (:func:`falkon_cg`, finished systems dropped from the GEMMs)
    preconditioned by :math:`P_b = \mathrm{twt}/\tilde N_b + \lambda I`: Falkon's
    preconditioner with :math:`\mathrm{twt} = T\operatorname{diag}(W)T^\top` and
    :math:`\tilde N_b = N_b`, or the ``'average'`` one (the system of data distributed as
    the reference) with :math:`\mathrm{twt} = \frac w4 S_R` and
    :math:`\tilde N_b = N_b / c_b`, :math:`c_b = 1 + N_{D_b}/(w N_R)`
    (:func:`average_curvature_factor`). Instead of the Cholesky
    factor :math:`A_b` of :math:`P_b` it uses the square root
    :math:`R_b = \operatorname{diag}(\sqrt{e/\tilde N_b + \lambda})\,Q^\top` from one
    eigendecomposition :math:`\mathrm{twt} = Q\operatorname{diag}(e)Q^\top`:
    :math:`R_b = O_b A_b` with :math:`O_b` orthogonal, and CG's iterates (rotated by
    :math:`O_b`), residual norms and stopping step are invariant under it, so with
    Falkon's preconditioner :math:`\Delta_b` is Falkon's truncated step.

    Parameters
    ----------
    s_ref : Tensor, shape (M, M)
        :math:`Z_R^\top Z_R` (float64).
    g_ref : Tensor, shape (M,)
        :math:`Z_R^\top 1` (float64).
    weight : float
        Reference weight :math:`w`.
    parts : sequence of (Tensor (P_p, M), RowSelection)
        Whitened pool rows (float32 or float64) and the ``B`` row selections of each pool.
    n_points : Tensor, shape (B,)
        :math:`N_b = N_R + N_{D_b}`.
    twt : Tensor, shape (M, M)
        The preconditioner's matrix, shared by the batch: Falkon's
        :math:`T\operatorname{diag}(W)T^\top` (:meth:`FalkonPreconditioner.twt`) or the
        ``'average'`` one's :math:`\frac w4 S_R`.
    penalty : float
        :math:`\lambda`.
    cg_tol, max_iter, full_gradient_every
        See :func:`falkon_cg`.
    chunk_rows : int
        Rows per GEMM chunk of the dense (torch) path.
    twt_eigh : (Tensor, Tensor), optional
        ``torch.linalg.eigh(twt)`` if already computed (shared by many batches).
    backend : {"auto", "native", "torch"}
        Of the data-term products (:func:`~contrastx.ops.selections.selected_gram_matvec`).
    precond_points : Tensor, shape (B,), optional
        :math:`\tilde N_b` (default :math:`N_b`, Falkon's).
    arithmetic : {"float64", "float32"}
        Of the native data-term products of float32 or 16-bit pools
        (:func:`~contrastx.ops.selections.selected_gram_matvec`); everything else runs in
        float64.

    Returns
    -------
    beta : Tensor, shape (B, M)
        :math:`\beta_b = T\alpha_b` (float64).
    n_iter : Tensor of int64, shape (B,)
    sum_f_data : Tensor, shape (B,)
        :math:`\sum_{x\in D_b} f_b(x) = c_b\cdot Z\beta_b = (Z^\top c_b)\cdot\beta_b`
        (float64).
    """
    if not parts:
        raise ValueError("parts is empty: no data pool")
    n_tot = n_points.to(torch.float64)
    w, lam = float(weight), float(penalty)
    for _, sel in parts:
        if len(sel) != n_tot.shape[0]:
            raise ValueError(f"a pool has {len(sel)} selections for {n_tot.shape[0]} data sets")
    g_dat = sum(
        selected_row_sums(z, sel, chunk_rows=chunk_rows, backend=backend, arithmetic=arithmetic)
        for z, sel in parts
    )
    g_dat = g_dat.T.to(n_tot.device)  # (B, M)
    r_vec = (0.5 * w * g_ref - 0.5 * g_dat) / n_tot[:, None]
    eig, q = torch.linalg.eigh(twt.to(torch.float64)) if twt_eigh is None else twt_eigh
    if precond_points is not None and precond_points.shape != n_tot.shape:
        raise ValueError(
            f"precond_points has shape {tuple(precond_points.shape)}; expected "
            f"{tuple(n_tot.shape)} (one per data set)"
        )
    n_pc = n_tot if precond_points is None else precond_points.to(n_tot)
    root = torch.sqrt(eig.clamp(min=0.0) / n_pc[:, None] + lam)  # (B, M)
    q_t = q.T
    # Dense products in fixed-shape row blocks: a toy's result does not depend on the others.

    def mmv(v: Tensor, idx: Tensor) -> Tensor:
        # R_b^{-T} (S_b + lam I) R_b^{-1} v_b, rows b in idx.
        rt = root[idx]
        u = row_blocked(lambda p: p @ q_t, v / rt)
        data = sum(
            selected_gram_matvec(
                z,
                sel,
                u.T,
                columns=idx,
                chunk_rows=chunk_rows,
                backend=backend,
                arithmetic=arithmetic,
            )
            for z, sel in parts
        )
        su = (0.25 * w) * row_blocked(lambda p: p @ s_ref, u) + 0.25 * data.T
        return row_blocked(lambda p: p @ q, su / n_tot[idx, None] + lam * u) / rt

    x, n_iter = falkon_cg(
        mmv,
        row_blocked(lambda p: p @ q, r_vec) / root,
        tol=cg_tol,
        max_iter=max_iter,
        full_gradient_every=full_gradient_every,
        compact=True,
    )
    beta = -row_blocked(lambda p: p @ q_t, x / root)
    # sum_{x in D_b} f_b(x) = c_b . (Z beta_b) = (Z^T c_b) . beta_b: no extra pass.
    return beta, n_iter, (g_dat * beta).sum(1)


@dataclass
class _Curvature:
    """Loss derivatives of the weighted cross entropy for one label."""

    label: int
    weight: float

    def d1(self, f: Tensor) -> Tensor:
        # y=1: d/df log(1+e^-f) = -sigmoid(-f); y=0: d/df w log(1+e^f) = w sigmoid(f)
        if self.label == 1:
            return -torch.sigmoid(-f)
        return self.weight * torch.sigmoid(f)

    def t_term(self, f: Tensor) -> Tensor:
        # Contribution of these points to t / 2: sum f (data) or w sum (1 - e^f) (ref).
        if self.label == 1:
            return f.sum()
        return self.weight * (1.0 - torch.exp(f)).sum()

    def d2(self, f: Tensor) -> Tensor:
        s = torch.sigmoid(f)
        w = 1.0 if self.label == 1 else self.weight
        return w * s * (1.0 - s)


def _newton_terms(
    parts: Sequence[tuple[Tensor, _Curvature]],
    centers: Tensor,
    sigma: float,
    whiten: Tensor,
    beta: Tensor | None,
    tile_bytes: int,
) -> tuple[list[Tensor], Tensor, float]:
    r"""One pass over the training points with whitened tiles :math:`Z = K T^{-1}`.

    Returns :math:`Z_p^\top\operatorname{diag}(\ell'')Z_p` of every part :math:`p`,
    :math:`Z^\top\ell'` and the test statistic :math:`t`, all at :math:`f = Z\beta`
    (:math:`f = 0` when ``beta`` is None), float64. The tiles are evaluated in the
    dtype of ``centers`` and summed in float64.
    """
    m = centers.shape[0]
    f64 = dict(dtype=torch.float64, device=centers.device)
    grams = []
    grad = torch.zeros(m, **f64)
    t_half = torch.zeros((), **f64)
    step = rows_per_tile(m, centers.element_size(), tile_bytes)
    b = None if beta is None else beta.to(centers.dtype)
    exact_sum = centers.dtype == torch.float64  # else sum the tiles' products in float64
    for x, curv in parts:
        gram = torch.zeros(m, m, dtype=centers.dtype, device=centers.device)
        gram64 = gram if exact_sum else torch.zeros(m, m, **f64)
        for lo in range(0, x.shape[0], step):
            hi = min(x.shape[0], lo + step)
            z = whitened_tile(gaussian_kernel_tile(x[lo:hi], centers, sigma), whiten)
            if b is None:
                f = torch.zeros(hi - lo, dtype=z.dtype, device=z.device)
            else:
                f = z @ b
            if exact_sum:
                gram.addmm_(z.T, z * curv.d2(f)[:, None])
                grad.addmv_(z.T, curv.d1(f))
            else:
                gram64 += (z.T @ (z * curv.d2(f)[:, None])).to(torch.float64)
                grad += (z.T @ curv.d1(f)).to(torch.float64)
            t_half += curv.t_term(f.to(torch.float64))
        grams.append(0.5 * (gram64 + gram64.T))
    return grams, grad, 2.0 * float(t_half)


def average_curvature_factor(n_data: Any, n_ref: int, weight: float) -> Any:
    r"""Factor :math:`c = 1 + N_D/(w N_R)` of the ``'average'`` preconditioner.

    :math:`N_D` data points distributed as the reference have an expected curvature
    Gram :math:`\frac{N_D}{w N_R}` times the reference's (whose points carry the weight
    :math:`w`), so the whole system's expected Gram is :math:`c` times the reference
    term. ``n_data`` may be a number or a tensor (one entry per data set).
    """
    return 1.0 + n_data / (float(weight) * float(n_ref))


class NPLMFit:
    r"""NPLM kernel logistic fit (Falkon's ``LogisticFalkon``, as the paper configures it).

    Fits :math:`f(x) = \sum_j \alpha_j \exp(-|x - c_j|^2/(2\sigma^2))` to data (label 1)
    against a weighted reference (label 0, weight ``weight``) by Newton steps from
    :math:`\alpha = 0`, one per entry of ``penalty_list`` (default: the single step
    with ``lam`` that the paper's Falkon configuration takes). See the module
    docstring for the equations.

    Parameters
    ----------
    sigma : float, optional
        Gaussian kernel width (> 0); see :func:`contrastx.nplm.sigma_heuristic`.
    M : int, optional
        Number of Nystrom centres, drawn uniformly without replacement from
        ``concat(data, ref)`` unless ``centers`` is given.
    lam : float, optional
        Ridge penalty :math:`\lambda`.
    options : SolverOptions, optional
        Every setting of the fit (:class:`contrastx.nplm.SolverOptions`: ``M``, ``lam``,
        ``sigma``, ``solver``, ``preconditioner``, ``cg_tol``, ``cg_max_iter``,
        ``pc_epsilon``, ``dtype``, ``tile_bytes``, with their defaults and meaning).
        ``sigma``, ``M``, ``lam`` and the keyword arguments of the same names, when given,
        replace its values.
    centers : array_like, optional
        Either explicit centres, shape (M, d), or integer indices into
        ``concat(data, ref)`` (data rows first).
    center_labels : array_like of {0, 1}, optional
        Labels of explicit centres (1 data, 0 reference); only Falkon's preconditioner
        uses them. Default: derived from indices, else all 0.
    penalty_list : sequence of float, optional
        One penalty per Newton step (Falkon's ``penalty_list``); overrides ``lam``.
    iter_list : sequence of int, optional
        Maximum CG iterations per Newton step (default ``cg_max_iter`` each).
    device : str or torch.device, optional
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:1"``, ...
    random_state : int or numpy Generator, optional
        Seed of the centre draw.
    solver, preconditioner, cg_tol, cg_max_iter, pc_epsilon, dtype, tile_bytes : optional
        Replace the value of ``options`` (see :class:`~contrastx.nplm.SolverOptions`);
        ``dtype`` may be given as a :class:`torch.dtype`.

    Attributes
    ----------
    alpha_ : Tensor, shape (M,)
        Coefficients :math:`\alpha` (float64).
    centers_ : Tensor, shape (M, d)
    center_labels_ : Tensor, shape (M,)
    center_indices_ : numpy.ndarray or None
        Indices into ``concat(data, ref)`` when the centres were drawn or given as indices.
    n_iter_ : list of int
        CG iterations of each Newton step (0 for ``solver="exact"``).
    weight_ : float
    f_data_, f_ref_ : Tensor
        :math:`f` on the training points (float64).
    t_ : float
        :func:`nplm_t` on the training points.
    t_path_ : list of float
        :math:`t` after each Newton step (the last entry is ``t_``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref, data = rng.normal(size=(2000, 2)), rng.normal(size=(200, 2))
    >>> fit = NPLMFit(sigma=1.0, M=100, random_state=0).fit(data, ref, weight=0.1)
    >>> fit.alpha_.shape
    torch.Size([100])
    """

    def __init__(
        self,
        sigma: float | None = None,
        M: int | None = None,
        lam: float | None = None,
        *,
        options: SolverOptions | None = None,
        centers: Any = None,
        center_labels: Any = None,
        penalty_list: Sequence[float] | None = None,
        iter_list: Sequence[int] | None = None,
        device: str | torch.device | None = None,
        random_state: int | np.random.Generator | None = None,
        solver: SolverName | None = None,
        preconditioner: Literal["average", "falkon"] | None = None,
        cg_tol: float | None = None,
        cg_max_iter: int | None = None,
        pc_epsilon: float | None = None,
        dtype: str | torch.dtype | None = None,
        tile_bytes: int | None = None,
    ) -> None:
        if options is None:
            options = SolverOptions()
        elif not isinstance(options, SolverOptions):
            raise TypeError(f"options must be a SolverOptions; got {type(options).__name__}")
        if isinstance(dtype, torch.dtype):
            dtype = {torch.float64: "float64", torch.float32: "float32"}.get(dtype, str(dtype))
        given = {
            "sigma": sigma,
            "M": M,
            "lam": lam,
            "solver": solver,
            "preconditioner": preconditioner,
            "cg_tol": cg_tol,
            "cg_max_iter": cg_max_iter,
            "pc_epsilon": pc_epsilon,
            "dtype": dtype,
            "tile_bytes": tile_bytes,
        }
        given = {k: v for k, v in given.items() if v is not None}
        self.options = dataclasses.replace(options, **given) if given else options
        self.centers = centers
        self.center_labels = center_labels
        self.penalty_list = penalty_list
        self.iter_list = iter_list
        self.device = device
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _schedule(self) -> tuple[list[float], list[int]]:
        pens = (
            [self.options.lam]
            if self.penalty_list is None
            else [float(p) for p in self.penalty_list]
        )
        if not pens or any(not (math.isfinite(p) and p > 0) for p in pens):
            raise ValueError(f"penalties must be finite and > 0; got {pens}")
        if self.iter_list is None:
            iters = [self.options.cg_max_iter] * len(pens)
        else:
            iters = [int(i) for i in self.iter_list]
        if len(iters) != len(pens):
            raise ValueError(
                f"iter_list has {len(iters)} entries but there are {len(pens)} penalties"
            )
        if any(i < 1 for i in iters):
            raise ValueError(f"CG iteration limits must be >= 1; got {iters}")
        return pens, iters

    def _resolve_centers(
        self, data: Tensor, ref: Tensor, dev: torch.device
    ) -> tuple[Tensor, Tensor, np.ndarray | None]:
        n_d, n_r = data.shape[0], ref.shape[0]
        n = n_d + n_r
        if self.centers is None:
            idx = select_centers(n, self.options.M, self.random_state)
        else:
            c = self.centers
            arr = c.detach().cpu().numpy() if isinstance(c, Tensor) else np.asarray(c)
            if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
                idx = arr.astype(np.int64)
                if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
                    raise ValueError(f"center indices must lie in [0, {n}); got {idx.size} indices")
                if np.unique(idx).size != idx.size:
                    raise ValueError("center indices must be distinct")
            else:
                centers = as_points(arr, "centers", dtype=data.dtype, device=dev, d=data.shape[1])
                if self.center_labels is None:
                    labels = torch.zeros(centers.shape[0], dtype=torch.int64, device=dev)
                else:
                    labels = torch.as_tensor(np.asarray(self.center_labels)).to(dev).reshape(-1)
                    if labels.shape[0] != centers.shape[0]:
                        raise ValueError(
                            f"center_labels has {labels.shape[0]} entries for "
                            f"{centers.shape[0]} centres"
                        )
                    if not bool(((labels == 0) | (labels == 1)).all()):
                        raise ValueError("center_labels must be 0 (reference) or 1 (data)")
                return centers, labels.to(torch.int64), None
        idx_t = torch.as_tensor(idx, device=dev)
        is_data = idx_t < n_d
        centers = torch.empty(idx.size, data.shape[1], dtype=data.dtype, device=dev)
        centers[is_data] = data[idx_t[is_data]]
        centers[~is_data] = ref[idx_t[~is_data] - n_d]
        return centers, is_data.to(torch.int64), idx

    # --------------------------------------------------------------------- fit
    def fit(self, data: Any, ref: Any, weight: float) -> NPLMFit:
        """Fit on data (label 1) against the reference (label 0, weight ``weight``).

        Parameters
        ----------
        data : array_like or Tensor, shape (N_D, d)
        ref : array_like or Tensor, shape (N_R, d)
        weight : float
            :math:`w = N(B)/N_R`, with the *expected* :math:`N(B)`.

        Returns
        -------
        self
        """
        opt = self.options  # validated when built
        dtype = opt.torch_dtype
        w = float(weight)
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"weight must be finite and > 0; got {weight!r}")
        pens, iters = self._schedule()
        dev = resolve_device(self.device)
        ref_t = as_points(ref, "ref", dtype=dtype, device=dev)
        data_t = as_points(data, "data", dtype=dtype, device=dev, d=ref_t.shape[1])
        sigma = (
            sigma_heuristic(ref_t.cpu().numpy()) if opt.sigma is None else check_sigma(opt.sigma)
        )
        centers, labels, idx = self._resolve_centers(data_t, ref_t, dev)
        m = centers.shape[0]
        n_total = data_t.shape[0] + ref_t.shape[0]
        eps = pc_epsilon_default(dtype) if opt.pc_epsilon is None else opt.pc_epsilon

        c64 = centers.to(torch.float64)
        kmm = gaussian_kernel_tile(c64, c64, sigma)
        kmm = 0.5 * (kmm + kmm.T)
        if dtype != torch.float64:
            check_float32(kmm, eps, sigma)
        precond = FalkonPreconditioner(kmm, eps)
        curv_data, curv_ref = _Curvature(1, w), _Curvature(0, w)
        parts = [(data_t, curv_data), (ref_t, curv_ref)]
        n_vec = torch.tensor([float(n_total)], dtype=torch.float64, device=dev)
        label_data = (labels == 1).to(torch.float64)
        c_avg = average_curvature_factor(data_t.shape[0], ref_t.shape[0], w)

        whiten = precond.T.to(dtype)
        beta = torch.zeros(1, m, dtype=torch.float64, device=dev)
        n_iter: list[int] = []
        t_path: list[float] = []
        for k, (pen, max_it) in enumerate(zip(pens, iters)):
            (s_dat, s_ref), r_vec, t_prev = _newton_terms(
                parts, centers, sigma, whiten, None if k == 0 else beta[0], opt.tile_bytes
            )
            if k > 0:
                t_path.append(t_prev)
            s_mat, r_vec = (s_dat + s_ref) / n_total, r_vec / n_total
            if opt.solver == "cg" and opt.preconditioner == "average":
                # The system of N_D data points distributed as the reference.
                precond.init_from_twt(c_avg * s_ref, pen, n_vec)
            elif opt.solver == "cg":
                f_c = beta @ precond.T  # T^T beta = f at the centres (up to the jitter)
                curv_c = label_data * curv_data.d2(f_c) + (1 - label_data) * curv_ref.d2(f_c)
                precond.init(curv_c, pen, n_vec)
            beta, it = newton_step(
                precond,
                s_mat.unsqueeze(0),
                r_vec.unsqueeze(0),
                beta,
                pen,
                solver=opt.solver,
                cg_tol=opt.resolved_cg_tol,
                max_iter=max_it,
            )
            n_iter.append(int(it[0]))

        self.alpha_ = precond.inv_t(beta)[0]
        self.centers_ = centers
        self.center_labels_ = labels
        self.center_indices_ = idx
        self.n_iter_ = n_iter
        self.weight_ = w
        self.sigma_ = sigma
        self.f_data_ = self._f(data_t)
        self.f_ref_ = self._f(ref_t)
        self.t_ = nplm_t(self.f_data_, self.f_ref_, w)
        self.t_path_ = [*t_path, self.t_]
        return self

    def _f(self, x: Tensor) -> Tensor:
        a = self.alpha_.to(self.centers_.dtype)
        f = kernel_matvec(x, self.centers_, a, self.sigma_)
        return f.to(torch.float64)

    def predict(self, x: Any) -> Tensor:
        r"""The fitted :math:`f(x) = \sum_j \alpha_j k(x, c_j)`, float64, shape (N,)."""
        if not hasattr(self, "alpha_"):
            raise RuntimeError("NPLMFit is not fitted; call fit(data, ref, weight) first")
        xt = as_points(
            x,
            "x",
            dtype=self.centers_.dtype,
            device=self.centers_.device,
            d=self.centers_.shape[1],
            allow_empty=True,
        )
        if xt.shape[0] == 0:
            return torch.zeros(0, dtype=torch.float64, device=xt.device)
        return self._f(xt)

    def score(self, data: Any, ref: Any) -> float:
        """:func:`nplm_t` of this fit on (data, ref) with the fitted weight."""
        return nplm_t(self.predict(data), self.predict(ref), self.weight_)
