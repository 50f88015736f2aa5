"""How the CWoLa classifier's defaults were chosen without looking at the reported events.

On the split of ``bench/cathode_lhco.py`` (one CATHODE flow and template, default
settings otherwise), the evaluation events are divided into two random halves (seeded).
Each classifier setting in the scan is trained once; its max SIC is computed on half A
(used to choose) and on half B (reported). The defaults of ``ClassifierOptions`` are the
best setting on half A; half B gives their honest value. Half sets allow fewer working
points (>= 100 background events of ~6,000), so their max SIC is lower than on the full
set.

Usage::

    python bench/cathode_lhco_tuning.py --out cathode-tuning.json
    python bench/cathode_lhco_tuning.py --flow flow.pt   # reuse a saved ConditionalFlow
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from cathode_lhco import DEFAULT_DATA, OUTER, SR, load, split
from contrastx.cathode import Cathode, CathodeOptions, ConditionalFlow
from contrastx.cathode.metrics import max_sic
from contrastx.options import replace_flat

# (min_leaf_fraction, max_iter) pairs scanned.
SETTINGS = [(0.005, 100), (0.005, 200), (0.01, 100), (0.01, 200), (0.02, 100), (0.02, 200),
            (0.04, 100)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="lhco-rd-sr folder")
    p.add_argument("--out", type=Path, default=Path("cathode-tuning.json"), help="result JSON")
    p.add_argument("--flow", type=Path, help="a saved ConditionalFlow to reuse (else trained)")
    p.add_argument("--seed", type=int, default=0, help="master seed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    s = split(load(args.data_dir))
    opts = CathodeOptions(
        signal_region=SR, sidebands=(OUTER[0], SR[0], SR[1], OUTER[1]), seed=args.seed
    )
    flow = ConditionalFlow.load(args.flow) if args.flow else None
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 0xA11]))
    half = rng.integers(0, 2, size=s["y_eval"].size)
    rows: list[dict[str, Any]] = []
    for leaf, trees in SETTINGS:
        t = time.perf_counter()
        c = Cathode(replace_flat(opts, min_leaf_fraction=leaf, max_iter=trees))
        c.fit(s["x"], s["m"], flow=flow, progress=False)
        flow = c.flow_  # trained once, then reused by every setting
        score = c.predict(s["x_eval"])
        ensembles = c.classifier_.predict_ensembles(s["x_eval"])
        row: dict[str, Any] = {"min_leaf_fraction": leaf, "max_iter": trees}
        for h, name in ((0, "A"), (1, "B")):
            sel = half == h
            y = s["y_eval"][sel]
            row[name] = max_sic(y, score[sel], min_background_events=100).value
            e = [max_sic(y, es[sel], min_background_events=100).value for es in ensembles]
            row[f"{name}_ensembles"] = {"mean": float(np.mean(e)), "std": float(np.std(e, ddof=1))}
        row["seconds"] = time.perf_counter() - t
        rows.append(row)
        print(
            f"leaves {leaf:.3f} x {trees} trees: half A {row['A']:.2f}, half B {row['B']:.2f}",
            flush=True,
        )
    best = max(rows, key=lambda r: r["A"])
    print(
        f"best on half A: leaves {best['min_leaf_fraction']} x {best['max_iter']} trees; "
        f"its half-B max SIC {best['B']:.2f} (ensembles {best['B_ensembles']['mean']:.2f} "
        f"+- {best['B_ensembles']['std']:.2f})"
    )
    result = {"settings": rows, "best_on_half_A": best, "load_average": os.getloadavg()}
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
