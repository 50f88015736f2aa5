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
    for the run, and each toy draws its data without replacement from the *data pool*:
    the rest of the background pool, or a fixed random subset of it of size
    ``data_pool``. Because one Newton step from :math:`\alpha = 0` is a *linear* solve,
    the reference's share of the whitened system, :math:`\frac w4 Z_R^\top Z_R` and
    :math:`\frac w2 Z_R^\top 1` with :math:`Z = K T^{-1}`, is accumulated once (the
    whitening and :math:`Z_R^\top 1` in float64; for the CG with the ``"average"``
    preconditioner each tile's Gram :math:`Z^\top Z` in float32 GEMMs summed in float64,
    which moves :math:`t` by ~3e-8; it can be cached on disk, ``reference_cache``), and
    so is the CG preconditioner's matrix
    :math:`G`: by default (``preconditioner="average"``) the reference term
    :math:`\frac w4 Z_R^\top Z_R`, scaled per toy by :math:`c_b = 1 + N_{D,b}/(w N_R)` to
    the system of a toy whose data are distributed as the reference (see
    :mod:`contrastx.nplm.solver`), or Falkon's :math:`T W T^\top` (all centres are
    reference points, curvature :math:`w/4`; only :math:`N_b = N_R + N_{D,b}` differs
    between toys). :math:`\sum_R e^{f}` is one
    streamed pass over the reference for a whole block of toys,
    :math:`K_{RM}[\alpha_1 \dots \alpha_B]`. Two strategies form the data term:

    * ``"pool"``: the whitened data pool :math:`Z_P = K(\mathrm{pool}, C)\,T^{-1}`
      (:math:`N_\mathrm{pool}\times M`, float64 or float32 storage) is computed once. A
      toy is a set :math:`S_b` of its rows (a :class:`~contrastx.ops.selections.RowSelection`),
      and the data part of its CG operator is :math:`Z_{S_b}^\top Z_{S_b} v_b`, applied
      for the whole block in one call per CG iteration
      (:func:`~contrastx.ops.selections.selected_gram_matvec`), with finished toys
      dropped, and never an :math:`M\times M` matrix per toy. On a CPU the native kernel
      visits only the selected rows, :math:`4 N_D M` flops per toy and iteration
      (float64 arithmetic for a float64 pool, see below for the others); elsewhere (GPU)
      two dense GEMMs over the pool with the 0/1 selection matrix,
      :math:`4 N_\mathrm{pool} M` flops.
      :math:`Z_D^\top 1` comes from the same selections and
      :math:`\sum_D f = (Z_D^\top 1)\cdot\beta_b`. The per-toy preconditioner factor
      :math:`A_b = \operatorname{chol}(G/\tilde N_b + \lambda I)` (:math:`\tilde N_b =
      N_b/c_b`, or :math:`N_b` for Falkon's) is replaced by the square root
      :math:`\operatorname{diag}(\sqrt{e/\tilde N_b + \lambda})\,Q^\top` from one
      eigendecomposition :math:`G = Q\operatorname{diag}(e)Q^\top`: it differs
      from :math:`A_b` by an orthogonal factor, under which CG's iterates, residual
      norms and hence its stopping step are invariant (with Falkon's, the truncated
      Falkon step is the same). Signal events are added per block the same way (the whitened rows of
      the signal events drawn in the block; see *Reproducibility* below). Float32
      storage (``pool_dtype``) halves the memory and ``pool_dtype="int16"`` quarters it
      (:class:`~contrastx.ops.selections.QuantizedRows`: 16-bit integers with a float64
      scale per row and per whitened column, the columns' scales from the reference's
      Gram diagonal). With the default ``"average"`` preconditioner the native kernel
      computes their products in float32 (``arithmetic="float32"`` of
      :func:`~contrastx.ops.selections.selected_gram_matvec`: float32 products and sums
      over a chunk of 128 pool rows, float64 across chunks; twice the SIMD lanes and half
      the bytes of float64): :math:`t` stays within ~1e-7 of a float64 pool with float32
      storage (1.4e-7 and 2.7e-8 on the Falkon cases, the same CG iterations), and moves
      by ~1e-4 with int16 storage (the quantisation, not the arithmetic). With Falkon's
      preconditioner the products stay float64 (its long, loosely stopped CG would take
      1-2 more iterations and move :math:`t` by ~5e-5): float32 storage then moves
      :math:`t` by ~1e-7 (5e-8 and 4e-9 on the Falkon cases, Falkon's iteration counts).
      Float32 GEMMs (GPU / ``torch`` path) move :math:`t` by ~2e-4 (up to 6e-4 seen on
      benchmark toys) and cost a few more CG iterations. The native kernel widens int16
      rows (and float32 rows for float64 arithmetic) once per chunk of the pool, so
      reduced storage is never slower than float64.
    * ``"stream"``: each toy's whitened data Gram :math:`\frac14 Z_D^\top Z_D` is
      accumulated from its kernel rows (:math:`O(N_D M^2)` per toy: whitening solve and
      Gram), and the block's :math:`M\times M` systems are solved together (batched
      Cholesky or batched CG, see :func:`contrastx.nplm.solver.newton_step`). Needed for
      ``solver="exact"``, and cheaper when :math:`N_\mathrm{pool} \gg 27 N_D` at
      :math:`M = 1000` (``strategy="auto"`` compares the flop counts and the memory).

    Cost at the paper's scale (:math:`N_R = 10^6`, :math:`N(B) = 10^5`, :math:`M = 1000`,
    data pool :math:`10^6`, ``contrastx-toys --paper``): each CG operator pass is
    :math:`4\cdot10^{8}` flops per toy with the native CPU kernel (:math:`4\cdot10^{9}`
    with dense GEMMs), against :math:`2\cdot10^{11}` per toy for ``"stream"``; Falkon's
    preconditioner takes a few tens of passes, the ``"average"`` one a few, and then
    :math:`\sum_R e^f` (:math:`2 N_R M = 2\cdot10^{9}` flops per toy) is the larger part.

    **Pool size.** The toys share a finite data pool: two toys have a fraction
    :math:`f = N(B)/N_\mathrm{pool}` of their events in common, and conditional on the
    pool, a share :math:`f` of the data fluctuation is frozen into every toy (the
    marginal over pools is exact). Keep :math:`f` small; ``contrastx-toys`` uses
    :math:`N_\mathrm{pool} = 10\,N(B)` (:math:`f = 0.1`) for its built-in sample.

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

