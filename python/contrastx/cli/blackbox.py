"""``contrastx-blackbox``: NPLM search on a black-box event file (Table VII, Figs. V, VI).

Embeds a black-box file (ADC2021's ``BlackBox`` layout -- ``Particles`` and ``EvtId``,
no labels -- or a contrastx event file) with a trained model file (or one of the
baselines ``raw`` / ``leading_pt``), cuts it into k luminosity-sized splits (default 10),
runs NPLM r times per split with a re-sampled reference (default 10), and reports the
per-split Z (mean and spread over the runs) and the global significance (most
significant split, Bonferroni-corrected for the k splits; "< 0 (Bonferroni p = 1)" when
the correction reaches its cap). Writes to ``--out``: ``blackbox.json`` (every number,
strict JSON), ``table.md`` (Table VII row), ``event_scores.h5`` (every event's NPLM score
with its row, ``EvtId`` and split: see :func:`contrastx.nplm.blackbox.write_event_scores`),
``splits.png`` (Fig. VI) and ``score_map.png`` (Fig. V: the most significant split in
2-D coloured by the NPLM score, score > 0.5 only). The ``--top-k`` events with the
highest score are printed and listed in the JSON.

The reference is a background event file (``--reference``, e.g. ADC2021's
``background_for_training.h5``, with ``--reference-labels`` for its label side file),
or by default a fast-generator background sample. Events the model was trained on are
left out of the reference when the model file records them and ``--reference`` is that
file (``--keep-training-events`` to keep them); ``--exclude-reference-rows`` leaves out
any other rows. The reference pool's size is checked before anything is embedded or
fitted.

``--truth`` unblinds the result: contrastx truth files, or ADC2021-style ``.npz`` /
``.h5`` files keyed by event id (:func:`contrastx.nplm.blackbox.read_truth`).
``--make-black-box`` first writes a black box from the fast generator (background plus
a hidden signal at ``--fraction``; truth in a separate file) to try the search blind
without Pythia.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_SEED_OFFSET = 1_000_003
"""The default reference sample's seed is ``--seed`` + this (never the black box's)."""


def build_parser() -> argparse.ArgumentParser:
    from contrastx.nplm.blackbox import BlackBoxConfig
    from contrastx.options import HelpFormatter, add_arguments

    p = argparse.ArgumentParser(
        prog="contrastx-blackbox",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "Outputs in --out: blackbox.json (every number, strict JSON; the --top-k events), "
            "table.md, event_scores.h5 (every event's NPLM score, mean and spread over the "
            "runs, with its row, EvtId and split; read it with "
            "contrastx.nplm.blackbox.read_event_scores), splits.png/.pdf and score_map.png."
        ),
        formatter_class=HelpFormatter,
    )
    io = p.add_argument_group("input and output")
    io.add_argument("--black-box", type=Path, required=True, help="black-box event file")
    io.add_argument(
        "--model",
        default="raw",
        help="model file (contrastx-train / contrastx-pipeline model.pt), or raw / leading_pt",
    )
    io.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="background event file for the reference (default: fast-generator sample)",
    )
    io.add_argument(
        "--reference-labels",
        type=Path,
        default=None,
        help="label side file of an ADC2021 reference (.npy, .npz with one array, or HDF5 "
        "'labels'); only background-labelled events are used",
    )
    io.add_argument(
        "--n-reference-pool",
        type=int,
        default=0,
        help="reference pool size (default: n_ref + 3 x split size, at least 2 n_ref)",
    )
    io.add_argument(
        "--exclude-reference-rows",
        type=Path,
        default=None,
        help="rows (0-based) of --reference to leave out of the pool: .npy, .npz with one "
        "array, or text with one integer per line or whitespace",
    )
    io.add_argument(
        "--keep-training-events",
        action="store_true",
        help="keep the events the model was trained on in the reference pool (by default "
        "they are left out when the model file records them and --reference is that file)",
    )
    io.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="truth file to unblind the result: contrastx's, or ADC2021-style .npz/.h5 with "
        "'EvtId' and 'labels'/'is_signal', or 'signal_EvtId' [and 'background_EvtId']; "
        "with --make-black-box, where to write it (default: <black box>.truth.h5)",
    )
    io.add_argument("--out", type=Path, default=Path("contrastx-blackbox"), help="output folder")
    io.add_argument("--name", default=None, help="embedding name in the table")
    io.add_argument(
        "--top-k",
        type=int,
        default=10,
        help="print and list the K events with the highest NPLM score (0: none)",
    )
    mk = p.add_argument_group("fast-generator black box (--make-black-box)")
    mk.add_argument(
        "--make-black-box",
        action="store_true",
        help="write --black-box (and --truth) from the fast generator first",
    )
    mk.add_argument("--n-background", type=int, default=20_000, help="background events")
    mk.add_argument("--signal", default="Ato4l", help="hidden signal process")
    mk.add_argument("--fraction", type=float, default=0.01, help="signal / background")
    mk.add_argument("--overwrite", action="store_true", help="replace an existing black box")
    run = p.add_argument_group("search")
    add_arguments(run, BlackBoxConfig)
    run.add_argument("--map-method", default="auto", help="2-D map: auto, pca, tsne, umap")
    run.add_argument("--map-events", type=int, default=5000, help="most events in the map")
    run.add_argument("--device", default="cpu", help="torch device")
    from contrastx.distributed.options import ExecutorOptions

    # --retries is left out: a fit or toy lost with its worker is not resubmitted here.
    add_arguments(
        p,
        ExecutorOptions,
        title="executor (the fits and null toys on local processes or Dask; --shard-size: "
        "null toys per task)",
        exclude=("retries",),
    )
    return p


def _load_embedder(spec: str) -> tuple[Any, dict[str, Any], Any]:
    """``(module, model config, TrainingEvents or None)`` of ``--model``."""
    from contrastx.embed import LeadingPtBaseline, RawBaseline, load_model

    if spec == "raw":
        return RawBaseline(), {"kind": "raw"}, None
    if spec == "leading_pt":
        return LeadingPtBaseline(), {"kind": "leading_pt"}, None
    loaded = load_model(spec)
    return loaded.model, loaded.model_config, loaded.training_events


def read_rows(path: Path) -> np.ndarray:
    """Row numbers from ``.npy``, ``.npz`` (one array) or a text file of integers."""
    if not path.is_file():
        raise FileNotFoundError(f"row file not found: {path}")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if len(z.files) != 1:
                    raise ValueError(f"a row .npz must hold one array; it holds {z.files}")
                arr = z[z.files[0]]
        else:
            arr = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a readable row file ({err})") from None
    arr = np.asarray(arr).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{path}: rows must be integers; got {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{path}: rows must be >= 0; got {int(arr.min())}")
    return arr.astype(np.int64)


def _reference_from_file(args: argparse.Namespace, training: Any) -> tuple[Any, dict[str, Any]]:
    """The reference events of ``--reference``: exclusions, background only, truncation."""
    from contrastx.events import read_events
    from contrastx.events.layout import BACKGROUNDS

    ref_ev = read_events(args.reference, labels=args.reference_labels)
    n_file = len(ref_ev)
    keep = np.ones(n_file, dtype=bool)
    info: dict[str, Any] = {"source": str(args.reference), "n_file": n_file}
    if args.exclude_reference_rows is not None:
        rows = read_rows(args.exclude_reference_rows)
        if rows.size and rows.max() >= n_file:
            raise ValueError(
                f"{args.exclude_reference_rows}: row {int(rows.max())} is beyond the "
                f"{n_file} events of {args.reference} (--exclude-reference-rows)"
            )
        keep[rows] = False
        info["excluded_rows_file"] = str(args.exclude_reference_rows)
        info["n_excluded_rows"] = int(np.unique(rows).size)
    if training is not None:
        info["model_training_events"] = training.header()
        if args.keep_training_events:
            info["training_events"] = "kept (--keep-training-events)"
        elif training.matches(args.reference):
            rows = training.rows
            if rows.size and rows.max() >= n_file:
                raise ValueError(
                    f"{args.reference}: the model records training row {int(rows.max())} "
                    f"but the file has {n_file} events"
                )
            info["n_training_rows_excluded"] = int((keep[rows]).sum())
            keep[rows] = False
            info["training_events"] = "excluded"
        else:
            info["training_events"] = "none: the model was trained on another file"
    names = ref_ev.process_names
    bkg = [i for i, n in enumerate(names) if n in BACKGROUNDS]
    if (ref_ev.labels >= 0).any():
        keep &= np.isin(ref_ev.labels, bkg)
    rows = np.flatnonzero(keep)
    if args.n_reference_pool:
        rows = rows[: args.n_reference_pool]
    info["n"] = int(rows.size)
    return ref_ev[rows], info


def _print_top(res: Any, top: np.ndarray, ids: np.ndarray, sig: np.ndarray | None) -> None:
    r = res.t.shape[1]
    print(
        f"top {top.size} events by NPLM score (mean over the {r} runs of their split; "
        "every event in event_scores.h5):"
    )
    head = f"{'rank':>4} {'row':>8} {'EvtId':>10} {'split':>5} {'score':>7} {'std':>6}"
    print(head + ("  truth" if sig is not None else ""))
    for rank, i in enumerate(top, 1):
        line = (
            f"{rank:>4} {i:>8} {int(ids[i]):>10} {int(res.event_split[i]):>5} "
            f"{res.scores[i]:>7.4f} {res.scores_std[i]:>6.4f}"
        )
        if sig is not None:
            line += "  signal" if sig[i] else "  background"
        print(line)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the search described by parsed ``args``; returns the JSON summary."""
    from contrastx._json import dumps
    from contrastx.distributed.options import ExecutorOptions
    from contrastx.embed import embed
    from contrastx.events import read_events
    from contrastx.events.generators import generate_sample, mixture_counts
    from contrastx.events.layout import ADC2021_MIXTURE
    from contrastx.nplm.blackbox import (
        BlackBoxConfig,
        check_reference_pool,
        read_truth,
        run_black_box,
        write_event_scores,
        write_fast_black_box,
    )
    from contrastx.options import from_arguments
    from contrastx.plots import save_figure
    from contrastx.plots.latent import plot_score_map
    from contrastx.plots.study import plot_black_box_splits

    cfg = from_arguments(BlackBoxConfig, args)
    executor = from_arguments(ExecutorOptions, args)
    if args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0; got {args.top_k}")
    if args.n_reference_pool < 0:
        raise ValueError(f"--n-reference-pool must be >= 0; got {args.n_reference_pool}")
    if args.exclude_reference_rows is not None and args.reference is None:
        raise ValueError("--exclude-reference-rows needs --reference (rows of that file)")
    made = None
    truth_path = args.truth
    if args.make_black_box:
        truth_path = args.truth or args.black_box.with_suffix(".truth.h5")
        made = write_fast_black_box(
            args.black_box, truth_path, n_background=args.n_background, signal=args.signal,
            fraction=args.fraction, seed=cfg.seed, overwrite=args.overwrite,
        )  # fmt: skip
        print(
            f"wrote black box {args.black_box} ({made['n_events']} events, "
            f"{made['n_signal']} hidden {made['signal']}) and truth {truth_path}"
        )
    bb = read_events(args.black_box)
    truth = read_truth(truth_path) if truth_path is not None else None
    model, model_cfg, training = _load_embedder(args.model)
    split_size = len(bb) / cfg.n_splits
    n_exp = cfg.n_expected if cfg.n_expected is not None else split_size
    # The reference pool is read (or sized) and checked before anything is embedded or fit.
    if args.reference is not None:
        ref_ev, ref_info = _reference_from_file(args, training)
        check_reference_pool(len(ref_ev), cfg.n_ref, n_exp, what=str(args.reference))
    else:
        n_pool = args.n_reference_pool or int(max(2 * cfg.n_ref, cfg.n_ref + 3 * n_exp + 100))
        check_reference_pool(n_pool, cfg.n_ref, n_exp, what="--n-reference-pool")
        ref_seed = cfg.seed + REFERENCE_SEED_OFFSET
        ref_ev = generate_sample(mixture_counts(n_pool, ADC2021_MIXTURE), seed=ref_seed)
        ref_info = {"source": "fast generator", "seed": ref_seed, "n": n_pool}
        if training is not None:
            ref_info["training_events"] = "none: the reference is generated, not read from a file"
    z = embed(model, bb, device=args.device)
    z_ref = embed(model, ref_ev, device=args.device)
    res = run_black_box(z, z_ref, cfg, device=args.device, progress=print, executor=executor)
    name = args.name or (Path(args.model).stem if args.model not in ("raw", "leading_pt") else
                         {"raw": "raw57", "leading_pt": "leadpt6"}[args.model])  # fmt: skip
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(res.table_markdown(name))
    ev_ids = bb.event_ids if bb.event_ids is not None else np.arange(len(bb))
    scores_path = write_event_scores(out / "event_scores.h5", res, ev_ids)
    fig = plot_black_box_splits(
        res.t_null, res.t, dof=res.dof, best_split=res.best_split,
        title=f"{name}: black-box splits vs null (global Z {_z_title(res)})",
    )  # fmt: skip
    figures = {"splits": str(save_figure(fig, out / "splits", ("png", "pdf"))[0])}
    # Fig. V: the most significant split, events with score > 0.5.
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 12]))
    keep = np.arange(res.best_indices.size)
    if keep.size > args.map_events:
        keep = np.sort(rng.choice(keep, args.map_events, replace=False))
    fig = plot_score_map(
        z[res.best_indices[keep]], res.best_scores[keep], method=args.map_method, seed=cfg.seed,
        title=f"{name}: split {res.best_split}, NPLM score > 0.5",
    )  # fmt: skip
    figures["score_map"] = str(save_figure(fig, out / "score_map", ("png",))[0])
    top = res.top_events(args.top_k)
    sig = truth.signal_mask(ev_ids) if truth is not None else None
    summary = {
        "name": name,
        "black_box": str(args.black_box),
        "n_events": len(bb),
        "model": args.model,
        "model_config": model_cfg,
        "reference": ref_info,
        "made_black_box": made,
        "result": res.as_dict(),
        "event_scores": str(scores_path),
        "top_events": [
            {
                "row": int(i),
                "EvtId": int(ev_ids[i]),
                "split": int(res.event_split[i]),
                "score": float(res.scores[i]),
                "score_std": float(res.scores_std[i]),
            }
            for i in top
        ],
        "figures": figures,
        "score_map_method": fig.contrastx_method,
    }
    if truth is not None and sig is not None:
        summary["truth"] = _truth_summary(truth, sig, res, top)
    (out / "blackbox.json").write_text(dumps(summary, indent=2, default=str))
    print(res.table_markdown(name))
    print(
        f"most significant split {res.best_split}: Z = {res.z_mean[res.best_split]:.2f}; "
        f"global Z (Bonferroni, k = {cfg.n_splits}) {_z_title(res)}"
    )
    if res.global_p_capped:
        print(
            f"  no split stands out: k = {cfg.n_splits} background-only splits would give a "
            "split this significant by chance"
        )
    if top.size:
        _print_top(res, top, ev_ids, sig)
    print(f"outputs: {out}")
    return summary


def _z_title(res: Any) -> str:
    """``"= 2.31 ± 0.40"`` or ``"< 0 (Bonferroni p = 1)"``."""
    text = res.global_text()
    return text if res.global_p_capped else f"= {text}"


def _truth_summary(truth: Any, sig: np.ndarray, res: Any, top: np.ndarray) -> dict[str, Any]:
    """Signal share of each split, of the high-score events and of the top events."""
    hi = res.best_scores > 0.5
    best_sig = sig[res.best_indices]
    k = res.t.shape[0]
    return {
        "file": str(truth.path),
        "signal": truth.signal,
        "n_signal": int(sig.sum()),
        "signal_per_split": np.bincount(res.event_split[sig], minlength=k).tolist(),
        "best_split_signal_share_all": float(best_sig.mean()),
        "best_split_signal_share_score_gt_half": float(best_sig[hi].mean()) if hi.any() else None,
        "top_events_signal": int(sig[top].sum()),
        "top_events": int(top.size),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-blackbox``."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        OSError,
        RuntimeError,
        ImportError,
    ) as err:
        print(f"contrastx-blackbox: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
