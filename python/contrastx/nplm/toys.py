r"""Batched NPLM toy experiments.

A toy draws :math:`N_B \sim \mathrm{Poisson}(N(B))` background events from a pool and
:math:`N_S \sim \mathrm{Poisson}(N(S))` signal events (null toys: :math:`N(S) = 0`),
fits NPLM against a reference sample of :math:`N_R` background events with weight
:math:`w = N(B)/N_R`, and records :math:`t`. Every toy is reproducible from
``(seed, hypothesis, toy index)``: its generator is
``numpy.random.default_rng(SeedSequence([seed, hypothesis, toy_index]))`` with
hypothesis 0 for null and 1 for signal toys; the reference, centres and (if not given)
:math:`\sigma` come from ``SeedSequence([seed, 2])``.

Two modes
---------
``"shared"`` (default)
    The reference sample and the :math:`M` centres (drawn from the reference) are fixed
    for the run, and each toy draws its data from the rest of the background pool.
    Because one Newton step from :math:`\alpha = 0` is a *linear* solve, the reference's
    share of the whitened system, :math:`\frac w4 Z_R^\top Z_R` and
    :math:`\frac w2 Z_R^\top 1` with :math:`Z = K T^{-1}`, is accumulated once; each toy
    adds its data Gram :math:`\frac14 Z_D^\top Z_D` (the dominant per-toy cost,
    :math:`O(N_D M^2)`), and a block of toys is solved together (batched Cholesky or
    batched CG, see :func:`contrastx.nplm.solver.newton_step`). :math:`\sum_D f` is
    :math:`(Z_D^\top 1)\cdot\beta`, and :math:`\sum_R e^{f}` is one streamed pass over
    the reference for the whole block, :math:`K_{RM}[\alpha_1 \dots \alpha_B]`.

    The null distribution is then *conditional on the reference* (and centres). That is
    the right calibration for an analysis that tests the observed data against that
    same reference: if :math:`P(p \le a \mid R) = a` for every :math:`R`, the test has
    size :math:`a` for the observed data whatever reference was drawn (and
    unconditionally too, averaging over :math:`R`). The conditional null can differ
    slightly from the paper's marginal one (which also averages over reference
    fluctuations, of relative size :math:`\sim N(B)/N_R`), so fitted :math:`\chi^2` dof
    may differ between the modes by that order; significances are valid in both.

``"paper"``
    Exactly as the paper's code: every toy re-draws the reference (disjoint from its
    data) and the centres (uniformly from data and reference together), and runs a full
    :class:`~contrastx.nplm.solver.NPLMFit`. For validation; ~``(N_R + N_D)/N_D`` times
    slower per toy.

``solver="cg"`` (default) reproduces Falkon's CG-truncated Newton step (tolerance
:math:`\sqrt{10^{-7}}`; :math:`t` within ~0.05 % of the exact step);
``solver="exact"`` solves the same system by Cholesky.

Memory: kernel tiles are bounded by ``tile_bytes``; a block holds ~4 ``(M, M)`` float64
matrices per toy, and the block size is chosen to fit ``memory_bytes``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from contrastx.ops.nystrom import (
    DEFAULT_TILE_BYTES,
    gaussian_kernel_tile,
    rows_per_tile,
    weighted_gram_rhs,
)

from .kernel import as_points, check_sigma, resolve_device, sigma_heuristic
from .solver import (
    DEFAULT_CG_TOL,
    FalkonPreconditioner,
    NPLMFit,
    newton_step,
    pc_epsilon_default,
)

__all__ = ["NULL", "SIGNAL", "ToyBlock", "ToyConfig", "ToyEngine", "toy_rng"]

NULL, SIGNAL = 0, 1
"""Hypothesis ids used in the toy seeds."""
_SETUP_STREAM = 2

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def toy_rng(seed: int, hypothesis: int, toy_index: int) -> np.random.Generator:
    """Generator of one toy: ``default_rng(SeedSequence([seed, hypothesis, toy_index]))``."""
    return np.random.default_rng(np.random.SeedSequence([seed, hypothesis, toy_index]))


@dataclass(frozen=True)
class ToyConfig:
    """Settings of a toy run (stored with the results; see :mod:`contrastx.nplm.toys`).

    Parameters
    ----------
    n_ref : int
        Reference size :math:`N_R`.
    n_bkg : float
        Expected background :math:`N(B)` per toy (also sets :math:`w = N(B)/N_R`).
    n_sig : float
        Expected signal :math:`N(S)` of the signal toys.
    M : int
        Number of centres.
    lam : float
        Penalty :math:`\\lambda`.
    sigma : float or None
        Kernel width; ``None``: :func:`~contrastx.nplm.sigma_heuristic` on the run's
        reference draw.
    mode : {"shared", "paper"}
    solver : {"cg", "exact"}
    cg_tol : float
    cg_max_iter : int
    dtype : {"float64", "float32"}
        Precision of the kernel evaluations (float32 biases t low; see
        :class:`~contrastx.nplm.solver.NPLMFit`).
    seed : int
    memory_bytes : int
        Budget of the batched ``(M, M)`` matrices of a toy block.
    tile_bytes : int
        Budget of one kernel tile.
    """

    n_ref: int
    n_bkg: float
    n_sig: float = 0.0
    M: int = 1000
    lam: float = 1e-6
    sigma: float | None = None
    mode: Literal["shared", "paper"] = "shared"
    solver: Literal["cg", "exact"] = "cg"
    cg_tol: float = DEFAULT_CG_TOL
    cg_max_iter: int = 1000
    dtype: Literal["float64", "float32"] = "float64"
    seed: int = 0
    memory_bytes: int = 512 * 2**20
    tile_bytes: int = DEFAULT_TILE_BYTES

    def __post_init__(self) -> None:
        if int(self.n_ref) < 1:
            raise ValueError(f"n_ref must be >= 1; got {self.n_ref}")
        if not (math.isfinite(self.n_bkg) and self.n_bkg > 0):
            raise ValueError(f"n_bkg (expected N(B)) must be > 0; got {self.n_bkg}")
        if not (math.isfinite(self.n_sig) and self.n_sig >= 0):
            raise ValueError(f"n_sig (expected N(S)) must be >= 0; got {self.n_sig}")
        if int(self.M) < 1:
            raise ValueError(f"M must be >= 1; got {self.M}")
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"lam must be > 0; got {self.lam}")
        if self.sigma is not None:
            check_sigma(self.sigma)
        if self.mode not in ("shared", "paper"):
            raise ValueError(f"mode must be 'shared' or 'paper'; got {self.mode!r}")
        if self.solver not in ("cg", "exact"):
            raise ValueError(f"solver must be 'cg' or 'exact'; got {self.solver!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32'; got {self.dtype!r}")
        if self.M > self.n_ref and self.mode == "shared":
            raise ValueError(f"M = {self.M} centres cannot be drawn from n_ref = {self.n_ref}")

    @property
    def weight(self) -> float:
        """:math:`w = N(B)/N_R`."""
        return float(self.n_bkg) / int(self.n_ref)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ToyBlock:
    """Results of a block of toys (arrays of equal length).

    Attributes
    ----------
    hypothesis : int
        0 null, 1 signal.
    toy_index, n_bkg, n_sig, n_iter : numpy.ndarray of int64
        Toy ids, drawn :math:`N_B`, :math:`N_S`, CG iterations (0 for the exact solver).
    t : numpy.ndarray of float64
    seconds : float
        Wall time of the block.
    """

    hypothesis: int
    toy_index: np.ndarray
    t: np.ndarray
    n_bkg: np.ndarray
    n_sig: np.ndarray
    n_iter: np.ndarray
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.toy_index.size)


class ToyEngine:
    """Runs NPLM toys in blocks; see :mod:`contrastx.nplm.toys` for the method.

    Parameters
    ----------
    background : array_like, shape (N_pool, d)
        Background pool (reference and background data are drawn from it without
        replacement; in ``"shared"`` mode the data never reuse reference events).
    signal : array_like, shape (N_sig_pool, d), optional
        Signal pool (needed when ``config.n_sig > 0`` and signal toys are run).
    config : ToyConfig
    device : str or torch.device, optional

    Examples
    --------
    >>> import numpy as np
    >>> pool = np.random.default_rng(0).normal(size=(5000, 2))
    >>> eng = ToyEngine(pool, config=ToyConfig(n_ref=2000, n_bkg=200, M=50))
    >>> t0 = np.concatenate([b.t for b in eng.run(range(4))])
    >>> t0.shape
    (4,)
    """

    def __init__(
        self,
        background: Any,
        signal: Any = None,
        *,
        config: ToyConfig,
        device: str | torch.device | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.dtype = _DTYPES[config.dtype]
        # The pools stay on the host; each toy's points are moved to the device.
        self.background = as_points(background, "background", dtype=self.dtype)
        d = self.background.shape[1]
        self.signal = None if signal is None else as_points(signal, "signal", dtype=self.dtype, d=d)
        n_pool = self.background.shape[0]
        need = config.n_ref + _poisson_upper(config.n_bkg)
        if n_pool < need:
            raise ValueError(
                f"the background pool has {n_pool} events; n_ref + a Poisson(N(B)) draw "
                f"needs about {need}"
            )
        self._prepared = False

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Draw the reference (and centres), fix sigma, precompute the shared terms."""
        if self._prepared:
            return
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SETUP_STREAM]))
        n_pool = self.background.shape[0]
        ref_idx = np.sort(rng.choice(n_pool, size=cfg.n_ref, replace=False))
        self.ref_index_ = ref_idx
        mask = np.ones(n_pool, dtype=bool)
        mask[ref_idx] = False
        self.data_pool_index_ = np.flatnonzero(mask)
        ref = self.background[torch.from_numpy(ref_idx)]
        self.sigma_ = (
            check_sigma(cfg.sigma) if cfg.sigma is not None else sigma_heuristic(ref.numpy())
        )
        if cfg.mode == "shared":
            self._prepare_shared(ref.to(self.device), rng)
        self._prepared = True

    def _prepare_shared(self, ref: Tensor, rng: np.random.Generator) -> None:
        cfg = self.config
        c_idx = rng.choice(cfg.n_ref, size=cfg.M, replace=False)
        self.center_index_ = self.ref_index_[c_idx]
        centers = ref[torch.from_numpy(c_idx).to(ref.device)]
        kmm = gaussian_kernel_tile(centers, centers, self.sigma_).to(torch.float64)
        self._precond = FalkonPreconditioner(0.5 * (kmm + kmm.T), pc_epsilon_default(self.dtype))
        self._whiten = self._precond.T.to(self.dtype)
        # Falkon's preconditioner at beta = 0: curvature w/4 at every (reference) centre.
        curv = torch.full((cfg.M,), 0.25 * cfg.weight, dtype=torch.float64, device=ref.device)
        self._twt = self._precond.twt(curv)
        ones = torch.ones(ref.shape[0], dtype=self.dtype, device=ref.device)
        s_r, z_r = weighted_gram_rhs(
            ref, centers, self.sigma_, None, ones, whiten=self._whiten, tile_bytes=cfg.tile_bytes
        )
        self._ref = ref
        self._centers = centers
        self._s_ref = s_r.to(torch.float64)
        self._z_ref = z_r.to(torch.float64)

    # ------------------------------------------------------------------- draws
    def draw(self, hypothesis: int, toy_index: int) -> tuple[np.random.Generator, Tensor, int, int]:
        """Data of one toy: ``(rng, points, N_B, N_S)``; ``rng`` continues the toy's stream.

        In ``"shared"`` mode the background comes from the pool minus the reference; in
        ``"paper"`` mode from the whole pool (the reference is drawn afterwards from
        what is left, see :meth:`run`).
        """
        cfg = self.config
        rng = toy_rng(cfg.seed, hypothesis, toy_index)
        n_b = int(rng.poisson(cfg.n_bkg))
        n_s = int(rng.poisson(cfg.n_sig)) if hypothesis == SIGNAL and cfg.n_sig > 0 else 0
        pool = (
            self.data_pool_index_ if cfg.mode == "shared" else np.arange(self.background.shape[0])
        )
        if n_b > pool.size:
            raise ValueError(f"toy {toy_index}: N_B = {n_b} exceeds the pool ({pool.size})")
        b_idx = pool[rng.choice(pool.size, size=n_b, replace=False)]
        parts = [self.background[torch.from_numpy(b_idx)]]
        if n_s:
            if self.signal is None:
                raise ValueError("signal toys with n_sig > 0 need a signal pool")
            if n_s > self.signal.shape[0]:
                raise ValueError(f"toy {toy_index}: N_S = {n_s} exceeds the signal pool")
            s_idx = rng.choice(self.signal.shape[0], size=n_s, replace=False)
            parts.append(self.signal[torch.from_numpy(s_idx)])
        self._last_bkg_index = b_idx
        return rng, torch.cat(parts), n_b, n_s

    # --------------------------------------------------------------------- run
    def block_size(self) -> int:
        """Toys per block so that ~4 ``(M, M)`` float64 matrices per toy fit the budget."""
        per_toy = 4 * self.config.M**2 * 8
        return max(1, int(self.config.memory_bytes) // per_toy)

    def run(self, toy_indices: Iterable[int], *, hypothesis: int = NULL) -> Iterator[ToyBlock]:
        """Run the given toys, yielding one :class:`ToyBlock` per block.

        Parameters
        ----------
        toy_indices : iterable of int
            Toy ids (each toy's randomness depends only on seed, hypothesis and id).
        hypothesis : {0, 1}
            :data:`NULL` (no signal) or :data:`SIGNAL` (``config.n_sig`` expected).
        """
        if hypothesis not in (NULL, SIGNAL):
            raise ValueError(f"hypothesis must be 0 (null) or 1 (signal); got {hypothesis}")
        if hypothesis == SIGNAL and self.config.n_sig > 0 and self.signal is None:
            raise ValueError("signal toys with n_sig > 0 need a signal pool")
        self.prepare()
        ids = [int(i) for i in toy_indices]
        if any(i < 0 for i in ids):
            raise ValueError("toy indices must be >= 0")
        step = self.block_size() if self.config.mode == "shared" else 1
        for lo in range(0, len(ids), step):
            chunk = ids[lo : lo + step]
            t0 = time.perf_counter()
            if self.config.mode == "shared":
                blk = self._run_shared(chunk, hypothesis)
            else:
                blk = self._run_paper(chunk[0], hypothesis)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            blk.seconds = time.perf_counter() - t0
            yield blk

    def _run_shared(self, ids: list[int], hypothesis: int) -> ToyBlock:
        cfg = self.config
        w = cfg.weight
        dev = self.device
        b = len(ids)
        m = cfg.M
        s_mat = torch.empty(b, m, m, dtype=torch.float64, device=dev)
        z_dat = torch.empty(b, m, dtype=torch.float64, device=dev)
        n_tot = torch.empty(b, dtype=torch.float64, device=dev)
        n_b = np.empty(b, dtype=np.int64)
        n_s = np.empty(b, dtype=np.int64)
        for k, i in enumerate(ids):
            _, x, n_b[k], n_s[k] = self.draw(hypothesis, i)
            x = x.to(dev)
            if x.shape[0]:
                ones = torch.ones(x.shape[0], dtype=self.dtype, device=dev)
                s_d, z_d = weighted_gram_rhs(
                    x,
                    self._centers,
                    self.sigma_,
                    None,
                    ones,
                    whiten=self._whiten,
                    tile_bytes=cfg.tile_bytes,
                )
                s_mat[k] = s_d.to(torch.float64)
                z_dat[k] = z_d.to(torch.float64)
            else:
                s_mat[k].zero_()
                z_dat[k].zero_()
            n_tot[k] = cfg.n_ref + x.shape[0]
        # S_b = (w/4 S_R + 1/4 S_D) / N_b ;  r_b = (w/2 z_R - 1/2 z_D) / N_b
        s_mat.mul_(0.25).add_(self._s_ref, alpha=0.25 * w).div_(n_tot.view(-1, 1, 1))
        r_vec = (0.5 * w * self._z_ref - 0.5 * z_dat) / n_tot.view(-1, 1)
        beta0 = torch.zeros(b, m, dtype=torch.float64, device=dev)
        if cfg.solver == "cg":
            self._precond.init_from_twt(self._twt, cfg.lam, n_tot)
        beta, n_iter = newton_step(
            self._precond,
            s_mat,
            r_vec,
            beta0,
            cfg.lam,
            solver=cfg.solver,
            cg_tol=cfg.cg_tol,
            max_iter=cfg.cg_max_iter,
        )
        del s_mat
        alpha = self._precond.inv_t(beta)  # (B, M)
        sum_f_data = (z_dat * beta).sum(1)
        sum_exp_ref = self._ref_exp_sum(alpha)
        t = 2.0 * (w * (cfg.n_ref - sum_exp_ref) + sum_f_data)
        return ToyBlock(
            hypothesis,
            np.asarray(ids, dtype=np.int64),
            t.cpu().numpy(),
            n_b,
            n_s,
            n_iter.cpu().numpy().astype(np.int64),
        )

    def _ref_exp_sum(self, alpha: Tensor) -> Tensor:
        r""":math:`\sum_{x\in R} e^{f_b(x)}` for every column of ``alpha`` (one pass)."""
        a = alpha.T.to(self.dtype).contiguous()  # (M, B)
        out = torch.zeros(alpha.shape[0], dtype=torch.float64, device=alpha.device)
        ref = self._ref
        step = rows_per_tile(self.config.M, ref.element_size(), self.config.tile_bytes)
        for lo in range(0, ref.shape[0], step):
            k = gaussian_kernel_tile(ref[lo : lo + step], self._centers, self.sigma_)
            out += torch.exp((k @ a).to(torch.float64)).sum(0)
        return out

    def _run_paper(self, i: int, hypothesis: int) -> ToyBlock:
        cfg = self.config
        rng, data, n_b, n_s = self.draw(hypothesis, i)
        rest = np.ones(self.background.shape[0], dtype=bool)
        rest[self._last_bkg_index] = False
        rest_idx = np.flatnonzero(rest)
        ref_idx = rest_idx[rng.choice(rest_idx.size, size=cfg.n_ref, replace=False)]
        ref = self.background[torch.from_numpy(ref_idx)]
        fit = NPLMFit(
            self.sigma_,
            M=cfg.M,
            lam=cfg.lam,
            solver=cfg.solver,
            cg_tol=cfg.cg_tol,
            cg_max_iter=cfg.cg_max_iter,
            dtype=self.dtype,
            device=self.device,
            random_state=rng,
            tile_bytes=cfg.tile_bytes,
        ).fit(data, ref, cfg.weight)
        return ToyBlock(
            hypothesis,
            np.array([i], dtype=np.int64),
            np.array([fit.t_]),
            np.array([n_b], dtype=np.int64),
            np.array([n_s], dtype=np.int64),
            np.array([fit.n_iter_[0]], dtype=np.int64),
        )


def _poisson_upper(mu: float) -> int:
    """A generous upper bound of a Poisson(mu) draw (mu + 6 sqrt(mu) + 10)."""
    return math.ceil(mu + 6.0 * math.sqrt(mu) + 10.0)
