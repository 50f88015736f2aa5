"""HDF5 input and output: ADC2021 files and contrastx's own event files.

Two on-disk formats are read, both through :func:`open_events`:

* **ADC2021** (the data-challenge files): dataset ``Particles`` of shape
  (N, 19, 4) with columns ``(pT, eta, phi, class id)``, plus ``Particles_Classes``
  and ``Particles_Names`` (descriptions) and, in the black box, ``EvtId``. The
  public files carry no process labels: pass ``process=`` (one process for the
  whole file, e.g. a signal file) or ``labels=`` (a side file or an array).
* **contrastx** files: a superset that keeps ``Particles`` exactly as ADC2021 has
  it (so ADC2021 tools read them) and adds ``labels`` (int64, with the attribute
  ``process_names``), optional ``weights`` and ``EvtId``, and the root attributes
  ``format = "contrastx-events"``, ``format_version``, ``metadata`` (JSON) and
  ``layout`` (the :class:`~contrastx.events.layout.EventLayout` as JSON).

**Layouts.** A file's layout is its root attribute ``layout``; a file without one
(every ADC2021 file, contrastx files written before layouts existed) is in the
ADC2021 layout, unless the reader is told another (``layout=``). Events in the
ADC2021 layout are written as above, ``Particles`` (N, 19, 4) with the class column.
Events in any other layout are written as ``Particles`` (N, n_objects, n_features),
the layout's columns in its order (``Particles_Names`` lists them), and, when the
layout has event-level features, ``event_features`` (N, n_event_features), float32.

Reading streams: :class:`EventFile` reads any slice ``[start, stop)`` and
iterates in chunks, so a file larger than memory can be processed piece by piece.
:class:`EventWriter` appends chunk by chunk, so long generation jobs write
incrementally and can resume.

Every HDF5 file contrastx opens goes through :func:`open_h5`, whose errors name
the file and the problem (missing, not HDF5, truncated or corrupted, locked by
another run).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from .container import UNKNOWN_LABEL, Events, check_event_features, check_particles
from .layout import ADC2021, N_FEATURES, N_OBJECTS, PROCESSES, EventLayout, LayoutError

if TYPE_CHECKING:
    from typing_extensions import Self

FORMAT_NAME = "contrastx-events"
FORMAT_VERSION = 1

PARTICLES_KEY = "Particles"
CLASSES_KEY = "Particles_Classes"
NAMES_KEY = "Particles_Names"
EVTID_KEY = "EvtId"
LABELS_KEY = "labels"
WEIGHTS_KEY = "weights"
EVENT_FEATURES_KEY = "event_features"
LAYOUT_ATTR = "layout"

ADC2021_CLASSES = (b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4")
ADC2021_NAMES = (b"Pt", b"Eta", b"Phi", b"Class")

DEFAULT_CHUNK = 65_536

PathLike = str | os.PathLike


def _missing_key(path: Path, key: str, f: h5py.File) -> ValueError:
    return ValueError(
        f"{path}: no dataset {key!r} in this HDF5 file (top-level keys: {sorted(f.keys())}); "
        "expected an ADC2021 or contrastx event file"
    )


_H5_MODES = ("r", "r+", "a", "w", "x")
_LOCK_TEXT = "unable to lock file"


def _hdf5_reason(err: BaseException) -> str:
    """HDF5's own reason, without h5py's "Unable to synchronously open file (...)" wrapper."""
    text = str(err)
    match = re.search(r"\((.*)\)\s*$", text)
    return match.group(1) if match else text


def _is_lock_error(err: BaseException) -> bool:
    return _LOCK_TEXT in str(err).lower()


def _locked(path: Path, what: str) -> BlockingIOError:
    return BlockingIOError(
        f"{path}: the {what} is locked: another run is writing it, or it is open in another "
        "program; wait for that to finish or use another file"
    )


def open_h5(path: PathLike, mode: str = "r", *, what: str = "HDF5 file") -> h5py.File:
    """Open an HDF5 file with errors that name the file and the problem.

    Parameters
    ----------
    path : str or PathLike
        The file.
    mode : {"r", "r+", "a", "w", "x"}
        As for :class:`h5py.File`: read, read/write an existing file, read/write or
        create, create or truncate, create but refuse an existing file. Before
        truncating (``"w"``), the file is checked not to be held by another process:
        HDF5 truncates a file before it tries to lock it, so a second run writing the
        same output would otherwise wipe the first run's file and only then fail.
    what : str
        What the file is, for messages (``"event file"``, ``"embedding file"``).

    Returns
    -------
    h5py.File

    Raises
    ------
    FileNotFoundError
        If the file is opened for reading (``"r"``, ``"r+"``) and does not exist.
    FileExistsError
        If ``mode="x"`` and the file exists.
    BlockingIOError
        If another process holds the file (HDF5 file locking): another run writes it,
        or a program has it open. A subclass of :class:`OSError`.
    OSError
        If the file is not HDF5, truncated or corrupted, or cannot be created; the
        message gives HDF5's reason.
    ValueError
        On an unknown ``mode``.
    """
    if mode not in _H5_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _H5_MODES))}; got {mode!r}")
    path = Path(path)
    exists = path.exists()
    if mode in ("r", "r+") and not exists:
        raise FileNotFoundError(f"{what} not found: {path}")
    if mode == "x" and exists:
        raise FileExistsError(f"{path} exists; refusing to overwrite the {what}")
    if mode == "w" and exists:
        try:
            h5py.File(path, "r+").close()  # takes the write lock without truncating
        except OSError as err:
            if _is_lock_error(err):
                raise _locked(path, what) from err
            # not HDF5 or corrupted: truncating it is what "w" asks for
    try:
        return h5py.File(path, mode)
    except OSError as err:
        if _is_lock_error(err):
            raise _locked(path, what) from err
        reason = _hdf5_reason(err)
        if mode in ("r", "r+") or (mode == "a" and exists):
            if "signature not found" in reason:
                reason = "no HDF5 signature: another format, or the start of the file is damaged"
            elif "truncated file" in reason:
                reason = f"truncated, e.g. by an interrupted write or copy ({reason})"
            raise OSError(f"{path}: not a readable HDF5 {what}: {reason}") from err
        raise OSError(f"{path}: cannot create the {what}: {reason}") from err


def _read(path: Path, ds: h5py.Dataset, rows: slice | None = None) -> np.ndarray:
    """A dataset (or its ``rows``); an HDF5 read error names the file, dataset and rows."""
    try:
        return ds[()] if rows is None else ds[rows]
    except OSError as err:
        where = "" if rows is None else f"rows {rows.start}..{rows.stop} of "
        raise OSError(
            f"{path}: cannot read {where}dataset {ds.name.lstrip('/')!r}: "
            f"{_hdf5_reason(err)} (the file is corrupted or truncated)"
        ) from err


def _json_attr(path: Path, f: h5py.File, key: str) -> Any:
    try:
        return json.loads(f.attrs.get(key, "{}"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: root attribute {key!r} is not valid JSON ({err})") from None


def _process_names(path: Path, f: h5py.File) -> tuple[str, ...]:
    try:
        return tuple(str(p) for p in f[LABELS_KEY].attrs["process_names"])
    except KeyError:
        raise ValueError(
            f"{path}: dataset {LABELS_KEY!r} has no 'process_names' attribute"
        ) from None


def _file_layout(path: Path, f: h5py.File) -> EventLayout | None:
    """The layout recorded in a file's root attribute, or None when it records none."""
    text = f.attrs.get(LAYOUT_ATTR)
    if text is None:
        return None
    try:
        return EventLayout.from_json(text, where=f"root attribute {LAYOUT_ATTR!r}")
    except LayoutError as err:
        raise ValueError(f"{path}: {err}") from None


