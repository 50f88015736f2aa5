r"""The settings of NPLM fits and toy runs, each declared once.

Three :func:`~contrastx.options.options` classes, one per concern:

* :class:`SolverOptions` -- one NPLM fit: centres, penalty, kernel width, solver and
  precision. Used by :class:`~contrastx.nplm.NPLMFit` and by every toy.
* :class:`DeviceOptions` -- how a toy run uses the machine: memory budgets, block size,
  how the data term is formed and on which backend. None of them changes :math:`t`
  beyond rounding and the CG tolerance, so they are not part of a results file's key.
* :class:`ToyOptions` -- a toy run (:class:`~contrastx.nplm.ToyEngine`): sizes, mode,
  seed, data pool; it embeds the other two, so ``ToyOptions(n_ref=4000, n_bkg=200,
  M=50, strategy="pool")`` and ``cfg.M`` work. :class:`contrastx.nplm.ToyConfig` is
  this class.

The pipeline's ``[nplm]`` table and the ``contrastx-toys`` flags are generated from
these fields (:func:`~contrastx.options.from_mapping`,
:func:`~contrastx.options.add_arguments`); errors name the key (``nplm.M``, ``--M``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from contrastx.ops.nystrom import DEFAULT_TILE_BYTES
from contrastx.options import OptionsError, embedded, key_name, option, options, to_dict

__all__ = ["AVERAGE_CG_TOL", "DEFAULT_CG_TOL", "DeviceOptions", "SolverOptions", "ToyOptions"]

DEFAULT_CG_TOL = math.sqrt(1e-7)
"""Falkon's CG tolerance in the NPLM configuration, :math:`\\sqrt{10^{-7}}`."""
AVERAGE_CG_TOL = 1e-5
"""Default CG tolerance with the ``'average'`` preconditioner, about a thirtieth of Falkon's.

That preconditioner leaves a toy's system close to the identity, so CG gains more than a
decade per iteration: at this tolerance a toy takes 3-4 iterations and its t is within
about 1e-4 of the exact one-step solution, far closer than Falkon's truncated step (one
iteration fewer leaves it about 1e-3 away)."""

_TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


