"""The :class:`Events` container: particles, process labels, weights, metadata."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .layout import (
    ADC2021,
    ELECTRON_SLOTS,
    ETA_TOLERANCE,
    JET_SLOTS,
    MUON_SLOTS,
    N_OBJECTS,
    PHI_TOLERANCE,
    PROCESSES,
    PT,
    SLOT_CLASS_IDS,
    EventLayout,
    feature_display_name,
)

UNKNOWN_LABEL = -1
"""Label of an event whose process is not known (e.g. a black-box event)."""


def _check_layout(layout: Any) -> EventLayout:
    if not isinstance(layout, EventLayout):
        raise TypeError(
            f"layout must be an EventLayout (see contrastx.events.layout.get_layout); got "
            f"{type(layout).__name__}"
        )
    return layout


def _shape_text(layout: EventLayout) -> str:
    names = ", ".join(feature_display_name(f) for f in layout.feature_names)
    return f"(N, {layout.n_objects}, {layout.n_features}) = (events, objects, ({names}))"


def check_particles(
    particles: Any,
    *,
    name: str = "particles",
    first_event: int = 0,
    layout: EventLayout = ADC2021,
) -> np.ndarray:
    """Validate an (N, objects, features) particle array and return it as C-contiguous float32.

    Besides the shape and finiteness, the values must be physically possible for the
    layout (see the module docstring of :mod:`contrastx.events.layout`): pT >= 0,
    padded slots (pT = 0) all zero, eta = 0 in a group with acceptance 0 (MET),
    |eta| within the slot group's acceptance (plus
    :data:`~contrastx.events.layout.ETA_TOLERANCE`), phi in [-pi, pi] (up to
    :data:`~contrastx.events.layout.PHI_TOLERANCE`), logged features non-negative,
    every feature within its declared range, one-hot type columns matching the slot's
    group and, where the layout validates the order, each group sorted by its ordering
    feature (decreasing) with padding last.

    Parameters
    ----------
    particles : array_like, shape (N, n_objects, n_features)
        Every slot's features; ``(pT, eta, phi)`` of 19 slots in the default
        ADC2021 layout.
    name : str
        What to call the array in error messages (e.g. ``"events.h5:Particles"``).
    first_event : int
        Index of the array's first event in its source, so that messages give the
        event's index in the file when a file is checked chunk by chunk.
    layout : EventLayout
        The layout the array is in (default ADC2021).

    Raises
    ------
    ValueError
        On a wrong shape, a NaN/inf entry or a physically impossible value; the
        message names the problem, the first offending event and slot, and the value.
    TypeError
        If ``layout`` is not an :class:`~contrastx.events.layout.EventLayout`.
    """
    rules = _rules(_check_layout(layout))
    arr = np.asarray(particles)
    if arr.ndim != 3 or arr.shape[1:] != (layout.n_objects, layout.n_features):
        raise ValueError(f"{name} must have shape {_shape_text(layout)}; got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if _blocks_valid(arr, rules):
        return arr
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at event {bad[0] + first_event}, "
            f"slot {bad[1]}, feature {bad[2]})"
        )
    problem = _first_unphysical(arr, rules)
    if problem is not None:
        raise ValueError(
            f"{name} has {problem[0]} (first at event {problem[1] + first_event}{problem[2]})"
        )
    return arr


def check_event_features(
    values: Any,
    *,
    layout: EventLayout,
    n_events: int | None = None,
    name: str = "event_features",
    first_event: int = 0,
) -> np.ndarray:
    """Validate an (N, n_event_features) array of event-level features; float32 copy.

    Values must be finite, non-negative for logged features and within every
    feature's declared range.

    Parameters
    ----------
    values : array_like, shape (N, layout.n_event_features)
        One row per event, columns in the layout's event-feature order.
    layout : EventLayout
        The layout the events are in.
    n_events : int, optional
        The number of rows expected (the number of events).
    name, first_event
        As for :func:`check_particles`.

    Raises
    ------
    ValueError
        On a wrong shape, a NaN/inf or an out-of-range value; the message names the
        feature, the first offending event and the value.
    """
    _check_layout(layout)
    arr = np.asarray(values)
    e = layout.n_event_features
    rows = "N" if n_events is None else str(n_events)
    names = ", ".join(layout.event_feature_names)
    if arr.ndim != 2 or arr.shape[1] != e or (n_events is not None and arr.shape[0] != n_events):
        raise ValueError(
            f"{name} must have shape ({rows}, {e}) = (events, ({names})) for layout "
            f"{layout.name!r}; got {arr.shape}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        event, col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at event {event + first_event}, "
            f"{layout.event_features[col].name} = {arr[event, col]})"
        )
    first: tuple[int, int, str] | None = None
    for col, feat in enumerate(layout.event_features):
        low = 0.0 if feat.log and feat.low is None else feat.low
        what = _range_text(feat.name, low, feat.high)
        if what is None:
            continue
        v = arr[:, col]
        bad = np.zeros(v.shape, dtype=bool)
        if low is not None:
            bad |= v < low
        if feat.high is not None:
            bad |= v > feat.high
        if bad.any() and (first is None or int(bad.argmax()) < first[0]):
            first = (int(bad.argmax()), col, what)
    if first is not None:
        event, col, what = first
        raise ValueError(
            f"{name} has {what} (first at event {event + first_event}: "
            f"{layout.event_features[col].name} = {arr[event, col]:.7g})"
        )
    return arr


def _range_text(feature: str, low: float | None, high: float | None) -> str | None:
    shown = feature_display_name(feature)
    if low is None and high is None:
        return None
    if high is None:
        return f"a negative {shown}" if low == 0 else f"{shown} below {low:g}"
    if low is None:
        return f"{shown} above {high:g}"
    return f"{shown} outside [{low:g}, {high:g}]"


@dataclass(frozen=True, eq=False)
class _Rules:
    """The validation rules of one layout, as arrays (built once per layout)."""

    layout: EventLayout
    pt: int
    eta: int | None
    phi: int | None
    zero_eta: np.ndarray  # (n_objects,) slots whose eta is always 0
    eta_limit: np.ndarray  # (n_objects,) |eta| limit with tolerance; 0 where eta is always 0
    bounds: tuple[tuple[int, float | None, float | None, str], ...]  # feature, low, high, text
    one_hot: np.ndarray  # one-hot columns
    order: tuple[tuple[int, int, int], ...]  # group index, first slot, ordering feature


_RULES: dict[EventLayout, _Rules] = {}


def _rules(layout: EventLayout) -> _Rules:
    rules = _RULES.get(layout)
    if rules is not None:
        return rules
    names = layout.feature_names
    zero_eta = layout.slot_eta_max == 0
    bounds = []
    for i, f in enumerate(layout.features):
        if f.name in ("pt", "phi") or f.one_hot is not None:
            continue  # pT and phi have their own checks, one-hot columns theirs
        low = 0.0 if f.log and f.low is None else f.low
        text = _range_text(f.name, low, f.high)
        if text is not None:
            bounds.append((i, low, f.high, text))
    order = []
    if layout.validate_order:
        start = 0
        for gi, g in enumerate(layout.groups):
            if g.order_by is not None and g.count > 1:
                order.append((gi, start, names.index(g.order_by)))
            start += g.count
    rules = _Rules(
        layout=layout,
        pt=names.index("pt"),
        eta=names.index("eta") if "eta" in names else None,
        phi=names.index("phi") if "phi" in names else None,
        zero_eta=zero_eta,
        eta_limit=np.where(zero_eta, 0.0, layout.slot_eta_max + ETA_TOLERANCE),
        bounds=tuple(bounds),
        one_hot=np.flatnonzero(layout.one_hot_features),
        order=tuple(order),
    )
    _RULES[layout] = rules
    return rules


_PHI_LIMIT = np.pi + PHI_TOLERANCE


def _order_masks(arr: np.ndarray, rules: _Rules, filled: np.ndarray) -> list[np.ndarray]:
    """Per ordered group, the (N, n_objects) mask of slots that break the group's order."""
    out = []
    for gi, start, feature in rules.order:
        stop = start + rules.layout.groups[gi].count
        f = filled[:, start:stop]
        v = arr[:, start:stop, feature]
        bad = f[:, 1:] & (~f[:, :-1] | (v[:, :-1] < v[:, 1:]))
        mask = np.zeros(filled.shape, dtype=bool)
        mask[:, start + 1 : stop] = bad
        out.append(mask)
    return out