Reproducibility
---------------
A toy's data are exactly reproducible. On a CPU with the native kernels (built, and
``pool_backend`` not ``"torch"``) its :math:`t` is moreover bitwise independent of the
other toys of its block, so of the block sizes and of where an interrupted run resumes:
the native kernels treat each toy on its own, the dense products and triangular solves
of a block run in fixed-shape row blocks (:func:`~contrastx.nplm.solver.row_blocked`),
a lone ``"stream"`` toy is paired with itself, and ``"paper"`` mode runs one toy at a
time. The dense pool products (GPU, ``pool_backend="torch"``) depend on the block width,
and :math:`t` is then reproducible to rounding only.

:math:`t` does depend, at the rounding level, on the number of threads (and on the CPU's
instruction set and the BLAS/LAPACK build) through the setup: MKL or OpenBLAS split the
reference Gram, the whitening of the pool and the preconditioner's Cholesky and
eigendecomposition by thread count, and the ill-conditioned whitened system amplifies
those last-bit differences (more when a toy's CG then stops one iteration earlier),
though far less than the CG truncation itself moves :math:`t` from the exact step. The
blocks' own work is thread-independent with ``"pool"`` on a CPU (native kernels,
single-threaded fixed-shape row blocks), not with ``"stream"`` (batched solves). Runs
meant to agree bitwise, such as the parts of a resumed run, need the same machine,
thread count (``OMP_NUM_THREADS``) and libraries.

``solver="cg"`` (default) solves each toy's Newton step by preconditioned CG: with
``preconditioner="falkon"`` it reproduces Falkon's CG-truncated step (tolerance
:math:`\sqrt{10^{-7}}`; :math:`t` within ~0.05 % of the exact step), with the default
``"average"`` it stops far closer to the exact step in fewer iterations;
``solver="exact"`` solves the same system by Cholesky.

Reference cache
---------------
With ``reference_cache`` set to a directory, the shared setup's reference system
(:math:`T`, :math:`Z_R^\top Z_R`, :math:`Z_R^\top 1`; it does not depend on
:math:`\lambda`, :math:`N(B)` or the data) is stored there under a hash of its inputs
(the reference points and centres, sigma, the jitter, the dtype) and loaded by a later
run or another worker with the same inputs: the same arrays, so the same :math:`t`. An
entry is written atomically (a temporary file, then a rename); one that is unreadable,
has the wrong shapes or was written for other inputs is rebuilt with a warning.

Memory: kernel tiles are bounded by ``tile_bytes``; ``"pool"`` stores
:math:`N_\mathrm{pool} M` values (8 GB in float64 at :math:`10^6 \times 1000`, bounded by
``pool_memory_bytes``) plus the row lists of a block's toys (and on a GPU one byte per pool
row and toy for the dense selection matrix); ``"stream"`` holds
~4 ``(M, M)`` float64 matrices per toy of a block. The block size is chosen to fit
``memory_bytes`` (at most ``max_block``), and :meth:`ToyEngine.run` bounds each block
to about ``block_seconds`` of work (timed from the previous block), so a consumer that
saves every block, such as :class:`~contrastx.nplm.results.ToyResultsFile`, loses
little when stopped. Everything is device-generic torch: on a GPU the same GEMMs run
batched over the whole block.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastx import _native
from contrastx.ops._backend import resolve_backend
from contrastx.ops.gaussian import gaussian_kernel_exp_sum, gaussian_kernel_matvec
from contrastx.ops.nystrom import (
    gaussian_kernel_tile,
    rows_per_tile,
    triangular_inverse,
    weighted_gram_rhs,
    whitened_features,
    whitened_tiles,
)
from contrastx.ops.selections import QuantizedRows, RowSelection

from .kernel import as_points, check_sigma, resolve_device, sigma_heuristic
from .options import ToyOptions
from .options import poisson_upper as _poisson_upper
from .solver import (
    FalkonPreconditioner,
    NPLMFit,
    average_curvature_factor,
    check_float32,
    newton_step,
    pc_epsilon_default,
    pooled_newton_step,
    row_blocked,
)

__all__ = ["NULL", "SIGNAL", "ToyBlock", "ToyConfig", "ToyEngine", "toy_rng"]

logger = logging.getLogger(__name__)

