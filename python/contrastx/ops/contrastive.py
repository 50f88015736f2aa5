r"""Fused contrastive losses: streaming SupCon / NT-Xent and one-pass VICReg.

**SupCon / NT-Xent.**  For rows :math:`x_1..x_M` (all views stacked) with labels :math:`y`,
:math:`z_i = x_i / \max(\lVert x_i \rVert, \epsilon)` (or :math:`z_i = x_i` without
normalisation), :math:`s_{ik} = z_i \cdot z_k / \tau`, the positives
:math:`P(i) = \{p \ne i : y_p = y_i\}` and the anchors :math:`A = \{i : |P(i)| > 0\}`,

.. math::

    L_i = \log \sum_{k \ne i} e^{s_{ik}}, \qquad
    \mathcal{L} = \frac{1}{|A|} \sum_{i \in A}
        \Big( L_i - \frac{1}{|P(i)|} \sum_{p \in P(i)} s_{ip} \Big),

and :math:`\mathcal{L} = 0` if :math:`A` is empty (the convention of
:func:`contrastx.embed.losses.supcon.supcon_loss`: anchors without positives are left out of
the mean but remain negatives).  NT-Xent of two views is the case :math:`y = (0..N-1, 0..N-1)`.
With :math:`w_i = [i \in A]/|A|`, :math:`c_i = w_i/|P(i)|` and
:math:`p_{ik} = e^{s_{ik} - L_i}`, the gradient is

.. math::

    \frac{\partial \mathcal{L}}{\partial z_i} = \frac{1}{\tau} \sum_{k \ne i} h_{ik} z_k,
    \qquad h_{ik} = w_i p_{ik} + w_k p_{ki} - (c_i + c_k)[y_k = y_i],

(:math:`h` is symmetric: the row and the column contributions of
:math:`\partial\mathcal{L}/\partial s`), followed by
:math:`\partial\mathcal{L}/\partial x_i = (g_i - z_i (z_i \cdot g_i)) / \lVert x_i \rVert`
(:math:`g_i / \epsilon` when :math:`\lVert x_i \rVert < \epsilon`).

The native kernels never form the :math:`M \times M` matrix: the forward streams tiles of
:math:`S` with an online log-sum-exp and keeps :math:`L` (M values) for the backward, which
recomputes the tiles; memory is :math:`O(M D)`.

**VICReg** (primary paper's Eq. 3, as :func:`contrastx.embed.losses.vicreg.vicreg_loss`):

.. math::

    \mathcal{L} = \lambda \frac{\lVert Z - Z' \rVert_F^2}{N D}
      + \mu \sum_{V \in \{Z, Z'\}} \frac{1}{D} \sum_d \max(0, \gamma - \sqrt{C(V)_{dd} + \epsilon})
      + \nu \sum_{V} \frac{1}{D} \sum_{d \ne d'} C(V)_{dd'}^2,

:math:`C(V) = (V - \bar V)^\top (V - \bar V) / (N - 1)`, with
:math:`\partial \mathcal{L} / \partial V = \frac{2}{N-1} (V - \bar V) G` for
:math:`G = \partial \mathcal{L} / \partial C` plus the invariance term.  The native CPU kernel
evaluates everything in float64; the D x D covariances stay inside it, and the forward pass
keeps the views' means and :math:`G` (:math:`2D + 2D^2` numbers) for the backward pass.

Backends: ``"native"`` (C++ on CPU tensors, CUDA for CUDA tensors; raises ``RuntimeError``
when unavailable), ``"torch"`` (dense reference, differentiable
to any order), ``"auto"`` (native when available for the device and dtype, else torch).  The
native results are differentiable once (``torch.autograd.Function`` with
``once_differentiable``): a double backward needs ``backend="torch"``.
"""

from __future__ import annotations

import torch

from .. import _native
from ._backend import NATIVE_DTYPES as _DTYPE_NAMES
from ._backend import resolve_backend
from ._validation import check_finite as require_finite
from ._validation import check_labels, check_like, check_positive, check_rows
from .similarity import cosine_similarity_matrix, covariance, off_diagonal

__all__ = [
    "nt_xent_loss_fused",
    "resolve_contrastive_backend",
    "supcon_loss_fused",
    "supcon_loss_reference",
    "vicreg_loss_fused",
    "vicreg_loss_reference",
]


# --- validation -------------------------------------------------------------------------------


def resolve_contrastive_backend(backend: str, z: torch.Tensor) -> str:
    """Return ``"native"`` or ``"torch"`` for a contrastive loss of tensors like ``z``.

    :func:`contrastx.ops._backend.resolve_backend` for these losses (every one has CPU and
    CUDA kernels for float32 and float64); raises as that function does.
    """
    return resolve_backend(backend, z.device, op="the fused contrastive losses", dtype=z.dtype)