@options(section="nplm")
class SolverOptions:
    """Settings of one NPLM fit (see :class:`contrastx.nplm.NPLMFit`)."""

    M: int = option(
        1000,
        "Number of Nystrom centres (drawn uniformly without replacement unless given).",
        ge=1,
    )
    lam: float = option(1e-6, "Ridge penalty lambda.", gt=0)
    sigma: float | None = option(
        None,
        "Gaussian kernel width; unset: contrastx.nplm.sigma_heuristic on the reference "
        "(a toy run: on its reference draw).",
        gt=0,
    )
    solver: Literal["cg", "exact"] = option(
        "cg",
        "'cg': preconditioned conjugate gradient to cg_tol (with preconditioner='falkon', "
        "Falkon's truncated Newton step); 'exact': Cholesky solve of the same M x M system.",
    )
    preconditioner: Literal["average", "falkon"] = option(
        "average",
        "CG preconditioner. 'average': the system the fit would have if its data were "
        "distributed as the reference (the reference term plus its expected data term), "
        "which differs from a toy's own system by a fluctuation of relative size "
        "~sqrt(M/N_D): a few CG iterations per fit, t closer to the exact step than "
        "Falkon's. 'falkon': Falkon's (K_MM scaled by the curvature at the centres), "
        "reproducing its truncated step and iteration counts.",
    )
    cg_tol: float | None = option(
        None,
        "Absolute tolerance on the preconditioned CG residual; unset: Falkon's sqrt(1e-7) "
        "with preconditioner='falkon', 1e-5 with 'average' (3-4 iterations; t within "
        "~1e-4 of the exact one-step solution).",
        gt=0,
    )
    cg_max_iter: int = option(1000, "Most CG iterations per Newton step.", ge=1)
    pc_epsilon: float | None = option(
        None,
        "Jitter epsilon of K_MM + epsilon M I (part of the model: the penalty is "
        "lambda alpha^T (K_MM + epsilon M I) alpha); unset: Falkon's float64 default 1e-13, "
        "for either dtype.",
        gt=0,
    )
    dtype: Literal["float64", "float32"] = option(
        "float64",
        "Precision of the kernel evaluations (the M x M algebra and the sums across tiles "
        "are float64 always). float32 is accepted only where it is accurate: the whitening "
        "amplifies the float32 rounding of the kernel values by up to the condition number "
        "of K_MM + epsilon M I, so a fit whose condition number exceeds "
        "contrastx.nplm.solver.FLOAT32_MAX_CONDITION (NPLM's usual ~1e12 and more) is refused "
        "with an error; to halve a toy pool's memory at float64 accuracy use "
        "pool_dtype='float32'.",
    )
    tile_bytes: int = option(
        DEFAULT_TILE_BYTES, "Memory budget of one kernel tile, in bytes.", ge=1
    )

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a :class:`torch.dtype`."""
        return _TORCH_DTYPES[self.dtype]

    @property
    def resolved_cg_tol(self) -> float:
        """``cg_tol``, or its default for the preconditioner when unset
        (:data:`DEFAULT_CG_TOL` for ``'falkon'``, :data:`AVERAGE_CG_TOL` for ``'average'``)."""
        if self.cg_tol is not None:
            return self.cg_tol
        return DEFAULT_CG_TOL if self.preconditioner == "falkon" else AVERAGE_CG_TOL


@options(section="nplm")
class DeviceOptions:
    """How a toy run uses the machine (none of these changes t beyond rounding)."""

    memory_bytes: int = option(
        1024 * 2**20,
        "Budget of a block's per-toy working memory, in bytes ('stream': about four "
        "(M, M) float64 matrices per toy; 'pool': the toy's row list, on a GPU one byte "
        "per data-pool row, the signal rows and a few (M,) vectors); sets the toys per "
        "block.",
        ge=1,
    )
    pool_memory_bytes: int = option(
        8 * 2**30,
        "Budget of the stored whitened data pool (N_pool x M x 8, 4 or 2 bytes), in bytes.",
        ge=0,
    )
    max_block: int = option(
        256, "Most toys per block ('pool': larger blocks make wider, faster GEMMs).", ge=1
    )
    strategy: Literal["auto", "pool", "stream"] = option(
        "auto",
        "Shared mode: form each toy's data term over the stored whitened data pool "
        "('pool') or from one whitened Gram per toy ('stream', needed by solver='exact'); "
        "'auto' picks 'pool' for the CG solver when the pool fits pool_memory_bytes and "
        "its estimated flops are lower.",
    )
    reference_cache: str | None = option(
        None,
        "Shared mode: a directory caching the reference system (the K_MM factor and the "
        "reference's whitened Gram and sums), keyed by a hash of the reference points, "
        "the centres, sigma, epsilon and dtype: a later run (or another worker) with the "
        "same inputs loads it instead of recomputing it, with the same t. A stale or "
        "unreadable entry is rebuilt with a warning. Unset: no cache.",
    )
    pool_backend: Literal["auto", "native", "torch"] = option(
        "auto",
        "Products over the stored pool: 'native' is the CPU kernel over each toy's "
        "selected rows, 'torch' dense GEMMs with a 0/1 selection matrix; 'auto' takes the "
        "native kernel on a CPU device when the extension is built.",
    )


@options(section="nplm")
class ToyOptions:
    r"""Settings of a toy run (stored with its results; see :mod:`contrastx.nplm.toys`).

    Every key of :class:`SolverOptions` and :class:`DeviceOptions` is accepted directly
    (``ToyOptions(n_ref=4000, n_bkg=200, M=50, strategy="pool")``) and readable as an
    attribute (``cfg.M``).
    """

    n_ref: int = option(doc="Reference size N_R.", ge=1)
    n_bkg: float = option(
        doc="Expected background N(B) per toy (also sets the weight w = N(B)/N_R).", gt=0
    )
    n_sig: float = option(0.0, "Expected signal N(S) of the signal toys.", ge=0)
    mode: Literal["shared", "paper"] = option(
        "shared",
        "'shared': one reference and one set of centres for the whole run, toys batched; "
        "'paper': every toy re-draws reference and centres and runs a full fit, as the "
        "paper's code does.",
    )
    seed: int = option(
        0, "Master seed: toy i of hypothesis h uses SeedSequence([seed, h, i]).", ge=0
    )
    data_pool: int | None = option(
        None,
        "Shared mode: draw the toys' background from a fixed random subset of this many "
        "non-reference pool events (drawn once from the setup seed); unset: from all of "
        "them. Two toys share a fraction N(B)/data_pool of their events: keep it small.",
        ge=1,
    )
    pool_dtype: Literal["float64", "float32", "int16"] = option(
        "float64",
        "Storage precision of the whitened data pool ('pool'; always computed in dtype "
        "first). float32 halves the memory (t within ~1e-7); int16 (16-bit integers with "
        "float64 scales per row and per whitened column) quarters it (t within ~1e-4). The "
        "native CPU kernel computes float32 and int16 pools' products in float32 (float64 "
        "sums across 128-row chunks; float64 with the falkon preconditioner), the dense "
        "GEMMs of the GPU / torch path in float32 (t moves slightly more, and CG may take a "
        "few more iterations).",
    )
    solver_options: SolverOptions = embedded(SolverOptions, "Settings of every fit.")
    device_options: DeviceOptions = embedded(DeviceOptions, "How the run uses the machine.")

    def _check(self) -> None:
        if self.strategy == "pool" and self.solver != "cg":
            raise OptionsError(
                f"{key_name(self, 'strategy')}='pool' needs {key_name(self, 'solver')}='cg' "
                "(use 'stream' for 'exact')"
            )
        if self.data_pool is not None and self.data_pool < poisson_upper(self.n_bkg):
            raise OptionsError(
                f"{key_name(self, 'data_pool')} = {self.data_pool} is too small for "
                f"Poisson(N(B) = {self.n_bkg}) draws without replacement (need >= "
                f"{poisson_upper(self.n_bkg)})"
            )
        if self.mode == "shared" and self.M > self.n_ref:
            raise OptionsError(
                f"{key_name(self, 'M')} = {self.M} centres cannot be drawn from "
                f"{key_name(self, 'n_ref')} = {self.n_ref}"
            )

    @property
    def weight(self) -> float:
        """:math:`w = N(B)/N_R`."""
        return self.n_bkg / self.n_ref

    def as_dict(self) -> dict[str, Any]:
        """Every setting, flat (:func:`contrastx.options.to_dict`)."""
        return to_dict(self)

    def result_settings(self) -> dict[str, Any]:
        """The settings that determine the toys' :math:`t` (the key of a results file):
        all but :class:`DeviceOptions` and ``tile_bytes``, which change only speed,
        memory and rounding; ``cg_tol`` as the value used
        (:attr:`SolverOptions.resolved_cg_tol`)."""
        out = to_dict(self)
        for key in (*to_dict(self.device_options), "tile_bytes"):
            out.pop(key)
        out["cg_tol"] = self.solver_options.resolved_cg_tol
        return out


def poisson_upper(mu: float) -> int:
    """A generous upper bound of a Poisson(mu) draw (mu + 6 sqrt(mu) + 10)."""
    return math.ceil(mu + 6.0 * math.sqrt(mu) + 10.0)
