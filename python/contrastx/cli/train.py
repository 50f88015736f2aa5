"""``contrastx-train``: train a contrastive embedding and save it as one model file.

Reads a contrastx or ADC2021 event file (``--events``), or, without one, draws a
small sample from the built-in fast parametric generator (a quick default run for
trying the pipeline, never physics evidence). By default ADC2021 events train on the
Standard Model background processes only, as in the primary paper, and events of any
other layout (e.g. the diphoton one) on every labelled process, as in the second
paper. Settings start from a preset (the primary paper's Table I, or the second
paper's particle transformer) and any option given overrides it; events of a layout
other than ADC2021 need ``--preprocessing layout`` (the particle-transformer presets set
it).

A model trained on an event file records the file (path, size, SHA-256) and the
rows it was trained and validated on (:func:`contrastx.embed.model_file.training_events`).

Progress goes to stderr: a progress bar with an ETA on a terminal, otherwise (a log
file, a batch job) one line per epoch with the losses, the elapsed time and the time
to go.

Launched by ``torchrun`` (``torchrun --nproc-per-node 2 --no-python contrastx-train ...``
or ``torchrun ... -m contrastx.cli.train ...``), the training is spread over the
processes (gloo on the CPU, nccl with ``--gpu``: each process takes the GPU of its
LOCAL_RANK); ``--batch-size`` is the global batch and the model equals the
single-process one to rounding. Rank 0 alone prints, writes the checkpoint and the
model file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .._console import error_exit, logging_to_stderr
from ..embed.distributed import SINGLE_PROCESS, init_world, shutdown
from ..embed.training import PRESETS, TrainConfig, Trainer
from ..events.layout import ADC2021
from ..options import add_arguments, option_fields

PROG = "contrastx-train"
ADC2021_DEFAULT_PROCESSES = "W,QCD,Z,ttbar"
"""The processes ADC2021 events train on by default (the primary paper's backgrounds)."""


class _FromPreset:
    """Shown as the default of the flags a preset sets."""

    def __repr__(self) -> str:
        return "set by --preset"


_PRESET_KEYS = {key for preset in PRESETS.values() for key in preset}


_ANY_GPU = -1
"""``--gpu`` without an index (not a string: argparse would pass it through ``type``)."""


def _gpu_index(value: str) -> int:
    try:
        index = int(value)
    except ValueError:
        index = -1
    if index < 0:
        raise argparse.ArgumentTypeError(f"a GPU index is a non-negative integer; got {value!r}")
    return index


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    data = p.add_argument_group("data")
    data.add_argument(
        "--events",
        type=Path,
        default=None,
        help="contrastx/ADC2021 event file (default: a sample from the fast generator)",
    )
    data.add_argument("--labels", type=Path, default=None, help="label side file (ADC2021 input)")
    data.add_argument(
        "--processes",
        default=None,
        help="comma-separated processes to train on, 'all' for every event (default: "
        f"{ADC2021_DEFAULT_PROCESSES} for ADC2021 events, all for other layouts)",
    )
    data.add_argument(
        "--n-events",
        type=int,
        default=4000,
        help="events drawn from the fast generator when no --events is given (default: 4000)",
    )
    m = p.add_argument_group("model and training (a preset; the flags given override it)")
    m.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="supcon-mlp",
        help="starting settings: the primary paper's Table I for SimCLR/SupCon with an MLP "
        "or Transformer and VICReg + CE with a Transformer, or SupCon + KL after Li, Nachman "
        "and Noll (with their particle transformer: supcon-kl-particle-transformer, and "
        "supcon-kl-particle-transformer-cpu sized for a CPU); the Table IV Transformers need "
        "a GPU, supcon-transformer-cpu is a smaller one that trains on a CPU "
        "(default: supcon-mlp)",
    )
    shown = {key: _FromPreset() for key in _PRESET_KEYS}
    add_arguments(m, TrainConfig, defaults=shown)
    run = p.add_argument_group("run")
    run.add_argument(
        "--out",
        type=Path,
        default=Path("contrastx-model.pt"),
        help="model file to write (default: contrastx-model.pt)",
    )
    run.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint written after every epoch, for --resume (default: none)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from --checkpoint if it exists (same settings required)",
    )
    run.add_argument(
        "--gpu",
        type=_gpu_index,
        nargs="?",
        const=_ANY_GPU,
        default=None,
        metavar="N",
        help="train on the GPU cuda:N; without N on the current GPU, under torchrun the GPU "
        "of each process's LOCAL_RANK (default: CPU)",
    )
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on a terminal (progress is logged one line per epoch instead)",
    )
    return p


