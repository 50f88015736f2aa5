"""CATHODE on the real LHC Olympics 2020 R&D signal-region features, end to end.

Runs, on ``innerdata_*.npy`` of the shared ``lhco-rd-sr`` folder (four CATHODE features,
m_jj in TeV, truth labels):

* **data**: ``innerdata_train`` + ``innerdata_val`` (120,000 events). Inner signal region
  3.44 <= m_jj < 3.56 TeV, "sidebands" the rest of 3.3-3.7 TeV (contaminated with signal,
  as real sidebands can be).
* **evaluation**: the inner-SR rows of ``innerdata_test`` (background and signal), never
  used in any training. max SIC over working points keeping at least
  100 / N_background of the evaluation background (``min_background_events``).
* **CATHODE**: flow on the sidebands, template at 4x the SR data, CWoLa ensemble.
* **fidelity**: a flow fitted on the *background* sideband rows only, sampled at the
  m_jj of the evaluation background rows; AUC of a k-fold classifier samples vs those
  real background rows (0.5: indistinguishable), with its uncertainty. Also the
  sculpting AUC of the CATHODE template itself against the true SR background.
* **idealized anomaly detector**: template = true inner-SR background that is not
  evaluated against. The test file's inner-SR background is split in two halves
  (seeded); each half is the template of a detector that scores the other half (and
  the signal events assigned to the other half), so every evaluation event is scored by
  a model that never saw it and the evaluation set is the same as CATHODE's.
  CATHODE is also run with a template of the same size (same flow). A ~6k-event
  template fluctuates a lot by itself, so both are repeated over ``--draws`` draws
  (half splits; flow-sample seeds) and reported with their mean and spread.
* **contamination check** (``--contamination-check``): CATHODE with the fidelity flow,
  trained on the background-only sidebands (needs labels: a diagnostic of what the
  sidebands' signal costs, not an analysis).
* **repeats** (``--repeats``): the whole CATHODE chain with other master seeds (new flow,
  template and classifiers), the training spread that the ensemble spread leaves out.
* **supervised**: the same classifier, signal (``innerdata_extrasig_train`` SR rows)
  against the true background of the SR data, scored on the evaluation events.

Writes a JSON (``--out``) with ``max_sic`` for ``cathode``, ``cathode_same_template``,
``idealized``, ``supervised``, the ``fidelity_auc``, the ensemble spreads, template
sizes, timings and the configuration, and prints a summary.

Usage::

    python bench/cathode_lhco.py --out cathode-lhco.json
    python bench/cathode_lhco.py --set epochs=10 --set n_models=4   # quicker, CathodeOptions keys
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from contrastx.cathode import (
    Cathode,
    CathodeOptions,
    ConditionalFlow,
    evaluate_classifier,
    idealized_template,
    supervised_classifier,
)
from contrastx.cathode.sculpting import sculpting_test
from contrastx.options import OptionsError, replace_flat, to_dict

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "lhco-rd-sr"
SR = (3.44, 3.56)
OUTER = (3.3, 3.7)
# The counts for this split, checked so that a changed data file is noticed.
EXPECTED = {"sr": (35_478, 335), "sb": (84_522, 429), "eval": (11_919, 8_484)}

logger = logging.getLogger("cathode_lhco")


def load(data_dir: Path) -> dict[str, np.ndarray]:
    """The files as float64 arrays (n, 6): m_jj, 4 features, label."""
    out = {}
    for name in ("innerdata_train", "innerdata_val", "innerdata_test", "innerdata_extrasig_train"):
        path = data_dir / f"{name}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (pass --data-dir)")
        a = np.load(path)
        if a.ndim != 2 or a.shape[1] != 6:
            raise ValueError(f"{path}: expected shape (n, 6); got {a.shape}")
        out[name] = a
    return out


def in_window(m: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    return (m >= window[0]) & (m < window[1])


def split(files: dict[str, np.ndarray]) -> dict[str, Any]:
    """Data, sidebands, evaluation and supervised-training events of the issue's split."""
    data = np.concatenate([files["innerdata_train"], files["innerdata_val"]])
    m, x, y = data[:, 0], data[:, 1:5], data[:, 5]
    sr = in_window(m, SR)
    sb = in_window(m, OUTER) & ~sr
    test = files["innerdata_test"]
    ev = test[in_window(test[:, 0], SR)]
    sig = files["innerdata_extrasig_train"]
    sig_sr = sig[in_window(sig[:, 0], SR)]
    counts = {
        "sr": (int(sr.sum()), int(y[sr].sum())),
        "sb": (int(sb.sum()), int(y[sb].sum())),
        "eval": (int((ev[:, 5] == 0).sum()), int((ev[:, 5] == 1).sum())),
    }
    for key, want in EXPECTED.items():
        if counts[key] != want:
            logger.warning(
                "split %s has %s events (total, signal); expected %s", key, counts[key], want
            )
    return {
        "m": m, "x": x, "y": y, "sr": sr, "sb": sb,
        "x_eval": ev[:, 1:5], "y_eval": ev[:, 5].astype(int), "m_eval": ev[:, 0],
        "x_sig_train": sig_sr[:, 1:5], "counts": counts,
    }  # fmt: skip


