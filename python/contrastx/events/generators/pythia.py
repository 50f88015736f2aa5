"""Pythia 8 event generation in the ADC2021 layout (13 TeV pp, hadron level).

This is contrastx's Monte Carlo generator: Pythia 8 (the ``pythia8mc`` wheel)
generates hadron-level events of a named process
(:mod:`~contrastx.events.generators.processes`), FastJet clusters the jets and a
parametric detector response (:mod:`~contrastx.events.generators.reconstruction`)
produces the 19-slot ADC2021 table, to which the ADC2021 lepton selection is
applied. Output goes straight into a contrastx HDF5 file through
:class:`~contrastx.events.io.EventWriter`, batch by batch.

The machinery (batches, seeds, worker processes, resumable files, progress) serves
any :class:`PythiaDataset`: a process registry, a reconstruction and a layout.
:data:`ADC2021_DATASET` is the default; the diphoton benchmark
(:mod:`~contrastx.events.generators.diphoton`) is another. Every batch also records
Pythia's cross-section estimate of its generated events.

Install the optional dependencies with ``pip install "contrastx[pythia]"`` (i.e.
``pythia8mc==8.317.2`` and ``fastjet``; the 8.318.0 release of pythia8mc is
source-only and takes long to compile).

Design
------
* **Batches.** Work is cut into batches of ``batch_size`` *generated* events.
  Batch ``b`` of process ``p`` under master seed ``s`` is a pure function of
  ``(s, p, b)`` and the configuration: a fresh Pythia instance is initialised
  with ``Random:seed`` drawn from ``SeedSequence(s, spawn_key=(crc32(p), b))``,
  which also seeds the smearing. (Re-using one Pythia across batches would make a
  batch depend on its predecessors through Pythia's adaptive phase-space maxima;
  an initialisation is cheap next to generating a batch.)
* **Order.** Processes are written in a canonical order (the built-in ADC2021
  order, then custom processes in the order requested), each as its batches in
  index order, the last one truncated to the requested count. Batches run in
  parallel in worker processes (one Pythia per worker at a time) and are written
  in that order whatever their completion order, so a file depends only on the
  seed and the configuration, not on timing or the number of workers. Use
  :func:`shuffle_file` (or random splits) for a mixed order on disk.
* **Resume.** The file's metadata records, per process, the next batch to read,
  the number of its selected events already written and the generated / passed /
  kept counts. Calling :func:`generate_pythia` again on the same path with the
  same configuration continues where it stopped (an interrupted job) or adds
  events up to larger requested counts; rows written after the last recorded
  commit are truncated first, so no event is duplicated.
* **Interruption.** Local worker processes end with the calling process (on Linux
  even when it is killed; Dask workers belong to their cluster, and the batches in
  flight are cancelled when the call ends), and an interrupted call leaves a file
  that the same call completes; :func:`committed_counts` says how many events it keeps.
* **Executors.** Batches run in this process, in local worker processes, or as
  tasks of a Dask cluster (``executor=``, a
  :class:`~contrastx.distributed.ExecutorOptions`: a scheduler address, a
  ``LocalCluster``, or Slurm / HTCondor through dask-jobqueue). Results always come
  back to the calling process, which alone writes the file, in the order above;
  a batch lost with its Dask worker runs again, and is written once.
* **Memory** is bounded by ``2 * workers`` batches in flight (on Dask, twice the
  worker threads).

The physics model is Pythia's; the detector is a Gaussian smearing without
pileup, isolation or fake leptons (see the reconstruction module), so absolute
rates differ from ADC2021 (Delphes, pileup ~20), and processes with forced decays
are mixed with fixed fractions, not cross sections.

Examples
--------
>>> from contrastx.events.generators.pythia import generate_pythia
>>> generate_pythia("z.h5", {"Z": 1000}, seed=1, mpi=False)  # doctest: +SKIP
PosixPath('z.h5')
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import math
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as connection_wait
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..._console import Progress, format_duration, stderr_is_terminal
from ...distributed import _dask
from ..container import UNKNOWN_LABEL, Events
from ..io import (
    EVENT_FEATURES_KEY,
    EVTID_KEY,
    LABELS_KEY,
    PARTICLES_KEY,
    WEIGHTS_KEY,
    EventFile,
    EventWriter,
    metadata_to_json,
    open_h5,
)
from ..layout import ADC2021, ADC2021_MIXTURE, PROCESSES, EventLayout
from .processes import PROCESS_REGISTRY, ProcessSpec, get_process
from .reconstruction import RecoSettings, final_state, reconstruct

__all__ = [
    "ADC2021_DATASET",
    "GENERATOR_NAME",
    "PYTHIA_GENERATOR_VERSION",
    "BatchResult",
    "PythiaDataset",
    "RecoSettings",
    "Reconstructed",
    "check_dependencies",
    "committed_counts",
    "common_settings",
    "generate_black_box",
    "generate_cocktail",
    "generate_injected",
    "generate_pythia",
    "pythia_batch",
    "shuffle_file",
]

logger = logging.getLogger(__name__)

GENERATOR_NAME = "contrastx.pythia"
PYTHIA_GENERATOR_VERSION = "0.1.0"
"""Version of contrastx's Pythia wrapper (recipes, seeding, reconstruction)."""

DEFAULT_BATCH_SIZE = 500
_MAX_DRY_BATCHES = 200
_PYTHIA_SEED_MAX = 900_000_000
_INSTALL_HINT = (
    "the Pythia generator needs the optional dependencies pythia8mc and fastjet: "
    "pip install 'contrastx[pythia]' (or pip install pythia8mc==8.317.2 fastjet; "
    "pythia8mc 8.318.0 is source-only and compiles for ~1.5 h)"
)


# ---------------------------------------------------------------- dependencies
def check_dependencies() -> dict[str, str]:
    """Import pythia8mc, fastjet and awkward; return their versions.

    Raises
    ------
    ImportError
        With an install hint, if one of them is missing.
    """
    versions = {}
    for module in ("pythia8mc", "fastjet", "awkward"):
        try:
            __import__(module)
        except ImportError as err:
            raise ImportError(f"cannot import {module} ({err}); {_INSTALL_HINT}") from err
        try:
            versions[module] = importlib_metadata.version(module)
        except importlib_metadata.PackageNotFoundError:
            versions[module] = "unknown"
    return versions


# ---------------------------------------------------------------- settings and seeds
def common_settings(*, mpi: bool = True, energy_gev: float = 13_000.0) -> list[str]:
    """Settings shared by every process (the per-batch seed is added separately).

    13 TeV pp collisions, hadron level, multiparton interactions on or off,
    quiet output.
    """
    return [
        "Beams:idA = 2212",
        "Beams:idB = 2212",
        f"Beams:eCM = {energy_gev:g}",
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        "HadronLevel:all = on",
        "Print:quiet = on",
        "Next:numberCount = 0",
    ]


def _process_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def batch_seeds(seed: int, process: str, batch: int) -> tuple[int, np.random.SeedSequence]:
    """The Pythia seed (1..900,000,000) and the smearing seed of one batch."""
    ss = np.random.SeedSequence(seed, spawn_key=(_process_key(process), batch))
    pythia_seed = 1 + int(ss.generate_state(1, np.uint64)[0] % (_PYTHIA_SEED_MAX - 1))
    return pythia_seed, ss.spawn(1)[0]


