"""The :class:`Events` container: particles, process labels, weights, metadata."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .layout import (
    ELECTRON_SLOTS,
    ETA,
    ETA_TOLERANCE,
    JET_SLOTS,
    MET_SLOT,
    MUON_SLOTS,
    N_FEATURES,
    N_OBJECTS,
    PHI,
    PHI_TOLERANCE,
    PROCESSES,
    PT,
    SLOT_CLASS_IDS,
    SLOT_ETA_MAX,
    SLOT_NAMES,
    ObjectType,
)

UNKNOWN_LABEL = -1
"""Label of an event whose process is not known (e.g. a black-box event)."""


def check_particles(particles: Any, *, name: str = "particles", first_event: int = 0) -> np.ndarray:
    """Validate an (N, 19, 3) particle array and return it as C-contiguous float32.

    Besides the shape and finiteness, the values must be physically possible
    (see the module docstring of :mod:`contrastx.events.layout`): pT >= 0,
    padded slots (pT = 0) all zero, MET eta = 0, |eta| within the slot group's
    acceptance (:data:`~contrastx.events.layout.SLOT_ETA_MAX` plus
    :data:`~contrastx.events.layout.ETA_TOLERANCE`) and phi in [-pi, pi] (up to
    :data:`~contrastx.events.layout.PHI_TOLERANCE`).

    Parameters
    ----------
    particles : array_like, shape (N, 19, 3)
        ``(pT, eta, phi)`` of every slot.
    name : str
        What to call the array in error messages (e.g. ``"events.h5:Particles"``).
    first_event : int
        Index of the array's first event in its source, so that messages give the
        event's index in the file when a file is checked chunk by chunk.

    Raises
    ------
    ValueError
        On a wrong shape, a NaN/inf entry or a physically impossible value; the
        message names the problem, the first offending event and slot, and the value.
    """
    arr = np.asarray(particles)
    if arr.ndim != 3 or arr.shape[1:] != (N_OBJECTS, N_FEATURES):
        raise ValueError(
            f"{name} must have shape (N, {N_OBJECTS}, {N_FEATURES}) = (events, objects, "
            f"(pT, eta, phi)); got {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at event {bad[0] + first_event}, "
            f"slot {bad[1]}, feature {bad[2]})"
        )
    problem = _first_unphysical(arr)
    if problem is not None:
        raise ValueError(
            f"{name} has {problem[0]} (first at event {problem[1] + first_event}{problem[2]})"
        )
    return arr


_FEATURE_NAMES = ("pT", "eta", "phi")
_IS_MET = np.arange(N_OBJECTS) == MET_SLOT
_ETA_LIMIT = np.where(_IS_MET, 0.0, SLOT_ETA_MAX + ETA_TOLERANCE)
_PHI_LIMIT = np.pi + PHI_TOLERANCE


def _all_physical(arr: np.ndarray) -> bool:
    """Fast test of every rule of :func:`_first_unphysical` (no masks kept)."""
    if arr.size == 0:
        return True
    pt, eta, phi = arr[..., PT], arr[..., ETA], arr[..., PHI]
    if pt.min() < 0 or np.abs(phi).max() > _PHI_LIMIT:
        return False
    if not (np.abs(eta) <= _ETA_LIMIT).all():  # MET's limit 0: its eta is 0
        return False
    padded = pt == 0
    return not ((padded & (eta != 0)).any() or (padded & (phi != 0)).any())


def _first_unphysical(arr: np.ndarray) -> tuple[str, int, str] | None:
    """The physically impossible value that comes first in event order, if any.

    ``arr`` is a finite (N, 19, 3) float32 array. Returns ``(problem, event,
    where)``, ``where`` naming the slot, the value and how many slots share the
    problem, or None when every value is possible.
    """
    if _all_physical(arr):
        return None
    pt, eta, phi = arr[..., PT], arr[..., ETA], arr[..., PHI]
    padded = pt == 0
    # (check, mask of offending slots, feature to show); ties go to the earlier check
    checks = (
        ("pt", pt < 0, PT),
        ("met_eta", _IS_MET & (eta != 0) & ~padded, ETA),
        ("padding", padded & ((eta != 0) | (phi != 0)), ETA),
        ("eta", ~_IS_MET & (np.abs(eta) > _ETA_LIMIT), ETA),
        ("phi", np.abs(phi) > _PHI_LIMIT, PHI),
    )
    found: tuple[str, np.ndarray, int, int] | None = None
    for check, mask, feature in checks:
        flat = mask.reshape(-1)
        if flat.any() and (found is None or int(flat.argmax()) < found[3]):
            found = (check, mask, feature, int(flat.argmax()))
    if found is None:
        return None
    check, mask, feature, pos = found
    event, slot = divmod(pos, N_OBJECTS)
    if check == "padding" and arr[event, slot, ETA] == 0:
        feature = PHI
    group = ObjectType(SLOT_CLASS_IDS[slot]).name.lower()
    problem = {
        "pt": "a negative pT",
        "met_eta": "a non-zero MET eta (MET has eta = 0)",
        "padding": "a padded slot (pT = 0) that is not all zero",
        "eta": f"|eta| beyond the {group} acceptance |eta| < {SLOT_ETA_MAX[slot]:g} "
        f"(tolerance {ETA_TOLERANCE:g})",
        "phi": f"phi outside [-pi, pi] (tolerance {PHI_TOLERANCE:g})",
    }[check]
    count = int(mask.sum())
    also = f"; {count} such slots in all" if count > 1 else ""
    value = float(arr[event, slot, feature])
    where = f", slot {slot} ({SLOT_NAMES[slot]}): {_FEATURE_NAMES[feature]} = {value:.7g}{also}"
    return problem, event, where


@dataclass(eq=False)
class Events:
    """A set of collision events in the ADC2021 layout.

    Parameters
    ----------
    particles : array_like, shape (N, 19, 3)
        ``(pT, eta, phi)`` of every object slot (see :mod:`contrastx.events.layout`),
        stored as float32. Padded slots are all zero.
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

    def __post_init__(self) -> None:
        self.particles = check_particles(self.particles)
        n = self.particles.shape[0]
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
        )

    def __repr__(self) -> str:
        return f"Events(n={len(self)}, counts={self.counts()})"

    @property
    def pt(self) -> np.ndarray:
        """pT of every slot, shape (N, 19)."""
        return self.particles[..., PT]

    @property
    def object_mask(self) -> np.ndarray:
        """True where a slot holds an object (pT > 0), shape (N, 19)."""
        return self.particles[..., PT] > 0

    def multiplicity(self, slots: slice) -> np.ndarray:
        """Number of filled slots in a group (e.g. ``layout.JET_SLOTS``), shape (N,)."""
        return self.object_mask[:, slots].sum(axis=1)

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
        return cls(
            np.concatenate([p.particles for p in parts]),
            labels=np.concatenate(labels),
            process_names=tuple(names),
            weights=np.concatenate([p.weights for p in parts]) if all(has_w) else None,
            event_ids=np.concatenate([p.event_ids for p in parts]) if has_ids else None,
            metadata=parts[0].metadata if metadata is None else metadata,
        )

    # ------------------------------------------------------------------ views
    def adc2021_particles(self) -> np.ndarray:
        """The ADC2021 on-disk array (N, 19, 4): ``(pT, eta, phi, class id)``.

        The class id is set on filled slots (and always on MET, as in ADC2021) and
        0 on padding.
        """
        out = np.zeros((len(self), N_OBJECTS, 4), dtype=np.float32)
        out[..., :3] = self.particles
        filled = self.object_mask.copy()
        filled[:, 0] = True
        out[..., 3] = np.where(filled, SLOT_CLASS_IDS[None, :], 0)
        return out

    def summary(self) -> str:
        """A short human-readable description: counts and mean object multiplicities."""
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
