"""Event layouts: which objects an event holds, their features, and what the encoder sees.

An :class:`EventLayout` describes the fixed table every event of a sample fills:

* **object groups** (:class:`ObjectGroup`), each a run of slots of one object type
  (name, short slot label, maximum count, the feature it is ordered by, its |eta|
  acceptance, and whether the encoder sees it);
* **object features** (:class:`ObjectFeature`), the columns of every slot: which are
  logged by the layout-aware preprocessing, which are one-hot type flags, which
  have a physical range;
* **event-level features** (:class:`EventFeature`), one value per event, each either an
  encoder input or an observable kept beside the events (e.g. the resonant m_gammagamma
  of the diphoton layout, which must not reach the encoder).

A layout is immutable, validated when built (:class:`LayoutError` names the bad field),
serialisable (:meth:`EventLayout.to_dict`, :meth:`EventLayout.to_json`,
:meth:`EventLayout.from_dict`, :func:`load_layout` for JSON and TOML files) and has a
stable :attr:`EventLayout.fingerprint`. Event files record the layout they hold.

Built-in layouts (:data:`LAYOUTS`, looked up with :func:`get_layout`):

* :data:`ADC2021` -- the data-challenge layout, 19 slots x ``(pT, eta, phi)``;
* :data:`DIPHOTON` -- the diphoton final state of the second paper, 11 encoder objects
  x 12 features plus the two photons of the diphoton candidate, kept out of the encoder.

**The ADC2021 layout.** Every event is a fixed table of 19 physics objects, each
group ordered by decreasing pT and zero-padded:

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
features and derives the class id from the slot (:data:`SLOT_CLASS_IDS`). The
module constants below (:data:`N_OBJECTS`, :data:`SLOT_CLASS_IDS`, ...) are the
ADC2021 layout's values.

Physical range of the values (checked wherever events enter contrastx, see
:func:`contrastx.events.container.check_particles`), for every layout:

* pT >= 0; a slot with pT = 0 is padding and holds zeros in every feature;
* a group with acceptance 0 (MET) has eta = 0;
* |eta| within the acceptance of its object group (:data:`ELECTRON_ETA_MAX`,
  :data:`MUON_ETA_MAX`, :data:`JET_ETA_MAX` for ADC2021) plus :data:`ETA_TOLERANCE`;
* phi in [-pi, pi], up to :data:`PHI_TOLERANCE` (float32 rounding of pi);
* logged features non-negative, features within their declared range, one-hot type
  columns matching the slot's group, and (where the layout asks for it) each group
  ordered by its ordering feature with padding last.

Process labels follow the paper's side files for the backgrounds
(0 W, 1 QCD, 2 Z, 3 ttbar) and continue with the four ADC2021 signals.

Examples
--------
A layout of one's own, two jets and MET with (pT, eta, phi, mass), one event-level
feature:

>>> from contrastx.events.layout import EventFeature, EventLayout, ObjectFeature, ObjectGroup
>>> mine = EventLayout(
...     name="dijet",
...     groups=(ObjectGroup("jet", "j", 2, eta_max=2.5), ObjectGroup("MET", "MET", 1, eta_max=0)),
...     features=(ObjectFeature("pt", log=True), ObjectFeature("eta"),
...               ObjectFeature("phi"), ObjectFeature("mass", log=True)),
...     event_features=(EventFeature("ht", log=True),),
... )
>>> mine.n_objects, mine.n_features, mine.slot_names
(3, 4, ('j1', 'j2', 'MET'))
>>> EventLayout.from_json(mine.to_json()) == mine
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import IntEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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


# ---------------------------------------------------------------------------- layouts

LAYOUT_FORMAT = "contrastx-layout"
"""The ``format`` key of a serialised layout."""

LAYOUT_VERSION = 1
"""The ``version`` key of a serialised layout; a newer one is refused when read."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LAYOUT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_DISPLAY = {"pt": "pT"}


