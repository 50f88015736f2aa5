"""Figures of contrastx results (matplotlib, Agg canvas; no pyplot state, no display).

* :mod:`~contrastx.plots.nplm` -- NPLM toy distributions: null and signal :math:`t`
  histograms with the fitted :math:`\\chi^2`, the median and observed lines and the
  power at 1, 2, 3 sigma (the primary paper's Fig. IV).

matplotlib is imported lazily, when a figure is made.
"""

from .nplm import chi2_density_curve, plot_toy_distributions, save_figure, save_toy_figure

__all__ = ["chi2_density_curve", "plot_toy_distributions", "save_figure", "save_toy_figure"]
