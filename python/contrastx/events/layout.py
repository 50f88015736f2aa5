"""The ADC2021 event layout: 19 object slots x (pT, eta, phi).

Every event is a fixed table of 19 physics objects, each group ordered by
decreasing pT and zero-padded:

==========  =======  ========  ==========================
slots       object   class id  note
==========  =======  ========  ==========================
0           MET      1         eta is always 0
1 - 4       electron 2         four leading electrons
5 - 8       muon     3         four leading muons
9 - 18      jet      4         ten leading jets
==========  =======  ========  ==========================

Features are ``(pT [GeV], eta, phi)``. The ADC2021 HDF5 files store a fourth
column with the class id; in memory contrastx keeps only the three kinematic
features and derives the class id from the slot (:data:`SLOT_CLASS_IDS`).

Physical range of the values (checked wherever events enter contrastx, see
:func:`contrastx.events.container.check_particles`):

* pT >= 0; a slot with pT = 0 is padding and holds (0, 0, 0);
* MET has eta = 0;
* |eta| within the acceptance of its object group (:data:`ELECTRON_ETA_MAX`,
  :data:`MUON_ETA_MAX`, :data:`JET_ETA_MAX`, the ADC2021 reconstruction and
  contrastx's generators) plus :data:`ETA_TOLERANCE`;
* phi in [-pi, pi], up to :data:`PHI_TOLERANCE` (float32 rounding of pi).

Process labels follow the paper's side files for the backgrounds
(0 W, 1 QCD, 2 Z, 3 ttbar) and continue with the four ADC2021 signals.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

N_OBJECTS = 19
"""Number of object slots per event."""

FEATURES = ("pt", "eta", "phi")
"""Kinematic features per object, in storage order."""

N_FEATURES = len(FEATURES)
PT, ETA, PHI = 0, 1, 2
"""Feature column indices."""


class ObjectType(IntEnum):
    """Class ids used in the fourth column of ADC2021 ``Particles``."""

    NONE = 0
    MET = 1
    ELECTRON = 2
    MUON = 3
    JET = 4


N_ELECTRONS = 4
N_MUONS = 4
N_JETS = 10

MET_SLOT = 0
ELECTRON_SLOTS = slice(1, 1 + N_ELECTRONS)
MUON_SLOTS = slice(5, 5 + N_MUONS)
JET_SLOTS = slice(9, 9 + N_JETS)

SLOT_CLASS_IDS = np.array(
    [ObjectType.MET]
    + [ObjectType.ELECTRON] * N_ELECTRONS
    + [ObjectType.MUON] * N_MUONS
    + [ObjectType.JET] * N_JETS,
    dtype=np.int64,
)
"""Class id of every slot, shape (19,)."""

SLOT_NAMES = (
    "MET",
    *(f"e{i + 1}" for i in range(N_ELECTRONS)),
    *(f"mu{i + 1}" for i in range(N_MUONS)),
    *(f"j{i + 1}" for i in range(N_JETS)),
)
"""Human-readable name of every slot: MET, e1..e4, mu1..mu4, j1..j10."""

ELECTRON_ETA_MAX = 3.0
"""Electron acceptance, |eta| < 3 (ADC2021 reconstruction)."""

MUON_ETA_MAX = 2.1
"""Muon acceptance, |eta| < 2.1 (ADC2021 reconstruction)."""

JET_ETA_MAX = 4.0
"""Jet acceptance, |eta| < 4 (ADC2021 reconstruction)."""

ETA_TOLERANCE = 0.1
"""Margin added to the acceptance before an |eta| counts as impossible: room for
rounding and for a reconstruction that applies its cut to a slightly different
eta (before smearing, or of the track), while a value from another layout or a
swapped column is still caught."""

PHI_TOLERANCE = 1e-5
"""Margin on |phi| <= pi: covers pi rounded to float32 (pi + 8.7e-8) and wrapping
done in single precision."""

SLOT_ETA_MAX = np.array(
    [0.0] + [ELECTRON_ETA_MAX] * N_ELECTRONS + [MUON_ETA_MAX] * N_MUONS + [JET_ETA_MAX] * N_JETS,
    dtype=np.float64,
)
"""Acceptance |eta| of every slot, shape (19,); 0 for MET, whose eta is always 0."""

assert len(SLOT_NAMES) == N_OBJECTS and SLOT_CLASS_IDS.shape == (N_OBJECTS,)
assert SLOT_ETA_MAX.shape == (N_OBJECTS,)

BACKGROUNDS = ("W", "QCD", "Z", "ttbar")
"""Standard Model background processes, in the label order of the paper's code."""

SIGNALS = ("Ato4l", "LQ_btau", "h0_tautau", "hch_taunu")
"""The four ADC2021 signals: A (50 GeV) -> 4l, LQ (80 GeV) -> b tau,
h0 (60 GeV) -> tau tau, h+- (60 GeV) -> tau nu."""

PROCESSES = BACKGROUNDS + SIGNALS
"""All built-in processes; a process's default label is its index here."""

PROCESS_LABELS = {name: i for i, name in enumerate(PROCESSES)}

ADC2021_MIXTURE = {"W": 0.592, "QCD": 0.338, "Z": 0.067, "ttbar": 0.003}
"""Background fractions of the ADC2021 training file."""

LEPTON_TRIGGER_PT = 23.0
"""ADC2021 selection: at least one electron or muon above this pT (GeV)."""


def process_label(name: str) -> int:
    """Return the built-in label of a process name, with a clear error if unknown."""
    try:
        return PROCESS_LABELS[name]
    except KeyError:
        raise ValueError(
            f"unknown process name {name!r}; known processes: {', '.join(PROCESSES)}"
        ) from None
