"""Pythia 8 event generation in the ADC2021 layout (13 TeV pp, hadron level).

This is contrastx's Monte Carlo generator: Pythia 8 (the ``pythia8mc`` wheel)
generates hadron-level events of a named process
(:mod:`~contrastx.events.generators.processes`), FastJet clusters the jets and a
parametric detector response (:mod:`~contrastx.events.generators.reconstruction`)
produces the 19-slot ADC2021 table, to which the ADC2021 lepton selection is
applied. Output goes straight into a contrastx HDF5 file through
:class:`~contrastx.events.io.EventWriter`, batch by batch.

Install the optional dependencies with ``pip install "contrastx[pythia]"`` (i.e.
``pythia8mc==8.317.2`` and ``fastjet``; the 8.318.0 release of pythia8mc is
source-only and compiles for ~1.5 h).

Design
------
* **Batches.** Work is cut into batches of ``batch_size`` *generated* events.
  Batch ``b`` of process ``p`` under master seed ``s`` is a pure function of
  ``(s, p, b)`` and the configuration: a fresh Pythia instance is initialised
  with ``Random:seed`` drawn from ``SeedSequence(s, spawn_key=(crc32(p), b))``,
  which also seeds the smearing. (Re-using one Pythia across batches would make a
  batch depend on its predecessors through Pythia's adaptive phase-space maxima;
  initialisation costs 0.2-1 s, small against a batch.)
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
* **Memory** is bounded by ``2 * workers`` batches in flight.

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

import json
import math
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..container import UNKNOWN_LABEL, Events
from ..io import (
    EVTID_KEY,
    LABELS_KEY,
    PARTICLES_KEY,
    WEIGHTS_KEY,
    EventFile,
    EventWriter,
    metadata_to_json,
)
from ..layout import ADC2021_MIXTURE, PROCESSES
from .processes import PROCESS_REGISTRY, ProcessSpec, get_process
from .reconstruction import RecoSettings, final_state, reconstruct

__all__ = [
    "GENERATOR_NAME",
    "PYTHIA_GENERATOR_VERSION",
    "BatchResult",
    "RecoSettings",
    "check_dependencies",
    "common_settings",
    "generate_black_box",
    "generate_cocktail",
    "generate_injected",
    "generate_pythia",
    "pythia_batch",
    "shuffle_file",
]

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


# ---------------------------------------------------------------- one batch (worker side)
@dataclass(frozen=True)
class _BatchTask:
    process: str
    batch: int
    settings: tuple[str, ...]
    seed: int
    n_events: int
    reco: RecoSettings


@dataclass
class BatchResult:
    """Output of one batch: its selected events and counters.

    Attributes
    ----------
    process : str
    batch : int
    particles : ndarray, shape (n_passed, 19, 3), float32
        Selected events in generation order.
    n_generated, n_passed : int
        Events returned by Pythia, and those passing the lepton selection.
    cpu_seconds : float
        Process CPU time of the batch (initialisation, generation, reconstruction).
    """

    process: str
    batch: int
    particles: np.ndarray
    n_generated: int
    n_passed: int
    cpu_seconds: float


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
    del pythia
    n_generated = len(raw)
    particles, selected = reconstruct(
        final_state(raw), np.random.default_rng(smear_seed), task.reco
    )
    return BatchResult(
        task.process,
        task.batch,
        particles,
        n_generated,
        int(selected.size),
        time.process_time() - t0,
    )


def pythia_batch(
    process: str,
    batch: int = 0,
    *,
    seed: int = 0,
    n_events: int = DEFAULT_BATCH_SIZE,
    mpi: bool = True,
    reco: RecoSettings | None = None,
    extra_settings: Sequence[str] = (),
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
    reco : RecoSettings, optional
        Reconstruction choices.
    extra_settings : sequence of str
        Pythia settings appended after the process's own.
    """
    check_dependencies()
    spec = get_process(process)
    return _run_batch(
        _BatchTask(
            process,
            _check_int("batch", batch),
            (*common_settings(mpi=mpi), *spec.settings, *extra_settings),
            _check_int("seed", seed),
            _check_int("n_events", n_events, minimum=1),
            reco or RecoSettings(),
        )
    )


# ---------------------------------------------------------------- helpers
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