def _one_hot_mask(arr: np.ndarray, rules: _Rules, filled: np.ndarray) -> np.ndarray:
    expected = rules.layout.slot_one_hot[None] * filled[..., None]
    return arr[..., rules.one_hot] != expected


def _all_physical(arr: np.ndarray, rules: _Rules) -> bool:
    """Fast test of every rule of :func:`_first_unphysical` (no masks kept)."""
    if arr.size == 0:
        return True
    pt = arr[..., rules.pt]
    if pt.min() < 0:
        return False
    if rules.phi is not None and np.abs(arr[..., rules.phi]).max() > _PHI_LIMIT:
        return False
    if rules.eta is not None and not (np.abs(arr[..., rules.eta]) <= rules.eta_limit).all():
        return False  # a limit 0 (MET): its eta is 0
    padded = pt == 0
    for i in range(arr.shape[-1]):
        if i != rules.pt and (padded & (arr[..., i] != 0)).any():
            return False
    if not (rules.bounds or rules.one_hot.size or rules.order):
        return True
    filled = ~padded
    for i, low, high, _ in rules.bounds:
        v = arr[..., i]
        if (low is not None and (v < low).any()) or (high is not None and (v > high).any()):
            return False  # (a padded 0 below a low bound too: the detailed pass decides)
    if rules.one_hot.size and _one_hot_mask(arr, rules, filled).any():
        return False
    return not any(m.any() for m in _order_masks(arr, rules, filled))


