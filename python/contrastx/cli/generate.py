"""``contrastx-generate``: write a labelled event sample in contrastx's HDF5 format.

With no arguments it writes the built-in default: 200,000 background events in
the ADC2021 mixture (W 59.2 %, QCD 33.8 %, Z 6.7 %, ttbar 0.3 %) plus 20,000
events of each of the four ADC2021 signals, from the fast parametric generator,
and prints a summary. Select processes later by label
(``read_events(path).select("Ato4l")``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..events.io import write_events
from ..events.layout import ADC2021_MIXTURE, PROCESSES, SIGNALS


def _parse_pairs(text: str, cast: type, what: str) -> dict:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{what}: expected NAME=VALUE, got {item!r}")
        if name not in PROCESSES:
            raise argparse.ArgumentTypeError(
                f"{what}: unknown process name {name!r}; known processes: {', '.join(PROCESSES)}"
            )
        try:
            out[name] = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: bad value {value!r} for {name}") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="contrastx-generate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("contrastx-sample.h5"), help="output HDF5")
    p.add_argument("--n-background", type=int, default=200_000, help="background events")
    p.add_argument(
        "--fractions",
        type=lambda s: _parse_pairs(s, float, "--fractions"),
        default=None,
        help="background mixture as NAME=FRACTION,... (default: ADC2021's)",
    )
    p.add_argument(
        "--n-signal", type=int, default=20_000, help="events of each of the four signals"
    )
    p.add_argument(
        "--signals",
        type=lambda s: _parse_pairs(s, int, "--signals"),
        default=None,
        help="signal counts as NAME=COUNT,... (overrides --n-signal)",
    )
    p.add_argument(
        "--generator",
        choices=["fast", "pythia"],
        default="fast",
        help="event generator: the fast parametric approximation, or Pythia 8 + FastJet "
        "(needs pip install 'contrastx[pythia]')",
    )
    pythia = p.add_argument_group("pythia generator")
    pythia.add_argument(
        "--mpi",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="multiparton interactions (about 4-5x slower when on)",
    )
    pythia.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    pythia.add_argument(
        "--batch-size", type=int, default=500, help="events generated per batch (part of the seed)"
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
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-generate``."""
    from ..events.generators import generate_sample, mixture_counts

    args = build_parser().parse_args(argv)
    if args.n_background < 0 or args.n_signal < 0:
        print("contrastx-generate: event counts must be non-negative", file=sys.stderr)
        return 2
    if args.generator == "pythia":
        return _main_pythia(args, argv)
    if args.out.exists() and not args.overwrite:
        print(f"contrastx-generate: {args.out} exists (use --overwrite)", file=sys.stderr)
        return 2
    fractions = args.fractions if args.fractions is not None else ADC2021_MIXTURE
    counts = mixture_counts(args.n_background, fractions) if args.n_background else {}
    signals = args.signals if args.signals is not None else dict.fromkeys(SIGNALS, args.n_signal)
    for name, n in signals.items():
        counts[name] = counts.get(name, 0) + n
    counts = {k: v for k, v in counts.items() if v > 0}
    if not counts:
        print("contrastx-generate: nothing to generate (all counts are zero)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    events = generate_sample(counts, seed=args.seed, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    events.metadata["command"] = " ".join(["contrastx-generate", *(argv or sys.argv[1:])])
    write_events(args.out, events, overwrite=args.overwrite)
    print(f"wrote {args.out} ({args.generator} generator, seed {args.seed}, {dt:.1f} s)")
    print(events.summary())
    if args.generator == "fast":
        print(
            "note: the fast generator is a parametric approximation for tests and quick runs; "
            "it is not evidence for a physics claim"
        )
    return 0


def _main_pythia(args: argparse.Namespace, argv: list[str] | None) -> int:
    """``--generator pythia``: written batch by batch; an existing OUT is resumed."""
    from ..events.generators import mixture_counts
    from ..events.generators.pythia import generate_black_box, generate_pythia
    from ..events.io import read_events

    if args.n_background < 0 or args.n_signal < 0:
        print("contrastx-generate: event counts must be non-negative", file=sys.stderr)
        return 2
    fractions = args.fractions if args.fractions is not None else ADC2021_MIXTURE
    options = {
        "seed": args.seed,
        "mpi": args.mpi,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "progress": not args.no_progress,
        "overwrite": args.overwrite,
        "extra_metadata": {"command": " ".join(["contrastx-generate", *(argv or sys.argv[1:])])},
    }
    t0 = time.perf_counter()
    try:
        if args.black_box is not None:
            truth = args.truth or args.out.with_name(args.out.stem + ".truth.h5")
            generate_black_box(
                args.out,
                truth,
                args.n_background,
                args.black_box,
                n_signal=args.n_signal,
                fractions=fractions,
                **options,
            )
            print(f"wrote black box {args.out} and its truth {truth}")
        else:
            counts = mixture_counts(args.n_background, fractions) if args.n_background else {}
            signals = (
                args.signals if args.signals is not None else dict.fromkeys(SIGNALS, args.n_signal)
            )
            for name, n in signals.items():
                counts[name] = counts.get(name, 0) + n
            counts = {k: v for k, v in counts.items() if v > 0}
            if not counts:
                print(
                    "contrastx-generate: nothing to generate (all counts are zero)", file=sys.stderr
                )
                return 2
            generate_pythia(args.out, counts, **options)
    except (ImportError, ValueError, FileExistsError, RuntimeError) as err:
        print(f"contrastx-generate: {err}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    print(f"wrote {args.out} (pythia generator, seed {args.seed}, {dt:.1f} s)")
    if args.black_box is None:
        print(read_events(args.out).summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