# --- SupCon / NT-Xent -------------------------------------------------------------------------


def _anchor_weights(ids: torch.Tensor, m: int, dtype: torch.dtype):
    """w_i = [|P(i)| > 0] / |A|, c_i = w_i / |P(i)| from class ids; None if A is empty."""
    counts = torch.bincount(ids, minlength=1)
    n_pos = counts[ids] - 1
    has = n_pos > 0
    n_anchors = int(has.sum())
    if n_anchors == 0:
        return None
    w = has.to(torch.float64) / n_anchors
    c = w / n_pos.clamp_min(1).to(torch.float64)
    return w.to(dtype), c.to(dtype)


def _cuda_stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def _supcon_native_forward(z, ids, w, c, tau, normalize, eps):
    m, d = z.shape
    lse = torch.empty(m, dtype=z.dtype, device=z.device)
    row_loss = torch.empty(m, dtype=z.dtype, device=z.device)
    dtype = _DTYPE_NAMES[z.dtype]
    if z.device.type == "cpu":
        _native.require_cpu().supcon_forward_cpu(
            z.data_ptr(), ids.data_ptr(), w.data_ptr(), c.data_ptr(), lse.data_ptr(),
            row_loss.data_ptr(), m, d, tau, normalize, eps, dtype, torch.get_num_threads(),
        )  # fmt: skip
    else:
        mod = _native.require_cuda()
        inv = torch.empty(m, dtype=z.dtype, device=z.device)
        with torch.cuda.device(z.device):
            mod.supcon_forward_cuda(
                z.data_ptr(), ids.data_ptr(), w.data_ptr(), c.data_ptr(), lse.data_ptr(),
                row_loss.data_ptr(), inv.data_ptr(), m, d, tau, normalize, eps, dtype,
                _cuda_stream(z),
            )  # fmt: skip
    return lse, row_loss


def _supcon_native_backward(z, ids, w, c, lse, tau, normalize, eps, grad):
    m, d = z.shape
    gx = torch.empty_like(z)
    dtype = _DTYPE_NAMES[z.dtype]
    if z.device.type == "cpu":
        _native.require_cpu().supcon_backward_cpu(
            z.data_ptr(), ids.data_ptr(), w.data_ptr(), c.data_ptr(), lse.data_ptr(),
            gx.data_ptr(), m, d, tau, normalize, eps, float(grad), dtype,
            torch.get_num_threads(),
        )  # fmt: skip
        return gx
    mod = _native.require_cuda()
    inv = torch.empty(m, dtype=z.dtype, device=z.device)
    with torch.cuda.device(z.device):
        mod.supcon_backward_cuda(
            z.data_ptr(), ids.data_ptr(), w.data_ptr(), c.data_ptr(), lse.data_ptr(),
            gx.data_ptr(), inv.data_ptr(), m, d, tau, normalize, eps, 1.0, dtype,
            _cuda_stream(z),
        )  # fmt: skip
    return gx.mul_(grad.to(gx.dtype))


class _SupConFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, ids, w, c, tau, normalize, eps):  # type: ignore[override]
        lse, row_loss = _supcon_native_forward(z, ids, w, c, tau, normalize, eps)
        ctx.save_for_backward(z, ids, w, c, lse)
        ctx.params = (tau, normalize, eps)
        return row_loss.sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        z, ids, w, c, lse = ctx.saved_tensors
        gx = None
        if ctx.needs_input_grad[0]:
            gx = _supcon_native_backward(z, ids, w, c, lse, *ctx.params, grad)
        return gx, None, None, None, None, None, None


def _supcon_native(
    z: torch.Tensor,
    ids: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor] | None,
    tau: float,
    normalize: bool,
    eps: float,
) -> torch.Tensor:
    if weights is None:  # no anchor has a positive
        return z.sum() * 0.0
    w, c = weights
    return _SupConFunction.apply(z.contiguous(), ids.contiguous(), w, c, tau, normalize, eps)


