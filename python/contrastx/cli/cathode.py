"""``contrastx-cathode``: CATHODE anomaly detection on an embedding, event or feature file.

Reads features x and a resonant variable m, splits the events into signal region (--sr)
and sidebands (--sb), trains a conditional flow on the sidebands, samples a background
template in the signal region and trains the k-fold CWoLa classifier against it
(:class:`contrastx.cathode.Cathode`). Writes to --out:

* ``cathode.json`` -- every number (counts, template size, timings, metrics with the
  ensemble spread, sculpting checks, baselines) and the full configuration;
* ``cathode.h5`` -- the scores (out of fold in the SR), the template, the evaluation and
  sculpting scores, with the same configuration and summary as attributes;
* ``flow.pt`` (+ ``flow.key.json``) -- the trained flow: a re-run with the same flow
  configuration and input reuses it instead of training again;
* figures: ``sic``, ``roc``, ``sculpting_roc``, ``mass_spectra``, ``projections``.

A finished run with the same configuration is not recomputed: its stored summary is
printed. Inputs (one of):

* ``--embedding FILE.h5`` (``contrastx-embed`` output: ``embedding`` + ``labels``), with
  m from ``--m NAME`` (a dataset of the file), ``--m FILE.npy`` or ``--m-column N``;
* ``--events FILE.h5`` (contrastx / ADC2021 events): raw features (pT, eta, phi of the 19
  objects), m the invariant mass of all objects unless ``--m`` is given;
* ``--features FILE.npy``: an (N, columns) array with ``--m-column`` and optionally
  ``--label-column`` (1 signal, 0 background), the other columns are the features.

Truth labels (1 signal, 0 background), where the input has them, give the metrics of the
out-of-fold SR scores and the sculpting test (template vs the labelled SR background).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contrastx.options import OptionsError

RESULTS_FORMAT = "contrastx-cathode-results"
RESULTS_VERSION = 1
SUMMARY_NAME = "cathode.json"
RESULTS_NAME = "cathode.h5"
FLOW_NAME = "flow.pt"
FLOW_KEY_NAME = "flow.key.json"

logger = logging.getLogger("contrastx.cli.cathode")


def build_parser() -> argparse.ArgumentParser:
    from contrastx.cathode import CathodeOptions
    from contrastx.options import add_arguments

    p = argparse.ArgumentParser(
        prog="contrastx-cathode",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  contrastx-cathode --features data.npy --m-column 0 --label-column 5 \\\n"
            "      --sr 3.44,3.56 --sb 3.3,3.44,3.56,3.7 --eval test.npy --out run1\n"
            "  contrastx-cathode --embedding emb.h5 --m mjj --signal Ato4l "
            "--sr 120,130 --sb 105,120,130,160\n"
            "  contrastx-cathode --config cathode.toml --embedding emb.h5 --m m.npy\n"
            "negative window values: --sr=-1,1"
        ),
    )
    src = p.add_argument_group("input (one of --embedding, --events, --features)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--embedding", type=Path, help="embedding file (HDF5: embedding + labels)")
    one.add_argument("--events", type=Path, help="contrastx or ADC2021 event file (HDF5)")
    one.add_argument("--features", type=Path, help=".npy array (N, columns)")
    src.add_argument(
        "--m",
        default=None,
        help="the resonant variable: a dataset name in the HDF5 input, or a .npy file with one "
        "value per event (--events default: invariant mass of all objects)",
    )
    src.add_argument(
        "--m-column",
        type=int,
        default=None,
        help="column of the features (.npy) or of the embedding holding m (removed from the "
        "features)",
    )
    src.add_argument(
        "--label-column",
        type=int,
        default=None,
        help="--features: column with truth labels, 1 signal / 0 background (removed from "
        "the features)",
    )
    src.add_argument(
        "--signal",
        default=None,
        help="process names counted as signal, comma-separated (embedding and event labels; "
        "default: the contrastx signal processes present in the file)",
    )
    src.add_argument(
        "--eval",
        type=Path,
        default=None,
        help="labelled evaluation events in the same format; their signal-region rows are "
        "scored with the trained classifiers (default: the SR data, out of fold)",
    )
    src.add_argument(
        "--idealized",
        type=Path,
        default=None,
        help="true background in the same format (not in the data): its signal-region "
        "background rows are the idealized anomaly detector's template",
    )
    src.add_argument(
        "--supervised",
        type=Path,
        default=None,
        help="labelled events in the same format (not in the data): the fully supervised "
        "classifier is trained on their signal-region rows",
    )
    out = p.add_argument_group("output and run")
    out.add_argument("--out", type=Path, default=Path("contrastx-cathode"), help="output folder")
    out.add_argument(
        "--config", type=Path, default=None, help="TOML file with a [cathode] table (flags win)"
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="recompute even if --out holds finished results (of this or another "
        "configuration); a saved flow of the same flow configuration is still reused",
    )
    out.add_argument("--retrain-flow", action="store_true", help="never reuse a saved flow")
    out.add_argument(
        "--no-sculpting-test",
        action="store_true",
        help="skip the template-vs-true-background classifier",
    )
    out.add_argument("--no-figures", action="store_true", help="write no figures")
    out.add_argument("--no-progress", action="store_true", help="log lines instead of bars")
    out.add_argument("--quiet", action="store_true", help="no progress messages")
    add_arguments(p, CathodeOptions, title="CATHODE settings ([cathode] table keys)")
    return p


# ----------------------------------------------------------------------- input
@dataclass
class Loaded:
    """Events read from one input file."""

    x: np.ndarray
    m: np.ndarray
    labels: np.ndarray | None  # 1 signal, 0 background, -1 unknown; None: no truth
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def _fingerprint(path: Path) -> dict[str, Any]:
    s = path.stat()
    return {"path": str(path.resolve()), "size": s.st_size, "mtime_ns": s.st_mtime_ns}


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _finite(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{where} must be numeric; got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.argwhere(bad)[0]
        raise ValueError(
            f"{where} holds {int(bad.sum())} NaN/inf value(s), first at index "
            f"{tuple(int(i) for i in first)}"
        )
    return arr


def _m_from_spec(args: argparse.Namespace, path: Path, n: int, h5: Any, role: str) -> tuple:
    """m from --m (dataset name or .npy): (array, description)."""
    spec = args.m
    if spec.endswith(".npy"):
        if role != "data":
            raise ValueError(
                f"--m {spec} gives m of the main input only; for --{role} give m as a "
                "dataset name or --m-column"
            )
        mp = _require_file(Path(spec), "m file")
        m = np.load(mp, allow_pickle=False)
        desc = {"m_file": _fingerprint(mp)}
        where = f"{mp}"
    else:
        if h5 is None:
            raise ValueError(f"--m {spec!r}: {path} is not an HDF5 file; give a .npy m file")
        if spec not in h5:
            raise ValueError(f"{path}: no dataset {spec!r} for --m (datasets: {sorted(h5.keys())})")
        m = h5[spec][...]
        desc = {"m_dataset": spec}
        where = f"{path}:{spec}"
    m = np.asarray(m)
    if m.ndim != 1 or m.shape[0] != n:
        raise ValueError(f"{where}: m must have shape ({n},) (one value per event); got {m.shape}")
    return _finite(m, f"{where} (m)"), desc


def _binary_labels(
    labels: np.ndarray, names: tuple[str, ...], args: argparse.Namespace, path: Path
) -> tuple[np.ndarray | None, list[str]]:
    """Process labels -> 1 signal / 0 background / -1 unknown (None if all unknown)."""
    from contrastx.events.layout import SIGNALS

    labels = np.asarray(labels)
    if (labels < 0).all():
        return None, []
    if args.signal:
        signal = [s.strip() for s in args.signal.split(",") if s.strip()]
        missing = [s for s in signal if s not in names]
        if missing:
            raise ValueError(
                f"{path}: --signal process(es) {missing} not in the file's processes {list(names)}"
            )
    else:
        signal = [s for s in names if s in SIGNALS]
    sig_idx = [names.index(s) for s in signal]
    out = np.where(labels < 0, -1, np.where(np.isin(labels, sig_idx), 1, 0))
    return out.astype(np.int64), signal


def load_input(args: argparse.Namespace, path: Path, kind: str, role: str) -> Loaded:
    """Read one input file (the data, or --eval / --idealized / --supervised)."""
    _require_file(path, f"{kind} file" if role == "data" else f"--{role} file")
    if kind == "features":
        return _load_features(args, path, role)
    if kind == "embedding":
        return _load_embedding(args, path, role)
    return _load_events(args, path, role)


def _load_features(args: argparse.Namespace, path: Path, role: str) -> Loaded:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: not a numeric .npy array ({err})") from None
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected an (N, columns) array; got shape {arr.shape}")
    n, ncol = arr.shape
    cols = {"m": args.m_column, "label": args.label_column}
    for name, c in cols.items():
        if c is not None and not -ncol <= c < ncol:
            raise ValueError(f"{path}: --{name}-column {c} is out of range ({ncol} columns)")
    cols = {k: (c % ncol if c is not None else None) for k, c in cols.items()}
    if cols["m"] is not None and cols["m"] == cols["label"]:
        raise ValueError("--m-column and --label-column must differ")
    info: dict[str, Any] = {"kind": "features", "file": _fingerprint(path), "n_events": n}
    if cols["m"] is not None:
        m = _finite(arr[:, cols["m"]], f"{path} column {cols['m']} (m)")
        info["m_column"] = cols["m"]
    elif args.m is not None:
        m, desc = _m_from_spec(args, path, n, None, role)
        info.update(desc)
    else:
        raise ValueError("--features needs --m-column (or --m FILE.npy) for the resonant variable")
    labels = None
    if cols["label"] is not None:
        raw = _finite(arr[:, cols["label"]], f"{path} column {cols['label']} (labels)")
        bad = ~np.isin(raw, (0.0, 1.0))
        if bad.any():
            raise ValueError(
                f"{path} column {cols['label']} (labels) must hold 0 (background) and 1 "
                f"(signal); got {np.unique(raw[bad])[:5].tolist()}"
            )
        labels = raw.astype(np.int64)
        info["label_column"] = cols["label"]
    keep = [j for j in range(ncol) if j not in (cols["m"], cols["label"])]
    if not keep:
        raise ValueError(f"{path}: no feature columns left after the m and label columns")
    x = _finite(arr[:, keep], f"{path} (features)")
    info["feature_columns"] = keep
    return Loaded(x, m, labels, [f"column {j}" for j in keep], info)


def _load_embedding(args: argparse.Namespace, path: Path, role: str) -> Loaded:
    import h5py

    from contrastx.embed.embedding_file import read_embedding

    emb = read_embedding(path)
    z = np.asarray(emb.embedding)
    n, d = z.shape
    info: dict[str, Any] = {"kind": "embedding", "file": _fingerprint(path), "n_events": n}
    names = [f"z{j}" for j in range(d)]
    keep = list(range(d))
    if args.m_column is not None:
        if args.m is not None:
            raise ValueError("give the resonant variable once: --m or --m-column")
        c = args.m_column
        if not -d <= c < d:
            raise ValueError(f"{path}: --m-column {c} is out of range ({d} embedding columns)")
        c %= d
        m = _finite(z[:, c], f"{path}:embedding column {c} (m)")
        keep.remove(c)
        info["m_column"] = c
    elif args.m is not None:
        with h5py.File(path, "r") as h5:
            m, desc = _m_from_spec(args, path, n, h5, role)
        info.update(desc)
    else:
        raise ValueError(
            "--embedding needs the resonant variable: --m NAME (dataset in the file), "
            "--m FILE.npy or --m-column N"
        )
    if not keep:
        raise ValueError(f"{path}: no embedding columns left after the m column")
    x = _finite(z[:, keep], f"{path}:embedding")
    labels, signal = _binary_labels(emb.labels, emb.process_names, args, path)
    info["signal_processes"] = signal
    return Loaded(x, m, labels, [names[j] for j in keep], info)


def _load_events(args: argparse.Namespace, path: Path, role: str) -> Loaded:
    import h5py

    from contrastx.events import read_events
    from contrastx.events.kinematics import invariant_mass

    ev = read_events(path)
    p = ev.particles
    n = len(ev)
    info: dict[str, Any] = {"kind": "events", "file": _fingerprint(path), "n_events": n}
    if args.m_column is not None:
        raise ValueError("--m-column applies to --features and --embedding; use --m for events")
    if args.m is not None:
        with h5py.File(path, "r") as h5:
            m, desc = _m_from_spec(args, path, n, h5, role)
        info.update(desc)
    else:
        m = invariant_mass(p).astype(np.float64)
        info["m"] = "invariant mass of all objects"
    x = p.reshape(n, -1).astype(np.float64)
    names = [f"{k}[{i}]" for i in range(p.shape[1]) for k in ("pT", "eta", "phi")]
    labels, signal = _binary_labels(ev.labels, tuple(ev.process_names), args, path)
    info["signal_processes"] = signal
    return Loaded(x, m, labels, names, info)


def _input_kind(args: argparse.Namespace) -> tuple[str, Path]:
    for kind in ("embedding", "events", "features"):
        if getattr(args, kind) is not None:
            return kind, getattr(args, kind)
    raise ValueError("give one input: --embedding, --events or --features")  # argparse does


# ----------------------------------------------------------------------- files
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _key(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _write_results_h5(path: Path, arrays: dict[str, Any], config: dict, summary: dict) -> None:
    import h5py

    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = RESULTS_FORMAT
        f.attrs["format_version"] = RESULTS_VERSION
        f.attrs["config"] = _dumps(config)
        # the summary can outgrow HDF5's 64 kB attribute limit: a string dataset
        f.create_dataset("summary_json", data=_dumps(summary))
        for key, value in arrays.items():
            if value is None:
                continue
            f.create_dataset(key, data=np.asarray(value))
    os.replace(tmp, path)


def read_results(out: str | os.PathLike) -> dict[str, Any]:
    """The stored summary (``cathode.json``) of a finished run in folder ``out``."""
    path = Path(out) / SUMMARY_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no finished contrastx-cathode results in {out}")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------- run
def _options(args: argparse.Namespace) -> Any:
    from contrastx.cathode import CathodeOptions
    from contrastx.options import from_arguments, from_mapping, read_toml

    base = None
    if args.config is not None:
        _require_file(args.config, "config file")
        table = read_toml(args.config)
        if "cathode" not in table:
            raise ValueError(f"{args.config}: no [cathode] table")
        unknown = sorted(set(table) - {"cathode"})
        if unknown:
            raise ValueError(f"{args.config}: unknown table(s) {unknown}; expected [cathode]")
        base = from_mapping(CathodeOptions, table["cathode"])
    opts = from_arguments(CathodeOptions, args, base)
    opts.regions()  # --sr and --sb must be set
    return opts


def _sr_rows(loaded: Loaded, regions: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    mask = regions.signal_mask(loaded.m)
    labels = None if loaded.labels is None else loaded.labels[mask]
    return loaded.x[mask], labels, loaded.m[mask]


def _labelled(labels: np.ndarray | None) -> bool:
    return labels is not None and (labels >= 0).all() and 0 < labels.sum() < labels.size


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume, or report) the CATHODE analysis described by parsed ``args``."""
    import torch

    from contrastx.cathode import (
        Cathode,
        ConditionalFlow,
        evaluate_classifier,
        idealized_template,
        supervised_classifier,
    )
    from contrastx.options import to_dict

    opts = _options(args)
    regions = opts.regions()
    kind, path = _input_kind(args)
    data = load_input(args, path, kind, "data")
    input_spec = {
        "kind": kind, "m": args.m, "m_column": args.m_column, "label_column": args.label_column,
        "signal": args.signal, **data.info,
    }  # fmt: skip
    extra_specs = {
        role: _fingerprint(_require_file(getattr(args, role), f"--{role} file"))
        for role in ("eval", "idealized", "supervised")
        if getattr(args, role) is not None
    }
    config = {
        "cathode": to_dict(opts, flatten=False),
        "input": input_spec,
        "extra_inputs": extra_specs,
        "sculpting_test": not args.no_sculpting_test,
    }
    key = _key(config)
    out: Path = args.out
    summary_path = out / SUMMARY_NAME
    if summary_path.is_file() and not args.overwrite:
        stored = json.loads(summary_path.read_text())
        if stored.get("key") == key and stored.get("complete"):
            print(f"{out}: finished results of this configuration; not recomputed")
            print_summary(stored)
            return stored
        raise FileExistsError(
            f"{out} holds results of a different configuration (or input); pass --overwrite "
            "to replace them or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    progress = False if (args.no_progress or args.quiet) else None
    t_start = time.perf_counter()

    # ------------------------------------------------------------- flow: reuse or train
    flow_key = _key(
        {
            "flow": to_dict(opts.flow),
            "regions": regions.to_dict(),
            "seed": opts.seed,
            "input": input_spec,
        }
    )
    flow_path, flow_key_path = out / FLOW_NAME, out / FLOW_KEY_NAME
    flow = None
    if not args.retrain_flow and flow_path.is_file() and flow_key_path.is_file():
        if json.loads(flow_key_path.read_text()).get("key") == flow_key:
            flow = ConditionalFlow.load(flow_path, device=opts.device)
            print(f"reusing the flow saved in {flow_path}")
        else:
            print(f"{flow_path} belongs to another flow configuration: training a new flow")

    def save_flow(fitted: Any) -> None:
        fitted.save(flow_path)
        _atomic_write_text(flow_key_path, _dumps({"key": flow_key, "config": config}))

    cathode = Cathode(opts).fit(
        data.x, data.m, flow=flow, progress=progress, on_flow_fitted=save_flow
    )
    flow = cathode.flow_
    x_sr, y_sr, _ = _sr_rows(data, regions)

    summary: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "key": key,
        "complete": False,
        "config": config,
        "counts": cathode.counts_,
        "template": {
            "n_events": int(cathode.x_template_.shape[0]),
            "weight_sum": float(cathode.w_template_.sum()),
            "oversampling": opts.template.oversampling,
        },
        "flow": {
            "reused": not cathode.fit_info_["flow_trained"],
            "fit_info": getattr(flow, "fit_info_", {}),
            "best_epochs": [list(e) for e in getattr(flow, "best_epochs_", [])],
            "history": getattr(flow, "history_", []),
        },
        "classifier": {
            "best_iterations": cathode.classifier_.best_iterations_,
            "trees_grown": cathode.classifier_.n_iter_,
            "n_ensembles": opts.classifier.n_ensembles,
        },
        "timing": {
            k: cathode.fit_info_.get(k)
            for k in ("flow_seconds", "template_seconds", "classifier_seconds")
        },
        "torch": torch.__version__,
    }
    arrays: dict[str, Any] = {
        "signal_region/m": cathode.m_signal_region_,
        "signal_region/scores": cathode.anomaly_scores_,
        "signal_region/ensemble_scores": cathode.ensemble_scores_,
        "signal_region/labels": y_sr,
        "sidebands/m": cathode.m_sidebands_,
        "sidebands/scores": cathode.sideband_scores_,
        "template/x": cathode.x_template_,
        "template/m": cathode.m_template_,
        "template/weights": cathode.w_template_,
        "template/scores": cathode.classifier_.template_scores_,
    }
    sets: dict[str, Any] = {}
    metric_kw = {
        "min_background_events": opts.min_background_events,
        "background_efficiencies": opts.background_efficiencies,
    }

    # ------------------------------------------------------------- evaluation events
    evaluation: dict[str, Any] = {}
    x_ev = y_ev = None
    if args.eval is not None:
        ev = load_input(args, args.eval, kind, "eval")
        x_ev, y_ev, _ = _sr_rows(ev, regions)
        if not _labelled(y_ev):
            raise ValueError(
                f"--eval {args.eval}: its {len(x_ev)} signal-region rows need truth labels "
                "with both signal and background"
            )
        scores = cathode.predict(x_ev)
        ens = cathode.classifier_.predict_ensembles(x_ev)
        evaluation["cathode"] = evaluate_classifier(
            cathode.classifier_, None, y_ev, scores=scores, ensemble_scores=ens, **metric_kw
        )
        sets["CATHODE"] = (y_ev, scores, ens)
        arrays.update({"eval/labels": y_ev, "eval/scores": scores, "eval/ensemble_scores": ens})
    elif _labelled(y_sr):
        evaluation["cathode"] = cathode.score_signal_region(y_sr)
        sets["CATHODE"] = (y_sr, cathode.anomaly_scores_, cathode.ensemble_scores_)
    summary["evaluation_events"] = (
        f"--eval signal-region rows ({len(x_ev)})"
        if x_ev is not None
        else ("signal-region data, out of fold" if evaluation else None)
    )

    # ------------------------------------------------------------- baselines
    if args.idealized is not None:
        ideal_in = load_input(args, args.idealized, kind, "idealized")
        x_i, y_i, _ = _sr_rows(ideal_in, regions)
        if y_i is not None:
            x_i = x_i[y_i == 0]
        if len(x_i) == 0:
            raise ValueError(f"--idealized {args.idealized}: no background rows in the SR")
        ideal = Cathode(opts).fit(
            data.x, data.m, template=idealized_template(x_i), progress=progress
        )
        summary["idealized"] = {"n_template": len(x_i)}
        ev_scores = _baseline_scores(ideal.classifier_, x_ev, y_ev, ideal, y_sr)
        if ev_scores is not None:
            y_use, s, ens = ev_scores
            summary["idealized"]["metrics"] = evaluate_classifier(
                ideal.classifier_, None, y_use, scores=s, ensemble_scores=ens, **metric_kw
            )
            sets["idealized"] = (y_use, s, ens)
            arrays.update({"idealized/scores": s, "idealized/ensemble_scores": ens})
    if args.supervised is not None:
        sup_in = load_input(args, args.supervised, kind, "supervised")
        x_s, y_s, _ = _sr_rows(sup_in, regions)
        if not _labelled(y_s):
            raise ValueError(
                f"--supervised {args.supervised}: its signal-region rows need truth labels "
                "with both signal and background"
            )
        sup = supervised_classifier(
            x_s[y_s == 1], x_s[y_s == 0], options=opts.classifier, seed=opts.seed
        )
        summary["supervised"] = {"n_signal": int(y_s.sum()), "n_background": int((y_s == 0).sum())}
        x_target, y_target = (x_ev, y_ev) if x_ev is not None else (x_sr, y_sr)
        if _labelled(y_target):
            s, ens = sup.predict(x_target), sup.predict_ensembles(x_target)
            summary["supervised"]["metrics"] = evaluate_classifier(
                sup, None, y_target, scores=s, ensemble_scores=ens, **metric_kw
            )
            sets["supervised"] = (y_target, s, ens)
            arrays.update({"supervised/scores": s, "supervised/ensemble_scores": ens})
    summary["evaluation"] = evaluation
    if _labelled(y_sr):  # S / sqrt(B) of the SR data before and after the cuts
        from contrastx.cathode import post_selection_significance

        found = {
            "CATHODE": evaluation.get("cathode"),
            "idealized": summary.get("idealized", {}).get("metrics"),
            "supervised": summary.get("supervised", {}).get("metrics"),
        }
        for name, metrics in found.items():
            if metrics is not None and name in sets:
                y_use, s_use, _ = sets[name]
                metrics["post_selection_significance"] = post_selection_significance(
                    y_use, s_use, opts.background_efficiencies,
                    n_signal=float(y_sr.sum()), n_background=float((y_sr == 0).sum()),
                )  # fmt: skip

    # ------------------------------------------------------------- sculpting checks
    sculpt = None
    if not args.no_sculpting_test and y_sr is not None and (y_sr == 0).sum() >= 2:
        sculpt = cathode.sculpting_test(x_sr[y_sr == 0])
        summary["sculpting_test"] = sculpt.as_dict()
        arrays.update(
            {
                "sculpting/scores_background": sculpt.scores_background,
                "sculpting/scores_template": sculpt.scores_template,
                "sculpting/fpr": sculpt.roc.fpr,
                "sculpting/tpr": sculpt.roc.tpr,
            }
        )
    y_sb = None if data.labels is None else data.labels[cathode.sideband_mask_]
    truth = y_sr is not None and y_sb is not None and (y_sr >= 0).all() and (y_sb >= 0).all()
    if truth:  # the cut's effect on the true background: sculpting
        checks = cathode.mass_sculpting(y_sr == 0, y_sb == 0)
        summary["mass_sculpting_events"] = "true background (truth labels)"
    else:  # real data: a signal would show as a bump
        checks = cathode.mass_sculpting()
        summary["mass_sculpting_events"] = "all data"
    summary["mass_sculpting"] = [
        {
            "efficiency": c["efficiency"],
            "threshold": c["threshold"],
            "signal_region": c["signal_region"].as_dict(),
            "sidebands": c["sidebands"].as_dict(),
            "sculpted": bool(c["signal_region"].sculpted() or c["sidebands"].sculpted()),
        }
        for c in checks
    ]

    # ------------------------------------------------------------- figures and files
    if not args.no_figures:
        summary["figures"] = _figures(out, cathode, data, sets, sculpt, checks, opts)
    summary["timing"]["total_seconds"] = time.perf_counter() - t_start
    summary["complete"] = True
    _write_results_h5(out / RESULTS_NAME, arrays, config, summary)
    _atomic_write_text(summary_path, _dumps(summary))
    print_summary(summary)
    print(f"results: {summary_path}  {out / RESULTS_NAME}")
    return summary


