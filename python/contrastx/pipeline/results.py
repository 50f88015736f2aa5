"""Results of a study: statistics from the toys, the Table VI-like table, JSON, figures.

For every embedding the null toys give the :math:`\\chi^2` dof (their mean, the paper's
notebook; and the KS-optimal dof for reference); for every signal and injection
fraction the signal toys give the median :math:`Z` (bootstrap error and 68 % band) and
the power at 1, 2, 3 :math:`\\sigma` with Clopper-Pearson intervals, from the
:math:`\\chi^2` and from the empirical null (:mod:`contrastx.nplm.statistics`). The
table uses ``results.z_method`` at ``results.table_fraction``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import StudyConfig

logger = logging.getLogger(__name__)

__all__ = ["build_results", "markdown_table", "toy_statistics"]


def toy_statistics(t0: np.ndarray, t1: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Median Z and power (chi^2 with dof = null mean, and empirical) of one signal run."""
    from contrastx.nplm import statistics as st

    dof = st.fit_chi2_dof(t0, "mean").dof
    return {
        "n_signal_toys": int(t1.size),
        "t_signal_median": float(np.median(t1)),
        "median_z": {
            "chi2": st.median_z(t1, t0, method="chi2", dof=dof, seed=seed).as_dict(),
            "empirical": st.median_z(t1, t0, method="empirical", seed=seed).as_dict(),
        },
        "power": {
            "chi2": [p.as_dict() for p in st.power(t1, t0, method="chi2", dof=dof)],
            "empirical": [p.as_dict() for p in st.power(t1, t0, method="empirical")],
        },
    }


def _null_statistics(t0: np.ndarray) -> dict[str, Any]:
    from contrastx.nplm import statistics as st

    fits = {m: st.fit_chi2_dof(t0, m).as_dict() for m in ("mean", "ks")}
    return {
        "n_null_toys": int(t0.size),
        "t_mean": float(t0.mean()),
        "t_std": float(t0.std(ddof=1)),
        "chi2": fits,
    }


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt_z(mz: dict[str, Any]) -> str:
    err = mz["z_err"]
    return f"{mz['z']:.2f} ± {err:.2f}" if np.isfinite(err) else f"{mz['z']:.2f}"


