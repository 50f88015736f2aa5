"""``contrastx-toys``: NPLM null and signal toys, written incrementally to HDF5.

Runs ``--n`` null toys and (when N(S) > 0) ``--n`` signal toys with the batched
shared-reference engine (``--mode paper`` re-draws reference and centres per toy as the
paper's code does), resumes an interrupted run from its results file, and prints and
writes (JSON) a summary: the chi^2 fitted to the null (dof = mean, and the KS-optimal
dof, each with its KS distance and p-value), the median Z of the signal toys with its
bootstrap error and 68 % band, and the power at 1, 2, 3 sigma (chi^2 and empirical
null) with Clopper-Pearson intervals. When the median signal t is beyond every null
toy, the empirical median Z is printed as the bound it is ("> 2.33" with 100 null
toys; ``lower_bound`` in the JSON) and the chi^2 one is flagged as an extrapolation.
The JSON is strict: numbers that are not finite are written as null. A figure of the
null and signal t distributions with the fitted chi^2 (the primary paper's Fig. IV) is
written next to the results file (``<out>.png`` and ``<out>.pdf``).

Inputs (``--input``):

* an embedding file: HDF5 with ``embedding`` (N, D) float and ``labels`` (N,) int
  datasets; label names from the ``process_names`` attribute (of the file or of
  ``labels``), else contrastx's built-in process order;
* a contrastx or ADC2021 event file: the flattened 57 features (pT, eta, phi of the 19
  object slots);
* nothing: the built-in default sample from the fast parametric generator (for quick
  runs only, never physics evidence), mapped to the 6-D leading-object pT baseline
  (pT of MET, the two leading electrons, the two leading muons and the leading jet;
  0 where absent).

Background events are those labelled W, QCD, Z or ttbar (``--background`` to change),
signal events those of ``--signal``. Features are standardised with the background
pool's mean and standard deviation (``--no-standardize`` to keep them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DEFAULTS = {"n_ref": 20_000, "n_bkg": 2_000.0, "M": 500}
# --paper also stores the whitened pool in float32 (4 GB instead of 8; t within ~1e-7 of a
# float64 pool).
PAPER = {
    "n_ref": 1_000_000,
    "n_bkg": 100_000.0,
    "M": 1000,
    "sig_fraction": 0.005,
    "pool_dtype": "float32",
}
DEFAULT_SIG_FRACTION = 0.01
LEADING_PT_SLOTS = (0, 1, 2, 5, 6, 9)
LEADING_PT_NAMES = ("MET", "e1", "e2", "mu1", "mu2", "j1")


def build_parser() -> argparse.ArgumentParser:
    """The ``contrastx-toys`` flags; the NPLM settings come from the options classes."""
    from contrastx.nplm.options import DeviceOptions, SolverOptions, ToyOptions
    from contrastx.options import HelpFormatter, add_arguments, option_doc

    p = argparse.ArgumentParser(
        prog="contrastx-toys",
        description=__doc__.split("\n\n")[0],
        epilog=(
            f"CPU-sized defaults: N_R = {DEFAULTS['n_ref']:,}, N(B) = {DEFAULTS['n_bkg']:,.0f}, "
            f"M = {DEFAULTS['M']}, N(S) = {DEFAULT_SIG_FRACTION} N(B), 250 toys per hypothesis. "
            "--paper: N_R = 1e6, N(B) = 1e5, M = 1000, N(S) = 0.005 N(B) (0.5 % injection); "
            "with the built-in sample the data pool is 10 N(B) = 1e6 events (--pool-factor), "
            "whose whitened matrix --paper stores in float32 (4 GB; 8 GB with --pool-dtype "
            "float64, 2 GB with int16). Measured at that scale on a quiet 2-core CPU: setup "
            "39.0 s (sample 14.5, reference 14.4, pool 9.7), then 250 + 250 toys in 37.2 s "
            "(3 CG iterations per toy), 78 s and 5.1 GB in all; int16: 84 s and 3.2 GB. On a "
            "GPU (--gpu 0) the toys run as dense GEMMs over the pool."
        ),
        formatter_class=HelpFormatter,
    )
    io = p.add_argument_group("input and output")
    io.add_argument(
        "--input",
        type=Path,
        default=None,
        help="embedding or event HDF5 file (default: built-in fast-generator sample)",
    )
    io.add_argument("--signal", default="Ato4l", help="signal process name (or label id)")
    io.add_argument(
        "--background",
        default="W,QCD,Z,ttbar",
        help="comma-separated background process names (or label ids)",
    )
    io.add_argument(
        "--no-standardize",
        action="store_true",
        help="do not standardise features with the background pool statistics",
    )
    io.add_argument(
        "--pool-factor",
        type=float,
        default=10.0,
        help="default sample only: background pool = N_R + this x N(B) events",
    )
    io.add_argument("--out", type=Path, default=Path("nplm-toys.h5"), help="results HDF5")
    io.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="summary JSON (default: the results path with .json)",
    )
    io.add_argument("--overwrite", action="store_true", help="discard an existing results file")
    run = p.add_argument_group("toys")
    run.add_argument("--n", type=int, default=250, help="toys per hypothesis (null and signal)")
    sizes = {
        "n_ref": f"{DEFAULTS['n_ref']:_}; --paper: {PAPER['n_ref']:_}",
        "n_bkg": f"{DEFAULTS['n_bkg']:_.0f}; --paper: {PAPER['n_bkg']:_.0f}",
        "M": f"{DEFAULTS['M']}; --paper: {PAPER['M']}",
        "pool_dtype": f"'float64'; --paper: {PAPER['pool_dtype']!r}",
    }
    add_arguments(run, ToyOptions, embedded=False, exclude=("n_sig",), default_text=sizes)
    sig = run.add_mutually_exclusive_group()
    add_arguments(
        sig,
        ToyOptions,
        only=("n_sig",),
        embedded=False,
        default_text={"n_sig": "--sig-fraction x N(B)"},
    )
    sig.add_argument(
        "--sig-fraction",
        type=float,
        default=None,
        help=f"N(S) as a fraction of N(B) (default: {DEFAULT_SIG_FRACTION}; "
        f"--paper: {PAPER['sig_fraction']})",
    )
    run.add_argument(
        "--paper",
        action="store_true",
        help="paper preset: N_R=1e6, N(B)=1e5, M=1000, N(S)=0.005 N(B)",
    )
    run.add_argument("--null-only", action="store_true", help="skip the signal toys")
    add_arguments(p, SolverOptions, title="model", default_text=sizes)
    dev = p.add_argument_group("device")
    g = dev.add_mutually_exclusive_group()
    g.add_argument("--gpu", type=int, default=None, metavar="N", help="CUDA device index")
    g.add_argument("--device", default=None, help="torch device string (cpu, cuda:1, ...)")
    budget = DeviceOptions()
    dev.add_argument(
        "--memory-mb",
        type=int,
        default=None,
        help=option_doc(DeviceOptions, "memory_bytes").replace("in bytes", "in MiB")
        + f" (default: {budget.memory_bytes // 2**20})",
    )
    dev.add_argument(
        "--pool-memory-gb",
        type=float,
        default=None,
        help=option_doc(DeviceOptions, "pool_memory_bytes").replace("in bytes", "in GiB")
        + f" (default: {budget.pool_memory_bytes / 2**30:g})",
    )
    add_arguments(dev, DeviceOptions, exclude=("memory_bytes", "pool_memory_bytes"))
    io.add_argument("--no-plot", action="store_true", help="do not write the t-distribution figure")
    dev.add_argument("--no-progress", action="store_true", help="no progress bar")
    from contrastx.distributed.options import ExecutorOptions

    add_arguments(p, ExecutorOptions, title="executor (toys in shards on processes or Dask)")
    return p


def executor_options(args: argparse.Namespace) -> Any:
    """The run's :class:`~contrastx.distributed.ExecutorOptions` from the executor flags."""
    from contrastx.distributed.options import ExecutorOptions
    from contrastx.options import from_arguments

    return from_arguments(ExecutorOptions, args)