def summary_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers a reader compares: max SIC with its ensemble spread, AUC."""
    ens = metrics["ensembles"]
    return {
        "max_sic": metrics["max_sic"]["value"],
        "max_sic_detail": metrics["max_sic"],
        "auc": metrics["auc"],
        "auc_error": metrics["auc_error"],
        "sic_at_background_efficiency": dict(
            zip(
                map(str, metrics["background_efficiencies"]),
                metrics["sic_at_background_efficiency"],
            )
        ),
        "ensemble_max_sic_mean": ens["max_sic_mean"],
        "ensemble_max_sic_std": ens["max_sic_std"],
        "ensemble_max_sic": ens["max_sic"],
        "n_ensembles": ens["n"],
    }


def run_idealized(s: dict[str, Any], opts: CathodeOptions, seed: int) -> dict[str, Any]:
    """Two-fold idealized detector on the evaluation events (see the module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1DEA]))
    half = rng.integers(0, 2, size=s["y_eval"].size)  # 0/1 for every evaluation event
    bkg = s["y_eval"] == 0
    # Background of half k is the template of detector k, which scores half 1 - k.
    scores = np.empty(s["y_eval"].size)
    ens_scores = None
    sizes = []
    for k in (0, 1):
        template = idealized_template(s["x_eval"][bkg & (half == k)])
        sizes.append(int(template.x.shape[0]))
        det = Cathode(replace_flat(opts, seed=seed)).fit(
            s["x"], s["m"], template=template, progress=False
        )
        target = half == 1 - k
        scores[target] = det.predict(s["x_eval"][target])
        e = det.classifier_.predict_ensembles(s["x_eval"][target])
        if ens_scores is None:
            ens_scores = np.empty((e.shape[0], s["y_eval"].size))
        ens_scores[:, target] = e
    metrics = evaluate_classifier(
        None, None, s["y_eval"], scores=scores, ensemble_scores=ens_scores,
        min_background_events=opts.min_background_events,
        background_efficiencies=opts.background_efficiencies,
    )  # fmt: skip
    out = summary_of(metrics)
    out["template_sizes"] = sizes
    return out