# ---------------------------------------------------------------- datasets
@dataclass
class Reconstructed:
    """What a dataset's reconstruction makes of one batch of Pythia events.

    Attributes
    ----------
    particles : ndarray, shape (n_passed, n_objects, n_features), float32
        The selected events in the dataset's layout, in generation order.
    event_features : ndarray, shape (n_passed, n_event_features), or None
        Their event-level features (None for a layout without any).
    n_accepted : int
        Events that pass the process's generator-level filter (all of them for a
        process without one); the selected events are among these.
    """

    particles: np.ndarray
    event_features: np.ndarray | None
    n_accepted: int


def _reconstruct_adc2021(
    raw: Any, rng: np.random.Generator, reco: RecoSettings, spec: ProcessSpec | None
) -> Reconstructed:
    """The ADC2021 reconstruction and lepton selection of a ``Pythia.nextBatch`` array."""
    particles, _ = reconstruct(final_state(raw), rng, reco)
    return Reconstructed(particles, None, len(raw))


@dataclass(frozen=True)
class PythiaDataset:
    """A family of Pythia processes and the reconstruction that turns them into a layout.

    :func:`generate_pythia` runs any dataset with the same machinery (batches, seeds,
    workers, resumable files); :data:`ADC2021_DATASET` is the default and
    :data:`contrastx.events.generators.diphoton.DIPHOTON_DATASET` the diphoton one.

    Attributes
    ----------
    name : str
        Short name (``"adc2021"``, ``"diphoton"``).
    generator, version : str
        Recorded in the file's metadata (``generator``, ``generator_version``); a file
        is resumed only by the same generator and version.
    layout : EventLayout
        Layout of the events written.
    registry : mapping of str to ProcessSpec
        The processes this dataset knows (custom ones may be added to it).
    builtin : tuple of str
        The built-in processes, in label order: a file's ``process_names`` are these,
        then the custom processes requested, in the order requested.
    reco_type : type
        Class of the reconstruction settings (its defaults when none are given); it
        has a ``to_dict()`` method for the metadata.
    reconstruct : callable
        ``reconstruct(raw, rng, reco, spec) -> Reconstructed``, a module-level function
        (workers receive it by reference): ``raw`` is the ``Pythia.nextBatch`` array.
    selection : str
        How error messages name the event selection (``"the lepton selection"``).
    summarize : callable, optional
        ``summarize(progress, processes) -> dict`` of extra metadata entries computed
        from the per-process progress (e.g. cross sections); called at every commit.
    """

    name: str
    generator: str
    version: str
    layout: EventLayout
    registry: Mapping[str, ProcessSpec]
    builtin: tuple[str, ...]
    reco_type: type
    reconstruct: Callable[..., Reconstructed]
    selection: str
    summarize: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None

    def process(self, name: str) -> ProcessSpec:
        """The registered process ``name`` (ValueError listing the known names otherwise)."""
        if self.registry is PROCESS_REGISTRY:
            return get_process(name)
        try:
            return self.registry[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.name} process {name!r}; known processes: {', '.join(self.registry)}"
            ) from None

    def describe(self, spec: ProcessSpec) -> dict[str, Any]:
        """The metadata entry of a process: its fields other than the name, JSON-friendly."""
        out = {}
        for f in dataclasses.fields(spec):
            if f.name == "name":
                continue
            value = getattr(spec, f.name)
            to_dict = getattr(value, "to_dict", None)
            out[f.name] = to_dict() if callable(to_dict) else value
        return json.loads(json.dumps(out))


ADC2021_DATASET = PythiaDataset(
    name="adc2021",
    generator=GENERATOR_NAME,
    version=PYTHIA_GENERATOR_VERSION,
    layout=ADC2021,
    registry=PROCESS_REGISTRY,
    builtin=PROCESSES,
    reco_type=RecoSettings,
    reconstruct=_reconstruct_adc2021,
    selection="the lepton selection",
)
"""The ADC2021 processes and reconstruction (the default of :func:`generate_pythia`)."""


# ---------------------------------------------------------------- one batch (worker side)
@dataclass(frozen=True)
class _BatchTask:
    process: str
    batch: int
    settings: tuple[str, ...]
    seed: int
    n_events: int
    reco: Any
    spec: ProcessSpec | None = None
    reconstruct: Callable[..., Reconstructed] = _reconstruct_adc2021


@dataclass
class BatchResult:
    """Output of one batch: its selected events and counters.

    Attributes
    ----------
    process : str
    batch : int
    particles : ndarray, shape (n_passed, n_objects, n_features), float32
        Selected events in generation order ((n_passed, 19, 3) for ADC2021).
    n_generated, n_passed : int
        Events returned by Pythia, and those passing the selection.
    cpu_seconds : float
        Process CPU time of the batch (initialisation, generation, reconstruction).
    event_features : ndarray, shape (n_passed, n_event_features), or None
        Event-level features of the selected events (None for ADC2021).
    n_accepted : int or None
        Events passing the process's generator-level filter (None: no filter, all).
    sigma_pb : float
        Pythia's estimate of the cross section of the generated events (pb), after
        the batch: the hard process with the open decay channels' branching ratios.
    """

    process: str
    batch: int
    particles: np.ndarray
    n_generated: int
    n_passed: int
    cpu_seconds: float
    event_features: np.ndarray | None = None
    n_accepted: int | None = None
    sigma_pb: float = 0.0


def _make_pythia(settings: Sequence[str], pythia_seed: int, what: str) -> Any:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for s in (*settings, "Random:setSeed = on", f"Random:seed = {pythia_seed}"):
        if not pythia.readString(s):
            raise ValueError(f"{what}: Pythia rejected the setting {s!r}")
    if not pythia.init():
        raise RuntimeError(
            f"{what}: Pythia failed to initialise; rerun with 'Print:quiet = off' among the "
            f"settings to see why. Settings: {list(settings)}"
        )
    return pythia


def _run_batch(task: _BatchTask) -> BatchResult:
    t0 = time.process_time()
    pythia_seed, smear_seed = batch_seeds(task.seed, task.process, task.batch)
    pythia = _make_pythia(task.settings, pythia_seed, f"process {task.process!r}")
    raw = pythia.nextBatch(task.n_events)
    sigma_pb = float(pythia.infoPython().sigmaGen()) * 1e9  # mb -> pb
    del pythia
    n_generated = len(raw)
    out = task.reconstruct(raw, np.random.default_rng(smear_seed), task.reco, task.spec)
    return BatchResult(
        task.process,
        task.batch,
        out.particles,
        n_generated,
        int(out.particles.shape[0]),
        time.process_time() - t0,
        event_features=out.event_features,
        n_accepted=int(out.n_accepted),
        sigma_pb=sigma_pb if math.isfinite(sigma_pb) else 0.0,
    )


def pythia_batch(
    process: str,
    batch: int = 0,
    *,
    seed: int = 0,
    n_events: int = DEFAULT_BATCH_SIZE,
    mpi: bool = True,
    reco: Any = None,
    extra_settings: Sequence[str] = (),
    dataset: PythiaDataset | None = None,
) -> BatchResult:
    """Generate, reconstruct and select one batch in this process.

    This is exactly the unit of work :func:`generate_pythia` distributes: the
    result is a pure function of the arguments.

    Parameters
    ----------
    process : str
        A registered process name.
    batch : int
        Batch index (selects the random streams).
    seed : int
        Master seed.
    n_events : int
        Events to generate (before the selection).
    mpi : bool
        Multiparton interactions on (default) or off.
    reco : optional
        Reconstruction choices (the dataset's ``reco_type``; default its defaults).
    extra_settings : sequence of str
        Pythia settings appended after the process's own.
    dataset : PythiaDataset, optional
        The process family and reconstruction; default :data:`ADC2021_DATASET`.
    """
    check_dependencies()
    ds = _check_dataset(dataset)
    spec = ds.process(process)
    return _run_batch(
        _BatchTask(
            process,
            _check_int("batch", batch),
            (*common_settings(mpi=mpi), *spec.settings, *extra_settings),
            _check_int("seed", seed),
            _check_int("n_events", n_events, minimum=1),
            _check_reco(ds, reco),
            spec,
            ds.reconstruct,
        )
    )


