"""``contrastx-train``: train a contrastive embedding and save it as one model file.

Reads a contrastx or ADC2021 event file (``--events``), or, without one, draws a
small sample from the built-in fast parametric generator (a quick default run for
trying the pipeline, never physics evidence). By default only the Standard Model
background processes are used for training, as in the primary paper. Settings
start from a preset (the primary paper's Table I) and any option given overrides it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..embed.training import METHODS, PRESETS, TrainConfig, Trainer

_OVERRIDES = (
    "method",
    "encoder",
    "latent_dim",
    "temperature",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "warmup_epochs",
    "sampling",
    "augmentation",
    "preprocessing",
    "fold",
    "patience",
    "alpha",
    "kl_weight",
    "seed",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="contrastx-train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--events", type=Path, default=None, help="contrastx/ADC2021 event file")
    data.add_argument("--labels", type=Path, default=None, help="label side file (ADC2021 input)")
    data.add_argument(
        "--processes",
        default="W,QCD,Z,ttbar",
        help="comma-separated processes to train on ('all' for every labelled event)",
    )
    data.add_argument(
        "--n-events", type=int, default=4000, help="fast-generator events when no --events"
    )
    m = p.add_argument_group("model and training (override the preset)")
    m.add_argument("--preset", choices=sorted(PRESETS), default="supcon-mlp")
    m.add_argument("--method", choices=METHODS)
    m.add_argument("--encoder", choices=("mlp", "transformer"))
    m.add_argument("--latent-dim", type=int, help="embedding dimension D (2..64)")
    m.add_argument("--temperature", type=float, help="default: Table II / 0.1 (supervised)")
    m.add_argument("--epochs", type=int)
    m.add_argument("--batch-size", type=int)
    m.add_argument("--lr", type=float)
    m.add_argument("--weight-decay", type=float)
    m.add_argument("--optimizer", choices=("lars", "adam", "adamw"))
    m.add_argument("--warmup-epochs", type=int)
    m.add_argument("--sampling", choices=("realistic", "balanced"))
    m.add_argument(
        "--augmentation", help="e.g. 'mask:0.5' or 'mask:0.5,rotate,crop:1.5'; 'none' to disable"
    )
    m.add_argument("--preprocessing", choices=("pt", "log_pt"))
    m.add_argument("--fold", type=int, help="validation fold (0..4)")
    m.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    m.add_argument("--alpha", type=float, help="VICReg weight in VICReg + CE")
    m.add_argument("--kl-weight", type=float, help="KL weight of SupCon + KL")
    m.add_argument("--seed", type=int)
    run = p.add_argument_group("run")
    run.add_argument("--out", type=Path, default=Path("contrastx-model.pt"), help="model file")
    run.add_argument("--checkpoint", type=Path, default=None, help="checkpoint written per epoch")
    run.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    run.add_argument("--gpu", type=int, default=None, help="CUDA device index (default: CPU)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-train``."""
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.overwrite and not args.resume:
        print(f"contrastx-train: {args.out} exists (use --overwrite)", file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    if overrides.get("augmentation") == "none":
        overrides["augmentation"] = None
    overrides["progress"] = not args.no_progress
    if args.gpu is not None:
        overrides["device"] = f"cuda:{args.gpu}"
    try:
        config = TrainConfig.from_preset(args.preset, **overrides)
        events = _load_events(args)
        if args.processes != "all":
            events = events.select([s.strip() for s in args.processes.split(",") if s.strip()])
        print(f"contrastx-train: {len(events)} events {events.counts()}", file=sys.stderr)
        trainer = Trainer(config).fit(events, checkpoint=args.checkpoint, resume=args.resume)
    except (ValueError, RuntimeError, FileNotFoundError, KeyError, OSError) as err:
        print(f"contrastx-train: error: {err}", file=sys.stderr)
        return 2
    trainer.save(args.out)
    last = trainer.history_[-1]
    print(
        f"contrastx-train: wrote {args.out} (D={config.latent_dim}, {len(trainer.history_)} "
        f"epochs, train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, "
        f"best epoch {trainer.best_epoch_})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
