"""Events: the ADC2021 layout, containers, HDF5 I/O, preprocessing, splits, generators."""

from . import layout
from .container import UNKNOWN_LABEL, Events, check_particles
from .injection import inject_signal, n_signal_for_fraction
from .io import (
    EventFile,
    EventWriter,
    load_labels,
    open_events,
    open_h5,
    read_events,
    write_events,
)
from .layout import ADC2021_MIXTURE, BACKGROUNDS, PROCESSES, SIGNALS
from .preprocessing import Preprocessor
from .sampler import ClassBalancedBatchSampler
from .splits import Splits, make_splits

__all__ = [
    "ADC2021_MIXTURE",
    "BACKGROUNDS",
    "PROCESSES",
    "SIGNALS",
    "UNKNOWN_LABEL",
    "ClassBalancedBatchSampler",
    "EventFile",
    "EventWriter",
    "Events",
    "Preprocessor",
    "Splits",
    "check_particles",
    "inject_signal",
    "layout",
    "load_labels",
    "make_splits",
    "n_signal_for_fraction",
    "open_events",
    "open_h5",
    "read_events",
    "write_events",
]