def build_results(
    folder: Path,
    config: StudyConfig,
    events: Any,
    embeds: dict[str, Any],
    toys: dict[str, Any],
    stage_times: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write ``results.json``, ``table.md``, ``table.csv``, ``figures/`` and ``report.html``.

    Returns the stage's ``(outputs, info)``.
    """
    rc, nc = config.results, config.nplm
    signals = list(config.events.signals)
    logger.info(
        "[results] statistics of %d embeddings x %d signals x %d fractions",
        len(config.embeddings),
        len(signals),
        len(nc.fractions),
    )
    per_emb: dict[str, Any] = {}
    for spec in config.embeddings:
        tr = toys[spec.name]
        t0 = _read_t(tr.path("null"), "null")
        entry: dict[str, Any] = {
            "kind": spec.kind,
            "family": spec.family,
            "dimension": spec.dimension,
            "settings": spec.as_dict(),
            "null": _null_statistics(t0),
            "linear_eval": embeds[spec.name].info.get("linear_eval"),
            "train_seconds": embeds[spec.name].info.get("train_seconds"),
            "toy_runs": tr.info.get("runs"),
            "signals": {},
        }
        for s in signals:
            entry["signals"][s] = {}
            for f in nc.fractions:
                t1 = _read_t(tr.path(f"{s}@{f:g}"), "signal")
                stats_ = toy_statistics(t0, t1, seed=config.run.seed)
                stats_["fraction"] = f
                stats_["n_sig_expected"] = f * nc.n_bkg
                entry["signals"][s][f"{f:g}"] = stats_
        per_emb[spec.name] = entry

    frac_key = f"{rc.table_fraction:g}"
    method = rc.z_method
    header = ["embedding", "D", *signals]
    rows, csv_rows = [], []
    for name, e in per_emb.items():
        row = [name, str(e["dimension"])]
        for s in signals:
            mz = e["signals"][s][frac_key]["median_z"][method]
            row.append(_fmt_z(mz))
            csv_rows.append(
                {
                    "embedding": name,
                    "dimension": e["dimension"],
                    "signal": s,
                    "fraction": rc.table_fraction,
                    "z_method": method,
                    "median_z": mz["z"],
                    "z_err": mz["z_err"],
                    "z_lo": mz["z_lo"],
                    "z_hi": mz["z_hi"],
                    "power_3sigma": e["signals"][s][frac_key]["power"][method][2]["power"],
                }
            )
        rows.append(row)
    caption = (
        f"Median Z ({'χ² null, dof = null mean' if method == 'chi2' else 'empirical null'}) "
        f"± bootstrap error, {rc.table_fraction * 100:g} % signal injection, "
        f"N_R = {nc.n_ref:,}, N(B) = {nc.n_bkg:,.0f}, M = {nc.M}, "
        f"{nc.n_toys} null / {nc.signal_toys} signal toys."
    )
    table_md = f"{caption}\n\n" + markdown_table(header, rows)
    (folder / "table.md").write_text(table_md)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(csv_rows[0]))
    writer.writeheader()
    writer.writerows(csv_rows)
    (folder / "table.csv").write_text(buf.getvalue())

    logger.info("[results] figures")
    figures = _figures(folder / "figures", config, per_emb, embeds, toys)
    summary = _effect_summary(per_emb, signals, frac_key, method)
    result = {
        "format": "contrastx-study-results",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": config.to_dict(),
        "events": events.info,
        "embeddings": per_emb,
        "table": {"fraction": rc.table_fraction, "z_method": method, "rows": csv_rows},
        "effect": summary,
        "figures": figures,
        "stage_times": stage_times,
    }
    (folder / "results.json").write_text(json.dumps(result, indent=2, default=_json_default))
    from .report import write_report

    write_report(folder / "report.html", result, table_md)
    outputs = {
        "results": "results.json",
        "table_md": "table.md",
        "table_csv": "table.csv",
        "report": "report.html",
    }
    return outputs, {"figures": figures, "effect": summary}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _read_t(path: Path, group: str) -> np.ndarray:
    """The ``t`` column of the ``"null"`` or ``"signal"`` group of a toy results file."""
    from contrastx.nplm import read_toy_results

    return np.asarray(read_toy_results(path)[group]["t"], dtype=np.float64)


def _effect_summary(
    per_emb: dict[str, Any], signals: list[str], frac_key: str, method: str
) -> dict[str, Any]:
    """Which trained embeddings beat the 57-D raw input, per signal (the paper's point)."""
    raw = [n for n, e in per_emb.items() if e["kind"] == "raw"]
    out: dict[str, Any] = {"fraction": frac_key, "z_method": method, "beats_raw": {}}
    if not raw:
        return out
    zr = {s: per_emb[raw[0]]["signals"][s][frac_key]["median_z"][method]["z"] for s in signals}
    for n, e in per_emb.items():
        if e["kind"] != "contrastive":
            continue
        wins = []
        for s in signals:
            z = e["signals"][s][frac_key]["median_z"][method]["z"]
            if z > zr[s]:
                wins.append({"signal": s, "z": z, "z_raw": zr[s]})
        out["beats_raw"][n] = wins
    return out


def _figures(
    fig_dir: Path,
    config: StudyConfig,
    per_emb: dict[str, Any],
    embeds: dict[str, Any],
    toys: dict[str, Any],
) -> dict[str, str]:
    """All figures as PNG (and PDF for the dimension plots); name -> relative path."""
    from contrastx.embed import read_embedding
    from contrastx.plots import save_figure
    from contrastx.plots.latent import plot_latent_by_process
    from contrastx.plots.nplm import plot_toy_distributions
    from contrastx.plots.study import (
        StudyPoint,
        plot_linear_eval_vs_dimension,
        plot_median_z_vs_dimension,
        plot_power_vs_dimension,
    )

    rc, nc = config.results, config.nplm
    signals = list(config.events.signals)
    method = rc.z_method
    fig_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}

    def save(fig: Any, stem: str, key: str) -> None:
        paths = save_figure(fig, fig_dir / stem, ("png",))
        out[key] = f"figures/{paths[0].name}"

    for f in nc.fractions:
        fk = f"{f:g}"
        zpts, ppts = [], []
        for name, e in per_emb.items():
            for s in signals:
                r = e["signals"][s][fk]
                mz = r["median_z"][method]
                err = mz["z_err"] if np.isfinite(mz["z_err"]) else 0.0
                zpts.append(StudyPoint(e["family"], e["dimension"], mz["z"], err, err, s, name))
                p3 = r["power"][method][2]
                pw = p3["power"] if np.isfinite(p3["power"]) else 0.0
                lo = pw - p3["lo"] if np.isfinite(p3["lo"]) else 0.0
                hi = p3["hi"] - pw if np.isfinite(p3["hi"]) else 0.0
                ppts.append(StudyPoint(e["family"], e["dimension"], pw, lo, hi, s, name))
        pct = f"{f * 100:g} %"
        save(
            plot_median_z_vs_dimension(zpts, title=f"Median Z vs D, {pct} injection (Fig. III)"),
            f"median_z_vs_dim_{fk}",
            f"median_z_{fk}",
        )
        save(
            plot_power_vs_dimension(ppts, title=f"Power at 3σ vs D, {pct} injection (Fig. IX/X)"),
            f"power3_vs_dim_{fk}",
            f"power3_{fk}",
        )
    lpts = []
    for name, e in per_emb.items():
        le = e.get("linear_eval") or {}
        if "mean" in le:
            lpts.append(StudyPoint(e["family"], e["dimension"], le["mean"], le["sem"], le["sem"],
                                   "", name))  # fmt: skip
    if lpts:
        save(
            plot_linear_eval_vs_dimension(lpts, title="Linear evaluation accuracy (Fig. II)"),
            "linear_eval_vs_dim",
            "linear_eval",
        )
    # Fig. IV: t distributions of every embedding for each signal at the table fraction.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fk = f"{rc.table_fraction:g}"
    names = list(per_emb)
    ncols = 2 if len(names) > 1 else 1
    nrows = -(-len(names) // ncols)
    for s in signals:
        fig = Figure(figsize=(6.5 * ncols, 4.6 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        for i, name in enumerate(names):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            t0 = _read_t(toys[name].path("null"), "null")
            t1 = _read_t(toys[name].path(f"{s}@{fk}"), "signal")
            plot_toy_distributions(
                t0, t1, dof=float(per_emb[name]["null"]["chi2"]["mean"]["dof"]), ax=ax,
                title=f"{name} (D = {per_emb[name]['dimension']})", signal_label=f"{s} toys",
            )  # fmt: skip
        fig.suptitle(f"NPLM t, {s} at {rc.table_fraction * 100:g} % (Fig. IV)")
        save(fig, f"toys_{s}_{fk}", f"toys_{s}")
    # Latent map coloured by process.
    lat = rc.latent_embedding or next(
        (s.name for s in config.embeddings if s.kind == "contrastive"), config.embeddings[0].name
    )
    emb = read_embedding(embeds[lat].path("embedding"))
    rng = np.random.default_rng(np.random.SeedSequence([config.run.seed, 9]))
    pick = []
    for k in np.unique(emb.labels):
        idx = np.flatnonzero(emb.labels == k)
        pick.append(rng.choice(idx, min(idx.size, rc.latent_events), replace=False))
    idx = np.sort(np.concatenate(pick))
    logger.info("[results] latent-space map of %s (%d events, %s)", lat, idx.size, rc.latent_method)
    fig = plot_latent_by_process(
        emb.embedding[idx], emb.labels[idx], emb.process_names, method=rc.latent_method,
        seed=config.run.seed, title=f"Latent space of {lat}",
    )  # fmt: skip
    save(fig, f"latent_{lat}", "latent_map")
    out["latent_method"] = fig.contrastx_method
    out["latent_embedding"] = lat
    return out