def over_draws(runs: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """The first run's numbers, plus max SIC of every draw with their mean and spread.

    ``what`` says what differs between the draws (it goes into the JSON).
    """
    values = [r["max_sic"] for r in runs]
    out = dict(runs[0])
    out["draws"] = {
        "varied": what,
        "max_sic": values,
        "max_sic_mean": float(np.mean(values)),
        "max_sic_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "runs": runs,
    }
    return out


def same_size_draws(
    s: dict[str, Any],
    opts: CathodeOptions,
    flow: Any,
    oversampling: float,
    seed: int,
    draws: int,
) -> dict[str, Any]:
    """CATHODE with a fitted ``flow`` and a template of ``oversampling`` x the SR events,
    once per draw (template sample and classifier seed ``seed + d``)."""
    runs = []
    for d in range(draws):
        o = replace_flat(opts, oversampling=oversampling, seed=seed + d)
        c = Cathode(o).fit(s["x"], s["m"], flow=flow, progress=False)
        run = summary_of(c.score(s["x_eval"], s["y_eval"]))
        run["n_template"] = c.fit_info_["n_template"]
        runs.append(run)
    return over_draws(runs, "template sample and classifier seed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="lhco-rd-sr folder")
    p.add_argument("--out", type=Path, default=Path("cathode-lhco.json"), help="result JSON")
    p.add_argument("--seed", type=int, default=0, help="master seed")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="CathodeOptions key (flat, e.g. epochs=10, n_models=4, kind=maf); repeatable",
    )
    p.add_argument("--skip-fidelity", action="store_true", help="no background-only flow")
    p.add_argument(
        "--contamination-check",
        action="store_true",
        help="also run CATHODE with the fidelity flow (trained on the background-only "
        "sidebands, which needs labels: a diagnostic of what the sidebands' signal costs)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="independent CATHODE runs (flow, template and classifier seeds seed, seed+1, ...); "
        "their max-SIC spread is the training uncertainty the ensemble spread leaves out",
    )
    p.add_argument(
        "--draws",
        type=int,
        default=3,
        help="template draws for the idealized detector (evaluation-half splits) and for "
        "CATHODE with a template of its size (flow-sample seeds): at ~6k events the "
        "template's own fluctuation dominates, so one draw alone is not comparable",
    )
    args = p.parse_args(argv)
    if args.repeats < 1 or args.draws < 1:
        p.error("--repeats and --draws must be >= 1")
    if args.contamination_check and args.skip_fidelity:
        p.error("--contamination-check uses the fidelity flow: drop --skip-fidelity")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    # Small flows train and sample fastest on one thread (several times faster than two
    # on a busy 2-core machine); the classifier's trees use one thread by default too.
    torch.set_num_threads(1)
    start, cpu_start = time.perf_counter(), time.process_time()

    changes: dict[str, Any] = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        changes[key.strip()] = tuple(value) if isinstance(value, list) else value
    try:
        opts = CathodeOptions(
            signal_region=SR, sidebands=(OUTER[0], SR[0], SR[1], OUTER[1]), seed=args.seed
        )
        opts = replace_flat(opts, **changes)
    except OptionsError as err:
        print(f"cathode_lhco: error: {err}", file=sys.stderr)
        return 2

    s = split(load(args.data_dir))
    timings: dict[str, float] = {}
    result: dict[str, Any] = {
        "data": str(args.data_dir),
        "counts": {k: {"events": v[0], "signal": v[1]} for k, v in s["counts"].items()},
        "signal_region": list(SR),
        "sidebands": [OUTER[0], SR[0], SR[1], OUTER[1]],
        "options": to_dict(opts),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_start": os.getloadavg(),
        },
    }

    # ---- CATHODE (repeat 0 is the one whose flow, sculpting test and template size the
    # other comparisons use)
    runs, flow, first = [], None, None
    for r in range(args.repeats):
        t = time.perf_counter()
        c = Cathode(replace_flat(opts, seed=args.seed + r)).fit(s["x"], s["m"], progress=False)
        info = c.fit_info_
        run = summary_of(c.score(s["x_eval"], s["y_eval"]))
        run["n_template"] = info["n_template"]
        run["seed"] = args.seed + r
        run["seconds"] = {
            "fit": time.perf_counter() - t,
            "flow_training": info.get("flow_seconds", float("nan")),
            "template_sampling": info.get("template_seconds", float("nan")),
            "classifier": info.get("classifier_seconds", float("nan")),
        }
        runs.append(run)
        logger.info("CATHODE repeat %d: max SIC %.2f", r, run["max_sic"])
        if r == 0:
            first, flow = c, c.flow_
    result["cathode"] = over_draws(runs, "master seed (flow, template, classifier)")
    for k, v in runs[0]["seconds"].items():
        timings["cathode_" + k if k in ("fit", "classifier") else k] = v
    timings["cathode_repeats"] = sum(r["seconds"]["fit"] for r in runs)
    result["flow"] = {
        "best_epochs": [[int(f), int(e)] for f, e in flow.best_epochs_],
        "history": flow.history_,
    }
    t = time.perf_counter()
    sculpt = first.sculpting_test(s["x_eval"][s["y_eval"] == 0])
    timings["sculpting_test"] = time.perf_counter() - t
    result["sculpting"] = sculpt.as_dict()

    # ---- idealized detector, and CATHODE with a template of the same size (same flow);
    # several draws of each, as a ~6k-event template fluctuates a lot on its own
    t = time.perf_counter()
    ideal = [run_idealized(s, opts, args.seed + d) for d in range(args.draws)]
    result["idealized"] = over_draws(ideal, "evaluation-half split and classifier seed")
    timings["idealized"] = time.perf_counter() - t
    n_ideal = int(np.mean(result["idealized"]["template_sizes"]))
    n_sr = int(s["sr"].sum())
    t = time.perf_counter()
    result["cathode_same_template"] = same_size_draws(
        s, opts, flow, n_ideal / n_sr, args.seed, args.draws
    )
    timings["cathode_same_template"] = time.perf_counter() - t

    # ---- supervised
    t = time.perf_counter()
    bkg_sr = s["x"][s["sr"] & (s["y"] == 0)]
    sup = supervised_classifier(
        s["x_sig_train"], bkg_sr, options=opts.classifier, seed=args.seed, progress=None
    )
    result["supervised"] = summary_of(
        evaluate_classifier(
            sup,
            s["x_eval"],
            s["y_eval"],
            min_background_events=opts.min_background_events,
            background_efficiencies=opts.background_efficiencies,
        )
    )
    result["supervised"]["n_train"] = {"signal": len(s["x_sig_train"]), "background": len(bkg_sr)}
    timings["supervised"] = time.perf_counter() - t

    # ---- fidelity: flow on background sideband rows, samples vs held-out real background
    if not args.skip_fidelity:
        t = time.perf_counter()
        bkg_sb = s["sb"] & (s["y"] == 0)
        fid_flow = ConditionalFlow(opts.flow).fit(
            s["x"][bkg_sb], s["m"][bkg_sb], seed=args.seed + 1, progress=False
        )
        ev_bkg = s["y_eval"] == 0
        samples = fid_flow.sample(s["m_eval"][ev_bkg], seed=args.seed + 2)
        fid = sculpting_test(
            samples, s["x_eval"][ev_bkg], options=opts.classifier, seed=args.seed + 3
        )
        result["fidelity"] = fid.as_dict()
        result["fidelity_auc"] = fid.as_dict()["auc"]
        timings["fidelity"] = time.perf_counter() - t
        if args.contamination_check:
            # Not an analysis (it needs the sidebands' labels): what the sidebands' signal
            # costs. CATHODE with the background-only flow, 4x and idealized-size templates.
            t = time.perf_counter()
            result["cathode_background_only_sidebands"] = summary_of(
                Cathode(opts)
                .fit(s["x"], s["m"], flow=fid_flow, progress=False)
                .score(s["x_eval"], s["y_eval"])
            )
            result["cathode_background_only_sidebands_same_template"] = same_size_draws(
                s, opts, fid_flow, n_ideal / n_sr, args.seed, args.draws
            )
            timings["contamination_check"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - start
    result["seconds"] = timings
    result["wall_time_s"] = timings["total"]
    # Torch and the trees run on one thread, so the CPU time is close to the wall time
    # the bench would take on an otherwise idle machine.
    result["cpu_time_s"] = time.process_time() - cpu_start
    result["machine"]["load_average_end"] = os.getloadavg()
    result["max_sic"] = {
        k: result[k]["max_sic"]
        for k in ("cathode", "cathode_same_template", "idealized", "supervised")
    }
    result["ratio_cathode_to_idealized"] = (
        result["max_sic"]["cathode"] / result["max_sic"]["idealized"]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float) + "\n")
    os.replace(tmp, args.out)

    def line(name: str) -> str:
        r = result[name]
        text = (
            f"{name:>22}: max SIC {r['max_sic']:.2f} (ensembles: {r['ensemble_max_sic_mean']:.2f}"
            f" +- {r['ensemble_max_sic_std']:.2f}, n = {r['n_ensembles']})"
        )
        draws = r.get("draws")
        if draws and len(draws["max_sic"]) > 1:
            values = ", ".join(f"{v:.2f}" for v in draws["max_sic"])
            text += (
                f"; over {len(draws['max_sic'])} draws of the {draws['varied']}: "
                f"{draws['max_sic_mean']:.2f} +- {draws['max_sic_std']:.2f} ({values})"
            )
        return text

    names = ["cathode", "cathode_same_template", "idealized", "supervised"]
    names += [k for k in result if k.startswith("cathode_background_only")]
    print("\n".join(line(k) for k in names))
    print(f"template sizes: cathode {result['cathode']['n_template']}, idealized "
          f"{result['idealized']['template_sizes']}")  # fmt: skip
    if "fidelity_auc" in result:
        print(f"fidelity AUC {result['fidelity']}")
    print(f"sculpting (CATHODE template vs true SR background): {result['sculpting']}")
    rounded = {k: round(v, 1) for k, v in timings.items()}
    print(
        f"wall time {timings['total']:.0f} s (CPU time {result['cpu_time_s']:.0f} s, load average "
        f"{result['machine']['load_average_end'][1]:.1f}); {json.dumps(rounded)}"
    )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