def toy_options(args: argparse.Namespace) -> Any:
    """The run's :class:`~contrastx.nplm.ToyOptions`: the CPU-sized or ``--paper`` sizes,
    then every option flag given, with N(S) from ``--n-sig`` or ``--sig-fraction``."""
    from contrastx.nplm.options import ToyOptions
    from contrastx.options import from_arguments

    preset = PAPER if args.paper else DEFAULTS
    base = {"n_ref": preset["n_ref"], "n_bkg": preset["n_bkg"], "M": preset["M"]}
    if "pool_dtype" in preset:
        base["pool_dtype"] = preset["pool_dtype"]
    if args.memory_mb is not None:
        if args.memory_mb < 1:
            raise ValueError(f"--memory-mb must be >= 1; got {args.memory_mb}")
        base["memory_bytes"] = args.memory_mb * 2**20
    if args.pool_memory_gb is not None:
        if not (math.isfinite(args.pool_memory_gb) and args.pool_memory_gb >= 0):
            raise ValueError(f"--pool-memory-gb must be >= 0; got {args.pool_memory_gb}")
        base["pool_memory_bytes"] = int(args.pool_memory_gb * 2**30)
    # The option flags are laid over the preset together (--n-ref 3000 --M 60 is one change).
    cfg = from_arguments(ToyOptions, args, base=ToyOptions(**base))
    if args.null_only:
        n_sig = 0.0
    elif args.n_sig is not None:
        n_sig = cfg.n_sig
    else:
        frac = args.sig_fraction
        if frac is None:
            frac = PAPER["sig_fraction"] if args.paper else DEFAULT_SIG_FRACTION
        if not (math.isfinite(frac) and frac >= 0):
            raise ValueError(f"--sig-fraction must be >= 0; got {frac}")
        n_sig = float(frac) * cfg.n_bkg
    return dataclasses.replace(cfg, n_sig=n_sig)