_CHECK_BLOCK = 4096
"""Events per block of the fast validation pass (a block's checks run on cached data)."""


def _blocks_valid(arr: np.ndarray, rules: _Rules) -> bool:
    """True when every value is finite and physical, checked block by block.

    One pass over memory instead of one per rule; on False the caller's full checks
    find the first problem and word the message.
    """
    for start in range(0, arr.shape[0], _CHECK_BLOCK):
        block = arr[start : start + _CHECK_BLOCK]
        if not (np.isfinite(block).all() and _all_physical(block, rules)):
            return False
    return True


def _first_unphysical(arr: np.ndarray, rules: _Rules) -> tuple[str, int, str] | None:
    """The physically impossible value that comes first in event order, if any.

    ``arr`` is a finite (N, n_objects, n_features) float32 array. Returns ``(problem,
    event, where)``, ``where`` naming the slot, the value and how many slots share the
    problem, or None when every value is possible.
    """
    if _all_physical(arr, rules):
        return None
    layout = rules.layout
    pt = arr[..., rules.pt]
    padded = pt == 0
    filled = ~padded
    nonzero = arr != 0
    nonzero[..., rules.pt] = False
    # (problem, mask of offending slots, feature to show); ties go to the earlier check
    checks: list[tuple[str, np.ndarray, int | None]] = [("pt", pt < 0, rules.pt)]
    if rules.eta is not None:
        eta = arr[..., rules.eta]
        checks.append(("zero_eta", rules.zero_eta & (eta != 0) & filled, rules.eta))
    checks.append(("padding", padded & nonzero.any(axis=-1), None))
    if rules.eta is not None:
        checks.append(("eta", ~rules.zero_eta & (np.abs(eta) > rules.eta_limit), rules.eta))
    if rules.phi is not None:
        checks.append(("phi", np.abs(arr[..., rules.phi]) > _PHI_LIMIT, rules.phi))
    for i, low, high, text in rules.bounds:
        v = arr[..., i]
        mask = np.zeros(v.shape, dtype=bool)
        if low is not None:
            mask |= v < low
        if high is not None:
            mask |= v > high
        checks.append((f"bound:{text}", mask & filled, i))
    if rules.one_hot.size:
        checks.append(("one_hot", _one_hot_mask(arr, rules, filled).any(axis=-1), None))
    for (gi, _, feature), mask in zip(rules.order, _order_masks(arr, rules, filled)):
        checks.append((f"order:{gi}", mask, feature))
    found: tuple[str, np.ndarray, int | None, int] | None = None
    for check, mask, feature in checks:
        flat = mask.reshape(-1)
        if flat.any() and (found is None or int(flat.argmax()) < found[3]):
            found = (check, mask, feature, int(flat.argmax()))
    if found is None:
        return None
    check, mask, feature, pos = found
    event, slot = divmod(pos, layout.n_objects)
    group = layout.groups[layout.slot_group[slot]]
    if check == "padding":
        feature = int(np.flatnonzero(nonzero[event, slot])[0])
    elif check == "one_hot":
        wrong = _one_hot_mask(arr[event : event + 1], rules, filled[event : event + 1])[0, slot]
        feature = int(rules.one_hot[np.flatnonzero(wrong)[0]])
    if check.startswith("bound:"):
        problem = check.split(":", 1)[1]
    elif check.startswith("order:"):
        by = feature_display_name(layout.feature_names[feature])
        problem = f"{group.name} objects out of order (sorted by decreasing {by}, padding last)"
    elif check == "one_hot":
        flag = [f.name for f in layout.features if f.one_hot == group.name]
        expect = f"{flag[0]} = 1 and the other type columns 0" if flag else "every type column 0"
        problem = (
            f"a one-hot type column that does not match the slot ({group.name} objects have "
            f"{expect})"
        )
    else:
        problem = {
            "pt": "a negative pT",
            "zero_eta": f"a non-zero {group.name} eta ({group.name} has eta = 0)",
            "padding": "a padded slot (pT = 0) that is not all zero",
            "eta": f"|eta| beyond the {group.name} acceptance |eta| < {group.eta_max:g} "
            f"(tolerance {ETA_TOLERANCE:g})",
            "phi": f"phi outside [-pi, pi] (tolerance {PHI_TOLERANCE:g})",
        }[check]
    count = int(mask.sum())
    also = f"; {count} such slots in all" if count > 1 else ""
    assert feature is not None
    value = float(arr[event, slot, feature])
    shown = feature_display_name(layout.feature_names[feature])
    where = f", slot {slot} ({layout.slot_names[slot]}): {shown} = {value:.7g}{also}"
    return problem, event, where


