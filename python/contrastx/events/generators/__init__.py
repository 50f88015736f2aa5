"""Event generators in the ADC2021 layout.

:mod:`~contrastx.events.generators.fast` is a fast parametric approximation for
tests and quick runs (never physics evidence on its own).
"""

from .fast import FAST_GENERATOR_VERSION, generate_process, generate_sample, mixture_counts

__all__ = ["FAST_GENERATOR_VERSION", "generate_process", "generate_sample", "mixture_counts"]
