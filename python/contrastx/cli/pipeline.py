"""``contrastx-pipeline``: run a whole study from one TOML config.

events (files, or the built-in fast generator) -> preprocessing and splits -> embeddings
(contrastive encoders and the raw-input, leading-object-pT and VAE baselines: 57-D, 6-D
and 6-D on the ADC2021 layout) -> NPLM toys for every signal and injection fraction ->
results (Table VI-like table as Markdown and CSV, ``results.json`` with every number,
figures, ``report.html``).

Every embedding is run ``run.trainings`` times (default 3): a contrastive or VAE
embedding is retrained with its own seed, and every run draws its own NPLM reference,
kernel centres and toys; results give the median over runs with the toy error and the
spread across runs separately.

Every stage caches its outputs under a key of its config: a re-run skips finished
stages and an interrupted run resumes (see :mod:`contrastx.pipeline.stages`).
Without ``--config`` the built-in default study runs (fast generator, CPU-sized);
``--preset pythia`` studies a Pythia 8 file in the ADC2021 cocktail at CPU scale;
``--preset paper`` sets the paper's sizes (N_R = 1e6, N(B) = 1e5, 250 toys,
D in {2, 4, 8, 16, 32}) for a GPU.

``--preset signal-aware`` (or a config with ``study = "signal-aware"``) runs the second
paper's study instead (:mod:`contrastx.signal_aware`): encoders trained in the ID, IP, EP
and background-only configurations on a diphoton sample, CATHODE in their latent spaces
on pseudo-data with injected signals, SIC curves, the injection needed for 3 sigma, the
sculpting check and Appendix A's confusion matrices.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .._console import error_exit, logging_to_stderr

PROG = "contrastx-pipeline"
NPLM_STAGES = ("events", "splits", "embed", "toys", "results")
SIGNAL_AWARE_STAGES = ("split", "encoder", "cathode", "results")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  contrastx-pipeline                                  # built-in default study\n"
            "  contrastx-pipeline --config examples/default.toml\n"
            "  contrastx-pipeline --preset paper --set run.device='\"cuda:0\"'\n"
            "  contrastx-pipeline --preset signal-aware --set events.file='\"diphoton.h5\"'\n"
            "  contrastx-pipeline --preset pythia --set events.background_file=pythia.h5\n"
            "  contrastx-pipeline --set nplm.n_toys=200 --set run.out_dir=study2\n"
            "  contrastx-pipeline --set run.trainings=5           # five seeds per embedding\n"
            "  contrastx-pipeline --print-config > my.toml"
        ),
    )
    p.add_argument("--config", type=Path, default=None, help="study TOML file")
    p.add_argument(
        "--preset",
        default=None,
        help="default, pythia (needs events.background_file) or paper; signal-aware or "
        "signal-aware-paper (need events.file, a diphoton sample) run the second paper's "
        "study (overrides the file's preset)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting (TOML value syntax); repeatable",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (run.out_dir)")
    p.add_argument(
        "--until",
        choices=tuple(dict.fromkeys((*NPLM_STAGES, *SIGNAL_AWARE_STAGES))),
        default=None,
        help=f"stop after this stage (NPLM study: {', '.join(NPLM_STAGES)}; signal-aware "
        f"study: {', '.join(SIGNAL_AWARE_STAGES)})",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config as TOML and exit"
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    return p


def to_toml(d: dict, prefix: str = "") -> str:
    """A small TOML writer for resolved configs (tables, arrays of tables, scalars, lists)."""
    import json

    def val(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def item(k: str, v: object) -> str:
        # TOML has no null: an unset optional setting (sigma, pc_epsilon) stays a comment.
        return f"# {k} = (unset)" if v is None else f"{k} = {val(v)}"

    lines = [item(k, v) for k, v in d.items() if not isinstance(v, (dict, list))]
    lines += [item(k, v) for k, v in d.items() if isinstance(v, list) and k != "embeddings"]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines += [item(kk, vv) for kk, vv in v.items()]
    for e in d.get("embeddings", []):
        lines.append("\n[[embeddings]]")
        lines += [item(kk, vv) for kk, vv in e.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-pipeline``."""
    args = build_parser().parse_args(argv)
    # Progress (stages, training epochs, blocks of toys) is logged at INFO, to stderr.
    with logging_to_stderr(PROG, logging.WARNING if args.quiet else logging.INFO):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from contrastx.pipeline import Pipeline, load_config
    from contrastx.signal_aware.config import is_signal_aware

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"run.out_dir={str(args.out)!r}")
    try:
        if is_signal_aware(args.config, args.preset):
            return _run_signal_aware(args, overrides)
        _check_until(args.until, NPLM_STAGES, "an NPLM")
        cfg = load_config(args.config, preset=args.preset, overrides=overrides)
        if args.print_config:
            print(to_toml(cfg.to_dict()), end="")
            return 0
        pipe = Pipeline(cfg, log=(lambda s: None) if args.quiet else None)
        results = pipe.run(until=args.until)
    except (ValueError, FileNotFoundError, FileExistsError, OSError, RuntimeError) as err:
        return error_exit(PROG, err)
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: interrupted; finished stages, training checkpoints and "
            "toys are saved: rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    if "results" in results and not args.quiet:
        out = cfg.out_dir
        print((out / "table.md").read_text())
        print(f"report: {out / 'report.html'}  json: {out / 'results.json'}")
    return 0


def _check_until(until: str | None, stages: tuple[str, ...], study: str) -> None:
    if until not in (None, *stages):
        raise ValueError(
            f"--until {until} is not a stage of {study} study; choose from {', '.join(stages)}"
        )


def _run_signal_aware(args: argparse.Namespace, overrides: list[str]) -> int:
    """The signal-aware study (``--preset signal-aware`` or ``study = "signal-aware"``)."""
    from contrastx.signal_aware import SignalAwareStudy, load_signal_aware_config

    _check_until(args.until, SIGNAL_AWARE_STAGES, "a signal-aware")
    cfg = load_signal_aware_config(args.config, preset=args.preset, overrides=overrides)
    if args.print_config:
        print(to_toml(cfg.to_dict()), end="")
        return 0
    study = SignalAwareStudy(cfg, log=(lambda s: None) if args.quiet else None)
    results = study.run(until=args.until)
    if "results" in results and not args.quiet:
        res = results["results"]
        print(res.path("tables").read_text())
        print(f"report: {res.path('report')}  json: {res.path('results')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
