"""Events: layouts (ADC2021, diphoton, user-declared), containers, HDF5 I/O, preprocessing,
splits, generators."""

from . import layout
from .container import UNKNOWN_LABEL, Events, check_event_features, check_particles
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
from .layout import (
    ADC2021,
    ADC2021_MIXTURE,
    BACKGROUNDS,
    DIPHOTON,
    LAYOUTS,
    PROCESSES,
    SIGNALS,
    EventFeature,
    EventLayout,
    LayoutError,
    ObjectFeature,
    ObjectGroup,
    get_layout,
    load_layout,
)
from .preprocessing import EncoderInputs, Preprocessor
from .sampler import ClassBalancedBatchSampler
from .splits import Splits, composition_rows, largest_remainder_counts, make_splits

__all__ = [
    "ADC2021",
    "ADC2021_MIXTURE",
    "BACKGROUNDS",
    "DIPHOTON",
    "LAYOUTS",
    "PROCESSES",
    "SIGNALS",
    "UNKNOWN_LABEL",
    "ClassBalancedBatchSampler",
    "EncoderInputs",
    "EventFeature",
    "EventFile",
    "EventLayout",
    "EventWriter",
    "Events",
    "LayoutError",
    "ObjectFeature",
    "ObjectGroup",
    "Preprocessor",
    "Splits",
    "check_event_features",
    "check_particles",
    "composition_rows",
    "get_layout",
    "inject_signal",
    "largest_remainder_counts",
    "layout",
    "load_labels",
    "load_layout",
    "make_splits",
    "n_signal_for_fraction",
    "open_events",
    "open_h5",
    "read_events",
    "write_events",
]