# ---------------------------------------------------------------- helpers
def _check_dataset(dataset: object) -> PythiaDataset:
    if dataset is None:
        return ADC2021_DATASET
    if not isinstance(dataset, PythiaDataset):
        raise TypeError(f"dataset must be a PythiaDataset; got {type(dataset).__name__}")
    return dataset


def _check_reco(dataset: PythiaDataset, reco: object) -> Any:
    if reco is None:
        return dataset.reco_type()
    if not isinstance(reco, dataset.reco_type):
        raise TypeError(
            f"reco of the {dataset.name} dataset must be a {dataset.reco_type.__name__}; "
            f"got {type(reco).__name__}"
        )
    return reco


def _check_int(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _validate_settings(spec: ProcessSpec, settings: Sequence[str]) -> None:
    """Check every setting against Pythia's database (fast, no initialisation)."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for s in settings:
        if not pythia.readString(s):
            raise ValueError(f"process {spec.name!r}: Pythia does not recognise the setting {s!r}")


# ---------------------------------------------------------------- step 1: plan the run
@dataclass(frozen=True)
class _RunPlan:
    """A validated request: what to generate, and everything that fixes the events.

    Attributes
    ----------
    requested : dict of str to int
        Selected events wanted per process (the targets of this call).
    process_names : tuple of str
        Label names of a new file: the built-in processes, then custom ones.
    settings : dict of str to tuple of str
        Full Pythia settings per requested process (common, process, extra).
    processes : dict
        Metadata of each requested process (its own settings, its description).
    config : dict
        The configuration stored in the metadata; resuming requires it unchanged.
    seed, batch_size : int
        Master seed and events generated per batch.
    reco
        Reconstruction choices (``dataset.reco_type``).
    dataset : PythiaDataset
        The process family, reconstruction and layout.
    """

    requested: dict[str, int]
    process_names: tuple[str, ...]
    settings: dict[str, tuple[str, ...]]
    processes: dict[str, dict[str, Any]]
    config: dict[str, Any]
    seed: int
    batch_size: int
    reco: Any
    dataset: PythiaDataset = ADC2021_DATASET

    def task(self, process: str, batch: int) -> _BatchTask:
        """The unit of work that generates batch ``batch`` of ``process``."""
        return _BatchTask(
            process,
            batch,
            self.settings[process],
            self.seed,
            self.batch_size,
            self.reco,
            self.dataset.registry[process],
            self.dataset.reconstruct,
        )


def _plan_run(
    counts: Mapping[str, int],
    *,
    seed: int,
    mpi: bool,
    batch_size: int,
    reco: Any,
    extra_settings: Sequence[str],
    dataset: PythiaDataset | None = None,
) -> _RunPlan:
    """Validate the request and build the configuration (no file is touched)."""
    ds = _check_dataset(dataset)
    versions = check_dependencies()
    seed = _check_int("seed", seed)
    batch_size = _check_int("batch_size", batch_size, minimum=1)
    reco = _check_reco(ds, reco)
    if not isinstance(counts, Mapping):
        raise TypeError(f"counts must be a mapping of process name to count; got {counts!r}")
    requested: dict[str, int] = {}
    for name, count in counts.items():
        ds.process(name)
        requested[name] = _check_int(f"counts[{name!r}]", count)
    custom = [p for p in requested if p not in ds.builtin]
    process_names = (*ds.builtin, *custom)
    base = common_settings(mpi=mpi)
    extra = tuple(str(s) for s in extra_settings)
    settings: dict[str, tuple[str, ...]] = {}
    processes: dict[str, dict[str, Any]] = {}
    for name in (p for p in process_names if p in requested):
        spec = ds.registry[name]
        settings[name] = (*base, *spec.settings, *extra)
        _validate_settings(spec, settings[name])
        processes[name] = ds.describe(spec)
    config = {
        "generator": ds.generator,
        "generator_version": ds.version,
        "versions": versions,
        "seed": seed,
        "mpi": bool(mpi),
        "batch_size": batch_size,
        "common_settings": base,
        "extra_settings": list(extra),
        "reco": reco.to_dict(),
    }
    return _RunPlan(
        requested, process_names, settings, processes, config, seed, batch_size, reco, ds
    )


# ---------------------------------------------------------------- step 2: open or resume the file
@dataclass
class _ProcessProgress:
    """Where one process stands in a file (its entry in the metadata's ``progress``).

    Attributes
    ----------
    batch : int
        The next batch to read.
    skip : int
        Selected events of that batch already written (a batch is read in pieces when
        the requested count ends inside it; the rest serves a later extension).
    kept, generated, passed : int
        Events written, generated by Pythia and passing the selection (each batch
        counted once).
    cpu_seconds : float
        CPU time of the batches read.
    accepted : int
        Events passing the process's generator-level filter (``generated`` when it
        has none).
    sigma_sum_pb : float
        Sum over the batches read of Pythia's cross-section estimate (pb) times the
        batch's generated events: ``sigma_sum_pb / generated`` is the cross section of
        the generated events.
    """

    batch: int = 0
    skip: int = 0
    kept: int = 0
    generated: int = 0
    passed: int = 0
    cpu_seconds: float = 0.0
    accepted: int = 0
    sigma_sum_pb: float = 0.0

    _OPTIONAL = ("accepted", "sigma_sum_pb")  # absent from files of earlier versions

    @classmethod
    def from_metadata(cls, path: Path, name: str, stored: Any) -> _ProcessProgress:
        """Read a stored entry, naming the file and the process if it is incomplete."""
        keys = [f.name for f in dataclasses.fields(cls) if f.name not in cls._OPTIONAL]
        if not isinstance(stored, Mapping) or any(k not in stored for k in keys):
            raise ValueError(
                f"{path}: the metadata's progress of {name!r} lacks one of {keys}; "
                "the file cannot be resumed"
            )
        values = {k: stored[k] for k in keys}
        values["accepted"] = stored.get("accepted", stored["generated"])
        values["sigma_sum_pb"] = stored.get("sigma_sum_pb", 0.0)
        return cls(**values)


@dataclass
class _Output:
    """The output file as generation starts: new, or resumed with its progress.

    Attributes
    ----------
    path : Path
    mode : {"x", "a"}
        :class:`~contrastx.events.io.EventWriter` mode: a new file or an append.
    process_names : tuple of str
        Label names of the file.
    progress : dict of str to _ProcessProgress
        Per process stored in the file or requested now (updated as batches commit).
    targets : dict of str to int
        Requested counts of the whole file (stored ones updated by this call's).
    processes : dict
        Metadata of every process of the file.
    """

    path: Path
    mode: str
    process_names: tuple[str, ...]
    progress: dict[str, _ProcessProgress]
    targets: dict[str, int]
    processes: dict[str, dict[str, Any]]

    def todo(self, plan: _RunPlan) -> list[str]:
        """Processes that still need events, in the order they are written."""
        return [
            p
            for p in self.process_names
            if p in plan.requested and self.progress[p].kept < plan.requested[p]
        ]

    def metadata(self, plan: _RunPlan, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """The file's metadata for the current progress (written at every commit)."""
        progress = {k: dataclasses.asdict(v) for k, v in self.progress.items()}
        meta = dict(plan.config)
        meta.update(extra or {})
        meta["processes"] = self.processes
        meta["requested_counts"] = self.targets
        meta["progress"] = progress
        meta["n_generated"] = {k: v["generated"] for k, v in progress.items()}
        meta["n_kept"] = {k: v["kept"] for k, v in progress.items()}
        meta["filter_efficiency"] = {
            k: (v["passed"] / v["generated"] if v["generated"] else None)
            for k, v in progress.items()
        }
        if plan.dataset.summarize is not None:
            meta.update(plan.dataset.summarize(progress, self.processes))
        return meta


def _truncate(path: Path, n: int) -> int:
    """Cut every per-event dataset of a contrastx file to ``n`` rows; return rows removed."""
    with open_h5(path, "a", what="event file") as f:
        removed = int(f[PARTICLES_KEY].shape[0]) - n
        if removed < 0:
            raise RuntimeError(
                f"{path}: the file has {f[PARTICLES_KEY].shape[0]} events but its metadata "
                f"records {n}; it cannot be resumed"
            )
        if removed:
            for key in (PARTICLES_KEY, LABELS_KEY, WEIGHTS_KEY, EVTID_KEY, EVENT_FEATURES_KEY):
                if key in f:
                    f[key].resize(n, axis=0)
    return removed


def _open_output(path: Path, plan: _RunPlan, *, resume: bool, overwrite: bool) -> _Output:
    """Start a new file, or check an existing one against ``plan`` and prepare its resumption.

    A resumed file is cut back to its last commit (rows appended by a batch whose
    metadata update did not happen are dropped and generated again).
    """
    if path.exists() and overwrite:
        path.unlink()
    if not path.exists():
        progress = {p: _ProcessProgress() for p in plan.process_names if p in plan.requested}
        return _Output(
            path, "x", plan.process_names, progress, dict(plan.requested), dict(plan.processes)
        )
    if not resume:
        raise FileExistsError(
            f"{path} exists; pass resume=True to continue it or overwrite=True to replace it"
        )
    with EventFile(path) as f:
        old = f.metadata
        stored_names = tuple(f.process_names)
    mismatch = [k for k, v in plan.config.items() if json.loads(json.dumps(v)) != old.get(k)]
    if mismatch:
        raise ValueError(
            f"{path} was written with a different configuration (differs: "
            f"{', '.join(mismatch)}); use another path or overwrite=True"
        )
    stored_processes = old.get("processes", {})
    for name in plan.requested:
        if name not in stored_processes:
            continue
        mine = {k: v for k, v in plan.processes[name].items() if k != "description"}
        theirs = {k: v for k, v in stored_processes[name].items() if k != "description"}
        if mine != theirs:
            raise ValueError(f"{path}: process {name!r} was written with other settings")
    if not set(plan.process_names) <= set(stored_names):
        raise ValueError(
            f"{path} stores the processes {stored_names}; new custom processes "
            "cannot be added to an existing file"
        )
    progress = {
        name: _ProcessProgress.from_metadata(path, name, entry)
        for name, entry in old.get("progress", {}).items()
    }
    removed = _truncate(path, sum(int(v.kept) for v in progress.values()))
    if removed:
        logger.info("%s: dropped %d events written after the last commit", path, removed)
    for name, n in plan.requested.items():
        have = progress[name].kept if name in progress else 0
        if n < have:
            raise ValueError(
                f"{path} already holds {have} {name} events, more than the {n} requested"
            )
    for name in (p for p in stored_names if p in plan.requested):
        progress.setdefault(name, _ProcessProgress())
    return _Output(
        path,
        "a",
        stored_names,
        progress,
        {**old.get("requested_counts", {}), **plan.requested},
        {**stored_processes, **plan.processes},
    )


def _create_file(
    path: Path,
    process_names: Sequence[str],
    metadata: dict[str, Any],
    layout: EventLayout = ADC2021,
) -> None:
    """Create an empty event file that is complete on disk before it appears at ``path``.

    HDF5 keeps a new file's structure in memory until it is flushed, so a process
    killed right after creating a file would leave one that cannot be opened (nor
    resumed). The file is therefore written under a temporary name, closed, and
    renamed.
    """
    partial = path.with_name(path.name + ".partial")
    with EventWriter(partial, process_names, metadata=metadata, mode="w", layout=layout):
        pass
    os.replace(partial, path)


def committed_counts(path: str | os.PathLike) -> dict[str, int]:
    """Selected events per process that a file of :func:`generate_pythia` holds for certain.

    These are the events a resumption keeps: rows appended after the last update of
    the file's metadata (an interrupted batch) are dropped and generated again.

    Parameters
    ----------
    path : str or PathLike
        A file written (or being resumed) by :func:`generate_pythia`.

    Returns
    -------
    dict of str to int
        Events per process name, in the order they are written.
    """
    with EventFile(path) as f:
        progress = f.metadata.get("progress", {})
    return {name: int(entry.get("kept", 0)) for name, entry in progress.items()}


# ---------------------------------------------------------------- step 3: run batches
class _InlinePool:
    """Runs each batch in this process when its result is asked for (``workers=1``)."""

    window = 1

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, int], _BatchTask] = {}

    def submit(self, key: tuple[str, int], task: _BatchTask) -> None:
        self._tasks[key] = task

    def result(self, key: tuple[str, int]) -> BatchResult:
        return _run_batch(self._tasks.pop(key))

    def cancel(self, key: tuple[str, int]) -> None:
        self._tasks.pop(key, None)

    def close(self) -> None:
        self._tasks.clear()