# ----------------------------------------------------------------------- inputs
def _names_to_labels(spec: str, names: list[str], what: str) -> list[int]:
    out = []
    for item in filter(None, (s.strip() for s in str(spec).split(","))):
        if item.lstrip("-").isdigit():
            out.append(int(item))
        elif item in names:
            out.append(names.index(item))
        else:
            raise ValueError(f"{what}: unknown process {item!r}; known: {', '.join(names)}")
    if not out:
        raise ValueError(f"{what}: no process given")
    return out


def leading_pt_features(particles: np.ndarray) -> np.ndarray:
    """6-D leading-object pT: MET, e1, e2, mu1, mu2, j1 (0 where absent), float64."""
    return np.asarray(particles[:, LEADING_PT_SLOTS, 0], dtype=np.float64)


def _default_sample(args: argparse.Namespace, cfg: Any):
    from contrastx.events.generators import FAST_GENERATOR_VERSION, generate_sample, mixture_counts
    from contrastx.events.layout import ADC2021_MIXTURE, PROCESSES

    n_sig = cfg.n_sig
    n_pool = int(cfg.n_ref + args.pool_factor * cfg.n_bkg)
    counts = mixture_counts(n_pool, ADC2021_MIXTURE)
    signal = args.signal
    if signal not in PROCESSES or signal in ADC2021_MIXTURE:
        raise ValueError(f"--signal must be one of the signal processes; got {signal!r}")
    n_sig_pool = int(max(2000, 20 * n_sig)) if n_sig > 0 else 0
    if n_sig_pool:
        counts[signal] = n_sig_pool
    ev = generate_sample(counts, seed=cfg.seed, workers=min(os.cpu_count() or 1, len(counts)))
    x = leading_pt_features(ev.particles)
    is_sig = ev.labels == PROCESSES.index(signal)
    info = {
        "source": "fast generator (contrastx.events.generators.generate_sample)",
        # In the results file's key: a file made with another generator version (another
        # sample for the same seed) is not resumed.
        "generator_version": FAST_GENERATOR_VERSION,
        "features": "leading-object pT: " + ", ".join(LEADING_PT_NAMES),
        "sample_seed": cfg.seed,
        "background_pool": int((~is_sig).sum()),
        "signal": signal,
        "signal_pool": int(is_sig.sum()),
    }
    return x[~is_sig], x[is_sig], info


