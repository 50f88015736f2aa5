"""CATHODE: weakly supervised resonant anomaly detection in any feature space.

* :mod:`~contrastx.cathode.regions` -- signal region and sidebands in m
  (:class:`Regions`);
* :mod:`~contrastx.cathode.preprocessing` -- invertible logit + standardisation of the
  flow inputs (:class:`FeatureScaler`);
* :mod:`~contrastx.cathode.flow` -- the conditional flow p(x | m) with CATHODE's epoch
  and flow ensembles (:class:`ConditionalFlow`, :class:`FlowOptions`);
* :mod:`~contrastx.cathode.sampling` -- the SR background template: KDE of m, flow
  samples, hybrid components (:func:`make_template`, :class:`TemplateOptions`).

References
----------
Hallin et al., "Classifying Anomalies THrough Outer Density Estimation (CATHODE)",
arXiv:2109.00546.
"""

# density side (regions, preprocessing, flow, sampling)
from .flow import ConditionalFlow, EarlyStopping, FlowOptions, best_epochs
from .preprocessing import FeatureScaler
from .regions import Regions
from .sampling import MassKDE, TemplateComponent, TemplateOptions, make_template

__all__ = [
    "ConditionalFlow",
    "EarlyStopping",
    "FeatureScaler",
    "FlowOptions",
    "MassKDE",
    "Regions",
    "TemplateComponent",
    "TemplateOptions",
    "best_epochs",
    "make_template",
]