def supcon_loss_reference(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    *,
    normalize: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    r"""Dense torch SupCon on stacked rows (the formula of the module docstring).

    Materialises the M x M similarity matrix; differentiable to any order.  With
    ``normalize=True`` it is the ``"torch"`` backend of
    :func:`contrastx.embed.losses.supcon.supcon_loss` (on the stacked views).
    """
    z = check_rows("z", z)
    labels = check_labels(labels, z.shape[0], z.device)
    t = check_positive("temperature", temperature)
    m = z.shape[0]
    s = (cosine_similarity_matrix(z, eps=eps) if normalize else z @ z.T) / t
    self_mask = torch.eye(m, dtype=torch.bool, device=s.device)
    log_prob = s - s.masked_fill(self_mask, float("-inf")).logsumexp(dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(dim=1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return s.sum() * 0.0
    pos_sum = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return (-pos_sum[has_pos] / n_pos[has_pos].to(s.dtype)).mean()


def supcon_loss_fused(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    *,
    normalize: bool = True,
    eps: float = 1e-8,
    backend: str = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Supervised contrastive loss of stacked rows, streamed (see the module docstring).

    .. math::

        \mathcal{L} = \frac{1}{|A|} \sum_{i \in A} \Big(
            \log \sum_{k \ne i} e^{s_{ik}} - \frac{1}{|P(i)|} \sum_{p \in P(i)} s_{ip} \Big),
        \qquad s_{ik} = \frac{z_i \cdot z_k}{\tau}

    Parameters
    ----------
    z : torch.Tensor
        (M, D) rows (all views stacked), float32 or float64 for the native kernels.
    labels : torch.Tensor
        (M,) integer class of every row, on the device of ``z``.
    temperature : float
        :math:`\tau > 0`.
    normalize : bool
        L2-normalise the rows, :math:`z_i = x_i / \max(\lVert x_i \rVert, \epsilon)` (cosine
        similarity, as the reference losses); ``False`` uses the raw dot product.
    eps : float
        Norm floor :math:`\epsilon` (1e-8, as
        :func:`contrastx.ops.similarity.cosine_similarity_matrix`).
    backend : {"auto", "native", "torch"}
        See the module docstring.
    check_finite : bool
        Raise ``ValueError`` on NaN / inf in ``z``.

    Returns
    -------
    torch.Tensor
        Scalar loss, dtype of ``z``; 0 (keeping the graph) when no row has a positive.

    Notes
    -----
    Native memory is O(M D) (the inputs, M log-sum-exp values and a packed copy of Z) against
    O(M^2) for the torch reference.  Non-contiguous inputs are copied.  The CPU kernel uses
    ``torch.get_num_threads()`` threads; results do not depend on the thread count.
    """
    z = check_rows("z", z)
    labels = check_labels(labels, z.shape[0], z.device)
    t = check_positive("temperature", temperature)
    e = check_positive("eps", eps)
    if check_finite:
        require_finite("z", z)
    if resolve_contrastive_backend(backend, z) == "torch":
        return supcon_loss_reference(z, labels, t, normalize=normalize, eps=e)
    ids = torch.unique(labels, return_inverse=True)[1].to(torch.int64)
    return _supcon_native(z, ids, _anchor_weights(ids, z.shape[0], z.dtype), t, normalize, e)


def nt_xent_loss_fused(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    *,
    normalize: bool = True,
    eps: float = 1e-8,
    backend: str = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""NT-Xent of two views, streamed: SupCon of ``cat(z1, z2)`` with labels (0..N-1, 0..N-1).

    .. math::

        \mathcal{L} = \frac{1}{2N} \sum_{i=1}^{2N}
            \Big(\log \sum_{k \ne i} e^{s_{ik}} - s_{i\,p(i)}\Big)

    Parameters
    ----------
    z1, z2 : torch.Tensor
        (N, D) views; row ``i`` of both is the same event.
    temperature, normalize, eps, backend, check_finite
        As in :func:`supcon_loss_fused`.

    Returns
    -------
    torch.Tensor
        Scalar mean over the 2N anchors.
    """
    z1 = check_rows("z1", z1)
    z2 = check_rows("z2", z2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape; got {tuple(z1.shape)}, {tuple(z2.shape)}"
        )
    check_like("z2", z2, "z1", z1)
    t = check_positive("temperature", temperature)
    e = check_positive("eps", eps)
    if check_finite:
        require_finite("z1", z1)
        require_finite("z2", z2)
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    ids = torch.arange(n, device=z.device).repeat(2)
    if resolve_contrastive_backend(backend, z) == "torch":
        return supcon_loss_reference(z, ids, t, normalize=normalize, eps=e)
    w = torch.full((2 * n,), 1.0 / (2 * n), dtype=z.dtype, device=z.device)
    return _supcon_native(z, ids, (w, w), t, normalize, e)


# --- VICReg -----------------------------------------------------------------------------------


def vicreg_variance(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's hinge on the per-dimension standard deviation, :math:`v(Z)`."""
    return torch.relu(gamma - torch.sqrt(covariance(z).diagonal() + eps)).mean()


def vicreg_covariance(z: torch.Tensor) -> torch.Tensor:
    """VICReg's sum of squared off-diagonal covariances over D, :math:`c(Z)`."""
    return off_diagonal(covariance(z)).square().sum() / z.shape[1]


def vicreg_loss_reference(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Torch VICReg: the ``"torch"`` backend of :func:`contrastx.embed.losses.vicreg.vicreg_loss`.

    Its terms are :func:`vicreg_variance` and :func:`vicreg_covariance` of each view and the
    mean squared difference of the two.
    """
    var, cov = vicreg_variance, vicreg_covariance
    return (
        invariance_weight * torch.nn.functional.mse_loss(z1, z2)
        + variance_weight * (var(z1, gamma, eps) + var(z2, gamma, eps))
        + covariance_weight * (cov(z1) + cov(z2))
    )


class _VICRegFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z1, z2, params):  # type: ignore[override]
        n, d = z1.shape
        mod = _native.require_cpu()
        dev = z1.device
        out = torch.empty(4, dtype=z1.dtype, device=dev)
        # Means and dL/dC of both views, computed here and reused by the backward pass.
        state = torch.empty(mod.vicreg_state_size(d), dtype=torch.float64, device=dev)
        dtype = _DTYPE_NAMES[z1.dtype]
        if dev.type == "cpu":
            mod.vicreg_forward_cpu(
                z1.data_ptr(), z2.data_ptr(), out.data_ptr(), state.data_ptr(), n, d, *params,
                dtype, torch.get_num_threads(),
            )  # fmt: skip
        else:
            mod = _native.require_cuda()
            ws = torch.empty(mod.vicreg_cuda_workspace_bytes(n, d), dtype=torch.uint8, device=dev)
            with torch.cuda.device(dev):
                mod.vicreg_forward_cuda(
                    z1.data_ptr(), z2.data_ptr(), out.data_ptr(), state.data_ptr(),
                    ws.data_ptr(), n, d, *params, dtype, _cuda_stream(z1),
                )  # fmt: skip
        ctx.save_for_backward(z1, z2, state)
        ctx.lam = params[0]
        return out[0].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        z1, z2, state = ctx.saved_tensors
        n, d = z1.shape
        g1, g2 = torch.empty_like(z1), torch.empty_like(z2)
        dtype = _DTYPE_NAMES[z1.dtype]
        if z1.device.type == "cpu":
            _native.require_cpu().vicreg_backward_cpu(
                z1.data_ptr(), z2.data_ptr(), state.data_ptr(), g1.data_ptr(), g2.data_ptr(),
                n, d, ctx.lam, float(grad), dtype, torch.get_num_threads(),
            )  # fmt: skip
        else:
            with torch.cuda.device(z1.device):
                _native.require_cuda().vicreg_backward_cuda(
                    z1.data_ptr(), z2.data_ptr(), state.data_ptr(), g1.data_ptr(),
                    g2.data_ptr(), n, d, ctx.lam, float(grad), dtype, _cuda_stream(z1),
                )  # fmt: skip
        return g1, g2, None


def vicreg_loss_fused(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    *,
    backend: str = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""VICReg of two views in one native pass per view (see the module docstring).

    .. math::

        \mathcal{L} = \lambda\, s(Z, Z') + \mu\,[v(Z) + v(Z')] + \nu\,[c(Z) + c(Z')]

    Parameters
    ----------
    z1, z2 : torch.Tensor
        (N, D) views, N >= 2, D >= 1.
    invariance_weight, variance_weight, covariance_weight : float
        :math:`\lambda, \mu, \nu`.
    gamma, eps : float
        Target standard deviation and the variance floor :math:`\epsilon > 0`.
    backend : {"auto", "native", "torch"}
        Native: C++ for CPU tensors, CUDA for CUDA tensors.
    check_finite : bool
        Raise ``ValueError`` on NaN / inf.

    Returns
    -------
    torch.Tensor
        Scalar loss, dtype of ``z1`` (the native kernel computes in float64 and rounds once).
    """
    z1 = check_rows("z1", z1, min_rows=2)
    z2 = check_rows("z2", z2, min_rows=2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape; got {tuple(z1.shape)}, {tuple(z2.shape)}"
        )
    check_like("z2", z2, "z1", z1)
    if check_finite:
        require_finite("z1", z1)
        require_finite("z2", z2)
    e = check_positive("eps", eps)
    weights = (float(invariance_weight), float(variance_weight), float(covariance_weight))
    if resolve_contrastive_backend(backend, z1) == "torch" or z1.shape[1] == 0:
        return vicreg_loss_reference(z1, z2, *weights, gamma, e)
    params = (*weights, float(gamma), e)
    return _VICRegFunction.apply(z1.contiguous(), z2.contiguous(), params)
