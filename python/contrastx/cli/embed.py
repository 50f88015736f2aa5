"""``contrastx-embed``: embed an event file with a trained model into an embedding HDF5.

Writes ``embedding`` (N, D) float32 and ``labels`` (N,) int64 (attribute
``process_names``), plus the source file, the model's configuration and the events'
layout as attributes (see :mod:`contrastx.embed.embedding_file`); this is the file NPLM
reads. Events are streamed from the input file in chunks. The events must be in the
layout the model was trained on (any layout; files that record none are ADC2021).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .._console import error_exit, logging_to_stderr

PROG = "contrastx-embed"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--model", type=Path, required=True, help="model file from contrastx-train")
    p.add_argument("--events", type=Path, required=True, help="contrastx/ADC2021 event file")
    p.add_argument("--labels", type=Path, default=None, help="label side file (ADC2021 input)")
    p.add_argument("--process", default=None, help="label every event as this process (ADC2021)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("contrastx-embedding.h5"),
        help="embedding file to write (HDF5: embedding, labels, source and model as attributes; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=4096,
        help="events per forward pass of the model; sets memory use, not the results "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=262_144,
        help="events read from the file at a time (default: %(default)s)",
    )
    p.add_argument("--gpu", type=int, default=None, help="CUDA device index (default: CPU)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists (else refuse)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-embed``."""
    args = build_parser().parse_args(argv)
    with logging_to_stderr(PROG):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..embed.embedding_file import write_embedding
    from ..embed.model import check_layout_match
    from ..embed.model_file import load_model
    from ..events.io import EventFile

    if args.out.exists() and not args.overwrite:
        return error_exit(PROG, f"{args.out} exists (use --overwrite)")
    device = "cpu" if args.gpu is None else f"cuda:{args.gpu}"
    try:
        loaded = load_model(args.model)
        parts, labels, ids = [], [], []
        with EventFile(
            args.events, process=args.process, labels=args.labels, allow_empty=False
        ) as f:
            names = f.process_names
            if loaded.layout is not None:
                check_layout_match(
                    loaded.layout,
                    f.layout,
                    model_name=f"model {args.model}",
                    data=f"the events of {args.events}",
                )
            layout = f.layout
            for chunk in f.iter_chunks(args.chunk_size):
                parts.append(loaded.embed(chunk, batch_size=args.batch_size, device=device))
                labels.append(chunk.labels)
                if chunk.event_ids is not None:
                    ids.append(chunk.event_ids)
        z, y = np.concatenate(parts), np.concatenate(labels)  # the file holds events
        write_embedding(
            args.out,
            z,
            y,
            names,
            source_file=str(args.events),
            model_config={
                "model": loaded.model_config,
                "train_config": loaded.train_config,
                "preprocessing": loaded.preprocessing,
                "class_names": loaded.class_names,
                "model_file": str(args.model),
            },
            event_ids=np.concatenate(ids) if ids else None,
            layout=layout,
            overwrite=args.overwrite,
        )
    except (ValueError, RuntimeError, FileNotFoundError, KeyError, OSError) as err:
        return error_exit(PROG, err)
    print(f"{PROG}: wrote {args.out} ({z.shape[0]} events, D={z.shape[1]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
