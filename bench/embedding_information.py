"""How much of each signal an embedding keeps: a supervised signal-vs-background AUC.

NPLM is signal-agnostic, so it can only find what the embedding keeps. This script asks
the supervised question on the same events: for every embedding of a ``contrastx-pipeline``
study (every training of the trained ones) a gradient-boosted classifier
(scikit-learn ``HistGradientBoostingClassifier``) separates the NPLM background from one
signal in the embedding, trained on half of the events and evaluated on the other half.
Its ROC AUC is (close to) the best any test on that embedding can do; an embedding whose
AUC is lower than a baseline's has thrown away information that separates the signal.

It reads the study's cached stages (the embeddings are trained first if they are not):

    python bench/embedding_information.py --preset pythia \\
        --set events.background_file=pythia.h5 --set run.out_dir=study

and prints, per embedding and signal, the mean AUC over trainings ± their sample standard
deviation (ddof = 1; trained embeddings) and the statistical error of one AUC (the
Hanley-McNeil formula), and writes the numbers to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def auc_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley-McNeil standard error of a ROC AUC from ``n_pos`` and ``n_neg`` events."""
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    return float(np.sqrt(max(var, 0.0)))


def signal_auc(
    z_bkg: np.ndarray, z_sig: np.ndarray, *, n_max: int, seed: int
) -> tuple[float, float]:
    """Held-out AUC of a boosted classifier for signal vs background in an embedding."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = min(n_max, len(z_bkg), len(z_sig))
    b = z_bkg[rng.choice(len(z_bkg), n, replace=False)]
    s = z_sig[rng.choice(len(z_sig), n, replace=False)]
    x = np.concatenate([b, s]).astype(np.float64)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    order = rng.permutation(2 * n)
    x, y = x[order], y[order]
    clf = HistGradientBoostingClassifier(max_iter=200, early_stopping=True, random_state=seed)
    clf.fit(x[:n], y[:n])  # first half to train, second half to evaluate
    auc = float(roc_auc_score(y[n:], clf.predict_proba(x[n:])[:, 1]))
    n_pos = int(y[n:].sum())
    return auc, auc_error(auc, n_pos, n - n_pos)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=None, help="study TOML file")
    p.add_argument("--preset", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--events", type=int, default=5000, help="events per class (each half)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON output")
    args = p.parse_args(argv)

    from contrastx.embed import read_embedding
    from contrastx.pipeline import Pipeline, load_config

    cfg = load_config(args.config, preset=args.preset, overrides=args.overrides)
    pipe = Pipeline(cfg, log=lambda s: None)
    pipe.run(until="embed")
    signals = list(cfg.events.signals)
    rows: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, dict[str, float]] = {}
    for spec in cfg.embeddings:
        stages = [
            r
            for k, r in pipe.results.items()
            if k == f"embed/{spec.name}" or k.startswith(f"embed/{spec.name}/")
        ]
        rows[spec.name] = {s: [] for s in signals}
        for stage in stages:
            emb = read_embedding(stage.path("embedding"))
            # The NPLM background pool of the toys stage: every event of no studied signal.
            is_sig = np.isin(emb.labels, [emb.process_names.index(s) for s in signals])
            bkg = emb.embedding[~is_sig]
            for s in signals:
                auc, err = signal_auc(bkg, emb.select(s), n_max=args.events, seed=args.seed)
                rows[spec.name][s].append(auc)
                errors.setdefault(spec.name, {})[s] = err
    print(
        "Held-out signal-vs-background ROC AUC of a boosted classifier in each embedding: "
        "mean over trainings ± statistical error of one AUC ± training spread (ddof = 1)."
    )
    print("| embedding | D | trainings | " + " | ".join(signals) + " |")
    print("|---|---|---|" + "---|" * len(signals))
    for spec in cfg.embeddings:
        cells = []
        for s in signals:
            v = np.array(rows[spec.name][s])
            spread = f" ± {v.std(ddof=1):.3f}" if v.size > 1 else ""
            cells.append(f"{v.mean():.3f} ± {errors[spec.name][s]:.3f}{spread}")
        n = len(rows[spec.name][signals[0]])
        print(f"| {spec.name} | {spec.dimension} | {n} | " + " | ".join(cells) + " |")
    if args.out is not None:
        args.out.write_text(json.dumps({"auc": rows, "auc_error": errors}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