@dataclass
class _BatchFailure:
    """An exception raised by a batch in a worker, sent back to the parent."""

    exception: BaseException | None
    description: str

    @classmethod
    def capture(cls, err: BaseException) -> _BatchFailure:
        try:
            pickle.loads(pickle.dumps(err))
        except Exception:  # an exception that does not survive pickling
            return cls(None, f"{type(err).__name__}: {err}")
        return cls(err, f"{type(err).__name__}: {err}")

    def error(self) -> BaseException:
        return self.exception if self.exception is not None else RuntimeError(self.description)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_WORKER_BOOTSTRAP = """\
import sys
from multiprocessing.connection import Connection
tasks = Connection(int(sys.argv[1]), writable=False)
try:
    sys.path[:] = tasks.recv()
except EOFError:  # the parent ended before sending anything
    sys.exit(0)
from contrastx.events.generators.pythia import _worker_main
_worker_main(tasks, int(sys.argv[2]), int(sys.argv[3]))
"""


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker end when the process that started it ends, however it ends.

    On Linux the kernel sends SIGKILL to the worker when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``); a parent that died before that call is noticed
    through the parent pid. Elsewhere the worker ends at its next read of the task
    pipe, which reports end-of-file once the parent is gone.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the task pipe's end-of-file remains
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker_main(tasks: Connection, result_fd: int, parent_pid: int) -> None:
    """Body of a worker process: run the batches received until the task pipe closes."""
    _die_with_parent(parent_pid)
    results = Connection(result_fd, readable=False)
    while True:
        try:
            task = tasks.recv()
        except (EOFError, OSError):
            return
        try:
            reply: BatchResult | _BatchFailure = _run_batch(task)
        except Exception as err:
            reply = _BatchFailure.capture(err)
        try:
            results.send(reply)
        except OSError:  # the parent is gone
            return