def _layout_mismatch(path: Path, found: EventLayout, expected: EventLayout) -> ValueError:
    detail = (
        f" (same name, different content: fingerprints {found.fingerprint[:12]} and "
        f"{expected.fingerprint[:12]})"
        if found.name == expected.name
        else ""
    )
    return ValueError(
        f"{path} holds events in layout {found.name!r}, not the expected {expected.name!r}{detail}"
    )


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def metadata_to_json(metadata: dict[str, Any]) -> str:
    """Serialise metadata for an HDF5 attribute (numpy values become lists/scalars)."""
    return json.dumps(_to_jsonable(metadata), sort_keys=True)


def _npz_labels(path: Path, key: str) -> np.ndarray:
    """The label array of an ``.npz`` file: the one it holds, or the one named ``key``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if key in names:
                return z[key]
            if len(names) == 1:
                return z[names[0]]
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a readable .npz label file ({err})") from None
    raise ValueError(
        f"{path}: a label .npz must hold one array or one named {key!r}; it holds "
        f"{len(names)}: {', '.join(names) or 'none'}"
    )


def load_labels(
    source: PathLike | np.ndarray | Sequence[int], *, key: str = LABELS_KEY
) -> np.ndarray:
    """Per-event process labels from an array, a ``.npy`` or ``.npz`` file, or HDF5.

    The paper's code kept background labels in side files (0 W, 1 QCD, 2 Z,
    3 ttbar), the label order of :data:`contrastx.events.layout.PROCESSES`. An ``.npz``
    file (the ADC2021 release's ``background_IDs.npz`` style) must hold one array, or
    one named ``key``; an HDF5 file the dataset ``key``. Errors name the file.
    """
    where = ""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        where = f"{path}: "
        if not path.exists():
            raise FileNotFoundError(f"label side file not found: {path}")
        if path.suffix == ".npy":
            try:
                arr = np.load(path)
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: not a readable .npy label file ({err})") from None
        elif path.suffix == ".npz":
            arr = _npz_labels(path, key)
        else:
            with open_h5(path, "r", what="label side file") as f:
                if key not in f:
                    raise _missing_key(path, key, f)
                arr = _read(path, f[key])
    else:
        arr = np.asarray(source)
    arr = np.asarray(arr).reshape(-1) if np.ndim(arr) == 2 and min(np.shape(arr)) == 1 else arr
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        if arr.ndim == 1 and np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise ValueError(
            f"{where}labels must be a 1-D integer array; got {arr.dtype} of shape {arr.shape}"
        )
    return arr.astype(np.int64)


class _HDF5Handle:
    """Context-manager protocol shared by the reader and the writer (owns ``self._file``)."""

    _file: h5py.File

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the HDF5 file (idempotent)."""
        if self._file.id.valid:
            self._file.close()


class EventFile(_HDF5Handle):
    """A read-only, streaming view of an ADC2021 or contrastx HDF5 event file.

    Parameters
    ----------
    path : str or PathLike
        The HDF5 file.
    process : str, optional
        Label every event with this process (for an unlabelled ADC2021 file of a
        single process, e.g. a signal file). Must be one of ``process_names``.
    labels : array or path, optional
        Per-event labels for an ADC2021 file (see :func:`load_labels`); indices
        into ``process_names``.
    process_names : sequence of str, optional
        Names for ADC2021 labels; default :data:`~contrastx.events.layout.PROCESSES`.
    allow_empty : bool
        Accept a file that holds no events (default; e.g. an output being written).
        With False an empty file raises ValueError, for inputs that must have events.
    layout : EventLayout, optional
        The layout expected. A file that records its layout must record this one;
        a file that records none (an ADC2021 file, an older contrastx file, a file
        from another tool) is read in this layout. Default: the file's own layout,
        ADC2021 when it records none.

    Attributes
    ----------
    layout : EventLayout
        The layout of the file's events.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    OSError
        If it is not a readable HDF5 file or another process holds it (see
        :func:`open_h5`).
    ValueError
        If it lacks ``Particles`` (or a contrastx file its ``labels``), a dataset has
        the wrong shape for the layout, the labels do not match, the recorded layout is
        invalid or not the expected one, or it is empty and ``allow_empty`` is False.
        Values are checked as they are read (see
        :func:`~contrastx.events.container.check_particles`).

    Examples
    --------
    >>> with EventFile("background_for_training.h5") as f:  # doctest: +SKIP
    ...     for chunk in f.iter_chunks(100_000):
    ...         print(len(chunk))
    """

    def __init__(
        self,
        path: PathLike,
        *,
        process: str | None = None,
        labels: PathLike | np.ndarray | None = None,
        process_names: Sequence[str] | None = None,
        allow_empty: bool = True,
        layout: EventLayout | None = None,
    ) -> None:
        if layout is not None and not isinstance(layout, EventLayout):
            raise TypeError(f"layout must be an EventLayout or None; got {type(layout).__name__}")
        self.path = Path(path)
        self._file = open_h5(self.path, "r", what="event file")
        f = self._file
        try:
            recorded = _file_layout(self.path, f)
            if recorded is not None and layout is not None and recorded != layout:
                raise _layout_mismatch(self.path, recorded, layout)
            self.layout: EventLayout = recorded or layout or ADC2021
            if PARTICLES_KEY not in f:
                raise _missing_key(self.path, PARTICLES_KEY, f)
            self._particles = f[PARTICLES_KEY]
            shape = self._particles.shape
            if self.layout == ADC2021:
                if (
                    len(shape) != 3
                    or shape[1] != N_OBJECTS
                    or shape[2] not in (N_FEATURES, N_FEATURES + 1)
                ):
                    raise ValueError(
                        f"{self.path}: dataset {PARTICLES_KEY!r} must have shape "
                        f"(N, {N_OBJECTS}, 4) (pT, eta, phi, class) or (N, {N_OBJECTS}, 3); "
                        f"got {shape}"
                    )
            elif len(shape) != 3 or shape[1:] != (self.layout.n_objects, self.layout.n_features):
                raise ValueError(
                    f"{self.path}: dataset {PARTICLES_KEY!r} must have shape "
                    f"(N, {self.layout.n_objects}, {self.layout.n_features}) for layout "
                    f"{self.layout.name!r}; got {shape}"
                )
            self._event_features = None
            if self.layout.n_event_features:
                if EVENT_FEATURES_KEY not in f:
                    raise ValueError(
                        f"{self.path}: layout {self.layout.name!r} has event features but the "
                        f"file has no dataset {EVENT_FEATURES_KEY!r}"
                    )
                self._event_features = f[EVENT_FEATURES_KEY]
                want = (shape[0], self.layout.n_event_features)
                if self._event_features.shape != want:
                    raise ValueError(
                        f"{self.path}: dataset {EVENT_FEATURES_KEY!r} has shape "
                        f"{self._event_features.shape}; expected {want} (events, "
                        f"({', '.join(self.layout.event_feature_names)}))"
                    )
            if shape[0] == 0 and not allow_empty:
                raise ValueError(
                    f"{self.path}: the event file holds no events (dataset {PARTICLES_KEY!r} "
                    "has 0 rows)"
                )
            self.format = "contrastx" if f.attrs.get("format") == FORMAT_NAME else "adc2021"
            self.metadata: dict[str, Any] = {}
            if self.format == "contrastx":
                if LABELS_KEY not in f:
                    raise _missing_key(self.path, LABELS_KEY, f)
                if process is not None or labels is not None:
                    raise ValueError(
                        f"{self.path} is a contrastx file with its own labels; "
                        "do not pass process= or labels="
                    )
                self.metadata = _json_attr(self.path, f, "metadata")
                self.process_names = _process_names(self.path, f)
                self._labels: Any = f[LABELS_KEY]
                if self._labels.shape != (shape[0],):
                    raise ValueError(
                        f"{self.path}: dataset {LABELS_KEY!r} has shape {self._labels.shape}; "
                        f"expected ({shape[0]},), one label per event"
                    )
            else:
                self.process_names = (
                    tuple(process_names) if process_names is not None else PROCESSES
                )
                source = "adc2021" if self.layout == ADC2021 else "hdf5"
                self.metadata = {"source_file": str(self.path), "source_format": source}
                if process is not None and labels is not None:
                    raise ValueError("pass either process= or labels=, not both")
                if process is not None:
                    if process not in self.process_names:
                        raise ValueError(
                            f"unknown process name {process!r}; known processes: "
                            f"{', '.join(self.process_names)}"
                        )
                    self._labels = self.process_names.index(process)
                elif labels is not None:
                    arr = load_labels(labels)
                    if arr.shape[0] != shape[0]:
                        side = (
                            f" (label side file: {labels})"
                            if isinstance(labels, (str, os.PathLike))
                            else ""
                        )
                        raise ValueError(
                            f"label side file has {arr.shape[0]} labels but {self.path} has "
                            f"{shape[0]} events{side}"
                        )
                    self._labels = arr
                else:
                    self._labels = UNKNOWN_LABEL
            self._weights = f[WEIGHTS_KEY] if WEIGHTS_KEY in f else None
            self._evtid = f[EVTID_KEY] if EVTID_KEY in f else None
        except Exception:
            f.close()
            raise

    # ------------------------------------------------------------------ protocol
    def __len__(self) -> int:
        return int(self._particles.shape[0])

    def __repr__(self) -> str:
        return (
            f"EventFile({str(self.path)!r}, format={self.format!r}, "
            f"layout={self.layout.name!r}, n={len(self)})"
        )

    # ------------------------------------------------------------------ reading
    def _label_slice(self, start: int, stop: int) -> np.ndarray:
        if isinstance(self._labels, (int, np.integer)):
            return np.full(stop - start, int(self._labels), dtype=np.int64)
        if isinstance(self._labels, np.ndarray):
            return self._labels[start:stop].astype(np.int64)
        return np.asarray(_read(self.path, self._labels, slice(start, stop)), dtype=np.int64)

    def read_labels(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Labels of events ``[start, stop)`` without reading the events (-1: unknown)."""
        start, stop, _ = slice(start, stop).indices(len(self))
        return self._label_slice(start, max(stop, start))

    def read(self, start: int = 0, stop: int | None = None) -> Events:
        """Read events ``[start, stop)`` (Python slice semantics, negative indices allowed)."""
        start, stop, _ = slice(start, stop).indices(len(self))
        stop = max(stop, start)
        rows = slice(start, stop)
        raw = _read(self.path, self._particles, rows)
        particles = check_particles(
            raw[..., : self.layout.n_features],
            name=f"{self.path}:{PARTICLES_KEY}",
            first_event=start,
            layout=self.layout,
        )
        event_features = None
        if self._event_features is not None:
            event_features = check_event_features(
                _read(self.path, self._event_features, rows),
                layout=self.layout,
                name=f"{self.path}:{EVENT_FEATURES_KEY}",
                first_event=start,
            )
        weights = None if self._weights is None else _read(self.path, self._weights, rows)
        ids = None if self._evtid is None else _read(self.path, self._evtid, rows).reshape(-1)
        try:
            return Events(
                particles,
                labels=self._label_slice(start, stop),
                process_names=self.process_names,
                weights=weights,
                event_ids=ids,
                metadata=self.metadata,
                layout=self.layout,
                event_features=event_features,
            )
        except ValueError as err:
            raise ValueError(f"{self.path}: {err}") from None

    def iter_chunks(
        self, chunk_size: int = DEFAULT_CHUNK, start: int = 0, stop: int | None = None
    ) -> Iterator[Events]:
        """Iterate over ``[start, stop)`` in chunks of at most ``chunk_size`` events."""
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive; got {chunk_size}")
        start, stop, _ = slice(start, stop).indices(len(self))
        for lo in range(start, stop, chunk_size):
            yield self.read(lo, min(lo + chunk_size, stop))


def open_events(path: PathLike, **kwargs: Any) -> EventFile:
    """Open an event file for streaming (see :class:`EventFile`)."""
    return EventFile(path, **kwargs)


def read_events(
    path: PathLike,
    start: int = 0,
    stop: int | None = None,
    *,
    process: str | None = None,
    labels: PathLike | np.ndarray | None = None,
    process_names: Sequence[str] | None = None,
    allow_empty: bool = False,
    layout: EventLayout | None = None,
) -> Events:
    """Read ``[start, stop)`` of an ADC2021 or contrastx event file into memory.

    Parameters are those of :class:`EventFile`, except that ``allow_empty``
    defaults to False here: a file read to be analysed must hold events (an empty
    slice of a non-empty file is fine). The events carry the file's layout
    (:attr:`Events.layout`).
    """
    with EventFile(
        path,
        process=process,
        labels=labels,
        process_names=process_names,
        allow_empty=allow_empty,
        layout=layout,
    ) as f:
        return f.read(start, stop)


class EventWriter(_HDF5Handle):
    """Write a contrastx event file incrementally (append chunk by chunk).

    Parameters
    ----------
    path : str or PathLike
        Output file.
    process_names : sequence of str
        Names of the labels that will be written.
    metadata : dict, optional
        Provenance stored (as JSON) in the root attribute ``metadata``.
    mode : {"w", "x", "a"}
        ``"x"`` (default) refuses to overwrite, ``"w"`` overwrites, ``"a"`` appends
        to an existing contrastx file (to resume an interrupted job; the stored
        ``process_names`` must match) or creates it.
    weighted, with_event_ids : bool
        Whether every appended chunk carries weights / event ids.
    compression : str or None
        HDF5 filter for the datasets (default gzip, readable everywhere).
    layout : EventLayout
        The layout of the events (default ADC2021), recorded in the root attribute
        ``layout``; every appended chunk must be in it, and a file appended to must
        hold it already (a file that records none holds ADC2021).
    """

    def __init__(
        self,
        path: PathLike,
        process_names: Sequence[str] = PROCESSES,
        *,
        metadata: dict[str, Any] | None = None,
        mode: str = "x",
        weighted: bool = False,
        with_event_ids: bool = False,
        chunk_events: int = 4096,
        compression: str | None = "gzip",
        layout: EventLayout = ADC2021,
    ) -> None:
        if mode not in ("w", "x", "a"):
            raise ValueError(f"mode must be 'w', 'x' or 'a'; got {mode!r}")
        if not isinstance(layout, EventLayout):
            raise TypeError(f"layout must be an EventLayout; got {type(layout).__name__}")
        self.layout = layout
        self.path = Path(path)
        self.process_names = tuple(process_names)
        exists = self.path.exists()
        if mode == "x" and exists:
            raise FileExistsError(
                f"{self.path} exists; pass overwrite/mode='w' to replace it or mode='a' to append"
            )
        if exists and mode == "a":
            self._file = open_h5(self.path, "a", what="event file")
            f = self._file
            try:
                if f.attrs.get("format") != FORMAT_NAME:
                    raise ValueError(f"{self.path} is not a contrastx event file; cannot append")
                stored = _process_names(self.path, f)
                if stored != self.process_names:
                    raise ValueError(
                        f"{self.path} has process_names {stored}, not {self.process_names}"
                    )
                stored_layout = _file_layout(self.path, f) or ADC2021
                if stored_layout != layout:
                    raise _layout_mismatch(self.path, stored_layout, layout)
                keys = [PARTICLES_KEY, LABELS_KEY]
                if layout.n_event_features:
                    keys.append(EVENT_FEATURES_KEY)
                missing = [k for k in keys if k not in f]
                if missing:
                    raise _missing_key(self.path, missing[0], f)
            except Exception:
                f.close()
                raise
            self.weighted = WEIGHTS_KEY in f
            self.with_event_ids = EVTID_KEY in f
            if metadata is not None:
                f.attrs["metadata"] = metadata_to_json(metadata)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open_h5(self.path, "w", what="event file")
        f = self._file
        self.weighted = weighted
        self.with_event_ids = with_event_ids
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["metadata"] = metadata_to_json(metadata or {})
        f.attrs[LAYOUT_ATTR] = layout.to_json()
        opts = {"compression": compression} if compression else {}

        def growable(key: str, dtype: type, row_shape: tuple[int, ...] = ()) -> h5py.Dataset:
            return f.create_dataset(
                key,
                shape=(0, *row_shape),
                maxshape=(None, *row_shape),
                dtype=dtype,
                chunks=(chunk_events, *row_shape),
                **opts,
            )

        if layout == ADC2021:
            growable(PARTICLES_KEY, np.float32, (N_OBJECTS, N_FEATURES + 1))
            f.create_dataset(CLASSES_KEY, data=np.array(ADC2021_CLASSES))
            f.create_dataset(NAMES_KEY, data=np.array(ADC2021_NAMES))
        else:
            growable(PARTICLES_KEY, np.float32, (layout.n_objects, layout.n_features))
            f.create_dataset(NAMES_KEY, data=np.array([n.encode() for n in layout.feature_names]))
        if layout.n_event_features:
            growable(EVENT_FEATURES_KEY, np.float32, (layout.n_event_features,))
        labels = growable(LABELS_KEY, np.int64)
        labels.attrs["process_names"] = np.array(self.process_names, dtype=h5py.string_dtype())
        if weighted:
            growable(WEIGHTS_KEY, np.float64)
        if with_event_ids:
            growable(EVTID_KEY, np.int64)

    def __len__(self) -> int:
        return int(self._file[PARTICLES_KEY].shape[0])

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the stored metadata (e.g. to record final counts at the end of a job)."""
        self._file.attrs["metadata"] = metadata_to_json(metadata)

    def append(self, events: Events) -> None:
        """Append a chunk of events; flushed to disk before returning."""
        if events.layout != self.layout:
            raise ValueError(
                f"events in layout {events.layout.name!r} cannot go into {self.path}, a file "
                f"in layout {self.layout.name!r}"
            )
        if tuple(events.process_names) != self.process_names:
            lut = {n: i for i, n in enumerate(self.process_names)}
            missing = [n for n in events.process_names if n not in lut]
            if missing:
                raise ValueError(
                    f"events have processes {missing} unknown to this file {self.process_names}"
                )
            remap = np.array(
                [lut[n] for n in events.process_names] + [UNKNOWN_LABEL], dtype=np.int64
            )
            labels = remap[events.labels]
        else:
            labels = events.labels
        if self.weighted != (events.weights is not None):
            raise ValueError(
                "every chunk must carry weights if the file stores weights, and none otherwise"
            )
        if self.with_event_ids != (events.event_ids is not None):
            raise ValueError(
                "every chunk must carry event ids if the file stores EvtId, and none otherwise"
            )
        n0, n = len(self), len(events)
        if n == 0:
            return
        f = self._file
        particles = events.adc2021_particles() if self.layout == ADC2021 else events.particles
        datasets: list[tuple[str, np.ndarray]] = [(PARTICLES_KEY, particles), (LABELS_KEY, labels)]
        if self.layout.n_event_features:
            assert events.event_features is not None
            datasets.append((EVENT_FEATURES_KEY, events.event_features))
        if self.weighted:
            datasets.append((WEIGHTS_KEY, events.weights))
        if self.with_event_ids:
            datasets.append((EVTID_KEY, events.event_ids))
        try:
            for key, arr in datasets:
                ds = f[key]
                ds.resize(n0 + n, axis=0)
                ds[n0:] = arr
            f.flush()
        except OSError as err:
            raise OSError(f"{self.path}: cannot write events: {_hdf5_reason(err)}") from err


def write_events(path: PathLike, events: Events, *, overwrite: bool = False, **kwargs: Any) -> Path:
    """Write ``events`` to a new contrastx HDF5 file, recording their layout.

    Events in the ADC2021 layout keep the ADC2021-compatible ``Particles``. Returns the
    path written. Refuses to overwrite an existing file unless ``overwrite=True``.
    """
    with EventWriter(
        path,
        events.process_names,
        metadata=events.metadata,
        mode="w" if overwrite else "x",
        weighted=events.weights is not None,
        with_event_ids=events.event_ids is not None,
        layout=events.layout,
        **kwargs,
    ) as w:
        w.append(events)
    return Path(path)
