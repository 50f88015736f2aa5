"""CATHODE: weakly supervised resonant anomaly detection in any feature space.

* :mod:`~contrastx.cathode.regions` -- signal region and sidebands in m
  (:class:`Regions`);
* :mod:`~contrastx.cathode.preprocessing` -- invertible logit + standardisation of the
  flow inputs (:class:`FeatureScaler`);
* :mod:`~contrastx.cathode.flow` -- the conditional flow p(x | m) with CATHODE's epoch
  and flow ensembles (:class:`ConditionalFlow`, :class:`FlowOptions`);
* :mod:`~contrastx.cathode.sampling` -- the SR background template: KDE of m, flow
  samples, hybrid components (:func:`make_template`, :class:`TemplateOptions`);
* :mod:`~contrastx.cathode.classifier` -- the k-fold, ensembled CWoLa classifier
  (:class:`CWoLaClassifier`, :class:`ClassifierOptions`);
* :mod:`~contrastx.cathode.metrics` -- ROC, SIC, max SIC, AUC with its uncertainty;
* :mod:`~contrastx.cathode.sculpting` -- template-vs-background AUC and m-spectrum checks;
* :mod:`~contrastx.cathode.search` -- the whole method and its baselines
  (:class:`Cathode`, :class:`CathodeOptions`, :func:`idealized_template`,
  :func:`supervised_classifier`).

References
----------
Hallin et al., "Classifying Anomalies THrough Outer Density Estimation (CATHODE)",
arXiv:2109.00546.
"""

# density side (regions, preprocessing, flow, sampling)
from .flow import FLOW_PRESETS, ConditionalFlow, EarlyStopping, FlowOptions, best_epochs
from .preprocessing import FeatureScaler
from .regions import Regions
from .sampling import MassKDE, TemplateComponent, TemplateOptions, make_template

__all__ = [
    "FLOW_PRESETS",
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

# classification side (classifier, metrics, sculpting, search)
from .classifier import ClassifierOptions, CWoLaClassifier
from .metrics import (
    auc_with_uncertainty,
    classification_metrics,
    max_sic,
    post_selection_significance,
    roc_curve,
    sic_curve,
    significance_improvement,
)
from .sculpting import mass_sculpting, sculpting_test, spectrum_check
from .search import (
    Cathode,
    CathodeOptions,
    Template,
    evaluate_classifier,
    idealized_template,
    supervised_classifier,
)

__all__ += [
    "CWoLaClassifier",
    "Cathode",
    "CathodeOptions",
    "ClassifierOptions",
    "Template",
    "auc_with_uncertainty",
    "classification_metrics",
    "evaluate_classifier",
    "idealized_template",
    "mass_sculpting",
    "max_sic",
    "post_selection_significance",
    "roc_curve",
    "sculpting_test",
    "sic_curve",
    "significance_improvement",
    "spectrum_check",
    "supervised_classifier",
]