class _WorkerProcess:
    """One worker: a fresh interpreter running :func:`_worker_main`, fed through two pipes.

    Workers are plain subprocesses (no :mod:`multiprocessing` pool, hence no
    semaphores and no resource-tracker process), in their own session so that a
    terminal's Ctrl-C reaches only the parent, which then ends them.
    """

    def __init__(self) -> None:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WORKER_BOOTSTRAP,
                    str(task_read),
                    str(result_write),
                    str(os.getpid()),
                ],
                pass_fds=(task_read, result_write),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(task_write)
            os.close(result_read)
            raise
        finally:
            os.close(task_read)
            os.close(result_write)
        self.tasks = Connection(task_write, readable=False)
        self.results = Connection(result_read, writable=False)
        self.key: tuple[str, int] | None = None
        self.tasks.send(list(sys.path))

    def start(self, key: tuple[str, int], task: _BatchTask) -> None:
        try:
            self.tasks.send(task)
        except OSError:
            raise self._died(key) from None
        self.key = key

    def finish(self) -> tuple[tuple[str, int], BatchResult | _BatchFailure]:
        """Receive the reply to the running task (call when ``results`` is readable)."""
        key = self.key
        assert key is not None
        try:
            reply = self.results.recv()
        except (EOFError, OSError):
            raise self._died(key) from None
        self.key = None
        return key, reply

    def _died(self, key: tuple[str, int]) -> RuntimeError:
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return RuntimeError(
            f"a Pythia worker process (pid {self.process.pid}) ended with {how} while "
            f"generating batch {key[1]} of {key[0]!r}; the file is resumable"
        )

    def stop(self) -> None:
        """End the worker: an idle one exits at the closed task pipe, a busy one is terminated."""
        self.tasks.close()
        if self.key is not None and self.process.poll() is None:
            self.process.terminate()

    def join(self) -> None:
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.results.close()


class _ProcessPool:
    """Batches run in ``n_workers`` worker processes, one batch per worker at a time.

    Tasks wait in submission order for an idle worker; results are kept until asked
    for. A worker that dies raises :class:`RuntimeError` when its result is awaited.
    """

    def __init__(self, n_workers: int) -> None:
        self.window = 2 * n_workers
        self._workers: list[_WorkerProcess] = []
        self._queue: deque[tuple[tuple[str, int], _BatchTask]] = deque()
        self._ready: dict[tuple[str, int], BatchResult | _BatchFailure] = {}
        self._dropped: set[tuple[str, int]] = set()
        try:
            for _ in range(n_workers):
                self._workers.append(_WorkerProcess())
        except BaseException:
            self.close()
            raise

    def submit(self, key: tuple[str, int], task: _BatchTask) -> None:
        self._queue.append((key, task))
        self._dispatch()

    def result(self, key: tuple[str, int]) -> BatchResult:
        while key not in self._ready:
            self._collect(key)
        reply = self._ready.pop(key)
        if isinstance(reply, _BatchFailure):
            raise reply.error()
        return reply

    def cancel(self, key: tuple[str, int]) -> None:
        """Forget a batch: unqueue it, or drop its result when its worker replies."""
        self._ready.pop(key, None)
        for i, (queued, _) in enumerate(self._queue):
            if queued == key:
                del self._queue[i]
                return
        if any(w.key == key for w in self._workers):
            self._dropped.add(key)

    def _dispatch(self) -> None:
        for worker in self._workers:
            if worker.key is None and self._queue:
                worker.start(*self._queue.popleft())

    def _collect(self, awaited: tuple[str, int]) -> None:
        busy = {w.results: w for w in self._workers if w.key is not None}
        if not busy:
            raise RuntimeError(f"internal error: batch {awaited} was awaited but never submitted")
        for conn in connection_wait(list(busy)):
            key, reply = busy[conn].finish()
            if key in self._dropped:
                self._dropped.discard(key)
            else:
                self._ready[key] = reply
        self._dispatch()

    def close(self) -> None:
        """End every worker (running batches are abandoned) and wait for them."""
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            worker.join()
        self._workers.clear()


class _DaskPool:
    """Batches run as tasks of a Dask ``distributed`` cluster (``executor="dask"``).

    The client is built from :class:`~contrastx.distributed.ExecutorOptions` (a
    scheduler address, a ``LocalCluster`` or a dask-jobqueue cluster) and closed, with
    a cluster it started, by :meth:`close`. Each batch is one task running
    :func:`_run_batch` on a worker; its result comes back to this process, which
    writes it when the writer asks for it, so the order on disk is the writer's.

    A task whose worker dies is rerun by Dask's scheduler on another worker; a batch
    Dask gives up on (``KilledWorker``) or loses to a restarted cluster (a cancelled
    future) is submitted again, at most ``retries`` times per batch, before the run
    fails. A batch's result is asked for once, so a resubmitted batch is written once.
    An exception raised by the batch itself (a setting Pythia rejects) is raised here
    and not retried: it would fail again.
    """

    def __init__(self, opts: Any) -> None:
        _dask.require_dask("executor 'dask' (Pythia batches)")
        self._retries = int(opts.retries)
        if opts.scheduler is not None:
            self._expected = 1  # the running cluster's workers are counted when asked
        elif opts.cluster == "local":
            self._expected = _dask.local_workers(opts)
        else:
            self._expected = opts.jobs * opts.cores
        self.window = 2 * self._expected
        self._futures: dict[tuple[str, int], Any] = {}
        self._tasks: dict[tuple[str, int], _BatchTask] = {}
        self._lost: dict[tuple[str, int], int] = {}
        self.resubmitted = 0
        """Batches submitted again after their worker or their result was lost."""
        self.client, self.cluster = _dask.dask_client(opts)
        self._update_window()

    def _update_window(self) -> None:
        """``2 x`` the worker threads (those expected, or more if the cluster has grown)."""
        threads = sum(self.client.nthreads().values())
        self.window = 2 * max(self._expected, threads, 1)

    def submit(self, key: tuple[str, int], task: _BatchTask) -> None:
        self._tasks[key] = task
        self._futures[key] = self.client.submit(
            _run_batch, task, key=f"pythia-{key[0]}-{key[1]}-{uuid.uuid4().hex}", pure=False
        )

    def _resubmit(self, key: tuple[str, int], err: BaseException) -> None:
        n = self._lost.get(key, 0) + 1
        if n > self._retries:
            raise RuntimeError(
                f"batch {key[1]} of {key[0]!r} was lost with its Dask worker {n} times "
                f"(last: {type(err).__name__}: {err}); executor.retries is {self._retries}; "
                "the file is resumable"
            ) from err
        self._lost[key] = n
        self.resubmitted += 1
        logger.warning(
            "batch %d of %r lost with its Dask worker (%s); submitting it again",
            key[1],
            key[0],
            type(err).__name__,
        )
        self.submit(key, self._tasks[key])

    def result(self, key: tuple[str, int]) -> BatchResult:
        while True:
            try:
                res = self._futures[key].result()
            except Exception as err:
                if not _dask.lost_worker(err):
                    self.cancel(key)
                    raise
                self._resubmit(key, err)
                # a restarted cluster cancels every future: submit the others again now,
                # not one at a time as the writer reaches them
                for other, fut in list(self._futures.items()):
                    if other != key and fut.status == "cancelled":
                        self._resubmit(other, CancelledError("cancelled with the cluster"))
                continue
            self._forget(key)
            self._update_window()
            return res

    def _forget(self, key: tuple[str, int]) -> None:
        self._futures.pop(key, None)
        self._tasks.pop(key, None)
        self._lost.pop(key, None)

    def cancel(self, key: tuple[str, int]) -> None:
        fut = self._futures.get(key)
        self._forget(key)
        if fut is not None and not fut.done():
            fut.cancel()

    def close(self) -> None:
        """Cancel the batches in flight, close the client and a cluster it started."""
        pending = list(self._futures.values())
        self._futures.clear()
        self._tasks.clear()
        _dask.close_client(self.client, self.cluster, pending)


