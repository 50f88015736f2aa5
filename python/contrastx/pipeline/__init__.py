"""End-to-end study pipeline: events -> splits -> embeddings -> NPLM toys -> results.

* :mod:`~contrastx.pipeline.config` -- the TOML study config (:func:`load_config`,
  presets ``default`` and ``paper``);
* :mod:`~contrastx.pipeline.stages` -- the cached, resumable stages (:class:`Pipeline`);
* :mod:`~contrastx.pipeline.results` -- statistics, the Table VI-like table, JSON, figures;
* :mod:`~contrastx.pipeline.report` -- the HTML report.

``contrastx-pipeline`` (:mod:`contrastx.cli.pipeline`) runs a study from a config file.
"""

from .config import PRESETS, EmbeddingSpec, StudyConfig, config_hash, load_config
from .stages import Pipeline, StageResult, read_log

__all__ = [
    "PRESETS",
    "EmbeddingSpec",
    "Pipeline",
    "StageResult",
    "StudyConfig",
    "config_hash",
    "load_config",
    "read_log",
]
