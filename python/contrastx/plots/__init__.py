"""Figures of contrastx results (matplotlib, Agg canvas; no pyplot state, no display).

* :mod:`~contrastx.plots.nplm` -- NPLM toy distributions: null and signal :math:`t`
  histograms with the fitted :math:`\\chi^2`, the median and observed lines and the
  power at 1, 2, 3 sigma (the primary paper's Fig. IV).
* :mod:`~contrastx.plots.signal_aware` -- the signal-aware study (the second paper): SIC
  against injection per configuration, the injection needed for a significance, and
  confusion matrices (Figs. 4-8).

matplotlib is imported lazily, when a figure is made.
"""

from .nplm import chi2_density_curve, plot_toy_distributions, save_figure, save_toy_figure
from .signal_aware import plot_confusion_matrices, plot_injection_summary, plot_sic_vs_injection

__all__ = [
    "chi2_density_curve",
    "plot_confusion_matrices",
    "plot_injection_summary",
    "plot_sic_vs_injection",
    "plot_toy_distributions",
    "save_figure",
    "save_toy_figure",
]