def _baseline_scores(
    classifier: Any,
    x_ev: np.ndarray | None,
    y_ev: np.ndarray | None,
    fitted: Any,
    y_sr: np.ndarray | None,
) -> tuple | None:
    """(labels, scores, ensemble scores) of a baseline on the evaluation events."""
    if x_ev is not None:
        return y_ev, classifier.predict(x_ev), classifier.predict_ensembles(x_ev)
    if _labelled(y_sr):
        return y_sr, fitted.anomaly_scores_, fitted.ensemble_scores_
    return None


def _figures(
    out: Path,
    cathode: Any,
    data: Loaded,
    sets: dict[str, tuple],
    sculpt: Any,
    checks: list,
    opts: Any,
) -> dict[str, str]:
    from contrastx.plots import save_figure
    from contrastx.plots.cathode import (
        ScoreSet,
        plot_mass_spectra,
        plot_projections,
        plot_roc_curves,
        plot_sculpting_roc,
        plot_sic_curves,
    )

    figs: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        figs[name] = str(save_figure(fig, out / name, ("png",))[0])

    if sets:
        score_sets = {k: ScoreSet(*v) for k, v in sets.items()}
        save(plot_sic_curves(score_sets, min_background_events=opts.min_background_events), "sic")
        save(plot_roc_curves(score_sets), "roc")
    if sculpt is not None:
        save(plot_sculpting_roc(sculpt), "sculpting_roc")
    save(plot_mass_spectra(checks), "mass_spectra")
    x_sr, y_sr, _ = _sr_rows(data, cathode.regions_)
    n_show = min(16, x_sr.shape[1])
    x_sig = None if y_sr is None else x_sr[y_sr == 1][:, :n_show]
    x_dat = x_sr if y_sr is None else x_sr[y_sr != 1]
    save(
        plot_projections(
            x_dat[:, :n_show], cathode.x_template_[:, :n_show], w_template=cathode.w_template_,
            x_signal=x_sig, feature_names=data.feature_names[:n_show],
            data_label="SR data" if y_sr is None else "SR data (background)",
            title="signal region: data vs template",
        ),
        "projections",
    )  # fmt: skip
    return figs