_Pool = _InlinePool | _ProcessPool | _DaskPool


# ---------------------------------------------------------------- step 4: plan batches
class _Scheduler:
    """Submits batches ahead of the writer, keeping ``pool.window`` batches in flight.

    The writer reads each process's batches in index order; meanwhile the pool
    works ahead on the batches the writer will need: for the process being
    written and the following ones, as many as their filter efficiency says they
    need (two to start with), then more of the current process.
    """

    def __init__(self, pool: _Pool, plan: _RunPlan, out: _Output, todo: Sequence[str]) -> None:
        self.pool, self.plan, self.progress, self.todo = pool, plan, out.progress, list(todo)
        self.pending: set[tuple[str, int]] = set()
        self.next_batch = {p: out.progress[p].batch for p in todo}

    def next_result(self, active: int) -> BatchResult:
        """The next batch of ``todo[active]`` (waits for it; submits work ahead)."""
        p = self.todo[active]
        head = (p, self.progress[p].batch)
        if head not in self.pending:
            self._submit(p)
        self._fill(active)
        self.pending.discard(head)
        return self.pool.result(head)

    def drop(self, process: str) -> None:
        """Cancel the batches submitted ahead for a process that is complete."""
        for key in [k for k in self.pending if k[0] == process]:
            self.pending.discard(key)
            self.pool.cancel(key)

    def _submit(self, p: str) -> None:
        b = self.next_batch[p]
        self.pool.submit((p, b), self.plan.task(p, b))
        self.pending.add((p, b))
        self.next_batch[p] = b + 1

    def _wanted(self, p: str) -> int:
        st = self.progress[p]
        left = self.plan.requested[p] - st.kept
        if st.generated == 0:
            return 2
        eff = max(st.passed / st.generated, 1e-4)
        return math.ceil(1.1 * left / (eff * self.plan.batch_size))

    def _fill(self, active: int) -> None:
        while len(self.pending) < self.pool.window:
            for p in self.todo[active:]:
                if self.next_batch[p] - self.progress[p].batch < self._wanted(p):
                    self._submit(p)
                    break
            else:
                self._submit(self.todo[active])


# ---------------------------------------------------------------- step 5: progress
class _ProgressReport:
    """Progress of one call: a tqdm bar on a terminal, otherwise one log line per batch.

    Each line (INFO, logger ``contrastx.events.generators.pythia``) gives the batch,
    the events written of its process and in all, the rate of this session, the
    process's filter efficiency and the time to go at that rate.
    """

    def __init__(self, path: Path, remaining: Mapping[str, int], enabled: bool) -> None:
        self.name = path.name
        total = sum(remaining.values())
        self.enabled = enabled and total > 0
        self.progress = Progress(
            total,
            bar=self.enabled and stderr_is_terminal(),
            desc=f"{GENERATOR_NAME} {self.name}",
            unit="evt",
        )
        if self.enabled and self.progress.bar is None:
            todo = ", ".join(f"{p} {n}" for p, n in remaining.items())
            logger.info("%s: generating %d events (%s)", self.name, total, todo)

    def batch(self, process: str, res: BatchResult, n: int, st: _ProcessProgress, target: int):
        """Report a committed batch: ``n`` events of ``process`` written."""
        if not self.enabled:
            return
        pr = self.progress
        pr.update(n)
        rate = pr.rate()
        eff = st.passed / st.generated if st.generated else 0.0
        if pr.bar is not None:
            pr.bar.set_postfix(process=process, kept_per_s=f"{rate:.1f}", eff=f"{eff:.3f}")
            return
        logger.info(
            "%s: %s batch %d: %d/%d %s events, %d/%d in all, %.1f events/s, "
            "filter efficiency %.3f, ETA %s",
            self.name,
            process,
            res.batch,
            st.kept,
            target,
            process,
            pr.done,
            pr.total,
            rate,
            eff,
            pr.time_to_go(),
        )

    def close(self, finished: bool) -> None:
        self.progress.close()
        if self.enabled and finished and self.progress.bar is None:
            logger.info(
                "%s: %d events in %s",
                self.name,
                self.progress.done,
                format_duration(self.progress.elapsed),
            )


# ---------------------------------------------------------------- step 6: write
def _commit_batch(
    writer: EventWriter,
    plan: _RunPlan,
    out: _Output,
    process: str,
    res: BatchResult,
    extra_metadata: Mapping[str, Any] | None,
) -> int:
    """Append the events of a batch that are still needed, then commit the progress.

    The metadata update is the commit: rows appended before it are dropped on
    resumption if it did not happen. Returns the number of events appended.
    """
    st = out.progress[process]
    need = plan.requested[process] - st.kept
    rows = slice(st.skip, st.skip + need)
    chunk = res.particles[rows]
    n = int(chunk.shape[0])
    if n:
        label = out.process_names.index(process)
        writer.append(
            Events(
                chunk,
                labels=np.full(n, label, dtype=np.int64),
                process_names=out.process_names,
                layout=plan.dataset.layout,
                event_features=None if res.event_features is None else res.event_features[rows],
            )
        )
    if st.skip == 0:  # count each batch once, even when read in pieces
        st.generated += res.n_generated
        st.passed += res.n_passed
        st.cpu_seconds += res.cpu_seconds
        st.accepted += res.n_generated if res.n_accepted is None else res.n_accepted
        st.sigma_sum_pb += res.sigma_pb * res.n_generated
    st.kept += n
    if st.skip + n >= res.n_passed:
        st.batch += 1
        st.skip = 0
    else:
        st.skip += n  # the rest serves a later extension
    writer.set_metadata(out.metadata(plan, extra_metadata))
    return n


def _write_batches(
    writer: EventWriter,
    plan: _RunPlan,
    out: _Output,
    scheduler: _Scheduler,
    report: _ProgressReport,
    extra_metadata: Mapping[str, Any] | None,
) -> None:
    """Write every process of ``scheduler.todo`` in turn, batch by batch, in index order."""
    for active, p in enumerate(scheduler.todo):
        st = out.progress[p]
        dry = 0
        while st.kept < plan.requested[p]:
            res = scheduler.next_result(active)
            n = _commit_batch(writer, plan, out, p, res, extra_metadata)
            dry = dry + 1 if res.n_passed == 0 else 0
            if dry >= _MAX_DRY_BATCHES and st.kept == 0:
                raise RuntimeError(
                    f"process {p!r}: no event passed {plan.dataset.selection} in {dry} "
                    f"batches of {plan.batch_size}; check its settings"
                )
            report.batch(p, res, n, st, plan.requested[p])
        scheduler.drop(p)