class _LazyFuture:
    """A stand-in for a Future that runs its task on first ``result()`` (serial mode)."""

    def __init__(self, fn: Callable[[_BatchTask], BatchResult], task: _BatchTask) -> None:
        self._fn, self._task, self._result = fn, task, None

    def result(self) -> BatchResult:
        if self._result is None:
            self._result = self._fn(self._task)
        return self._result

    def cancel(self) -> bool:
        return True


def _truncate(path: Path, n: int) -> int:
    """Cut every per-event dataset of a contrastx file to ``n`` rows; return rows removed."""
    with h5py.File(path, "a") as f:
        removed = int(f[PARTICLES_KEY].shape[0]) - n
        if removed < 0:
            raise RuntimeError(
                f"{path}: the file has {f[PARTICLES_KEY].shape[0]} events but its metadata "
                f"records {n}; it cannot be resumed"
            )
        if removed:
            for key in (PARTICLES_KEY, LABELS_KEY, WEIGHTS_KEY, EVTID_KEY):
                if key in f:
                    f[key].resize(n, axis=0)
    return removed


def _new_progress() -> dict[str, int]:
    return {"batch": 0, "skip": 0, "kept": 0, "generated": 0, "passed": 0, "cpu_seconds": 0.0}


# ---------------------------------------------------------------- main entry point
def generate_pythia(
    path: str | os.PathLike,
    counts: Mapping[str, int],
    *,
    seed: int = 0,
    mpi: bool = True,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    reco: RecoSettings | None = None,
    extra_settings: Sequence[str] = (),
    progress: bool = True,
    resume: bool = True,
    overwrite: bool = False,
    extra_metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Generate selected Pythia 8 events per process into a contrastx HDF5 file.

    Parameters
    ----------
    path : str or PathLike
        Output file (contrastx format, ADC2021-compatible ``Particles``).
    counts : mapping of str to int
        Number of *selected* events per process name (registered in
        :data:`~contrastx.events.generators.processes.PROCESS_REGISTRY`).
        Totals: on resume these are the targets for the whole file.
    seed : int, default 0
        Master seed; every batch's seeds derive from it (see the module docstring).
    mpi : bool, default True
        Multiparton interactions (about 4-5x slower when on).
    workers : int, optional
        Worker processes; default ``os.cpu_count()``. ``1`` runs in this process.
        The output does not depend on it.
    batch_size : int, default 500
        Events *generated* per batch (and per Pythia initialisation); the unit of
        parallelism, of resumption and of memory (~100-300 MB per batch in flight
        with MPI on). Part of the configuration: changing it changes the events.
    reco : RecoSettings, optional
        Reconstruction choices (default: DESIGN §3).
    extra_settings : sequence of str
        Pythia settings appended to every process's settings (e.g. a tune).
    progress : bool, default True
        tqdm bar over kept events, with kept events/s and filter efficiency.
    resume : bool, default True
        If ``path`` exists and was written by this function with the same
        configuration, continue it (or extend it to larger ``counts``).
    overwrite : bool, default False
        Replace an existing ``path`` instead.
    extra_metadata : mapping, optional
        Extra entries for the file's metadata (e.g. the command line).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ImportError
        pythia8mc, fastjet or awkward missing (with an install hint).
    ValueError
        Unknown process, negative count, a setting Pythia rejects, or an
        existing file with a different configuration or more events than asked.
    FileExistsError
        ``path`` exists and neither ``resume`` nor ``overwrite`` is set.
    RuntimeError
        Pythia fails to initialise, or a process yields no selected event in
        200 batches.

    Notes
    -----
    With ``workers > 1`` the batches run in ``spawn``-started worker processes, so
    a calling *script* must guard its entry point with
    ``if __name__ == "__main__":`` (console scripts and pytest already do).
    Interrupting (Ctrl-C) waits for the running batches to finish, then leaves a
    resumable file.

    The metadata (``EventFile(path).metadata``) holds ``generator``,
    ``generator_version``, ``versions`` (pythia8mc, fastjet, awkward),
    ``seed``, ``mpi``, ``batch_size``, ``reco`` (the :class:`RecoSettings`),
    ``processes`` (settings and description of each), ``requested_counts``,
    ``progress`` (per process: next batch, events of it already used, and
    ``generated`` / ``passed`` / ``kept`` counts, CPU seconds), ``n_generated``,
    ``n_kept`` and ``filter_efficiency`` per process.
    """
    versions = check_dependencies()
    path = Path(path)
    seed = _check_int("seed", seed)
    batch_size = _check_int("batch_size", batch_size, minimum=1)
    reco = reco or RecoSettings()
    if workers is None:
        workers = os.cpu_count() or 1
    workers = _check_int("workers", workers, minimum=1)
    requested: dict[str, int] = {}
    for name, count in counts.items():
        get_process(name)
        requested[name] = _check_int(f"counts[{name!r}]", count)
    custom = [p for p in requested if p not in PROCESSES]
    process_names = (*PROCESSES, *custom)
    order = [p for p in process_names if p in requested]

    base = common_settings(mpi=mpi)
    extra = tuple(str(s) for s in extra_settings)
    proc_meta: dict[str, dict[str, Any]] = {}
    full_settings: dict[str, tuple[str, ...]] = {}
    for name in order:
        spec = PROCESS_REGISTRY[name]
        full_settings[name] = (*base, *spec.settings, *extra)
        _validate_settings(spec, full_settings[name])
        proc_meta[name] = {"settings": list(spec.settings), "description": spec.description}

    config = {
        "generator": GENERATOR_NAME,
        "generator_version": PYTHIA_GENERATOR_VERSION,
        "versions": versions,
        "seed": seed,
        "mpi": bool(mpi),
        "batch_size": batch_size,
        "common_settings": base,
        "extra_settings": list(extra),
        "reco": reco.to_dict(),
    }

    # ------------------------------------------------------------ open / resume
    state: dict[str, dict[str, Any]] = {}
    stored_processes: dict[str, Any] = {}
    stored_requested: dict[str, int] = {}
    if path.exists() and overwrite:
        path.unlink()
    if path.exists():
        if not resume:
            raise FileExistsError(
                f"{path} exists; pass resume=True to continue it or overwrite=True to replace it"
            )
        with EventFile(path) as f:
            old = f.metadata
            stored_names = f.process_names
        mismatch = [k for k, v in config.items() if json.loads(json.dumps(v)) != old.get(k)]
        if mismatch:
            raise ValueError(
                f"{path} was written with a different configuration (differs: "
                f"{', '.join(mismatch)}); use another path or overwrite=True"
            )
        stored_processes = old.get("processes", {})
        for name in order:
            if name in stored_processes and stored_processes[name]["settings"] != list(
                PROCESS_REGISTRY[name].settings
            ):
                raise ValueError(f"{path}: process {name!r} was written with other settings")
        if not set(process_names) <= set(stored_names):
            raise ValueError(
                f"{path} stores the processes {tuple(stored_names)}; new custom processes "
                "cannot be added to an existing file"
            )
        process_names = tuple(stored_names)
        order = [p for p in process_names if p in requested]
        state = {k: dict(v) for k, v in old.get("progress", {}).items()}
        stored_requested = dict(old.get("requested_counts", {}))
        removed = _truncate(path, sum(int(v["kept"]) for v in state.values()))
        if removed:
            print(f"{path}: dropped {removed} events written after the last commit")
        for name, n in requested.items():
            have = int(state.get(name, {}).get("kept", 0))
            if n < have:
                raise ValueError(
                    f"{path} already holds {have} {name} events, more than the {n} requested"
                )
        mode = "a"
    else:
        mode = "x"
    for name in order:
        state.setdefault(name, _new_progress())
    targets = {**stored_requested, **requested}
    all_processes = {**stored_processes, **proc_meta}

    def current_metadata() -> dict[str, Any]:
        meta = dict(config)
        meta.update(extra_metadata or {})
        meta["processes"] = all_processes
        meta["requested_counts"] = targets
        meta["progress"] = state
        meta["n_generated"] = {k: v["generated"] for k, v in state.items()}
        meta["n_kept"] = {k: v["kept"] for k, v in state.items()}
        meta["filter_efficiency"] = {
            k: (v["passed"] / v["generated"] if v["generated"] else None) for k, v in state.items()
        }
        return meta

    todo = [p for p in order if state[p]["kept"] < requested[p]]
    total_todo = sum(requested[p] - state[p]["kept"] for p in todo)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_todo, unit="evt", desc=f"{GENERATOR_NAME} {path.name}")

    executor: ProcessPoolExecutor | None = None
    if workers > 1 and todo:
        import multiprocessing

        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    window = 2 * workers if executor is not None else 1
    pending: dict[tuple[str, int], Future | _LazyFuture] = {}
    next_submit = {p: state[p]["batch"] for p in todo}

    def submit(p: str) -> None:
        b = next_submit[p]
        task = _BatchTask(p, b, full_settings[p], seed, batch_size, reco)
        if executor is None:
            pending[(p, b)] = _LazyFuture(_run_batch, task)
        else:
            pending[(p, b)] = executor.submit(_run_batch, task)
        next_submit[p] = b + 1

    def batches_wanted(p: str) -> int:
        st = state[p]
        left = requested[p] - st["kept"]
        if st["generated"] == 0:
            return 2
        eff = max(st["passed"] / st["generated"], 1e-4)
        return math.ceil(1.1 * left / (eff * batch_size))

    def fill(active: int) -> None:
        while len(pending) < window:
            for p in todo[active:]:
                if next_submit[p] - state[p]["batch"] < batches_wanted(p):
                    submit(p)
                    break
            else:
                submit(todo[active])

    t_start = time.perf_counter()
    kept_total = 0
    try:
        with EventWriter(path, process_names, metadata=current_metadata(), mode=mode) as writer:
            label_of = {n: i for i, n in enumerate(process_names)}
            for active, p in enumerate(todo):
                st = state[p]
                dry = 0
                while st["kept"] < requested[p]:
                    head = (p, st["batch"])
                    if head not in pending:
                        submit(p)
                    fill(active)
                    res = pending.pop(head).result()
                    need = requested[p] - st["kept"]
                    chunk = res.particles[st["skip"] : st["skip"] + need]
                    if chunk.shape[0]:
                        writer.append(
                            Events(
                                chunk,
                                labels=np.full(chunk.shape[0], label_of[p], dtype=np.int64),
                                process_names=process_names,
                            )
                        )
                    if st["skip"] == 0:  # count each batch once, even when read in pieces
                        st["generated"] += res.n_generated
                        st["passed"] += res.n_passed
                        st["cpu_seconds"] += res.cpu_seconds
                    st["kept"] += chunk.shape[0]
                    if st["skip"] + chunk.shape[0] >= res.n_passed:
                        st["batch"] += 1
                        st["skip"] = 0
                    else:
                        st["skip"] += chunk.shape[0]  # the rest serves a later extension
                    writer.set_metadata(current_metadata())
                    dry = dry + 1 if res.n_passed == 0 else 0
                    if dry >= _MAX_DRY_BATCHES and st["kept"] == 0:
                        raise RuntimeError(
                            f"process {p!r}: no event passed the lepton selection in {dry} "
                            f"batches of {batch_size}; check its settings"
                        )
                    kept_total += chunk.shape[0]
                    if bar is not None:
                        bar.update(chunk.shape[0])
                        elapsed = max(time.perf_counter() - t_start, 1e-9)
                        bar.set_postfix(
                            process=p,
                            kept_per_s=f"{kept_total / elapsed:.1f}",
                            eff=f"{st['passed'] / max(st['generated'], 1):.3f}",
                        )
                for key in [k for k in pending if k[0] == p]:
                    pending.pop(key).cancel()
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return path


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
    """Write a randomly permuted copy of an event file (loads it into memory, ~230 B/event)."""
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
    write_events(
        path,
        Events(
            mixed.particles,
            labels=np.full(len(ev), UNKNOWN_LABEL, dtype=np.int64),
            process_names=ev.process_names,
            event_ids=evt_id,
            metadata=public,
        ),
        overwrite=overwrite,
    )
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(truth_path, "w") as f:
        f.create_dataset(EVTID_KEY, data=evt_id)
        ds = f.create_dataset(LABELS_KEY, data=mixed.labels)
        ds.attrs["process_names"] = np.array(ev.process_names, dtype=h5py.string_dtype())
        f.attrs["metadata"] = metadata_to_json(
            {**meta, "black_box_file": path.name, "signal": signal, "permutation_seed": seed}
        )
    return path, truth_path