def _load_events(args: argparse.Namespace):
    from ..events.generators import generate_sample, mixture_counts
    from ..events.io import read_events
    from ..events.layout import ADC2021_MIXTURE

    if args.events is None:
        if args.n_events <= 0:
            raise ValueError("--n-events must be positive")
        # a balanced-enough default: the ADC2021 mixture with ttbar raised so every class trains
        fractions = dict(ADC2021_MIXTURE, Z=0.15, ttbar=0.10)
        return generate_sample(mixture_counts(args.n_events, fractions), seed=0)
    return read_events(args.events, labels=args.labels)


def _config(args: argparse.Namespace) -> TrainConfig:
    """The preset with every training flag given on the command line applied."""
    names = {f.name for f in option_fields(TrainConfig)}
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if given.get("augmentation") == "none":
        given["augmentation"] = None
    given["progress"] = not args.no_progress
    if args.gpu is not None:
        given["device"] = "cuda" if args.gpu == _ANY_GPU else f"cuda:{args.gpu}"
    return TrainConfig.from_preset(args.preset, **given)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-train``."""
    args = build_parser().parse_args(argv)
    with logging_to_stderr(PROG):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite and not args.resume:
        return error_exit(PROG, f"{args.out} exists (use --overwrite)")
    world = SINGLE_PROCESS
    try:
        config = _config(args)
        world = init_world(config.device)  # a torchrun launch: every process runs this
        events = _load_events(args)
        rows = np.arange(len(events))
        processes = args.processes
        if processes is None:
            processes = ADC2021_DEFAULT_PROCESSES if events.layout == ADC2021 else "all"
        if processes != "all":
            names = [s.strip() for s in processes.split(",") if s.strip()]
            events.select(names)  # the error for an unknown name or an empty selection
            rows = np.flatnonzero(np.isin(events.labels, [events.label_of(p) for p in names]))
            events = events[rows]
        where = "" if events.layout == ADC2021 else f" in layout {events.layout.name!r}"
        if world.is_main:
            print(f"{PROG}: {len(events)} events{where} {events.counts()}", file=sys.stderr)
        trainer = Trainer(config).fit(
            events,
            checkpoint=args.checkpoint,
            resume=args.resume,
            event_file=args.events,
            event_rows=rows if args.events is not None else None,
        )
        if world.is_main:
            trainer.save(args.out)
    except KeyboardInterrupt:
        where = (
            f"; {args.checkpoint} holds the last finished epoch (continue with --resume)"
            if args.checkpoint is not None
            else ""
        )
        if world.is_main:
            print(f"{PROG}: interrupted{where}", file=sys.stderr)
        return 130
    except (
        ValueError,
        RuntimeError,
        FileNotFoundError,
        KeyError,
        OSError,
        FloatingPointError,
    ) as err:
        return error_exit(PROG, err)
    finally:
        shutdown()
    if not world.is_main:
        return 0
    last = trainer.history_[-1]
    print(
        f"{PROG}: wrote {args.out} (D={config.latent_dim}, {len(trainer.history_)} "
        f"epochs, train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, "
        f"best epoch {trainer.best_epoch_})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