# ---------------------------------------------------------------- main entry point
def _pool_choice(workers: object, executor: object) -> tuple[str, int]:
    """``(kind, local workers)`` of ``workers=`` or ``executor=``: inline, processes or dask."""
    if executor is None:
        if workers is None:
            n = os.cpu_count() or 1
        else:
            n = _check_int("workers", workers, minimum=1)
        return ("processes" if n > 1 else "inline"), n
    from ...distributed.options import ExecutorOptions

    if not isinstance(executor, ExecutorOptions):
        raise TypeError(f"executor must be an ExecutorOptions; got {type(executor).__name__}")
    if workers is not None:
        raise ValueError(
            f"give workers= or executor=, not both (workers={workers!r}); the executor's "
            "local worker count is executor.workers"
        )
    if executor.executor == "processes":
        n = _dask.local_workers(executor)
        return ("processes" if n > 1 else "inline"), n
    if executor.executor == "dask":
        _dask.require_dask("executor 'dask' (Pythia batches)")  # before the file is created
    return executor.executor, 1


def generate_pythia(
    path: str | os.PathLike,
    counts: Mapping[str, int],
    *,
    seed: int = 0,
    mpi: bool = True,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    reco: Any = None,
    extra_settings: Sequence[str] = (),
    progress: bool = True,
    resume: bool = True,
    overwrite: bool = False,
    extra_metadata: Mapping[str, Any] | None = None,
    dataset: PythiaDataset | None = None,
    executor: Any = None,
) -> Path:
    """Generate selected Pythia 8 events per process into a contrastx HDF5 file.

    Parameters
    ----------
    path : str or PathLike
        Output file (contrastx format, ADC2021-compatible ``Particles`` for the
        default dataset).
    counts : mapping of str to int
        Number of *selected* events per process name (registered in the dataset's
        registry, for ADC2021
        :data:`~contrastx.events.generators.processes.PROCESS_REGISTRY`).
        Totals: on resume these are the targets for the whole file.
    seed : int, default 0
        Master seed; every batch's seeds derive from it (see the module docstring).
    mpi : bool, default True
        Multiparton interactions (several times slower when on).
    workers : int, optional
        Local worker processes; default ``os.cpu_count()``. ``1`` runs in this process.
        The output does not depend on it. Not with ``executor`` (which has its own
        ``workers``).
    batch_size : int, default 500
        Events *generated* per batch (and per Pythia initialisation); the unit of
        parallelism, of resumption and of memory (each batch in flight holds its
        hadron-level events). Part of the configuration: changing it changes the
        events.
    reco : optional
        Reconstruction choices, of the dataset's ``reco_type`` (default: its
        defaults; :class:`RecoSettings` for ADC2021).
    extra_settings : sequence of str
        Pythia settings appended to every process's settings (e.g. a tune).
    progress : bool, default True
        Report progress: a tqdm bar when stderr is a terminal, otherwise one INFO
        log line per batch (logger ``contrastx.events.generators.pythia``) with the
        events written, the rate, the filter efficiency and an ETA.
    resume : bool, default True
        If ``path`` exists and was written by this function with the same
        configuration, continue it (or extend it to larger ``counts``).
    overwrite : bool, default False
        Replace an existing ``path`` instead.
    extra_metadata : mapping, optional
        Extra entries for the file's metadata (e.g. the command line).
    dataset : PythiaDataset, optional
        Process family, reconstruction and layout; default :data:`ADC2021_DATASET`
        (see :mod:`contrastx.events.generators.diphoton` for the diphoton one).
    executor : contrastx.distributed.ExecutorOptions, optional
        Where the batches run, instead of ``workers``: ``"inline"`` (this process),
        ``"processes"`` (``executor.workers`` local worker processes, default the CPU
        count; one runs in this process) or ``"dask"`` (tasks of a Dask cluster: a
        ``scheduler`` address, a ``LocalCluster`` of ``workers`` processes, or a
        Slurm / HTCondor cluster of dask-jobqueue; needs ``contrastx[dask]``). A batch
        lost with a Dask worker is submitted again, at most ``executor.retries``
        times. The output does not depend on it.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ImportError
        pythia8mc, fastjet or awkward missing (with an install hint), or Dask for
        ``executor="dask"`` (naming ``contrastx[dask]``).
    ValueError
        Unknown process, negative count, a setting Pythia rejects, an existing
        file with a different configuration or more events than asked, or both
        ``workers`` and ``executor``.
    FileExistsError
        ``path`` exists and neither ``resume`` nor ``overwrite`` is set.
    RuntimeError
        Pythia fails to initialise, a process yields no selected event in 200
        batches, a worker process dies, or a batch is lost with its Dask worker
        more than ``executor.retries`` times.

    Notes
    -----
    The steps: the request is validated and the configuration built
    (:class:`_RunPlan`); the file is created, or checked and cut back to its last
    commit (:func:`_open_output`); batches are submitted ahead to the workers
    (:class:`_Scheduler`; :class:`_InlinePool`, :class:`_ProcessPool` or
    :class:`_DaskPool`) and written in order, each one committed by a metadata update
    (:func:`_commit_batch`).

    On Dask the results come back to this process, which alone writes the file, so
    every pool writes the same events and metadata (``cpu_seconds`` aside) and a file
    begun on one pool may be resumed on another. An interruption of this process
    leaves a resumable file as with local workers; a worker lost mid-run costs only
    its batches, which run again.

    With ``workers > 1`` the batches run in worker processes (fresh interpreters
    started with :mod:`subprocess`, POSIX only). They end with this process however it
    ends: on an exception or KeyboardInterrupt they are terminated before this
    function returns, and on Linux the kernel kills them if this process is killed.
    An interruption (Ctrl-C, or any exception) leaves a resumable file: calling
    again with the same arguments completes it, with the same events as an
    uninterrupted run; :func:`committed_counts` tells how many events it keeps.
    With ``workers=1`` a Ctrl-C takes effect when the batch being generated ends.

    The metadata (``EventFile(path).metadata``) holds ``generator``,
    ``generator_version``, ``versions`` (pythia8mc, fastjet, awkward),
    ``seed``, ``mpi``, ``batch_size``, ``reco`` (the :class:`RecoSettings`),
    ``processes`` (settings and description of each), ``requested_counts``,
    ``progress`` (per process: next batch, events of it already used, and
    ``generated`` / ``accepted`` / ``passed`` / ``kept`` counts, CPU seconds, the
    summed cross-section estimate), ``n_generated``, ``n_kept`` and
    ``filter_efficiency`` per process, plus the dataset's own entries (its
    ``summarize``).
    """
    plan = _plan_run(
        counts,
        seed=seed,
        mpi=mpi,
        batch_size=batch_size,
        reco=reco,
        extra_settings=extra_settings,
        dataset=dataset,
    )
    kind, n_workers = _pool_choice(workers, executor)
    out = _open_output(Path(path), plan, resume=resume, overwrite=overwrite)
    todo = out.todo(plan)
    remaining = {p: plan.requested[p] - out.progress[p].kept for p in todo}
    report = _ProgressReport(out.path, remaining, progress)
    if out.mode == "x":
        _create_file(
            out.path, out.process_names, out.metadata(plan, extra_metadata), plan.dataset.layout
        )
    finished = False
    pool: _Pool = _InlinePool()
    try:
        # workers start before the file is opened: a forked child holds the parent's
        # open files (and HDF5's lock) until it executes the new interpreter
        if todo and kind == "dask":
            pool = _DaskPool(executor)
        elif todo and kind == "processes":
            pool = _ProcessPool(n_workers)
        with EventWriter(
            out.path,
            out.process_names,
            metadata=out.metadata(plan, extra_metadata),
            mode="a",
            layout=plan.dataset.layout,
        ) as writer:
            scheduler = _Scheduler(pool, plan, out, todo)
            _write_batches(writer, plan, out, scheduler, report, extra_metadata)
        finished = True
    finally:
        pool.close()
        report.close(finished)
    return out.path