def _read_input(path: Path, args: argparse.Namespace):
    from contrastx.events.io import open_h5

    if not path.is_file():
        raise ValueError(f"--input {path} does not exist")
    with open_h5(path, "r", what="input file") as f:
        is_embedding = "embedding" in f
        if is_embedding:
            if "labels" not in f:
                raise ValueError(f"{path}: an embedding file needs a 'labels' dataset")
            x = np.asarray(f["embedding"][()], dtype=np.float64)
            labels = np.asarray(f["labels"][()]).reshape(-1).astype(np.int64)
            raw = f.attrs.get("process_names", f["labels"].attrs.get("process_names"))
    if is_embedding:
        from contrastx.events.layout import PROCESSES

        if x.ndim != 2 or x.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{path}: embedding must be (N, D) with N labels; got {x.shape} and {labels.shape}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{path}: the embedding file holds no events")
        if raw is None:
            names = list(PROCESSES)
        elif isinstance(raw, str):
            names = list(json.loads(raw))
        else:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
        features = f"embedding ({x.shape[1]}-D)"
    else:
        from contrastx.events import read_events

        ev = read_events(path)
        x = np.asarray(ev.particles.reshape(len(ev), -1), dtype=np.float64)
        labels = np.asarray(ev.labels, dtype=np.int64)
        names = list(ev.process_names)
        features = "flattened 57 features (pT, eta, phi of 19 objects)"
    bkg_labels = _names_to_labels(args.background, names, "--background")
    sig_labels = _names_to_labels(args.signal, names, "--signal")
    is_bkg = np.isin(labels, bkg_labels)
    is_sig = np.isin(labels, sig_labels)
    if not is_bkg.any():
        raise ValueError(f"{path}: no background events (labels {bkg_labels})")
    info = {
        "source": str(path.resolve()),
        "features": features,
        "background_pool": int(is_bkg.sum()),
        "signal": args.signal,
        "signal_pool": int(is_sig.sum()),
    }
    return x[is_bkg], x[is_sig], info


