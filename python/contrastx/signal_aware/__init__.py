"""The second paper's study: signal-aware contrastive latent spaces feeding CATHODE.

* :mod:`~contrastx.signal_aware.configurations` -- ID / IP / EP / background-only encoder
  training configurations (:func:`training_configuration`);
* :mod:`~contrastx.signal_aware.datasets` -- encoder half (60/20/20) and pseudo-data half,
  pseudo-data instances with expected yields and signal injections (:func:`split_rows`,
  :func:`draw_instance`);
* :mod:`~contrastx.signal_aware.config` -- the study's TOML config and presets
  (:func:`load_signal_aware_config`);
* :mod:`~contrastx.signal_aware.study` -- the cached, resumable stages
  (:class:`SignalAwareStudy`);
* :mod:`~contrastx.signal_aware.results` -- SIC at working points, ensembles, the
  injection needed for a significance target, the report;
* :mod:`~contrastx.signal_aware.information` -- Appendix A's confusion matrices.

``contrastx-pipeline --preset signal-aware --set events.file=diphoton.h5`` runs it.

References
----------
Li, Nachman, Noll, "Signal-Aware Contrastive Latent Spaces for Anomaly Detection".
"""

from .config import PRESETS, SignalAwareConfig, load_signal_aware_config
from .configurations import (
    CONFIGURATION_KINDS,
    TrainingConfiguration,
    training_configuration,
    training_configurations,
)
from .datasets import PseudoDataInstance, StudySplit, draw_instance, split_rows
from .study import SignalAwareStudy

__all__ = [
    "CONFIGURATION_KINDS",
    "PRESETS",
    "PseudoDataInstance",
    "SignalAwareConfig",
    "SignalAwareStudy",
    "StudySplit",
    "TrainingConfiguration",
    "draw_instance",
    "load_signal_aware_config",
    "split_rows",
    "training_configuration",
    "training_configurations",
]
