"""Event generators.

* :mod:`~contrastx.events.generators.fast`: a fast parametric approximation of the
  ADC2021 layout for tests and quick runs (never physics evidence on its own).
* :mod:`~contrastx.events.generators.pythia`: Pythia 8 + FastJet generation of the
  ADC2021 processes (optional extra ``contrastx[pythia]``; imported lazily, so this
  package imports without it), and the machinery every Pythia dataset shares.
* :mod:`~contrastx.events.generators.diphoton`: the Pythia 8 diphoton benchmark in the
  diphoton layout (same extra).
"""

from .diphoton import DIPHOTON_DATASET, DIPHOTON_PROCESSES, generate_diphoton
from .fast import FAST_GENERATOR_VERSION, generate_process, generate_sample, mixture_counts
from .processes import PROCESS_REGISTRY, ProcessSpec, register_process
from .pythia import (
    generate_black_box,
    generate_cocktail,
    generate_injected,
    generate_pythia,
    shuffle_file,
)
from .reconstruction import RecoSettings

__all__ = [
    "DIPHOTON_DATASET",
    "DIPHOTON_PROCESSES",
    "FAST_GENERATOR_VERSION",
    "PROCESS_REGISTRY",
    "ProcessSpec",
    "RecoSettings",
    "generate_black_box",
    "generate_cocktail",
    "generate_diphoton",
    "generate_injected",
    "generate_process",
    "generate_pythia",
    "generate_sample",
    "mixture_counts",
    "register_process",
    "shuffle_file",
]