NULL, SIGNAL = 0, 1
"""Hypothesis ids used in the toy seeds."""
_SETUP_STREAM = 2
_EXP_SUM_TOYS = 256
"""Toys per native pass of :meth:`ToyEngine._ref_exp_sum` (its V panels stay in cache)."""
_SIGMA_POINTS = 2000
"""Reference rows of the kernel-width heuristic (the paper's ``pdist(ref[:2000])``)."""

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
# Bytes per stored pool row and centre (int16: 2 bytes an entry plus an 8-byte row scale).
_POOL_ITEMSIZE = {"float64": 8, "float32": 4, "int16": 2}


BLOCK_SECONDS = 30.0
"""Default target wall time of a block of :meth:`ToyEngine.run`."""
FIRST_BLOCK = 16
"""Most toys in the first block when blocks are timed (``block_seconds``). A block has a
fixed cost (a pass over the reference's kernel values, the setup of its products) that a
block of a few toys would charge to each of them, sizing the next block too small (at the
paper's scale a 4-toy block measured ~6x the per-toy time of a 256-toy one)."""


def next_block_size(seconds: float, size: int, target: float, limit: int) -> int:
    """Toys in the next block: as many as fit ``target`` seconds at the rate of the last
    block (``size`` toys in ``seconds``), at least 1 and at most ``limit``.

    A small block takes longer per toy than a large one (its fixed costs are shared by
    fewer toys), so the rate of a small first block errs on the side of short blocks.
    """
    per_toy = max(float(seconds), 1e-9) / max(int(size), 1)
    return int(max(1, min(limit, math.floor(target / per_toy))))


def toy_rng(seed: int, hypothesis: int, toy_index: int) -> np.random.Generator:
    """Generator of one toy: ``default_rng(SeedSequence([seed, hypothesis, toy_index]))``."""
    return np.random.default_rng(np.random.SeedSequence([seed, hypothesis, toy_index]))


ToyConfig = ToyOptions
"""The toy engine's settings: :class:`contrastx.nplm.ToyOptions` (the same class)."""


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


