"""``contrastx-generate``: write a labelled event sample in contrastx's HDF5 format.

With no arguments it writes the built-in default: 200,000 background events in
the ADC2021 mixture (W 59.2 %, QCD 33.8 %, Z 6.7 %, ttbar 0.3 %) plus 20,000
events of each of the four ADC2021 signals, from the fast parametric generator,
and prints a summary. Select processes later by label
(``read_events(path).select("Ato4l")``).

With ``--generator pythia`` the file is written batch by batch; progress goes to
stderr (a bar on a terminal, otherwise one line per batch with an ETA). Ctrl-C or
SIGTERM stops the run with one line saying how many events the file keeps, and
re-running the same command completes it, with the same events as an uninterrupted
run. The batches run on local worker processes (``--workers``) or, with ``--executor
dask``, on a Dask cluster (``--scheduler tcp://...``, or ``--cluster slurm --jobs 20``);
the file does not depend on where they ran.

With ``--dataset diphoton`` it writes the Pythia 8 diphoton benchmark instead
(:mod:`contrastx.events.generators.diphoton`): by default 50,000 gamma gamma continuum
events, 10,000 of each SM Higgs mode and 10,000 of each BSM signal mass point, in the
diphoton layout, with the cross sections in the metadata. ``--list-processes`` prints
the processes of the chosen dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._console import error_exit, logging_to_stderr
from ..events.generators.diphoton import DiphotonOptions
from ..events.generators.pythia import DEFAULT_BATCH_SIZE
from ..events.io import write_events
from ..events.layout import ADC2021_MIXTURE, PROCESSES, SIGNALS
from ..options import add_arguments

PROG = "contrastx-generate"
FRACTION_TOLERANCE = 1e-6
"""How far from 1 the sum of ``--fractions`` may be."""

DATASETS = ("adc2021", "diphoton")
"""The datasets ``--dataset`` chooses from."""

N_BACKGROUND = 200_000
N_SIGNAL = 20_000
"""ADC2021 defaults of ``--n-background`` and ``--n-signal``."""

_ADC2021_ONLY = {
    "n_background": "--n-background",
    "fractions": "--fractions",
    "signals": "--signals",
    "black_box": "--black-box",
    "truth": "--truth",
}
_DIPHOTON_ONLY = {
    "n_continuum": "--n-continuum",
    "n_higgs": "--n-higgs",
    "signal_groups": "--signal-groups",
}
_EXECUTOR_EXCLUDED = ("shard_size", "worker_threads")
"""Executor keys without a flag here: a Pythia batch (``--batch-size``) is the unit of
work, and a batch runs on one thread."""
_PYTHIA_EXECUTOR_ONLY = {
    "executor": "--executor",
    "scheduler": "--scheduler",
    "cluster": "--cluster",
    "jobs": "--jobs",
    "cores": "--cores",
    "memory": "--memory",
    "walltime": "--walltime",
    "queue": "--queue",
    "account": "--account",
    "disk": "--disk",
    "retries": "--retries",
}


# ---------------------------------------------------------------- arguments
def _parse_pairs(text: str, cast: type) -> dict:
    """``NAME=VALUE,...`` with known process names, each once (argparse names the flag)."""
    out: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
        if name not in PROCESSES:
            raise argparse.ArgumentTypeError(
                f"unknown process name {name!r}; known processes: {', '.join(PROCESSES)}"
            )
        if name in out:
            raise argparse.ArgumentTypeError(f"{name} is given twice")
        try:
            out[name] = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad value {value!r} for {name}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE,..., got {text!r}")
    return out


def _parse_fractions(text: str) -> dict[str, float]:
    """``--fractions``: finite, non-negative fractions that sum to 1 (never renormalised)."""
    fractions = _parse_pairs(text, float)
    bad = [f"{k}={v:g}" for k, v in fractions.items() if not (math.isfinite(v) and v >= 0)]
    if bad:
        raise argparse.ArgumentTypeError(f"fractions must be finite and >= 0; got {', '.join(bad)}")
    total = math.fsum(fractions.values())
    if abs(total - 1.0) > FRACTION_TOLERANCE:
        raise argparse.ArgumentTypeError(
            f"fractions must sum to 1 (within {FRACTION_TOLERANCE:g}); "
            f"{', '.join(f'{k}={v:g}' for k, v in fractions.items())} sum to {total:.10g}"
        )
    return fractions


def _parse_signals(text: str) -> dict[str, int]:
    """``--signals``: non-negative event counts per process."""
    signals = _parse_pairs(text, int)
    bad = [f"{k}={v}" for k, v in signals.items() if v < 0]
    if bad:
        raise argparse.ArgumentTypeError(f"counts must be >= 0; got {', '.join(bad)}")
    return signals


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Prints a flag's default once: not when its help states it, nor when it is None/False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("contrastx-sample.h5"), help="output HDF5")
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="adc2021",
        help="the ADC2021 final state, or the Pythia 8 diphoton benchmark (needs pip install "
        "'contrastx[pythia]')",
    )
    p.add_argument(
        "--list-processes",
        action="store_true",
        help="print the processes of the dataset (name, group, description) and exit",
    )
    p.add_argument(
        "--n-background",
        type=int,
        default=None,
        help=f"background events (default: {N_BACKGROUND:,}; adc2021 only)",
    )
    p.add_argument(
        "--fractions",
        type=_parse_fractions,
        default=None,
        help="background mixture as NAME=FRACTION,... summing to 1 (default: ADC2021's)",
    )
    p.add_argument(
        "--n-signal",
        type=int,
        default=None,
        help=f"events of each of the four signals (default: {N_SIGNAL:,}); with --dataset "
        "diphoton, of each signal mass point (default: 10,000)",
    )
    p.add_argument(
        "--signals",
        type=_parse_signals,
        default=None,
        help="signal counts as NAME=COUNT,... (overrides --n-signal)",
    )
    p.add_argument(
        "--generator",
        choices=["fast", "pythia"],
        default=None,
        help="event generator: the fast parametric approximation, or Pythia 8 + FastJet "
        "(needs pip install 'contrastx[pythia]') (default: fast; pythia for --dataset "
        "diphoton, which has no fast generator)",
    )
    pythia = p.add_argument_group("pythia generator")
    pythia.add_argument(
        "--mpi",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="multiparton interactions (several times slower when on)",
    )
    pythia.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="events generated per batch (part of the seed)",
    )
    pythia.add_argument(
        "--black-box",
        metavar="SIGNAL",
        default=None,
        help="write an unlabelled, shuffled black box with this hidden signal "
        "(count from --n-signal); the truth goes to --truth",
    )
    pythia.add_argument(
        "--truth", type=Path, default=None, help="truth file of --black-box (default: OUT.truth.h5)"
    )
    from ..distributed.options import ExecutorOptions

    executor = p.add_argument_group(
        "executor (where the Pythia batches run: --generator pythia, --dataset diphoton)",
        "--executor processes (the default) runs them on --workers local processes "
        "(--workers 1: in this process); --executor dask sends them to the Dask scheduler "
        "at --scheduler, or to a cluster it starts: --cluster local (a LocalCluster of "
        "--workers processes), slurm or htcondor (dask-jobqueue: --jobs, --cores, --memory, "
        "--walltime, --queue, --account, --disk; one batch per core); --retries: times a "
        "batch lost with its Dask worker is submitted again. The file and its events are "
        "the same on every executor, and a run begun on one resumes on another.",
    )
    add_arguments(
        executor,
        ExecutorOptions,
        exclude=_EXECUTOR_EXCLUDED,
        defaults={"executor": "processes"},
        default_text={"workers": "all cores"},
    )
    add_arguments(
        p,
        DiphotonOptions,
        title="diphoton dataset (--dataset diphoton)",
        exclude=("n_signal",),
        default_text={"signal_groups": "every signal"},
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file (the pythia generator otherwise resumes it)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar or progress lines",
    )
    return p


# ---------------------------------------------------------------- signals and logging
class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that generation stops its workers and closes the file."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- commands
def _counts(args: argparse.Namespace) -> dict[str, int]:
    """Events per process from the background mixture and the signals (zeros dropped)."""
    from ..events.generators import mixture_counts

    fractions = args.fractions if args.fractions is not None else ADC2021_MIXTURE
    counts = mixture_counts(args.n_background, fractions) if args.n_background else {}
    signals = args.signals if args.signals is not None else dict.fromkeys(SIGNALS, args.n_signal)
    for name, n in signals.items():
        counts[name] = counts.get(name, 0) + n
    counts = {k: v for k, v in counts.items() if v > 0}
    if not counts:
        raise ValueError("nothing to generate (all counts are zero)")
    return counts


def _command(argv: list[str] | None) -> str:
    return " ".join([PROG, *(sys.argv[1:] if argv is None else argv)])


def _work_path(args: argparse.Namespace) -> Path:
    """The file a Pythia run writes batch by batch (a black box's labelled work file)."""
    if args.black_box is not None:
        return args.out.with_name(args.out.name + ".work.h5")
    return args.out


def _run_fast(args: argparse.Namespace, argv: list[str] | None) -> None:
    from ..events.generators import generate_sample

    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists (use --overwrite)")
    counts = _counts(args)
    t0 = time.perf_counter()
    events = generate_sample(counts, seed=args.seed, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    events.metadata["command"] = _command(argv)
    partial = args.out.with_name(args.out.name + ".partial")
    write_events(partial, events, overwrite=True)
    os.replace(partial, args.out)  # the output appears complete or not at all
    print(f"wrote {args.out} ({args.generator} generator, seed {args.seed}, {dt:.1f} s)")
    print(events.summary())
    print(
        "note: the fast generator is a parametric approximation for tests and quick runs; "
        "it is not evidence for a physics claim"
    )


def _executor_options(args: argparse.Namespace) -> Any:
    """The :class:`~contrastx.distributed.ExecutorOptions` of the flags (default: processes)."""
    from ..distributed.options import ExecutorOptions
    from ..options import from_arguments

    return from_arguments(ExecutorOptions, args, base=ExecutorOptions(executor="processes"))


def _run_pythia(args: argparse.Namespace, argv: list[str] | None) -> None:
    """``--generator pythia``: written batch by batch; an existing OUT is resumed."""
    from ..events.generators.pythia import generate_black_box, generate_pythia
    from ..events.io import read_events

    options = {
        "seed": args.seed,
        "mpi": args.mpi,
        "executor": _executor_options(args),
        "batch_size": args.batch_size,
        "progress": not args.no_progress,
        "overwrite": args.overwrite,
        "extra_metadata": {"command": _command(argv)},
    }
    t0 = time.perf_counter()
    if args.black_box is not None:
        truth = args.truth or args.out.with_name(args.out.stem + ".truth.h5")
        generate_black_box(
            args.out,
            truth,
            args.n_background,
            args.black_box,
            n_signal=args.n_signal,
            fractions=args.fractions if args.fractions is not None else ADC2021_MIXTURE,
            work_path=_work_path(args),
            **options,
        )
        print(f"wrote black box {args.out} and its truth {truth}")
    else:
        generate_pythia(args.out, _counts(args), **options)
    dt = time.perf_counter() - t0
    print(f"wrote {args.out} (pythia generator, seed {args.seed}, {dt:.1f} s)")
    if args.black_box is None:
        print(read_events(args.out).summary())


def _run_diphoton(args: argparse.Namespace, argv: list[str] | None) -> None:
    """``--dataset diphoton``: the Pythia diphoton benchmark, resumable like ``pythia``."""
    from ..events.generators.diphoton import generate_diphoton
    from ..events.io import read_events
    from ..options import from_arguments, to_dict

    opts = from_arguments(DiphotonOptions, args)
    counts = opts.counts()
    if not counts:
        raise ValueError("nothing to generate (all counts are zero)")
    t0 = time.perf_counter()
    generate_diphoton(
        args.out,
        counts,
        seed=args.seed,
        mpi=args.mpi,
        executor=_executor_options(args),
        batch_size=args.batch_size,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        extra_metadata={"command": _command(argv), "diphoton_options": to_dict(opts)},
    )
    dt = time.perf_counter() - t0
    events = read_events(args.out)
    print(f"wrote {args.out} (pythia diphoton benchmark, seed {args.seed}, {dt:.1f} s)")
    print(events.summary())
    md = events.metadata
    print("process          kept   sigma x BR [fb]   after selection [fb]")
    for name, kept in md.get("n_kept", {}).items():
        xs = md.get("cross_section_pb", {}).get(name)
        sel = md.get("selected_cross_section_fb", {}).get(name)
        if xs is None or sel is None:
            continue
        print(f"{name:<14} {kept:>6}   {1e3 * xs:>15.4g}   {sel:>20.4g}")


def _list_processes(dataset: str) -> None:
    if dataset == "diphoton":
        from ..events.generators.diphoton import describe_processes

        print(describe_processes())
        return
    from ..events.generators.processes import PROCESS_REGISTRY

    width = max(len(n) for n in PROCESS_REGISTRY)
    for name, spec in PROCESS_REGISTRY.items():
        print(f"{name:<{width}}  {spec.description}")


def _resolve_dataset(args: argparse.Namespace) -> None:
    """Check the flags against ``--dataset`` and fill the dataset's defaults in ``args``."""
    other = _ADC2021_ONLY if args.dataset == "diphoton" else _DIPHOTON_ONLY
    given = [flag for dest, flag in other.items() if getattr(args, dest) is not None]
    if given:
        owner = "adc2021" if args.dataset == "diphoton" else "diphoton"
        raise ValueError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --dataset "
            f"{owner} only (this run: --dataset {args.dataset})"
        )
    if args.dataset == "diphoton":
        if args.generator == "fast":
            raise ValueError(
                "--dataset diphoton has no fast generator; it runs Pythia (--generator pythia)"
            )
        args.generator = "pythia"
        return
    args.generator = args.generator or "fast"
    if args.generator == "fast":
        flags = _PYTHIA_EXECUTOR_ONLY.items()
        given = [flag for dest, flag in flags if getattr(args, dest) is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the "
                "Pythia generator only (this run: --generator fast)"
            )
    if args.n_background is None:
        args.n_background = N_BACKGROUND
    if args.n_signal is None:
        args.n_signal = N_SIGNAL


def _interrupted_message(args: argparse.Namespace, exc: KeyboardInterrupt) -> str:
    """The one line printed when the run is stopped by Ctrl-C or SIGTERM."""
    what = "terminated" if isinstance(exc, _Terminated) else "interrupted"
    if args.generator != "pythia":  # the fast generator (None: stopped before it was chosen)
        return f"{PROG}: {what}; nothing was written to {args.out}"
    from ..events.generators.pythia import committed_counts

    path = _work_path(args)
    again = (
        "re-run the same command without --overwrite to resume"
        if args.overwrite
        else "re-run the same command to resume"
    )
    if not path.exists():
        return f"{PROG}: {what}; no events written to {path} yet, {again}"
    try:
        n = str(sum(committed_counts(path).values()))
    except (OSError, ValueError, KeyError, AttributeError):
        n = "an unknown number of"
    return f"{PROG}: {what}; {n} events written to {path}, {again}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-generate``."""
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_as_interrupt(), logging_to_stderr(PROG):
            _resolve_dataset(args)
            if args.list_processes:
                _list_processes(args.dataset)
                return 0
            counts = [n for n in (args.n_background, args.n_signal) if n is not None]
            if any(n < 0 for n in counts):
                raise ValueError("event counts must be non-negative")
            if args.dataset == "diphoton":
                _run_diphoton(args, argv)
            elif args.generator == "pythia":
                _run_pythia(args, argv)
            else:
                _run_fast(args, argv)
    except (ImportError, ValueError, TypeError, RuntimeError, OSError) as err:
        return error_exit(PROG, err)
    except KeyboardInterrupt as exc:
        print(_interrupted_message(args, exc), file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