def print_summary(summary: dict[str, Any]) -> None:
    """Print the headline numbers of a results summary."""
    counts = summary.get("counts", {})
    print("events: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    t = summary.get("template", {})
    flow = summary.get("flow", {})
    print(
        f"template: {t.get('n_events')} events (weights sum {t.get('weight_sum', 0):.1f}); "
        f"flow {'reused' if flow.get('reused') else 'trained'}"
    )

    def line(name: str, metrics: dict[str, Any]) -> None:
        ms = metrics["max_sic"]
        ens = metrics.get("ensembles", {})
        spread = (
            f" (ensembles {ens['max_sic_mean']:.2f} ± {ens['max_sic_std']:.2f}, n = {ens['n']})"
            if ens
            else ""
        )
        print(
            f"{name}: max SIC {ms['value']:.2f} at eps_S {ms['signal_efficiency']:.3f}, "
            f"eps_B {ms['background_efficiency']:.4f}{spread}; "
            f"AUC {metrics['auc']:.4f} ± {metrics['auc_error']:.4f}"
        )

    if summary.get("evaluation_events"):
        print(f"evaluation: {summary['evaluation_events']}")
    if "cathode" in summary.get("evaluation", {}):
        line("CATHODE", summary["evaluation"]["cathode"])
    for name in ("idealized", "supervised"):
        if "metrics" in summary.get(name, {}):
            line(name, summary[name]["metrics"])
    st = summary.get("sculpting_test")
    if st:
        print(
            f"sculpting test (template vs true SR background): AUC {st['auc']:.4f} ± "
            f"{st['auc_error']:.4f} ({st['pull']:+.1f} sigma from 0.5)"
        )
    events = summary.get("mass_sculpting_events", "")
    flag = " -- SCULPTED" if events.startswith("true background") else " -- bump or shape change"
    for c in summary.get("mass_sculpting", []):
        print(
            f"m spectrum of {events} after the cut keeping {c['efficiency']:.0%} of the SR: "
            f"SR p = {c['signal_region']['p_value']:.3g}, SB p = {c['sidebands']['p_value']:.3g}"
            f"{flag if c['sculpted'] else ''}"
        )
    timing = summary.get("timing", {})
    if timing:
        print(
            "time: "
            + ", ".join(
                f"{k.replace('_seconds', '')} {v:.1f} s" for k, v in timing.items() if v is not None
            )
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``contrastx-cathode``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        run(args)
    except (OptionsError, ValueError, TypeError, FileNotFoundError, FileExistsError, OSError,
            RuntimeError) as err:  # fmt: skip
        print(f"contrastx-cathode: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ncontrastx-cathode: interrupted; a trained flow is saved in --out and reused "
            "when the same command is run again",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