class _ReferenceSystem:
    r"""The on-disk cache of a shared reference's system (``reference_cache``).

    An entry holds what the setup computes from the reference and the centres alone:
    the factor :math:`T` of :math:`K_{MM} + \epsilon M I`, :math:`S_R = Z_R^\top Z_R` and
    :math:`Z_R^\top 1` (float64), none of which depends on :math:`\lambda`, :math:`w` or the
    data. Its file name is a hash of the inputs (the reference points and centres as
    stored, in the run's dtype; sigma; epsilon; the dtype); the file also holds the full
    key, which is compared on loading. Files are written to a temporary name in the same
    directory and renamed, so a reader never sees a partial file, and concurrent writers
    of one entry leave one complete file.
    """

    FORMAT = "contrastx-nplm-reference"
    VERSION = 1

    def __init__(self, key: dict[str, Any], digest: str, m: int) -> None:
        self._key = key
        self._digest = digest
        self._m = m

    @classmethod
    def key(
        cls,
        ref: Tensor,
        centers: Tensor,
        sigma: float,
        eps: float,
        method: str = "blocked",
        products: torch.dtype | None = None,
    ) -> _ReferenceSystem:
        """The cache entry of this reference, centres, kernel width, jitter, setup method
        and Gram products' dtype (whose rounding differs)."""

        def digest(t: Tensor) -> str:
            return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()

        key = {
            "format": cls.FORMAT,
            "version": cls.VERSION,
            "ref_sha256": digest(ref),
            "ref_shape": list(ref.shape),
            "centers_sha256": digest(centers),
            "centers_shape": list(centers.shape),
            "sigma": float(sigma),
            "pc_epsilon": float(eps),
            "dtype": str(ref.dtype).removeprefix("torch."),
            "setup_method": str(method),
            "gram_products": str(products or ref.dtype).removeprefix("torch."),
        }
        name = {k: v for k, v in key.items() if k not in ("format", "version")}
        text = json.dumps(name, sort_keys=True).encode()
        return cls(key, hashlib.sha256(text).hexdigest()[:32], int(centers.shape[0]))

    def path(self, directory: str | os.PathLike) -> Path:
        """The entry's file in ``directory``."""
        return Path(directory) / f"nplm-reference-{self._digest}.npz"

    def load(self, directory: str | os.PathLike) -> tuple[Tensor, Tensor, Tensor] | None:
        """``(T, S_R, Z_R^T 1)`` from the cache, or None (absent; stale or unreadable:
        logged as a warning, to be rebuilt)."""
        path = self.path(directory)
        if not path.is_file():
            return None
        m = self._m
        try:
            with np.load(path, allow_pickle=False) as f:
                stored = json.loads(str(f["key"]))
                if stored != self._key:
                    diff = sorted(k for k in self._key if stored.get(k) != self._key[k])
                    raise ValueError(f"it was written for other inputs ({', '.join(diff)})")
                arrays = [np.array(f[k]) for k in ("T", "s_ref", "z_ref")]
        except Exception as exc:  # any unreadable entry is rebuilt
            logger.warning(
                "reference cache %s is stale or unreadable (%s); rebuilding it", path, exc
            )
            return None
        shapes = [(m, m), (m, m), (m,)]
        for name, a, shape in zip(("T", "s_ref", "z_ref"), arrays, shapes):
            if a.shape != shape or a.dtype != np.float64 or not np.isfinite(a).all():
                logger.warning(
                    "reference cache %s: %s has shape %s and dtype %s (expected %s float64, "
                    "finite); rebuilding it",
                    path,
                    name,
                    a.shape,
                    a.dtype,
                    shape,
                )
                return None
        logger.info("reference system loaded from %s", path)
        return tuple(torch.from_numpy(a) for a in arrays)  # type: ignore[return-value]

    def save(self, directory: str | os.PathLike, t: Tensor, s_ref: Tensor, z_ref: Tensor) -> Path:
        """Write the entry atomically (temporary file in ``directory``, then rename)."""
        path = self.path(directory)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    key=np.array(json.dumps(self._key, sort_keys=True)),
                    T=t.detach().cpu().numpy(),
                    s_ref=s_ref.detach().cpu().numpy(),
                    z_ref=z_ref.detach().cpu().numpy(),
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.info("reference system written to %s", path)
        return path


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
    setup_method : {"blocked", "solve"}
        How the setup whitens the reference and the pool
        (:mod:`contrastx.ops.nystrom`: ``"blocked"``, column-blocked GEMMs against
        :math:`T^{-1}` and upper-triangular Grams; ``"solve"``, the previous triangular solve
        and GEMM per tile). The two agree to rounding.

    Attributes
    ----------
    setup_seconds_ : dict of str to float
        Wall time of the parts of :meth:`prepare`: ``"draws"`` (reference, sigma),
        ``"reference"`` (centres, the reference system, loaded or computed, and the
        preconditioner), ``"pool"`` (the whitened data pool; ``"pool"`` strategy only).
    reference_cache_path_ : pathlib.Path or None
        The reference-system cache entry of this run (``reference_cache``).
    reference_cache_hit_ : bool
        Whether :meth:`prepare` loaded the reference system from that entry.

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
        setup_method: str = "blocked",
    ) -> None:
        if setup_method not in ("blocked", "solve"):
            raise ValueError(f"setup_method must be 'blocked' or 'solve'; got {setup_method!r}")
        self.setup_method = setup_method
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
        # (seconds, toys) of the last timed block: sizes the next run's first block.
        self._last_block: tuple[float, int] | None = None
        self.strategy_: str | None = None
        self.pool_backend_: str | None = None  # "pool": "native" (CPU kernel) or "torch"
        self.pool_arithmetic_: str | None = None  # "pool": of the native products
        self.setup_seconds_: dict[str, float] = {}
        self.reference_cache_path_: Path | None = None
        self.reference_cache_hit_ = False

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Draw the reference (and centres), fix sigma, precompute the shared terms."""
        if self._prepared:
            return
        cfg = self.config
        start = time.perf_counter()
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SETUP_STREAM]))
        n_pool = self.background.shape[0]
        draw = rng.choice(n_pool, size=cfg.n_ref, replace=False)
        ref_idx = np.sort(draw)
        self.ref_index_ = ref_idx
        mask = np.ones(n_pool, dtype=bool)
        mask[ref_idx] = False
        self.data_pool_index_ = np.flatnonzero(mask)
        ref = self.background[torch.from_numpy(ref_idx)]
        if cfg.sigma is not None:
            self.sigma_ = check_sigma(cfg.sigma)
        else:
            # The paper's rule takes the first rows of a reference in random order: take
            # them in draw order, never in pool order (a pool stored by process would
            # give the width of its first process alone).
            first = torch.from_numpy(draw[:_SIGMA_POINTS])
            self.sigma_ = sigma_heuristic(self.background[first].numpy(), n_points=_SIGMA_POINTS)
        self.strategy_reason_ = "paper mode: one full fit per toy"
        self.setup_seconds_ = {"draws": time.perf_counter() - start}
        if cfg.mode == "shared":
            self._prepare_shared(ref.to(self.device), rng)
        self._prepared = True

    def _prepare_shared(self, ref: Tensor, rng: np.random.Generator) -> None:
        cfg = self.config
        c_idx = rng.choice(cfg.n_ref, size=cfg.M, replace=False)
        self.center_index_ = self.ref_index_[c_idx]
        if cfg.data_pool is not None:
            avail = self.data_pool_index_.size
            if int(cfg.data_pool) > avail:
                raise ValueError(
                    f"data_pool = {cfg.data_pool} exceeds the {avail} non-reference events"
                )
            keep = np.sort(rng.choice(avail, size=int(cfg.data_pool), replace=False))
            self.data_pool_index_ = self.data_pool_index_[keep]
        centers = ref[torch.from_numpy(c_idx).to(ref.device)]
        start = time.perf_counter()
        eps = pc_epsilon_default() if cfg.pc_epsilon is None else cfg.pc_epsilon
        # The reference Gram's tile products in float32 (float64 sums; t moves by ~3e-8)
        # for the CG with the 'average' preconditioner; the exact solver and Falkon's
        # preconditioner (the reference paths) keep float64.
        fast = cfg.solver == "cg" and cfg.preconditioner == "average"
        products = torch.float32 if fast and self.dtype == torch.float64 else None
        system = _ReferenceSystem.key(ref, centers, self.sigma_, eps, self.setup_method, products)
        loaded = None if cfg.reference_cache is None else system.load(cfg.reference_cache)
        c64 = centers.to(torch.float64)
        kmm = gaussian_kernel_tile(c64, c64, self.sigma_)
        kmm = 0.5 * (kmm + kmm.T)
        if self.dtype != torch.float64:
            check_float32(kmm, eps, self.sigma_)
        if loaded is None:
            self._precond = FalkonPreconditioner(kmm, eps)
            ones = torch.ones(ref.shape[0], dtype=self.dtype, device=ref.device)
            s_r, z_r = weighted_gram_rhs(
                ref,
                centers,
                self.sigma_,
                None,
                ones,
                whiten=self._precond.T.to(self.dtype),
                tile_bytes=cfg.tile_bytes,
                accumulate=torch.float64,
                method=self.setup_method,
                products=products,
            )
            self._s_ref = s_r.to(torch.float64)
            self._z_ref = z_r.to(torch.float64)
            if cfg.reference_cache is not None:
                system.save(cfg.reference_cache, self._precond.T, self._s_ref, self._z_ref)
        else:
            t_fac, self._s_ref, self._z_ref = (a.to(ref.device) for a in loaded)
            self._precond = FalkonPreconditioner.from_factor(t_fac)
        self.reference_cache_path_ = (
            None if cfg.reference_cache is None else system.path(cfg.reference_cache)
        )
        self.reference_cache_hit_ = loaded is not None
        self._whiten = self._precond.T.to(self.dtype)
        # T^-1 once for every whitening of pool and signal rows ("blocked" setup).
        self._whiten_inv = (
            triangular_inverse(self._whiten) if self.setup_method == "blocked" else None
        )
        self._ref = ref
        self._centers = centers
        if cfg.preconditioner == "average":
            # The system of data distributed as the reference: c_b (w/4) S_R (see
            # pooled_newton_step; c_b is set per toy from its N_D).
            self._twt = (0.25 * cfg.weight) * self._s_ref
        else:
            # Falkon's preconditioner at beta = 0: curvature w/4 at every (reference) centre.
            curv = torch.full((cfg.M,), 0.25 * cfg.weight, dtype=torch.float64, device=ref.device)
            self._twt = self._precond.twt(curv)
        self.strategy_, self.strategy_reason_ = self._choose_strategy()
        if self.strategy_ == "pool":
            self.pool_backend_ = "native" if self._selected_rows_native() else "torch"
            # float32 products for a float32 or 16-bit pool with the 'average' preconditioner
            # (a few CG iterations: t moves by ~1e-7); float64 with Falkon's, whose long,
            # loosely stopped CG they would lengthen (see pooled_newton_step).
            # (The torch path computes in the pool's dtype: recorded as None.)
            reduced = cfg.pool_dtype != "float64" and cfg.preconditioner == "average"
            native = self.pool_backend_ == "native"
            self.pool_arithmetic_ = ("float32" if reduced else "float64") if native else None
            self._twt_eigh = torch.linalg.eigh(self._twt)
        self._sync()
        self.setup_seconds_["reference"] = time.perf_counter() - start
        if self.strategy_ == "pool":
            start = time.perf_counter()
            pool_pts = self.background[torch.from_numpy(self.data_pool_index_)].to(self.device)
            if cfg.pool_dtype == "int16":
                # Whitened in float64 tiles, each stored as it is made (never a float copy).
                # Column scales: the reference's RMS per whitened coordinate (the pool is
                # drawn as the reference is), from the diagonal of its Gram.
                rms = torch.sqrt(torch.diagonal(self._s_ref) / cfg.n_ref)
                col_scale = torch.where(rms > 0, rms, torch.ones_like(rms))
                self._zpool = QuantizedRows.empty(pool_pts.shape[0], col_scale)
                tiles = whitened_tiles(
                    pool_pts,
                    self._centers,
                    self.sigma_,
                    self._whiten,
                    tile_bytes=cfg.tile_bytes,
                    method=self.setup_method,
                    inverse=self._whiten_inv,
                )
                for lo, _, z in tiles:
                    self._zpool.assign(lo, z)
            else:
                self._zpool = self._whitened(pool_pts, _DTYPES[cfg.pool_dtype])
            self._sync()
            self.setup_seconds_["pool"] = time.perf_counter() - start

    def _whitened(self, pts: Tensor, out_dtype: torch.dtype | None = None) -> Tensor:
        """Whitened kernel features of ``pts`` (computed in ``dtype``, stored in ``out_dtype``)."""
        return whitened_features(
            pts,
            self._centers,
            self.sigma_,
            self._whiten,
            out_dtype=out_dtype,
            tile_bytes=self.config.tile_bytes,
            method=self.setup_method,
            inverse=self._whiten_inv,
        )

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _choose_strategy(self) -> tuple[str, str]:
        """Resolve ``config.strategy`` (see :class:`ToyConfig`): ``(strategy, reason)``.

        Raises ``ValueError`` if ``"pool"`` is forced and the pool does not fit.
        """
        cfg = self.config
        n_pool = int(self.data_pool_index_.size)
        need = n_pool * cfg.M * _POOL_ITEMSIZE[cfg.pool_dtype]
        if cfg.pool_dtype == "int16":
            need += n_pool * 8  # the row scales
        fits = need <= cfg.pool_memory_bytes
        if cfg.strategy == "stream":
            return "stream", "requested"
        if cfg.strategy == "auto" and cfg.solver != "cg":
            return "stream", f"solver={cfg.solver!r} factorises each toy's matrix"
        size = (
            f"the whitened data pool ({n_pool} x {cfg.M} {cfg.pool_dtype}) needs "
            f"{need / 2**30:.2f} GiB, pool_memory_bytes is {cfg.pool_memory_bytes / 2**30:.2f} GiB"
        )
        if cfg.strategy == "pool":
            if not fits:
                raise ValueError(
                    f"{size}; lower data_pool, use pool_dtype='float32' or 'int16', or "
                    "strategy='stream'"
                )
            return "pool", "requested"
        # Flops per toy: pool ~ 4 N_D M per CG operator pass with the native CPU kernel, else
        # 4 N_pool M (dense GEMMs), _CG_PASSES passes; stream ~ 3 N_D M^2 (whitening solve +
        # Gram of the toy's kernel rows).
        rows = cfg.n_bkg + cfg.n_sig if self._selected_rows_native() else n_pool
        pool_cost = 4.0 * rows * cfg.M * _CG_PASSES[cfg.preconditioner]
        stream_cost = 3.0 * (cfg.n_bkg + cfg.n_sig) * cfg.M**2
        costs = f"~{pool_cost:.2g} (pool) vs ~{stream_cost:.2g} (stream) flops per toy"
        if not fits:
            return "stream", f"{size} (set data_pool or a smaller pool_dtype); {costs}"
        return ("pool" if pool_cost < stream_cost else "stream"), costs

    def _selected_rows_native(self) -> bool:
        """Whether the pool products run on the native row-selection kernel (CPU)."""
        op = "the pool products (pool_backend)"
        backend = resolve_backend(self.config.pool_backend, self.device, op=op, cuda_ok=False)
        return backend == "native"

    # ------------------------------------------------------------------- draws
    def _data_pool(self) -> np.ndarray:
        if self.config.mode == "shared":
            return self.data_pool_index_
        return np.arange(self.background.shape[0])

    def _draw_indices(
        self, hypothesis: int, toy_index: int
    ) -> tuple[np.random.Generator, np.ndarray, np.ndarray, int, int]:
        """``(rng, b_pos, s_idx, N_B, N_S)``: positions in the data pool, signal indices."""
        cfg = self.config
        rng = toy_rng(cfg.seed, hypothesis, toy_index)
        n_b = int(rng.poisson(cfg.n_bkg))
        n_s = int(rng.poisson(cfg.n_sig)) if hypothesis == SIGNAL and cfg.n_sig > 0 else 0
        size = self._data_pool().size
        if n_b > size:
            raise ValueError(f"toy {toy_index}: N_B = {n_b} exceeds the pool ({size})")
        b_pos = rng.choice(size, size=n_b, replace=False)
        s_idx = np.zeros(0, dtype=np.int64)
        if n_s:
            if self.signal is None:
                raise ValueError("signal toys with n_sig > 0 need a signal pool")
            if n_s > self.signal.shape[0]:
                raise ValueError(f"toy {toy_index}: N_S = {n_s} exceeds the signal pool")
            s_idx = rng.choice(self.signal.shape[0], size=n_s, replace=False)
        return rng, b_pos, s_idx, n_b, n_s

    def draw(self, hypothesis: int, toy_index: int) -> tuple[np.random.Generator, Tensor, int, int]:
        """Data of one toy: ``(rng, points, N_B, N_S)``; ``rng`` continues the toy's stream.

        :math:`N_B` background events are drawn without replacement from the data pool
        (``"shared"``: the pool minus the reference, or its ``data_pool`` subset;
        ``"paper"``: the whole pool, the reference being drawn afterwards from what is
        left, see :meth:`run`), then :math:`N_S` signal events without replacement from
        the signal pool.
        """
        rng, points, _, n_b, n_s = self._draw(hypothesis, toy_index)
        return rng, points, n_b, n_s

    def _draw(
        self, hypothesis: int, toy_index: int
    ) -> tuple[np.random.Generator, Tensor, np.ndarray, int, int]:
        """:meth:`draw` plus the background pool indices: ``(rng, points, b_idx, N_B, N_S)``."""
        rng, b_pos, s_idx, n_b, n_s = self._draw_indices(hypothesis, toy_index)
        b_idx = self._data_pool()[b_pos]
        parts = [self.background[torch.from_numpy(b_idx)]]
        if n_s:
            assert self.signal is not None
            parts.append(self.signal[torch.from_numpy(s_idx)])
        return rng, torch.cat(parts), b_idx, n_b, n_s

    # --------------------------------------------------------------------- run
    def block_size(self, hypothesis: int = NULL) -> int:
        """Toys per block that fit ``config.memory_bytes`` (at most ``config.max_block``).

        ``"stream"``: ~4 ``(M, M)`` float64 matrices per toy. ``"pool"``: the toy's row
        list (~12 bytes per drawn event while it is built), on a GPU a one-byte entry per
        data-pool row of the dense selection matrix, the whitened rows of the toy's signal
        events (signal toys) and ~16 float64 ``(M,)`` vectors per toy.
        """
        cfg = self.config
        self.prepare()
        if self.strategy_ == "pool":
            per_toy = 12 * _poisson_upper(cfg.n_bkg) + 16 * cfg.M * 8
            if not self._selected_rows_native():
                per_toy += self.data_pool_index_.size
            if hypothesis == SIGNAL and cfg.n_sig > 0:
                itemsize = _POOL_ITEMSIZE[cfg.pool_dtype]
                per_toy += (_poisson_upper(cfg.n_sig) + 1) * (cfg.M * itemsize + 9)
        else:
            per_toy = 4 * cfg.M**2 * 8
        return max(1, min(int(cfg.max_block), int(cfg.memory_bytes) // per_toy))

    def run(
        self,
        toy_indices: Iterable[int],
        *,
        hypothesis: int = NULL,
        block_seconds: float | None = BLOCK_SECONDS,
    ) -> Iterator[ToyBlock]:
        """Run the given toys, yielding one :class:`ToyBlock` per block.

        Parameters
        ----------
        toy_indices : iterable of int
            Toy ids (each toy's randomness depends only on seed, hypothesis and id).
        hypothesis : {0, 1}
            :data:`NULL` (no signal) or :data:`SIGNAL` (``config.n_sig`` expected).
        block_seconds : float or None
            Target wall time of a block, so that a consumer saving each block (the
            results file) loses at most about this much work when stopped. The first
            block of the engine's first timed run has at most :data:`FIRST_BLOCK` toys;
            each later one (the first of a later run included) as many as the time per
            toy measured on the previous block allows (:func:`next_block_size`: at least
            one, at most :meth:`block_size`).
            ``None``: every block has :meth:`block_size` toys. On a CPU the blocking
            changes no toy's ``t`` (see the module notes).
        """
        if hypothesis not in (NULL, SIGNAL):
            raise ValueError(f"hypothesis must be 0 (null) or 1 (signal); got {hypothesis}")
        if hypothesis == SIGNAL and self.config.n_sig > 0 and self.signal is None:
            raise ValueError("signal toys with n_sig > 0 need a signal pool")
        if block_seconds is not None:
            if isinstance(block_seconds, bool) or not isinstance(block_seconds, (int, float)):
                raise TypeError(
                    f"block_seconds must be a number or None; got {type(block_seconds).__name__}"
                )
            if not (math.isfinite(block_seconds) and block_seconds > 0):
                raise ValueError(f"block_seconds must be finite and > 0; got {block_seconds!r}")
        self.prepare()
        ids = [int(i) for i in toy_indices]
        if any(i < 0 for i in ids):
            raise ValueError("toy indices must be >= 0")
        limit = self.block_size(hypothesis) if self.config.mode == "shared" else 1
        if block_seconds is None:
            size = limit
        elif self._last_block is None:
            size = min(limit, FIRST_BLOCK)
        else:  # an earlier run of this engine measured the time per toy
            size = next_block_size(*self._last_block, block_seconds, limit)
        lo = 0
        while lo < len(ids):
            chunk = ids[lo : lo + size]
            lo += len(chunk)
            t0 = time.perf_counter()
            if self.strategy_ == "pool":
                blk = self._run_pool(chunk, hypothesis)
            elif self.config.mode == "shared":
                blk = self._run_shared(chunk, hypothesis)
            else:
                blk = self._run_paper(chunk[0], hypothesis)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            blk.seconds = time.perf_counter() - t0
            yield blk
            if block_seconds is not None:
                # A run's last block may be short (the toys left): its fixed cost per toy
                # would overstate the time per toy, so a later run sizes from a full block.
                if len(chunk) == size or self._last_block is None:
                    self._last_block = (blk.seconds, len(chunk))
                size = next_block_size(blk.seconds, len(chunk), block_seconds, limit)

    def _run_shared(self, ids: list[int], hypothesis: int) -> ToyBlock:
        if len(ids) == 1 and self.device.type == "cpu":
            # Batched LAPACK/BLAS calls take other paths for one system: pair the toy with
            # itself, so its t is the same as in any larger block.
            blk = self._run_shared(ids * 2, hypothesis)
            for name in ("toy_index", "t", "n_bkg", "n_sig", "n_iter"):
                setattr(blk, name, getattr(blk, name)[:1])
            return blk
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
                    accumulate=torch.float64,
                    method=self.setup_method,
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
            self._precond.init_from_twt(self._twt, cfg.lam, self._precond_points(n_tot))
        beta, n_iter = newton_step(
            self._precond,
            s_mat,
            r_vec,
            beta0,
            cfg.lam,
            solver=cfg.solver,
            cg_tol=cfg.solver_options.resolved_cg_tol,
            max_iter=cfg.cg_max_iter,
        )
        del s_mat
        alpha = row_blocked(self._precond.inv_t, beta)  # (B, M)
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
            extra={"strategy": "stream"},
        )

    def _run_pool(self, ids: list[int], hypothesis: int) -> ToyBlock:
        r"""A block of toys with the data term over the stored whitened pool.

        Toy :math:`b` selects the rows :math:`S_b` of :math:`Z_P`; its data Gram applied to
        :math:`v_b` is :math:`Z_{S_b}^\top Z_{S_b} v_b`, for all toys of the block in one
        call per CG iteration (:func:`~contrastx.ops.selections.selected_gram_matvec`:
        the selected rows only on a CPU, two dense GEMMs on a GPU).
        """
        cfg = self.config
        w, dev = cfg.weight, self.device
        b = len(ids)
        n_b = np.empty(b, dtype=np.int64)
        n_s = np.empty(b, dtype=np.int64)
        bkg_draws, sig_draws = [], []
        for k, i in enumerate(ids):
            _, b_pos, s_idx, n_b[k], n_s[k] = self._draw_indices(hypothesis, i)
            bkg_draws.append(b_pos)
            sig_draws.append(s_idx)
        parts = [(self._zpool, RowSelection.from_lists(bkg_draws, self._zpool.shape[0]))]
        # Rows per GEMM chunk of the dense (GPU) path: large, for fewer launches.
        chunk = 2048 if dev.type == "cpu" else 65536
        if n_s.sum() > 0:
            assert self.signal is not None
            union = np.unique(np.concatenate(sig_draws))
            # In fixed-size row blocks: a signal row does not depend on the block's union.
            # Stored as the pool is (int16: quantised per row, so each row on its own).
            int16 = isinstance(self._zpool, QuantizedRows)
            z_sig = row_blocked(
                lambda pts: self._whitened(pts, None if int16 else self._zpool.dtype),
                self.signal[torch.from_numpy(union)].to(dev),
            )
            if int16:
                z_sig = QuantizedRows.quantize(z_sig, self._zpool.col_scale)
            pos = [np.searchsorted(union, s_idx) for s_idx in sig_draws]
            parts.append((z_sig, RowSelection.from_lists(pos, union.size)))
        n_tot = torch.as_tensor(cfg.n_ref + n_b + n_s, dtype=torch.float64, device=dev)
        beta, n_iter, sum_f_data = pooled_newton_step(
            self._s_ref,
            self._z_ref,
            w,
            parts,
            n_tot,
            self._twt,
            cfg.lam,
            cg_tol=cfg.solver_options.resolved_cg_tol,
            max_iter=cfg.cg_max_iter,
            chunk_rows=chunk,
            twt_eigh=self._twt_eigh,
            backend=self.pool_backend_,
            precond_points=self._precond_points(n_tot),
            arithmetic=self.pool_arithmetic_ or "float64",
        )
        alpha = row_blocked(self._precond.inv_t, beta)
        t = 2.0 * (w * (cfg.n_ref - self._ref_exp_sum(alpha)) + sum_f_data)
        return ToyBlock(
            hypothesis,
            np.asarray(ids, dtype=np.int64),
            t.cpu().numpy(),
            n_b,
            n_s,
            n_iter.cpu().numpy().astype(np.int64),
            extra={"strategy": "pool"},
        )

    def _precond_points(self, n_tot: Tensor) -> Tensor:
        r""":math:`\tilde N_b` of the preconditioner :math:`P_b = \mathrm{twt}/\tilde N_b +
        \lambda I` for toys of :math:`N_b` points (see
        :func:`~contrastx.nplm.solver.pooled_newton_step`)."""
        cfg = self.config
        if cfg.preconditioner == "falkon":
            return n_tot
        return n_tot / average_curvature_factor(n_tot - cfg.n_ref, cfg.n_ref, cfg.weight)

    def _ref_exp_sum(self, alpha: Tensor) -> Tensor:
        r""":math:`\sum_{x\in R} e^{f_b(x)}` for every row of ``alpha`` ``(B, M)``.

        On a CPU in float64 one native pass over the reference per group of up to
        :data:`_EXP_SUM_TOYS` toys (:func:`~contrastx.ops.gaussian.gaussian_kernel_exp_sum`:
        the exponentials summed as they are made, each toy's sum independent of the other
        toys and of the thread count). Elsewhere (GPU, float32, no native kernels) tiles of
        the reference: the kernel tile and one GEMM over the block's columns on a GPU, the
        fused product on a CPU, summed per tile (each toy's sums again independent of the
        others: fixed tiles, row reductions, a lone column paired with a zero column).
        """
        m = self.config.M
        ref = self._ref
        out = torch.zeros(alpha.shape[0], dtype=torch.float64, device=alpha.device)
        if ref.device.type == "cpu" and self.dtype == torch.float64 and _native.cpu_available():
            for c0 in range(0, alpha.shape[0], _EXP_SUM_TOYS):
                a = alpha[c0 : c0 + _EXP_SUM_TOYS].T.contiguous()  # (M, k)
                out[c0 : c0 + a.shape[1]] = gaussian_kernel_exp_sum(
                    ref, self._centers, a, self.sigma_, backend="native", check_finite=False
                )
            return out
        width = max(m, 2)
        step = rows_per_tile(width, ref.element_size(), self.config.tile_bytes)
        for c0 in range(0, alpha.shape[0], width):
            a = alpha[c0 : c0 + width].T.to(self.dtype)  # (M, k)
            k = a.shape[1]
            if k == 1:
                a = torch.cat([a, torch.zeros_like(a)], 1)
            a = a.contiguous()
            for lo in range(0, ref.shape[0], step):
                if ref.device.type == "cpu":
                    f = gaussian_kernel_matvec(ref[lo : lo + step], self._centers, a, self.sigma_)
                else:
                    # On a GPU the kernel tile + one GEMM over the block's columns is faster
                    # than the fused kernel, which re-evaluates K once per chunk of 16 columns.
                    f = gaussian_kernel_tile(ref[lo : lo + step], self._centers, self.sigma_) @ a
                out[c0 : c0 + k] += torch.exp(f.to(torch.float64)).T.contiguous().sum(1)[:k]
        return out

    def _run_paper(self, i: int, hypothesis: int) -> ToyBlock:
        cfg = self.config
        rng, data, b_idx, n_b, n_s = self._draw(hypothesis, i)
        rest = np.ones(self.background.shape[0], dtype=bool)
        rest[b_idx] = False
        rest_idx = np.flatnonzero(rest)
        ref_idx = rest_idx[rng.choice(rest_idx.size, size=cfg.n_ref, replace=False)]
        ref = self.background[torch.from_numpy(ref_idx)]
        fit = NPLMFit(
            self.sigma_,
            options=cfg.solver_options,
            device=self.device,
            random_state=rng,
        ).fit(data, ref, cfg.weight)
        return ToyBlock(
            hypothesis,
            np.array([i], dtype=np.int64),
            np.array([fit.t_]),
            np.array([n_b], dtype=np.int64),
            np.array([n_s], dtype=np.int64),
            np.array([fit.n_iter_[0]], dtype=np.int64),
        )


_CG_PASSES = {"falkon": 28, "average": 6}
"""Operator passes per toy assumed by the strategy choice, by preconditioner (CG
iterations, residual recomputations and the data gradient's pass)."""