class LayoutError(ValueError, TypeError):
    """An invalid event layout; the message names the layout and the bad field.

    Derives from both :class:`ValueError` and :class:`TypeError`, like
    :class:`contrastx.options.OptionsError`, so callers that catch either keep working.
    """


def feature_display_name(name: str) -> str:
    """How a feature is written in messages (``"pt"`` -> ``"pT"``)."""
    return _DISPLAY.get(name, name)


def _check_name(value: Any, where: str, pattern: re.Pattern[str] = _NAME_RE) -> str:
    if not isinstance(value, str):
        raise LayoutError(f"{where} must be a string; got {type(value).__name__} {value!r}")
    if not pattern.match(value):
        raise LayoutError(
            f"{where} must be an identifier (letters, digits, '_', not starting with a digit); "
            f"got {value!r}"
        )
    return value


def _check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise LayoutError(f"{where} must be true or false; got {type(value).__name__} {value!r}")
    return value


def _check_float(value: Any, where: str, *, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LayoutError(f"{where} must be a number; got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise LayoutError(f"{where} must be finite; got {value!r}")
    return float(value)


def _check_bounds(low: float | None, high: float | None, where: str) -> None:
    if low is not None and high is not None and not low < high:
        raise LayoutError(f"{where}: low ({low:g}) must be below high ({high:g})")


@dataclass(frozen=True)
class ObjectGroup:
    """A run of ``count`` slots holding objects of one type.

    Parameters
    ----------
    name : str
        The object type (``"electron"``, ``"jet"``, ``"MET"``), used in messages and
        by one-hot type features; an identifier, unique in the layout.
    label : str
        Short slot label: slots are named ``label1 .. labelN`` (just ``label`` when
        ``count`` is 1), e.g. ``e1``, ``j10``, ``MET``; unique in the layout.
    count : int
        Maximum number of objects kept (the leading ones); missing ones are padding.
    eta_max : float or None
        Acceptance: filled objects have ``|eta| < eta_max`` (checked with
        :data:`ETA_TOLERANCE`); ``0`` means eta is always 0 (MET); None: not checked.
        Needs an ``eta`` object feature.
    order_by : str or None
        The object feature the group is sorted by, decreasing (``"pt"``); None when
        the slots have no order.
    encoder : bool
        Whether the encoder sees these objects (False for the diphoton candidate's
        photons, which must not shape the latent space).
    """

    name: str
    label: str
    count: int
    eta_max: float | None = None
    order_by: str | None = "pt"
    encoder: bool = True

    def __post_init__(self) -> None:
        where = f"object group {self.name!r}" if isinstance(self.name, str) else "object group"
        _check_name(self.name, f"{where}: name")
        _check_name(self.label, f"{where}: label")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise LayoutError(f"{where}: count must be a positive integer; got {self.count!r}")
        eta_max = _check_float(self.eta_max, f"{where}: eta_max")
        if eta_max is not None and eta_max < 0:
            raise LayoutError(f"{where}: eta_max must be >= 0 (0: eta is always 0); got {eta_max}")
        object.__setattr__(self, "eta_max", eta_max)
        if self.order_by is not None:
            _check_name(self.order_by, f"{where}: order_by")
        _check_bool(self.encoder, f"{where}: encoder")

    def slot_names(self) -> tuple[str, ...]:
        """Names of the group's slots (``e1 .. e4``; ``MET`` for a single slot)."""
        if self.count == 1:
            return (self.label,)
        return tuple(f"{self.label}{i + 1}" for i in range(self.count))


@dataclass(frozen=True)
class ObjectFeature:
    """One column of every object slot.

    Parameters
    ----------
    name : str
        Identifier, unique among the object features. ``pt`` (required) marks
        padding (pT = 0); ``eta`` and ``phi`` get the acceptance and [-pi, pi] checks.
    log : bool
        The layout-aware preprocessing takes ``log(1 + x)`` before standardising
        (transverse momenta, masses); the values must be non-negative.
    one_hot : str or None
        The object group this column flags: 1 on that group's filled objects and 0
        on every other slot. One-hot columns are not standardised.
    low, high : float or None
        Physical range of the values on filled objects (e.g. a b-tag score in
        [0, 1]); None: unbounded on that side.
    """

    name: str
    log: bool = False
    one_hot: str | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        where = f"object feature {self.name!r}" if isinstance(self.name, str) else "object feature"
        _check_name(self.name, f"{where}: name")
        _check_bool(self.log, f"{where}: log")
        object.__setattr__(self, "low", _check_float(self.low, f"{where}: low"))
        object.__setattr__(self, "high", _check_float(self.high, f"{where}: high"))
        _check_bounds(self.low, self.high, where)
        if self.one_hot is not None:
            _check_name(self.one_hot, f"{where}: one_hot")
            if self.log or self.low is not None or self.high is not None:
                raise LayoutError(
                    f"{where}: a one-hot type column is 0 or 1; it takes no log, low or high"
                )
        if self.log and self.low is not None and self.low < 0:
            raise LayoutError(f"{where}: a logged feature is non-negative; low is {self.low:g}")


@dataclass(frozen=True)
class EventFeature:
    """One value per event (e.g. the jet multiplicity, H_T, m_gammagamma).

    Parameters
    ----------
    name : str
        Identifier, unique among the event features.
    log : bool
        The layout-aware preprocessing takes ``log(1 + x)`` before standardising;
        the values must be non-negative.
    encoder : bool
        Whether the encoder sees it; False keeps an observable beside the events
        (the resonant variable of a bump hunt) without letting it shape the latent space.
    low, high : float or None
        Physical range of the values; None: unbounded on that side.
    """

    name: str
    log: bool = False
    encoder: bool = True
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        where = f"event feature {self.name!r}" if isinstance(self.name, str) else "event feature"
        _check_name(self.name, f"{where}: name")
        _check_bool(self.log, f"{where}: log")
        _check_bool(self.encoder, f"{where}: encoder")
        object.__setattr__(self, "low", _check_float(self.low, f"{where}: low"))
        object.__setattr__(self, "high", _check_float(self.high, f"{where}: high"))
        _check_bounds(self.low, self.high, where)
        if self.log and self.low is not None and self.low < 0:
            raise LayoutError(f"{where}: a logged feature is non-negative; low is {self.low:g}")


def _tuple_of(value: Any, kind: type, where: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise LayoutError(
            f"{where} must be a sequence of {kind.__name__}; got {type(value).__name__}"
        )
    items = tuple(value)
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise LayoutError(
                f"{where}[{i}] must be a {kind.__name__}; got {type(item).__name__} {item!r}"
            )
    return items


def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


@dataclass(frozen=True)
class EventLayout:
    """The object table of every event in a sample: groups, features, encoder inputs.

    Parameters
    ----------
    name : str
        Layout name, recorded in files (``"adc2021"``, ``"diphoton"``).
    groups : sequence of ObjectGroup
        The object groups in slot order.
    features : sequence of ObjectFeature
        The columns of every slot; must include ``pt``.
    event_features : sequence of EventFeature
        Event-level values, stored beside the objects.
    validate_order : bool
        Whether validation checks every group's order (by its ``order_by`` feature,
        decreasing, padding last). The ADC2021 layout reads the published files as
        they are and does not re-check it.
    description : str
        One paragraph for people; not part of the equality or the fingerprint.

    Raises
    ------
    LayoutError
        On any inconsistency; the message names the layout and the field.

    Notes
    -----
    Equality and :func:`hash` compare every field but ``description``;
    :attr:`fingerprint` is a SHA-256 of the canonical JSON of the same fields, stable
    across processes and versions.
    """

    name: str
    groups: tuple[ObjectGroup, ...]
    features: tuple[ObjectFeature, ...]
    event_features: tuple[EventFeature, ...] = ()
    validate_order: bool = True
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "layout name", _LAYOUT_NAME_RE)
        where = f"layout {self.name!r}"
        groups = _tuple_of(self.groups, ObjectGroup, f"{where}: groups")
        features = _tuple_of(self.features, ObjectFeature, f"{where}: features")
        event_features = _tuple_of(self.event_features, EventFeature, f"{where}: event_features")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "event_features", event_features)
        _check_bool(self.validate_order, f"{where}: validate_order")
        if not isinstance(self.description, str):
            raise LayoutError(f"{where}: description must be a string")
        if not groups:
            raise LayoutError(f"{where}: groups must hold at least one object group")
        if not features:
            raise LayoutError(f"{where}: features must hold at least one object feature")
        for what, names in (
            ("group names", [g.name for g in groups]),
            ("group labels", [g.label for g in groups]),
            ("object feature names", [f.name for f in features]),
            ("event feature names", [f.name for f in event_features]),
        ):
            dup = _duplicates(names)
            if dup:
                raise LayoutError(f"{where}: duplicate {what}: {', '.join(dup)}")
        slot_names = [s for g in groups for s in g.slot_names()]
        dup = _duplicates(slot_names)
        if dup:
            raise LayoutError(
                f"{where}: group labels give duplicate slot names {', '.join(dup)}; "
                "choose labels that do not end in a digit of another group's slots"
            )
        feature_names = [f.name for f in features]
        if "pt" not in feature_names:
            raise LayoutError(
                f"{where}: features must include 'pt' (pT = 0 marks a padded slot); "
                f"got {feature_names}"
            )
        group_names = [g.name for g in groups]
        for g in groups:
            if g.order_by is not None and g.order_by not in feature_names:
                raise LayoutError(
                    f"{where}: group {g.name!r} is ordered by {g.order_by!r}, which is not an "
                    f"object feature ({', '.join(feature_names)})"
                )
            if g.eta_max is not None and "eta" not in feature_names:
                raise LayoutError(
                    f"{where}: group {g.name!r} has an eta_max but the layout has no 'eta' feature"
                )
        flagged: dict[str, str] = {}
        for f in features:
            if f.one_hot is None:
                continue
            if f.one_hot not in group_names:
                raise LayoutError(
                    f"{where}: one-hot feature {f.name!r} flags {f.one_hot!r}, which is not an "
                    f"object group ({', '.join(group_names)})"
                )
            if f.one_hot in flagged:
                raise LayoutError(
                    f"{where}: group {f.one_hot!r} is flagged by two one-hot features, "
                    f"{flagged[f.one_hot]!r} and {f.name!r}"
                )
            flagged[f.one_hot] = f.name
        if features[feature_names.index("pt")].one_hot is not None:
            raise LayoutError(f"{where}: 'pt' cannot be a one-hot feature")
        if not any(g.encoder for g in groups):
            raise LayoutError(f"{where}: at least one object group must be an encoder input")

    # ------------------------------------------------------------------ shape
    @property
    def n_objects(self) -> int:
        """Number of object slots per event (every group's count)."""
        return sum(g.count for g in self.groups)

    @property
    def n_features(self) -> int:
        """Number of features per object slot."""
        return len(self.features)

    @property
    def n_event_features(self) -> int:
        """Number of event-level features."""
        return len(self.event_features)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Object feature names in column order."""
        return tuple(f.name for f in self.features)

    @property
    def event_feature_names(self) -> tuple[str, ...]:
        """Event-level feature names in column order."""
        return tuple(f.name for f in self.event_features)

    @cached_property
    def slot_names(self) -> tuple[str, ...]:
        """Name of every slot (``MET``, ``e1`` .. ``e4``, ...)."""
        return tuple(s for g in self.groups for s in g.slot_names())

    @cached_property
    def slot_group(self) -> np.ndarray:
        """Index into :attr:`groups` of every slot, shape (n_objects,), int64."""
        return np.repeat(np.arange(len(self.groups)), [g.count for g in self.groups])

    @cached_property
    def slot_eta_max(self) -> np.ndarray:
        """Acceptance |eta| of every slot (inf where not checked), shape (n_objects,)."""
        limits = [math.inf if g.eta_max is None else g.eta_max for g in self.groups]
        return np.asarray(limits, dtype=np.float64)[self.slot_group]

    def group(self, name: str) -> ObjectGroup:
        """The object group called ``name``."""
        for g in self.groups:
            if g.name == name:
                return g
        raise ValueError(
            f"layout {self.name!r} has no object group {name!r}; its groups: "
            f"{', '.join(g.name for g in self.groups)}"
        )

    def group_slots(self, name: str) -> slice:
        """The slots of the group called ``name`` (e.g. ``slice(1, 5)`` for ADC2021 electrons)."""
        self.group(name)  # clear error for an unknown name
        start = 0
        for g in self.groups:
            if g.name == name:
                return slice(start, start + g.count)
            start += g.count
        raise AssertionError("unreachable")

    def feature_index(self, name: str) -> int:
        """Column of the object feature ``name``."""
        try:
            return self.feature_names.index(name)
        except ValueError:
            raise ValueError(
                f"layout {self.name!r} has no object feature {name!r}; its features: "
                f"{', '.join(self.feature_names)}"
            ) from None

    def event_feature_index(self, name: str) -> int:
        """Column of the event-level feature ``name``."""
        try:
            return self.event_feature_names.index(name)
        except ValueError:
            raise ValueError(
                f"layout {self.name!r} has no event feature {name!r}; its event features: "
                f"{', '.join(self.event_feature_names) or 'none'}"
            ) from None

    # ------------------------------------------------------------------ encoder view
    @cached_property
    def encoder_slots(self) -> np.ndarray:
        """Slots the encoder sees (the groups with ``encoder=True``), int64, in slot order."""
        return np.flatnonzero(np.array([g.encoder for g in self.groups])[self.slot_group])

    @cached_property
    def encoder_event_features(self) -> np.ndarray:
        """Columns of the event-level features the encoder sees, int64."""
        return np.flatnonzero(np.array([f.encoder for f in self.event_features], dtype=bool))

    @cached_property
    def log_features(self) -> np.ndarray:
        """True for the object features the layout-aware preprocessing logs, shape (F,)."""
        return np.array([f.log for f in self.features], dtype=bool)

    @cached_property
    def one_hot_features(self) -> np.ndarray:
        """True for the one-hot type columns, shape (F,)."""
        return np.array([f.one_hot is not None for f in self.features], dtype=bool)

    @cached_property
    def slot_one_hot(self) -> np.ndarray:
        """Expected one-hot columns of a filled object in every slot, (n_objects, n_one_hot).

        Columns follow the one-hot features' order; a group that no column flags has
        zeros.
        """
        flags = [f.one_hot for f in self.features if f.one_hot is not None]
        names = [g.name for g in self.groups]
        table = np.array([[names[gi] == flag for flag in flags] for gi in range(len(names))])
        return table.reshape(len(names), len(flags)).astype(np.float32)[self.slot_group]

    def fill_one_hot(self, particles: np.ndarray) -> np.ndarray:
        """Set the one-hot type columns of ``particles`` (N, n_objects, F) in place.

        Filled slots (pT > 0) get their group's flag, padded slots zeros; for
        generators, which fill the kinematic columns and leave the type to the layout.
        Returns the array.
        """
        pt = particles[..., self.feature_index("pt")]
        cols = np.flatnonzero(self.one_hot_features)
        particles[..., cols] = self.slot_one_hot[None] * (pt > 0)[..., None]
        return particles

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly description (:meth:`from_dict` reads it back)."""
        return {
            "format": LAYOUT_FORMAT,
            "version": LAYOUT_VERSION,
            "name": self.name,
            "description": self.description,
            "validate_order": self.validate_order,
            "groups": [_fields_dict(g) for g in self.groups],
            "features": [_fields_dict(f) for f in self.features],
            "event_features": [_fields_dict(f) for f in self.event_features],
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON (keys sorted; ``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), sort_keys=True, **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "layout") -> EventLayout:
        """Build a layout from :meth:`to_dict` output or a hand-written mapping.

        Only ``name``, ``groups`` and ``features`` are required; ``format`` and
        ``version`` are checked when present. Unknown keys are errors naming the key.

        Parameters
        ----------
        data : mapping
            The description.
        where : str
            What to call it in messages (a file name).

        Raises
        ------
        LayoutError
            On a missing or unknown key, a wrong type or an inconsistent layout.
        """
        if not isinstance(data, Mapping):
            raise LayoutError(f"{where} must be a mapping; got {type(data).__name__}")
        known = {"format", "version", "name", "description", "validate_order", "groups"}
        known |= {"features", "event_features"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LayoutError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: "
                f"{', '.join(sorted(known))}"
            )
        missing = [k for k in ("name", "groups", "features") if k not in data]
        if missing:
            raise LayoutError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
        if "format" in data and data["format"] != LAYOUT_FORMAT:
            raise LayoutError(f"{where}: format is {data['format']!r}, not {LAYOUT_FORMAT!r}")
        version = data.get("version", LAYOUT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise LayoutError(f"{where}: version must be a positive integer; got {version!r}")
        if version > LAYOUT_VERSION:
            raise LayoutError(
                f"{where}: layout version {version} was written by a newer contrastx "
                f"(this one reads up to {LAYOUT_VERSION})"
            )
        where = f"{where} {data['name']!r}" if isinstance(data["name"], str) else where
        return cls(
            name=data["name"],
            groups=_items(ObjectGroup, data["groups"], f"{where}: groups"),
            features=_items(ObjectFeature, data["features"], f"{where}: features"),
            event_features=_items(
                EventFeature, data.get("event_features", []), f"{where}: event_features"
            ),
            validate_order=data.get("validate_order", True),
            description=data.get("description", ""),
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "layout") -> EventLayout:
        """Build a layout from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:
            raise LayoutError(f"{where} is not valid JSON ({err})") from None
        return cls.from_dict(data, where=where)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of every field but ``description``."""
        data = self.to_dict()
        del data["description"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """A short human-readable table of the groups and features."""
        lines = [f"layout {self.name!r}: {self.n_objects} objects x {self.n_features} features"]
        start = 0
        for g in self.groups:
            acc = "" if g.eta_max is None else f", |eta| < {g.eta_max:g}"
            acc = ", eta = 0" if g.eta_max == 0 else acc
            order = "" if g.order_by is None else f", by {feature_display_name(g.order_by)}"
            enc = "" if g.encoder else ", not an encoder input"
            slots = f"slot {start}" if g.count == 1 else f"slots {start}-{start + g.count - 1}"
            lines.append(f"  {slots}: {g.count} x {g.name}{order}{acc}{enc}")
            start += g.count

        def fmt(f: ObjectFeature | EventFeature) -> str:
            tags = ["log"] if f.log else []
            if isinstance(f, ObjectFeature) and f.one_hot is not None:
                tags.append(f"one-hot {f.one_hot}")
            if isinstance(f, EventFeature) and not f.encoder:
                tags.append("not an encoder input")
            return f.name + (f" ({', '.join(tags)})" if tags else "")

        lines.append("  object features: " + ", ".join(fmt(f) for f in self.features))
        if self.event_features:
            lines.append("  event features: " + ", ".join(fmt(f) for f in self.event_features))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EventLayout(name={self.name!r}, n_objects={self.n_objects}, "
            f"n_features={self.n_features}, n_event_features={self.n_event_features})"
        )


def _fields_dict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _items(kind: type, value: Any, where: str) -> tuple[Any, ...]:
    """Build ``kind`` objects from a list of mappings, errors naming the entry and key."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise LayoutError(f"{where} must be a list of tables; got {type(value).__name__}")
    names = {f.name for f in fields(kind)}
    required = {
        f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING
    }
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise LayoutError(f"{where}[{i}] must be a table; got {type(item).__name__}")
        unknown = sorted(set(item) - names)
        if unknown:
            raise LayoutError(
                f"{where}[{i}]: unknown key(s) {', '.join(map(repr, unknown))}; known keys: "
                f"{', '.join(sorted(names))}"
            )
        missing = sorted(required - set(item))
        if missing:
            raise LayoutError(f"{where}[{i}]: missing key(s) {', '.join(map(repr, missing))}")
        try:
            out.append(kind(**item))
        except LayoutError as err:
            raise LayoutError(f"{where}[{i}]: {err}") from None
    return tuple(out)


# ---------------------------------------------------------------------------- built-ins

ADC2021 = EventLayout(
    name="adc2021",
    groups=(
        ObjectGroup("MET", "MET", 1, eta_max=0.0),
        ObjectGroup("electron", "e", N_ELECTRONS, eta_max=ELECTRON_ETA_MAX),
        ObjectGroup("muon", "mu", N_MUONS, eta_max=MUON_ETA_MAX),
        ObjectGroup("jet", "j", N_JETS, eta_max=JET_ETA_MAX),
    ),
    features=(ObjectFeature("pt", log=True), ObjectFeature("eta"), ObjectFeature("phi")),
    validate_order=False,
    description=(
        "The ADC2021 data challenge: MET, 4 electrons, 4 muons, 10 jets, each (pT, eta, phi); "
        "groups pT-ordered and zero-padded."
    ),
)
"""The ADC2021 layout (the module constants above are its values)."""

assert ADC2021.n_objects == N_OBJECTS and ADC2021.feature_names == FEATURES
assert ADC2021.slot_names == SLOT_NAMES
assert np.array_equal(ADC2021.slot_group + 1, SLOT_CLASS_IDS)
assert np.array_equal(ADC2021.slot_eta_max, SLOT_ETA_MAX)
assert ADC2021.group_slots("electron") == ELECTRON_SLOTS
assert ADC2021.group_slots("muon") == MUON_SLOTS and ADC2021.group_slots("jet") == JET_SLOTS

DIPHOTON_JET_ETA_MAX = 4.5
"""Small-R (R = 0.4) jet acceptance of the diphoton layout (ATLAS calorimeter)."""

DIPHOTON_LARGE_R_JET_ETA_MAX = 2.0
"""Large-R (R = 1.0) jet acceptance of the diphoton layout (ATLAS tracker coverage)."""

DIPHOTON_ELECTRON_ETA_MAX = 2.47
"""Electron acceptance of the diphoton layout (ATLAS)."""

DIPHOTON_MUON_ETA_MAX = 2.7
"""Muon acceptance of the diphoton layout (ATLAS muon spectrometer)."""

DIPHOTON_PHOTON_ETA_MAX = 2.37
"""Photon acceptance of the diphoton layout (ATLAS)."""

DIPHOTON = EventLayout(
    name="diphoton",
    groups=(
        ObjectGroup("jet", "j", 4, eta_max=DIPHOTON_JET_ETA_MAX),
        ObjectGroup("large_r_jet", "J", 2, eta_max=DIPHOTON_LARGE_R_JET_ETA_MAX),
        ObjectGroup("electron", "e", 2, eta_max=DIPHOTON_ELECTRON_ETA_MAX),
        ObjectGroup("muon", "mu", 2, eta_max=DIPHOTON_MUON_ETA_MAX),
        ObjectGroup("MET", "MET", 1, eta_max=0.0),
        ObjectGroup("photon", "y", 2, eta_max=DIPHOTON_PHOTON_ETA_MAX, encoder=False),
    ),
    features=(
        ObjectFeature("pt", log=True),
        ObjectFeature("eta"),
        ObjectFeature("phi"),
        ObjectFeature("mass", log=True),
        ObjectFeature("btag", low=0.0, high=1.0),
        ObjectFeature("tau21", low=0.0),
        ObjectFeature("tau32", low=0.0),
        ObjectFeature("is_jet", one_hot="jet"),
        ObjectFeature("is_large_r_jet", one_hot="large_r_jet"),
        ObjectFeature("is_electron", one_hot="electron"),
        ObjectFeature("is_muon", one_hot="muon"),
        ObjectFeature("is_met", one_hot="MET"),
    ),
    event_features=(
        EventFeature("n_jets", low=0.0),
        EventFeature("ht", log=True, low=0.0),
        EventFeature("m_gg", encoder=False, low=0.0),
    ),
    description=(
        "The diphoton final state of Li, Nachman, Noll: 4 small-R jets (R = 0.4), 2 large-R "
        "jets (R = 1.0), 2 electrons, 2 muons and MET, each (pT, eta, phi, mass, b-tag score, "
        "tau21, tau32, five-way one-hot type), zero where a feature does not apply (tau for "
        "leptons); the two photons of the diphoton candidate stored in the same columns but "
        "kept out of the encoder; event level: the small-R jet multiplicity n_jets and H_T "
        "(scalar pT sum of the small-R jets) as encoder inputs, m_gg (GeV) beside them."
    ),
)
"""The second paper's diphoton layout: 11 encoder objects x 12 features, photons apart."""

LAYOUTS: dict[str, EventLayout] = {ADC2021.name: ADC2021, DIPHOTON.name: DIPHOTON}
"""The built-in layouts by name."""


def load_layout(path: str | os.PathLike) -> EventLayout:
    """Read a layout from a JSON (``.json``) or TOML (``.toml``) file.

    The file holds :meth:`EventLayout.to_dict`'s keys; in TOML the groups and features
    are arrays of tables (``[[groups]]``, ``[[features]]``, ``[[event_features]]``).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    LayoutError
        If it cannot be parsed or does not describe a valid layout (the message names
        the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"layout file not found: {path}")
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise LayoutError(f"{path}: not valid TOML ({err})") from None
        return EventLayout.from_dict(data, where=str(path))
    if path.suffix == ".json":
        return EventLayout.from_json(text, where=str(path))
    raise LayoutError(f"{path}: a layout file must end in .json or .toml")


def get_layout(spec: EventLayout | str | os.PathLike | Mapping[str, Any]) -> EventLayout:
    """A layout from a built-in name, a ``.json``/``.toml`` file, a mapping or itself.

    Raises
    ------
    LayoutError
        On an unknown name (the message lists the built-ins) or an invalid description.
    FileNotFoundError
        If a layout file does not exist.
    """
    if isinstance(spec, EventLayout):
        return spec
    if isinstance(spec, Mapping):
        return EventLayout.from_dict(spec)
    if isinstance(spec, os.PathLike) or (
        isinstance(spec, str) and spec.endswith((".json", ".toml"))
    ):
        return load_layout(spec)
    if isinstance(spec, str):
        try:
            return LAYOUTS[spec]
        except KeyError:
            raise LayoutError(
                f"unknown layout {spec!r}; built-in layouts: {', '.join(LAYOUTS)} "
                "(or give a .json/.toml layout file)"
            ) from None
    raise LayoutError(
        f"a layout is an EventLayout, a built-in name, a file or a mapping; got "
        f"{type(spec).__name__}"
    )
