"""``contrastx-blackbox``: NPLM search on a black-box event file (Table VII, Figs. V, VI).

Embeds a black-box file (ADC2021's ``BlackBox`` layout -- ``Particles`` and ``EvtId``,
no labels -- or a contrastx event file) with a trained model file (or one of the
baselines ``raw`` / ``leading_pt``), cuts it into k luminosity-sized splits (default 10),
runs NPLM r times per split with a re-sampled reference (default 10), and reports the
per-split Z (mean and spread over the runs) and the global significance (most
significant split, Bonferroni-corrected for the k splits). Writes ``blackbox.json``
(every number), ``table.md`` (Table VII row), ``splits.png`` (Fig. VI) and
``score_map.png`` (Fig. V: the most significant split in 2-D coloured by the NPLM score,
score > 0.5 only) to ``--out``.

The reference is a background event file (``--reference``, e.g. ADC2021's
``background_for_training.h5``), or by default a fast-generator background sample.
``--make-black-box`` first writes a black box from the fast generator (background plus
a hidden signal at ``--fraction``; truth in a separate file) to try the search blind
without Pythia.
"""

from __future__ import annotations

import argparse
import json
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
        help="label side file of an ADC2021 reference; only background-labelled events are used",
    )
    io.add_argument(
        "--n-reference-pool",
        type=int,
        default=0,
        help="reference pool size (default: n_ref + 3 x split size, at least 2 n_ref)",
    )
    io.add_argument("--out", type=Path, default=Path("contrastx-blackbox"), help="output folder")
    io.add_argument("--name", default=None, help="embedding name in the table")
    mk = p.add_argument_group("fast-generator black box (--make-black-box)")
    mk.add_argument(
        "--make-black-box",
        action="store_true",
        help="write --black-box (and --truth) from the fast generator first",
    )
    mk.add_argument("--truth", type=Path, default=None, help="truth file (default: <bb>.truth.h5)")
    mk.add_argument("--n-background", type=int, default=20_000, help="background events")
    mk.add_argument("--signal", default="Ato4l", help="hidden signal process")
    mk.add_argument("--fraction", type=float, default=0.01, help="signal / background")
    mk.add_argument("--overwrite", action="store_true", help="replace an existing black box")
    run = p.add_argument_group("search")
    add_arguments(run, BlackBoxConfig)
    run.add_argument("--map-method", default="auto", help="2-D map: auto, pca, tsne, umap")
    run.add_argument("--map-events", type=int, default=5000, help="most events in the map")
    run.add_argument("--device", default="cpu", help="torch device")
    return p