def _standardize(bkg: np.ndarray, sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = bkg.mean(0)
    std = bkg.std(0)
    std[std == 0] = 1.0
    return (bkg - mean) / std, (sig - mean) / std


# ---------------------------------------------------------------------- summary
def summarize(t0: np.ndarray, t1: np.ndarray | None) -> dict[str, Any]:
    """Null chi^2 fits, median Z and power at 1, 2, 3 sigma (chi^2 and empirical)."""
    from contrastx.nplm import statistics as st

    out: dict[str, Any] = {"n_null": int(t0.size)}
    if t0.size < 2:
        return out
    out["t_null_mean"] = float(t0.mean())
    out["t_null_std"] = float(t0.std(ddof=1))
    fits = {m: st.fit_chi2_dof(t0, m) for m in ("mean", "ks")}
    out["chi2"] = {m: f.as_dict() for m, f in fits.items()}
    if t1 is not None and t1.size:
        dof = fits["mean"].dof
        out["n_signal"] = int(t1.size)
        out["t_signal_median"] = float(np.median(t1))
        out["median_z"] = {
            "chi2_mean_dof": st.median_z(t1, t0, method="chi2", dof=dof).as_dict(),
            "chi2_ks_dof": st.median_z(t1, t0, method="chi2", dof=fits["ks"].dof).as_dict(),
            "empirical": st.median_z(t1, t0, method="empirical").as_dict(),
        }
        # The largest Z the null toys can show; a chi^2 Z beyond it extrapolates the fit.
        out["empirical_z_limit"] = st.empirical_z_limit(int(t0.size))
        out["t_signal_median_beyond_null"] = bool(np.median(t1) > t0.max())
        out["power_interval"] = "Clopper-Pearson, 68.27 % CL"
        out["power"] = {
            "chi2_mean_dof": [p.as_dict() for p in st.power(t1, t0, method="chi2", dof=dof)],
            "empirical": [p.as_dict() for p in st.power(t1, t0, method="empirical")],
        }
    return out


def _write_figure(
    out: Path, t0: np.ndarray, t1: np.ndarray | None, summary: dict[str, Any], signal: str
) -> list[str]:
    """The null/signal t figure as ``<out stem>.png`` and ``.pdf``; [] without matplotlib."""
    try:
        from contrastx.plots import save_toy_figure
    except ImportError as exc:  # matplotlib missing
        print(f"contrastx-toys: no figure ({exc})", file=sys.stderr)
        return []
    cfg = summary["config"]
    title = (
        f"NPLM toys: N_R = {cfg['n_ref']:,}, N(B) = {cfg['n_bkg']:,.0f}, "
        f"N(S) = {cfg['n_sig']:,.0f}, M = {cfg['M']}"
    )
    paths = save_toy_figure(
        out.with_suffix(""),
        t0,
        t1 if t1 is not None and t1.size else None,
        dof=summary["chi2"]["mean"]["dof"],
        title=title,
        signal_label=f"signal toys ({signal})",
    )
    return [str(p) for p in paths]


def _power_text(p: dict[str, Any]) -> str:
    """One power entry: ``"2s 0.840 [0.790, 0.880]"`` (Clopper-Pearson interval), or n/a."""
    if p["power"] is None or not math.isfinite(p["power"]):
        return f"{p['z']:.0f}s n/a (too few null toys)"
    return f"{p['z']:.0f}s {p['power']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}]"


def _print_summary(s: dict[str, Any], timing: dict[str, Any]) -> None:
    from contrastx.nplm.statistics import MedianZ

    print(f"null toys: {s['n_null']}", end="")
    if "t_null_mean" in s:
        c = s["chi2"]
        print(
            f"  t mean {s['t_null_mean']:.3f} std {s['t_null_std']:.3f}  "
            f"chi2 dof (mean) {c['mean']['dof']:.3f}  dof (KS) {c['ks']['dof']:.3f} "
            f"[KS p {c['ks']['ks_pvalue']:.3f}]"
        )
    else:
        print()
    if "median_z" in s:
        mz = MedianZ(**s["median_z"]["chi2_mean_dof"])
        me = MedianZ(**s["median_z"]["empirical"])
        print(
            f"signal toys: {s['n_signal']}  median t {s['t_signal_median']:.3f}  "
            f"median Z (chi2) {mz.text()} [68% band {mz.z_lo:.2f}, {mz.z_hi:.2f}]  "
            f"median Z (empirical) {me.text()}"
        )
        if s["t_signal_median_beyond_null"]:
            print(
                f"  the median signal t is beyond every null toy: the empirical Z is a lower "
                f"bound (its limit with {s['n_null']} null toys is "
                f"{s['empirical_z_limit']:.2f}) and the chi2 Z extrapolates the fitted chi2 "
                "beyond the null toys; run more null toys to measure it"
            )
        for kind in ("chi2_mean_dof", "empirical"):
            parts = [_power_text(p) for p in s["power"][kind]]
            print(f"power ({kind}, 68% Clopper-Pearson interval): " + "; ".join(parts))
    parts = ", ".join(f"{k} {v:.1f}" for k, v in timing.get("setup_parts_s", {}).items())
    print(
        f"timing: setup {timing['setup_s']:.2f} s{f' ({parts})' if parts else ''}, "
        f"{timing['toys_run']} toys in {timing['toys_s']:.2f} s "
        f"({timing['toys_per_s']:.2f} toys/s)"
    )


# ------------------------------------------------------------------------- main
class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM received while :func:`main` runs (``signum`` says which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stop_on_signals(progress: dict[str, Any]) -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` once; a second one ends the process.

    The signal is also recorded in ``progress["signum"]``: where Python cannot propagate
    the exception (a weakref callback or ``__del__`` running when the signal arrives), it
    is dropped silently and :func:`run` stops after the block instead. Blocks are
    committed atomically, so an exit at any point (this exception, a second signal,
    SIGKILL) leaves a file that resumes. Outside the main thread nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.getsignal(s) for s in sigs}
    old_hook = sys.unraisablehook

    def handler(signum: int, frame: Any) -> None:
        for s in sigs:
            signal.signal(s, signal.SIG_DFL)
        progress.setdefault("signum", signum)
        raise Interrupted(signum)

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, Interrupted):
            old_hook(info)

    for s in sigs:
        signal.signal(s, handler)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        for s, h in old.items():
            signal.signal(s, h)


def _stop_if_signalled(progress: dict[str, Any]) -> None:
    """Raise :class:`Interrupted` for a signal whose exception was dropped (see above)."""
    if "signum" in progress:
        raise Interrupted(progress["signum"])


def run(args: argparse.Namespace, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the toys of ``args`` (see :func:`build_parser`); return the summary.

    ``progress``, if given, is kept up to date with ``out``, ``saved`` (toys committed to
    the results file) and ``total`` (toys asked for), for a message on interruption; a
    ``signum`` entry (a signal received, see :func:`main`) stops the run after the block.
    """
    progress = {} if progress is None else progress
    import torch
    from tqdm import tqdm

    from contrastx._json import dumps, json_ready
    from contrastx.distributed.toys import ToyProblem, engine_info
    from contrastx.nplm.kernel import resolve_device
    from contrastx.nplm.results import ToyResultsFile
    from contrastx.nplm.toys import NULL, SIGNAL, ToyEngine
    from contrastx.options import to_dict

    if args.n < 1:
        raise ValueError(f"--n must be >= 1; got {args.n}")
    device = resolve_device(f"cuda:{args.gpu}" if args.gpu is not None else args.device)
    cfg = toy_options(args)
    n_sig = cfg.n_sig

    t_setup = time.perf_counter()
    if args.input is None:
        bkg, sig, info = _default_sample(args, cfg)
    else:
        bkg, sig, info = _read_input(args.input, args)
    setup_parts = {"sample" if args.input is None else "input": time.perf_counter() - t_setup}
    info["standardized"] = not args.no_standardize
    if not args.no_standardize:
        bkg, sig = _standardize(bkg, sig)
    if n_sig > 0 and sig.shape[0] == 0:
        raise ValueError(f"no signal events of {args.signal!r} in the input (N(S) = {n_sig})")
    ex = executor_options(args)
    sig_pool = sig if sig.shape[0] else None
    if ex.executor == "inline":
        engine = ToyEngine(bkg, sig_pool, config=cfg, device=device)
        engine.prepare()
        info_engine = engine_info(engine)
        setup_parts.update(engine.setup_seconds_)
    setup_s = time.perf_counter() - t_setup

    # The settings that determine t (not memory, blocking, strategy or backend).
    key = {**cfg.result_settings(), "input": info}
    config = {
        **key,
        "device": str(device),
        "weight": cfg.weight,
        "n": args.n,
        "torch": torch.__version__,
        "executor": to_dict(ex),
    }

    def engine_line(info: dict[str, Any]) -> None:
        pb = info["pool_backend_used"]
        backend = f", {pb} pool products" if pb else ""
        print(
            f"engine: {cfg.mode} mode, strategy {info['strategy_used']}{backend} "
            f"({info['strategy_reason']})"
        )

    if ex.executor == "inline":
        config.update(info_engine)
        engine_line(info_engine)
    hyps = [NULL] + ([SIGNAL] if n_sig > 0 else [])
    out_json = args.summary or args.out.with_suffix(".json")
    with ToyResultsFile(args.out, config, key, overwrite=args.overwrite) as res:
        todo = {h: sorted(set(range(args.n)) - set(res.done(h).tolist())) for h in hyps}
        total = sum(len(v) for v in todo.values())
        done_before = sum(args.n - len(v) for v in todo.values())
        progress.update(out=args.out, saved=done_before, total=done_before + total)
        if done_before:
            print(f"resuming {args.out}: {done_before} toys already done, {total} to run")
        t_toys = 0.0
        bar = tqdm(total=total, unit="toy", disable=args.no_progress, dynamic_ncols=True)
        distributed_stats = None
        try:
            if ex.executor == "inline":
                for h in hyps:
                    bar.set_description("null" if h == NULL else "signal")
                    # Blocks of about BLOCK_SECONDS each, committed one by one.
                    for blk in engine.run(todo[h], hypothesis=h):
                        res.append(blk)
                        progress["saved"] += len(blk)
                        t_toys += blk.seconds
                        bar.update(len(blk))
                        bar.set_postfix(toys_per_s=f"{bar.n / max(t_toys, 1e-9):.2f}")
                        _stop_if_signalled(progress)
            elif total:
                distributed_stats = _run_distributed(
                    ToyProblem(bkg, sig_pool, cfg, str(device)),
                    todo,
                    ex,
                    res,
                    config,
                    engine_line,
                    bar,
                    progress,
                )
                t_toys = distributed_stats["seconds"]
        finally:
            bar.close()
        t0 = res.read(NULL)["t"]
        t1 = res.read(SIGNAL)["t"] if n_sig > 0 else None
        summary = summarize(t0, t1)
        timing = {
            "setup_s": setup_s,
            "setup_parts_s": setup_parts,
            "toys_run": total,
            "toys_s": t_toys,
            "toys_per_s": total / t_toys if t_toys > 0 else float("nan"),
        }
        if distributed_stats is not None:
            timing["executor"] = {k: v for k, v in distributed_stats.items() if k != "engine"}
        summary["timing"] = timing
        summary["config"] = config
        if not args.no_plot and t0.size >= 2:
            summary["figure"] = _write_figure(args.out, t0, t1, summary, args.signal)
        # Strict JSON (null where a number is not finite) in both places.
        res.write_summary(json_ready(summary))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(dumps(summary, indent=2, default=str))
    _print_summary(summary, timing)
    print(f"results: {args.out}  summary: {out_json}")
    if summary.get("figure"):
        print("figure: " + "  ".join(summary["figure"]))
    return summary


def _run_distributed(
    problem: Any,
    todo: dict[int, list[int]],
    ex: Any,
    res: Any,
    config: dict[str, Any],
    engine_line: Any,
    bar: Any,
    progress: dict[str, Any],
) -> dict[str, Any]:
    """Solve ``todo`` in shards on ``ex``'s executor, committing each shard to ``res``;
    the engine's choices (from the first shard) go into the file's config."""
    from contrastx.distributed import run_toy_shards

    bar.set_description(ex.executor)
    seen: dict[str, Any] = {}

    def on_shard(blk: Any) -> None:
        if not seen:
            seen.update(blk.extra["engine"])
            config.update(seen)
            res.set_config(config)
            engine_line(seen)
        progress["saved"] += len(blk)
        bar.update(len(blk))
        _stop_if_signalled(progress)

    return run_toy_shards(problem, todo, ex, res.append, on_shard=on_shard)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (2: error, 128 + signal: interrupted).

    SIGINT and SIGTERM stop the run with one line saying how many toys are saved; the
    results file then resumes (rerun the same command).
    """
    progress: dict[str, Any] = {}
    with _stop_on_signals(progress):
        try:
            args = build_parser().parse_args(argv)
            run(args, progress)
        except (ValueError, OSError, ImportError, RuntimeError) as exc:
            if "signum" not in progress:
                print(f"contrastx-toys: error: {exc}", file=sys.stderr)
                return 2
        except KeyboardInterrupt as exc:
            progress.setdefault("signum", getattr(exc, "signum", signal.SIGINT))
        if "signum" in progress:  # also a signal whose exception Python dropped
            print(_interrupted_message(progress), file=sys.stderr)
            return 128 + int(progress["signum"])
    return 0


def _interrupted_message(progress: dict[str, Any]) -> str:
    name = signal.Signals(progress["signum"]).name
    if "out" not in progress:
        return f"contrastx-toys: interrupted ({name}) before any toy ran; nothing saved"
    return (
        f"contrastx-toys: interrupted ({name}); {progress['saved']} of {progress['total']} "
        f"toys saved in {progress['out']}; rerun the same command to resume"
    )


if __name__ == "__main__":
    sys.exit(main())