@dataclass(eq=False)
class Events:
    """A set of collision events in one event layout (ADC2021 unless told otherwise).

    Parameters
    ----------
    particles : array_like, shape (N, n_objects, n_features)
        Every object slot's features in the layout's column order, stored as float32
        (``(pT, eta, phi)`` of 19 slots for ADC2021, see
        :mod:`contrastx.events.layout`). Padded slots are all zero.
    labels : array_like of int, shape (N,), optional
        Process label of every event: an index into ``process_names``, or ``-1``
        where the process is unknown. Defaults to all ``-1``.
    process_names : sequence of str, optional
        Name of every label. Defaults to :data:`contrastx.events.layout.PROCESSES`.
    weights : array_like, shape (N,), optional
        Non-negative per-event weights.
    event_ids : array_like of int, shape (N,), optional
        Event identifiers (ADC2021's ``EvtId`` in the black box), kept through
        slicing and concatenation.
    metadata : dict, optional
        Free-form provenance (source file, generator settings, ...). Values should
        be HDF5-attribute friendly (str, numbers, arrays) to survive a round trip.
    layout : EventLayout
        The layout of ``particles`` and ``event_features``; default
        :data:`contrastx.events.layout.ADC2021`.
    event_features : array_like, shape (N, layout.n_event_features), optional
        Event-level features in the layout's order, stored as float32; required when
        the layout has any (an (N, 0) array otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> from contrastx.events import Events
    >>> ev = Events(np.zeros((2, 19, 3)), labels=[0, 2])
    >>> ev.counts()
    {'W': 1, 'Z': 1}
    """

    particles: np.ndarray
    labels: np.ndarray | None = None
    process_names: tuple[str, ...] = PROCESSES
    weights: np.ndarray | None = None
    event_ids: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    layout: EventLayout = ADC2021
    event_features: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_layout(self.layout)
        self.particles = check_particles(self.particles, layout=self.layout)
        n = self.particles.shape[0]
        if self.event_features is None:
            if self.layout.n_event_features:
                raise ValueError(
                    f"layout {self.layout.name!r} has event features "
                    f"({', '.join(self.layout.event_feature_names)}): pass event_features of "
                    f"shape ({n}, {self.layout.n_event_features})"
                )
            self.event_features = np.zeros((n, 0), dtype=np.float32)
        else:
            self.event_features = check_event_features(
                self.event_features, layout=self.layout, n_events=n
            )
        self.process_names = tuple(str(p) for p in self.process_names)
        if len(set(self.process_names)) != len(self.process_names):
            raise ValueError(f"process_names has duplicates: {self.process_names}")
        if self.labels is None:
            self.labels = np.full(n, UNKNOWN_LABEL, dtype=np.int64)
        else:
            labels = np.asarray(self.labels)
            if labels.shape != (n,):
                raise ValueError(
                    f"labels must have shape ({n},) to match particles; got {labels.shape}"
                )
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
            labels = labels.astype(np.int64)
            if labels.size and (
                labels.min() < UNKNOWN_LABEL or labels.max() >= len(self.process_names)
            ):
                raise ValueError(
                    f"labels must lie in [-1, {len(self.process_names) - 1}] "
                    f"(indices into process_names); got range [{labels.min()}, {labels.max()}]"
                )
            self.labels = labels
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (n,):
                raise ValueError(f"weights must have shape ({n},); got {w.shape}")
            if not np.isfinite(w).all() or (w < 0).any():
                raise ValueError("weights must be finite and non-negative")
            self.weights = w
        if self.event_ids is not None:
            ids = np.asarray(self.event_ids)
            if ids.shape != (n,) or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
                raise ValueError(
                    f"event_ids must be integers of shape ({n},); got {ids.dtype} {ids.shape}"
                )
            self.event_ids = ids.astype(np.int64)
        self.metadata = dict(self.metadata)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.particles.shape[0])

    def __getitem__(self, index: Any) -> Events:
        """Subset by slice, integer array or boolean mask (always returns :class:`Events`)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        return Events(
            self.particles[index],
            labels=self.labels[index],
            process_names=self.process_names,
            weights=None if self.weights is None else self.weights[index],
            event_ids=None if self.event_ids is None else self.event_ids[index],
            metadata=self.metadata,
            layout=self.layout,
            event_features=self.event_features[index],
        )

    def __repr__(self) -> str:
        where = "" if self.layout == ADC2021 else f"layout={self.layout.name!r}, "
        return f"Events({where}n={len(self)}, counts={self.counts()})"

    @property
    def pt(self) -> np.ndarray:
        """pT of every slot, shape (N, n_objects)."""
        return self.particles[..., self.layout.feature_index("pt")]

    @property
    def object_mask(self) -> np.ndarray:
        """True where a slot holds an object (pT > 0), shape (N, n_objects)."""
        return self.pt > 0

    def multiplicity(self, slots: slice | str) -> np.ndarray:
        """Number of filled slots in a group, shape (N,).

        ``slots`` is a slot range (``layout.JET_SLOTS``) or a group name (``"jet"``).
        """
        if isinstance(slots, str):
            slots = self.layout.group_slots(slots)
        return self.object_mask[:, slots].sum(axis=1)

    def feature(self, name: str) -> np.ndarray:
        """One object feature of every slot, shape (N, n_objects) (a view)."""
        return self.particles[..., self.layout.feature_index(name)]

    def event_feature(self, name: str) -> np.ndarray:
        """One event-level feature, shape (N,) (a view), e.g. ``"m_gg"``."""
        assert self.event_features is not None
        return self.event_features[:, self.layout.event_feature_index(name)]

    # ------------------------------------------------------------------ labels
    def label_of(self, process: str) -> int:
        """Label used for ``process`` in this container."""
        try:
            return self.process_names.index(process)
        except ValueError:
            raise ValueError(
                f"unknown process name {process!r}; this sample knows {list(self.process_names)}"
            ) from None

    def counts(self) -> dict[str, int]:
        """Number of events per process name (``'unknown'`` for label -1), non-zero only."""
        out: dict[str, int] = {}
        values, numbers = np.unique(self.labels, return_counts=True)
        for v, c in zip(values, numbers):
            out["unknown" if v == UNKNOWN_LABEL else self.process_names[v]] = int(c)
        return out

    def select(self, processes: str | Iterable[str]) -> Events:
        """Events of the named process(es).

        Raises
        ------
        ValueError
            If a name is unknown or the selection is empty.
        """
        names = [processes] if isinstance(processes, str) else list(processes)
        if not names:
            raise ValueError("select() needs at least one process name")
        wanted = [self.label_of(p) for p in names]
        mask = np.isin(self.labels, wanted)
        if not mask.any():
            raise ValueError(
                f"empty selection: no events of {names} in a sample with {self.counts()}"
            )
        return self[mask]

    # ------------------------------------------------------------------ combine
    @classmethod
    def concatenate(cls, parts: Sequence[Events], metadata: dict[str, Any] | None = None) -> Events:
        """Join several samples; labels are re-mapped onto the union of process names."""
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate() needs at least one Events")
        names: list[str] = []
        for p in parts:
            names.extend(n for n in p.process_names if n not in names)
        labels = []
        for p in parts:
            lut = np.array(
                [names.index(n) for n in p.process_names] + [UNKNOWN_LABEL], dtype=np.int64
            )
            labels.append(lut[p.labels])  # label -1 picks the trailing UNKNOWN entry
        has_w = [p.weights is not None for p in parts]
        if any(has_w) and not all(has_w):
            raise ValueError("cannot concatenate weighted and unweighted samples")
        has_ids = all(p.event_ids is not None for p in parts)
        layouts = {p.layout for p in parts}
        if len(layouts) > 1:
            raise ValueError(
                "cannot concatenate events of different layouts: "
                f"{', '.join(sorted(repr(lay.name) for lay in layouts))}"
            )
        return cls(
            np.concatenate([p.particles for p in parts]),
            labels=np.concatenate(labels),
            process_names=tuple(names),
            weights=np.concatenate([p.weights for p in parts]) if all(has_w) else None,
            event_ids=np.concatenate([p.event_ids for p in parts]) if has_ids else None,
            metadata=parts[0].metadata if metadata is None else metadata,
            layout=parts[0].layout,
            event_features=np.concatenate([p.event_features for p in parts]),
        )

    # ------------------------------------------------------------------ views
    def adc2021_particles(self) -> np.ndarray:
        """The ADC2021 on-disk array (N, 19, 4): ``(pT, eta, phi, class id)``.

        The class id is set on filled slots (and always on MET, as in ADC2021) and
        0 on padding.

        Raises
        ------
        ValueError
            If the events are not in the ADC2021 layout.
        """
        if self.layout != ADC2021:
            raise ValueError(
                f"adc2021_particles() needs events in the ADC2021 layout; these are in "
                f"layout {self.layout.name!r}"
            )
        out = np.zeros((len(self), N_OBJECTS, 4), dtype=np.float32)
        out[..., :3] = self.particles
        filled = self.object_mask.copy()
        filled[:, 0] = True
        out[..., 3] = np.where(filled, SLOT_CLASS_IDS[None, :], 0)
        return out

    def summary(self) -> str:
        """A short human-readable description: counts and mean object multiplicities."""
        if self.layout != ADC2021:
            return self._layout_summary()
        lines = [f"{len(self)} events"]
        for name, n in self.counts().items():
            sub = self.labels == (UNKNOWN_LABEL if name == "unknown" else self.label_of(name))
            ne = self.multiplicity(ELECTRON_SLOTS)[sub].mean()
            nm = self.multiplicity(MUON_SLOTS)[sub].mean()
            nj = self.multiplicity(JET_SLOTS)[sub].mean()
            met = self.particles[sub, 0, PT].mean()
            lines.append(
                f"  {name:>10s}: {n:9d} ({n / max(len(self), 1):6.2%})  <n_e>={ne:.2f} "
                f"<n_mu>={nm:.2f} <n_jet>={nj:.2f} <MET>={met:.1f} GeV"
            )
        return "\n".join(lines)

    def _layout_summary(self) -> str:
        lines = [f"{len(self)} events in layout {self.layout.name!r}"]
        for name, n in self.counts().items():
            sub = self.labels == (UNKNOWN_LABEL if name == "unknown" else self.label_of(name))
            parts = []
            for g in self.layout.groups:
                if g.count == 1:
                    pt = self.pt[sub, self.layout.group_slots(g.name).start].mean()
                    parts.append(f"<{g.label} pT>={pt:.1f} GeV")
                else:
                    parts.append(f"<n_{g.label}>={self.multiplicity(g.name)[sub].mean():.2f}")
            lines.append(
                f"  {name:>10s}: {n:9d} ({n / max(len(self), 1):6.2%})  " + " ".join(parts)
            )
        return "\n".join(lines)