def _load_embedder(spec: str) -> tuple[Any, dict[str, Any]]:
    from contrastx.embed import LeadingPtBaseline, RawBaseline, load_model

    if spec == "raw":
        return RawBaseline(), {"kind": "raw"}
    if spec == "leading_pt":
        return LeadingPtBaseline(), {"kind": "leading_pt"}
    loaded = load_model(spec)
    return loaded.model, loaded.model_config


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the search described by parsed ``args``; returns the JSON summary."""
    from contrastx.embed import embed
    from contrastx.events import read_events
    from contrastx.events.generators import generate_sample, mixture_counts
    from contrastx.events.layout import ADC2021_MIXTURE, BACKGROUNDS
    from contrastx.nplm.blackbox import BlackBoxConfig, run_black_box, write_fast_black_box
    from contrastx.options import from_arguments
    from contrastx.plots import save_figure
    from contrastx.plots.latent import plot_score_map
    from contrastx.plots.study import plot_black_box_splits

    cfg = from_arguments(BlackBoxConfig, args)
    made = None
    if args.make_black_box:
        truth = args.truth or args.black_box.with_suffix(".truth.h5")
        made = write_fast_black_box(
            args.black_box, truth, n_background=args.n_background, signal=args.signal,
            fraction=args.fraction, seed=cfg.seed, overwrite=args.overwrite,
        )  # fmt: skip
        print(
            f"wrote black box {args.black_box} ({made['n_events']} events, "
            f"{made['n_signal']} hidden {made['signal']}) and truth {truth}"
        )
    bb = read_events(args.black_box)
    model, model_cfg = _load_embedder(args.model)
    z = embed(model, bb, device=args.device)
    split_size = len(bb) / cfg.n_splits
    n_exp = cfg.n_expected if cfg.n_expected is not None else split_size
    if args.reference is not None:
        ref_ev = read_events(args.reference, labels=args.reference_labels)
        names = ref_ev.process_names
        bkg = [i for i, n in enumerate(names) if n in BACKGROUNDS]
        if (ref_ev.labels >= 0).any():
            ref_ev = ref_ev[np.isin(ref_ev.labels, bkg)]
        if args.n_reference_pool:
            ref_ev = ref_ev[: args.n_reference_pool]
        ref_info = {"source": str(args.reference), "n": len(ref_ev)}
    else:
        n_pool = args.n_reference_pool or int(max(2 * cfg.n_ref, cfg.n_ref + 3 * n_exp + 100))
        ref_seed = cfg.seed + REFERENCE_SEED_OFFSET
        ref_ev = generate_sample(mixture_counts(n_pool, ADC2021_MIXTURE), seed=ref_seed)
        ref_info = {"source": "fast generator", "seed": ref_seed, "n": n_pool}
    z_ref = embed(model, ref_ev, device=args.device)
    res = run_black_box(z, z_ref, cfg, device=args.device, progress=print)
    name = args.name or (Path(args.model).stem if args.model not in ("raw", "leading_pt") else
                         {"raw": "raw57", "leading_pt": "leadpt6"}[args.model])  # fmt: skip
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(res.table_markdown(name))
    fig = plot_black_box_splits(
        res.t_null, res.t, dof=res.dof, best_split=res.best_split,
        title=f"{name}: black-box splits vs null (global Z = {res.global_z:.2f})",
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
    summary = {
        "name": name,
        "black_box": str(args.black_box),
        "n_events": len(bb),
        "model": args.model,
        "model_config": model_cfg,
        "reference": ref_info,
        "made_black_box": made,
        "result": res.as_dict(),
        "figures": figures,
        "score_map_method": fig.contrastx_method,
    }
    if made is not None or args.truth is not None:
        summary["truth"] = _truth_summary(args, cfg, bb, res)
    (out / "blackbox.json").write_text(json.dumps(summary, indent=2, default=str))
    print(res.table_markdown(name))
    print(
        f"most significant split {res.best_split}: Z = {res.z_mean[res.best_split]:.2f}; "
        f"global Z (Bonferroni, k = {cfg.n_splits}) = {res.global_z:.2f} ± {res.global_z_std:.2f}"
    )
    print(f"outputs: {out}")
    return summary


def _truth_summary(args: argparse.Namespace, cfg: Any, bb: Any, res: Any) -> dict[str, Any]:
    """Signal share of each split and of the high-score events (unblinding)."""
    from contrastx.nplm.blackbox import read_truth, split_indices

    truth = args.truth or args.black_box.with_suffix(".truth.h5")
    ids, labels, names, info = read_truth(truth)
    lut = dict(zip(ids.tolist(), labels.tolist()))
    ev_ids = bb.event_ids if bb.event_ids is not None else np.arange(len(bb))
    lab = np.array([lut.get(int(i), -1) for i in ev_ids])
    sig = np.array([names[k] == info["signal"] if k >= 0 else False for k in lab])
    parts = split_indices(len(bb), cfg.n_splits, shuffle=cfg.shuffle, seed=cfg.seed)
    hi = res.best_scores > 0.5
    best_sig = sig[res.best_indices]
    return {
        "signal": info["signal"],
        "n_signal": int(sig.sum()),
        "signal_per_split": [int(sig[p].sum()) for p in parts],
        "best_split_signal_share_all": float(best_sig.mean()),
        "best_split_signal_share_score_gt_half": float(best_sig[hi].mean()) if hi.any() else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-blackbox``."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, FileExistsError, OSError, RuntimeError) as err:
        print(f"contrastx-blackbox: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
