"""NPLM: the New Physics Learning Machine test with a Gaussian-kernel Nystrom model.

* :mod:`~contrastx.nplm.options` -- every setting of a fit and of a toy run, declared
  once (:class:`SolverOptions`, :class:`DeviceOptions`, :class:`ToyOptions`);
* :mod:`~contrastx.nplm.kernel` -- sigma heuristic, centre selection, ``K @ v``;
* :mod:`~contrastx.nplm.solver` -- :class:`NPLMFit` (Falkon's LogisticFalkon step) and
  :func:`nplm_t`;
* :mod:`~contrastx.nplm.toys` -- the batched toy engine (shared-reference and
  paper-exact modes);
* :mod:`~contrastx.nplm.statistics` -- p-values, chi^2 fits, Z, power, Bonferroni;
* :mod:`~contrastx.nplm.results` -- the incremental, resumable HDF5 results file.
"""

from .kernel import kernel_matvec, select_centers, sigma_heuristic
from .options import DeviceOptions, SolverOptions, ToyOptions
from .results import ToyResultsFile, read_toy_results
from .solver import (
    DEFAULT_CG_TOL,
    FalkonPreconditioner,
    NPLMFit,
    falkon_cg,
    newton_step,
    nplm_t,
    pooled_newton_step,
)
from .statistics import (
    bonferroni,
    chi2_z,
    clopper_pearson,
    empirical_p_value,
    fit_chi2_dof,
    median_z,
    nplm_score,
    power,
    z_from_log_p,
    z_from_p,
)
from .toys import NULL, SIGNAL, ToyBlock, ToyConfig, ToyEngine, toy_rng

__all__ = [
    "DEFAULT_CG_TOL",
    "NULL",
    "SIGNAL",
    "DeviceOptions",
    "FalkonPreconditioner",
    "NPLMFit",
    "SolverOptions",
    "ToyBlock",
    "ToyConfig",
    "ToyEngine",
    "ToyOptions",
    "ToyResultsFile",
    "bonferroni",
    "chi2_z",
    "clopper_pearson",
    "empirical_p_value",
    "falkon_cg",
    "fit_chi2_dof",
    "kernel_matvec",
    "median_z",
    "newton_step",
    "nplm_score",
    "nplm_t",
    "pooled_newton_step",
    "power",
    "read_toy_results",
    "select_centers",
    "sigma_heuristic",
    "toy_rng",
    "z_from_log_p",
    "z_from_p",
]