# ---------------------------------------------------------------- mixtures
def _mixture_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    from .fast import mixture_counts

    return mixture_counts(n, fractions)


def generate_cocktail(
    path: str | os.PathLike,
    n: int,
    *,
    fractions: Mapping[str, float] | None = None,
    **kwargs: Any,
) -> Path:
    """A background cocktail of ``n`` selected events at fixed fractions.

    Parameters
    ----------
    path : str or PathLike
        Output file.
    n : int
        Total number of events.
    fractions : mapping of str to float, optional
        Fraction per process; default :data:`~contrastx.events.layout.ADC2021_MIXTURE`
        (W 59.2 %, QCD 33.8 %, Z 6.7 %, ttbar 0.3 %). Split with largest-remainder
        rounding (:func:`~contrastx.events.generators.fast.mixture_counts`).
    **kwargs
        Passed to :func:`generate_pythia` (``seed``, ``mpi``, ``workers``, ...).
    """
    counts = _mixture_counts(_check_int("n", n), fractions or ADC2021_MIXTURE)
    return generate_pythia(path, {k: v for k, v in counts.items() if v}, **kwargs)


def _signal_count(n_background: int, n_signal: int | None, fraction: float | None) -> int:
    if (n_signal is None) == (fraction is None):
        raise ValueError("give exactly one of n_signal= and fraction=")
    if fraction is not None:
        from ..injection import n_signal_for_fraction

        return n_signal_for_fraction(n_background, fraction)
    return _check_int("n_signal", n_signal)


def generate_injected(
    path: str | os.PathLike,
    n_background: int,
    signal: str,
    *,
    n_signal: int | None = None,
    fraction: float | None = None,
    fractions: Mapping[str, float] | None = None,
    **kwargs: Any,
) -> Path:
    """A labelled background cocktail with a signal injected.

    The signal count is ``n_signal`` or ``round(fraction * n_background)`` (the
    convention of :mod:`contrastx.events.injection`). Labels keep the truth.
    Events are grouped by process on disk (see :func:`shuffle_file`).

    Parameters
    ----------
    path : str or PathLike
        Output file.
    n_background : int
        Background events, split by ``fractions`` (default ADC2021's).
    signal : str
        Signal process name (registered).
    n_signal, fraction
        Exactly one: the signal count or its fraction of the background.
    **kwargs
        Passed to :func:`generate_pythia`.
    """
    get_process(signal)
    counts = _mixture_counts(_check_int("n_background", n_background), fractions or ADC2021_MIXTURE)
    counts = {k: v for k, v in counts.items() if v}
    if signal in counts:
        raise ValueError(f"signal {signal!r} is also a background process of the mixture")
    counts[signal] = _signal_count(n_background, n_signal, fraction)
    return generate_pythia(path, counts, **kwargs)


def shuffle_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a randomly permuted copy of an event file (the whole file is loaded into memory)."""
    from ..io import read_events, write_events

    ev = read_events(src)
    rng = np.random.default_rng(np.random.SeedSequence(_check_int("seed", seed), spawn_key=(1,)))
    out = ev[rng.permutation(len(ev))]
    out.metadata = {**ev.metadata, "shuffled_from": str(src), "shuffle_seed": seed}
    return write_events(dst, out, overwrite=overwrite)


def generate_black_box(
    path: str | os.PathLike,
    truth_path: str | os.PathLike,
    n_background: int,
    signal: str,
    *,
    n_signal: int | None = None,
    fraction: float | None = None,
    fractions: Mapping[str, float] | None = None,
    work_path: str | os.PathLike | None = None,
    seed: int = 0,
    overwrite: bool = False,
    **kwargs: Any,
) -> tuple[Path, Path]:
    """A black-box sample: shuffled, unlabelled, with the truth in a separate file.

    The labelled sample is generated (resumably) into ``work_path`` with
    :func:`generate_injected`, then permuted and written to ``path`` with every
    label ``-1`` (unknown), ``EvtId`` set and no process counts, signal name or
    seed in the metadata. ``truth_path`` is an HDF5 file with ``EvtId`` and
    ``labels`` (attribute ``process_names``) in the same order as ``path``,
    readable as a label side file (:func:`contrastx.events.io.load_labels`), and
    the full generation metadata in the attribute ``metadata``.

    Parameters
    ----------
    path, truth_path : str or PathLike
        The black-box file and its truth file.
    n_background, signal, n_signal, fraction, fractions
        As in :func:`generate_injected`.
    work_path : str or PathLike, optional
        The labelled intermediate file (default ``<path>.work.h5``); kept, so an
        interrupted job resumes.
    seed : int
        Master seed of the generation and of the permutation.
    overwrite : bool
        Replace existing outputs (and the work file).
    **kwargs
        Passed to :func:`generate_pythia`.

    Returns
    -------
    tuple of Path
        ``(path, truth_path)``.
    """
    from ..io import read_events, write_events

    path, truth_path = Path(path), Path(truth_path)
    for p in (path, truth_path):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    work = Path(work_path) if work_path is not None else path.with_name(path.name + ".work.h5")
    generate_injected(
        work,
        n_background,
        signal,
        n_signal=n_signal,
        fraction=fraction,
        fractions=fractions,
        seed=seed,
        overwrite=overwrite,
        **kwargs,
    )
    ev = read_events(work)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    perm = rng.permutation(len(ev))
    mixed = ev[perm]
    evt_id = np.arange(len(ev), dtype=np.int64)
    meta = ev.metadata
    public = {
        "generator": meta.get("generator"),
        "generator_version": meta.get("generator_version"),
        "versions": meta.get("versions"),
        "mpi": meta.get("mpi"),
        "reco": meta.get("reco"),
        "black_box": True,
        "n_events": len(ev),
        "truth_file": truth_path.name,
    }
    # both outputs appear complete or not at all: an interruption here leaves only
    # ".partial" files, and re-running the same call writes them again
    box_tmp = path.with_name(path.name + ".partial")
    truth_tmp = truth_path.with_name(truth_path.name + ".partial")
    write_events(
        box_tmp,
        Events(
            mixed.particles,
            labels=np.full(len(ev), UNKNOWN_LABEL, dtype=np.int64),
            process_names=ev.process_names,
            event_ids=evt_id,
            metadata=public,
        ),
        overwrite=True,
    )
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    with open_h5(truth_tmp, "w", what="truth file") as f:
        f.create_dataset(EVTID_KEY, data=evt_id)
        ds = f.create_dataset(LABELS_KEY, data=mixed.labels)
        ds.attrs["process_names"] = np.array(ev.process_names, dtype=h5py.string_dtype())
        f.attrs["metadata"] = metadata_to_json(
            {**meta, "black_box_file": path.name, "signal": signal, "permutation_seed": seed}
        )
    os.replace(truth_tmp, truth_path)
    os.replace(box_tmp, path)
    return path, truth_path
