r"""Results of a signal-aware study: SIC at working points, the injection for a target
significance, sculpting, figures and the report.

How the numbers are made (the second paper's procedure, Sec. III.2 and IV):

* For one signal, configuration, injection and pseudo-data instance, the BDTs of every
  encoder (``cathode.n_models`` k-fold BDTs per encoder and its flows) score the
  instance's evaluation events. They are grouped at random (seeded) into ensembles of
  ``cathode.ensemble_size`` whose scores are averaged: the paper's 5 encoders x 4 BDTs
  give 10 ensembles of 2.
* Each ensemble gives the SIC :math:`\epsilon_S / \sqrt{\epsilon_B}` at every working
  point (a background efficiency in the signal region, with the evaluation background
  weighted to its expected yields). The instance's value is the mean over ensembles.
* A point's value is the mean over instances; ``instance_std`` is the spread across
  instances (pseudo-data statistics), ``ensemble_std`` the mean spread across ensembles
  (training of encoders, flows and BDTs). Comparisons between configurations use the
  paired per-instance differences.
* A working point is *resolved* only if the evaluation background keeps at least
  ``results.min_background_events`` (effective) events; elsewhere the value is replaced
  by an upper bound: :math:`\epsilon_S` can only fall as the cut tightens, so
  :math:`SIC(\epsilon) \le \epsilon_S(\epsilon_{min}) / \sqrt{\epsilon}` with
  :math:`\epsilon_{min}` the tightest resolved efficiency.
* The significance after the selection is :math:`SIC \times S/\sqrt{B}`; the injection
  needed for ``results.significance`` (Fig. 7) is bracketed by the scanned injections
  around the first one where the mean reaches it ("not reached" above the largest), at
  the tightest working point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from contrastx.stagecache import StageResult

__all__ = [
    "ensemble_sic",
    "injection_for_significance",
    "results_stage",
    "summarise_points",
]

_ENSEMBLE_TAG = 0xE75


def _effective_count(w: np.ndarray) -> float:
    """Kish effective number of events of weights ``w``."""
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def ensemble_sic(
    scores_background: np.ndarray,
    scores_signal: np.ndarray,
    weights_background: np.ndarray,
    working_points: Sequence[float],
    *,
    ensemble_size: int,
    seed: int,
    min_background_events: float,
) -> dict[str, np.ndarray]:
    """SIC of every ensemble at every working point, with resolution bounds.

    Parameters
    ----------
    scores_background, scores_signal : ndarray, shape (n_models, n_b) and (n_models, n_s)
        Every model's score of the evaluation background and signal events.
    weights_background : ndarray, shape (n_b,)
    working_points : sequence of float
        Background efficiencies.
    ensemble_size : int
        Models averaged per ensemble (models grouped at random, ``seed``).
    min_background_events : float
        Effective background events a working point must keep to be resolved.

    Returns
    -------
    dict
        ``sic`` (n_ensembles, n_wp), ``resolved`` (n_wp,) bool, ``bound`` (n_ensembles,
        n_wp): the upper bound where not resolved (NaN where resolved).
    """
    from contrastx.cathode.metrics import significance_improvement

    sb, ss = np.asarray(scores_background), np.asarray(scores_signal)
    if sb.ndim != 2 or ss.ndim != 2 or sb.shape[0] != ss.shape[0]:
        raise ValueError(
            f"scores must be (n_models, n) with equal n_models; got {sb.shape}, {ss.shape}"
        )
    n_models = sb.shape[0]
    if n_models < ensemble_size:
        raise ValueError(f"{n_models} models cannot make an ensemble of {ensemble_size}")
    order = np.random.default_rng(seed).permutation(n_models)
    n_ens = n_models // ensemble_size
    wp = np.asarray(working_points, dtype=np.float64)
    n_eff = _effective_count(np.asarray(weights_background, dtype=np.float64))
    eps_min = min_background_events / n_eff if n_eff > 0 else np.inf
    resolved = wp >= eps_min
    y = np.r_[np.zeros(sb.shape[1]), np.ones(ss.shape[1])]
    w = np.r_[weights_background, np.full(ss.shape[1], 1.0)]
    sic = np.empty((n_ens, wp.size))
    bound = np.full((n_ens, wp.size), np.nan)
    for e in range(n_ens):
        members = order[e * ensemble_size : (e + 1) * ensemble_size]
        s = np.r_[sb[members].mean(axis=0), ss[members].mean(axis=0)]
        sic[e] = significance_improvement(y, s, wp, sample_weight=w)
        if not resolved.all() and eps_min <= 1.0:
            tpr_min = significance_improvement(y, s, [eps_min], sample_weight=w)[0] * math.sqrt(
                eps_min
            )
            bound[e, ~resolved] = tpr_min / np.sqrt(wp[~resolved])
    return {"sic": sic, "resolved": resolved, "bound": bound}


def summarise_points(per_instance: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """Mean, instance spread and ensemble spread of one point over its instances.

    ``per_instance`` holds :func:`ensemble_sic` of every instance.
    """
    inst_mean = np.array([p["sic"].mean(axis=0) for p in per_instance])  # (n_inst, n_wp)
    n_wp = inst_mean.shape[1]
    nan = np.full(n_wp, np.nan)
    # A spread needs two values: NaN (printed "n/a") with one instance or one ensemble.
    ens_std = np.array(
        [p["sic"].std(axis=0, ddof=1) if p["sic"].shape[0] > 1 else nan for p in per_instance]
    )
    bounds = np.concatenate([p["bound"] for p in per_instance])  # (all ensembles, n_wp)
    finite = np.isfinite(bounds)
    bound = np.where(finite, bounds, -np.inf).max(axis=0)
    n = inst_mean.shape[0]
    return {
        "mean": inst_mean.mean(axis=0),
        "instance_std": inst_mean.std(axis=0, ddof=1) if n > 1 else nan,
        "ensemble_std": (np.nanmean(ens_std, axis=0) if np.isfinite(ens_std).any() else nan),
        "per_instance": inst_mean,
        "resolved": np.all([p["resolved"] for p in per_instance], axis=0),
        "bound": np.where(finite.any(axis=0), bound, np.nan),
    }


def injection_for_significance(
    injections: Sequence[float], sic: Sequence[float], target: float, sic_err: Sequence[float]
) -> dict[str, Any]:
    r"""The scanned injection r at which :math:`Z = SIC(r) \times r` first reaches ``target``.

    Nothing is interpolated: the significance is known at the scanned injections only (the
    SIC can rise steeply between them), so the needed injection lies in the bracket
    ``(low, value]``: ``value`` is the smallest scanned r with Z >= target and ``low`` the
    scanned r before it (None if ``value`` is the smallest). ``high`` is the smallest
    scanned r that reaches the target with the SIC lowered by its uncertainty (None if
    none does). ``reached`` is False (value None) when no scanned injection reaches it.
    """
    r = np.asarray(injections, dtype=np.float64)
    order = np.argsort(r)
    r = r[order]

    def first(values: np.ndarray) -> int | None:
        above = np.flatnonzero(values[order] * r >= target)
        return int(above[0]) if above.size else None

    s, e = np.asarray(sic, dtype=np.float64), np.asarray(sic_err, dtype=np.float64)
    j, j_hi = first(s), first(s - e)
    return {
        "value": None if j is None else float(r[j]),
        "reached": j is not None,
        "scanned_max": float(r[-1]),
        "low": None if not j else float(r[j - 1]),
        "high": None if j_hi is None else float(r[j_hi]),
    }


def _paired_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean per-instance difference a - b, its standard error and significance."""
    d = np.asarray(a) - np.asarray(b)
    n = d.size
    err = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    mean = float(d.mean())
    return {
        "difference": mean,
        "error": err,
        "significance": mean / err if err > 0 else float("nan"),
    }


def _fmt(v: float, e1: float, e2: float, resolved: bool, bound: float) -> str:
    if not resolved:
        return f"< {bound:.2f}" if np.isfinite(bound) else "unresolved"

    def err(e: float) -> str:
        return f"{e:.2f}" if math.isfinite(e) else "n/a"

    return f"{v:.2f} ± {err(e1)} ± {err(e2)}"


def results_stage(
    study: Any,
    per_signal: Mapping[str, Mapping[str, Any]],
    unique: Mapping[str, Any],
    encoders: Mapping[str, list[StageResult]],
    cathode: Mapping[str, list[list[StageResult]]],
    maps: Mapping[str, StageResult],
    information: StageResult | None,
    split: StageResult,
    pseudo: StageResult,
) -> StageResult:
    """Combine every cathode stage into ``results.json``, tables, figures and the report."""
    c = study.config
    rc = c.results
    upstream = [split, pseudo, *maps.values(), *([information] if information else [])]
    for runs in cathode.values():
        for per_k in runs:
            upstream += per_k
    settings = {
        "results": {
            **{
                k: getattr(rc, k)
                for k in (
                    "working_points",
                    "nominal_injection",
                    "significance",
                    "min_background_events",
                )
            }
        },
        "ensemble_size": c.cathode.ensemble_size,
    }

    def body(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        out = build_results(study, per_signal, cathode, information, pseudo)
        out["stage_times"] = study.stage_times()
        out["created"] = time.strftime("%Y-%m-%d %H:%M:%S")
        out["config"] = c.to_dict()
        out["figures"] = _figures(folder, study, out, unique, cathode, maps, information)
        tables = markdown_tables(out)
        (folder / "tables.md").write_text(tables)
        from contrastx._json import dumps

        (folder / "results.json").write_text(dumps(out, indent=2, default=str))
        _write_report(folder / "report.html", out, tables)
        return {"results": "results.json", "tables": "tables.md", "report": "report.html"}, {}

    return study.stage("results", "", settings, upstream, body)


def build_results(
    study: Any,
    per_signal: Mapping[str, Mapping[str, Any]],
    cathode: Mapping[str, list[list[StageResult]]],
    information: StageResult | None,
    pseudo: StageResult,
) -> dict[str, Any]:
    """Every number of the study (see the module docstring)."""
    import json

    c = study.config
    rc = c.results
    wps = list(rc.working_points)
    tight = int(np.argmin(wps))
    injections = list(c.pseudo_data.injections)
    ens = c.cathode.ensemble_size
    sic: dict[str, Any] = {}
    inj3: dict[str, Any] = {}
    per_inst: dict[str, dict[str, np.ndarray]] = {}
    for s, by_kind in per_signal.items():
        sic[s], inj3[s], per_inst[s] = {}, {}, {}
        for kind, cfg in by_kind.items():
            runs = cathode[cfg.name]  # [encoder][instance]
            n_inst = len(runs[0])
            curves = {
                str(w): {
                    k: [] for k in ("mean", "instance_std", "ensemble_std", "resolved", "bound")
                }
                for w in wps
            }
            tight_inst = []
            for r in injections:
                points = []
                for i in range(n_inst):
                    sb, ss, wb = [], [], None
                    for per_k in runs:
                        with np.load(per_k[i].path("scores")) as f:
                            sb.append(f[f"scores/{r:g}/{s}/background"])
                            ss.append(f[f"scores/{r:g}/{s}/signal"])
                            wb = f["eval_background/weights"]
                    points.append(
                        ensemble_sic(
                            np.concatenate(sb),
                            np.concatenate(ss),
                            wb,
                            wps,
                            ensemble_size=ens,
                            seed=int(
                                np.random.SeedSequence(
                                    [c.run.seed, _ENSEMBLE_TAG, i]
                                ).generate_state(1)[0]
                            ),
                            min_background_events=rc.min_background_events,
                        )
                    )
                summ = summarise_points(points)
                tight_inst.append(summ["per_instance"][:, tight])
                for j, w in enumerate(wps):
                    cur = curves[str(w)]
                    cur["mean"].append(float(summ["mean"][j]))
                    cur["instance_std"].append(float(summ["instance_std"][j]))
                    cur["ensemble_std"].append(float(summ["ensemble_std"][j]))
                    cur["resolved"].append(bool(summ["resolved"][j]))
                    b = float(summ["bound"][j])
                    cur["bound"].append(b if math.isfinite(b) else None)
            for cur in curves.values():
                cur["injection"] = injections
                cur["n_instances"] = n_inst
            sic[s][kind] = curves
            per_inst[s][kind] = np.array(tight_inst)  # (n_injections, n_inst)
            cur = curves[str(wps[tight])]
            err = np.hypot(
                np.nan_to_num(np.array(cur["instance_std"], dtype=float)),
                np.nan_to_num(np.array(cur["ensemble_std"], dtype=float)),
            )
            mean = np.array(cur["mean"])
            entry = injection_for_significance(injections, mean, rc.significance, err)
            entry["working_point"] = wps[tight]
            entry["resolved"] = all(cur["resolved"])
            entry["configuration"] = cfg.name
            inj3[s][kind] = entry
    comparisons = _comparisons(per_inst, injections, rc.nominal_injection, wps[tight])
    sculpting = _sculpting(cathode)
    out: dict[str, Any] = {
        "signals": list(per_signal),
        "configurations": {
            s: {kind: cfg.record() for kind, cfg in by_kind.items()}
            for s, by_kind in per_signal.items()
        },
        "working_points": wps,
        "injections": injections,
        "nominal_injection": rc.nominal_injection,
        "significance": rc.significance,
        "sic": sic,
        "injection_for_significance": inj3,
        "comparisons": comparisons,
        "sculpting": sculpting,
        "pseudo_data": pseudo.info,
        "encoders": c.run.encoders,
        "models_per_encoder": c.cathode.n_models,
        "ensemble_size": ens,
    }
    if information is not None:
        out["information"] = json.loads(information.path("information").read_text())
    return out


def _comparisons(
    per_inst: Mapping[str, Mapping[str, np.ndarray]],
    injections: Sequence[float],
    nominal: float,
    wp: float,
) -> list[dict[str, Any]]:
    """Paired per-instance comparison of every pair of configurations at the nominal
    injection and the tightest working point (both directions: the sign says which)."""
    j = list(injections).index(nominal)
    out = []
    for s, by_kind in per_inst.items():
        kinds = list(by_kind)
        for a_i, a in enumerate(kinds):
            for b in kinds[a_i + 1 :]:
                cmp = _paired_comparison(by_kind[a][j], by_kind[b][j])
                sig = cmp["significance"]
                if not math.isfinite(sig):
                    verdict = "undecided (one instance)"
                elif sig > 2:
                    verdict = f"{a} > {b}"
                elif sig < -2:
                    verdict = f"{b} > {a}"
                else:
                    verdict = "no significant difference"
                out.append(
                    {
                        "signal": s,
                        "a": a,
                        "b": b,
                        "injection": nominal,
                        "working_point": wp,
                        **cmp,
                        "verdict": verdict,
                    }
                )
    return out


def _sculpting(cathode: Mapping[str, list[list[StageResult]]]) -> dict[str, Any]:
    """Template-vs-background AUC (no signal) of every configuration: every encoder and
    instance, their mean and spread."""
    out = {}
    for cname, runs in cathode.items():
        aucs = [
            st.info["sculpting"]["auc"] for per_k in runs for st in per_k if "sculpting" in st.info
        ]
        errs = [
            st.info["sculpting"]["auc_error"]
            for per_k in runs
            for st in per_k
            if "sculpting" in st.info
        ]
        if not aucs:
            continue
        out[cname] = {
            "auc": float(np.mean(aucs)),
            "spread": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
            "mean_auc_error": float(np.mean(errs)),
            "values": aucs,
        }
    return out


def markdown_tables(result: Mapping[str, Any]) -> str:
    """SIC at the nominal injection, the injection for the significance target, sculpting."""
    from contrastx.pipeline.results import markdown_table

    wps = result["working_points"]
    nominal = result["nominal_injection"]
    j = result["injections"].index(nominal)
    parts = []
    for w in wps:
        header = ["signal", "ID", "IP", "EP", "background-only"]
        rows = []
        for s, by_kind in result["sic"].items():
            row = [s]
            for k in header[1:]:
                cur = by_kind.get(k, {}).get(str(w))
                if cur is None:
                    row.append("—")
                    continue
                b = cur["bound"][j]
                row.append(
                    _fmt(
                        cur["mean"][j],
                        cur["instance_std"][j],
                        cur["ensemble_std"][j],
                        cur["resolved"][j],
                        b if b is not None else float("nan"),
                    )
                )
            rows.append(row)
        parts.append(
            f"SIC at S/sqrt(B) = {nominal:g}, background efficiency {w:g} (mean ± instance "
            "spread ± ensemble spread; '<' is an upper bound where the evaluation background "
            "cannot resolve the working point):\n\n" + markdown_table(header, rows)
        )
    header = ["signal", "ID", "IP", "EP", "background-only"]
    rows = []
    for s, by_kind in result["injection_for_significance"].items():
        row = [s]
        for k in header[1:]:
            e = by_kind.get(k)
            if e is None:
                row.append("—")
            elif not e["reached"]:
                row.append(f"> {e['scanned_max']:g}")
            else:
                lo = "0" if e["low"] is None else f"{e['low']:g}"
                hi = f"> {e['scanned_max']:g}" if e["high"] is None else f"{e['high']:g}"
                row.append(f"({lo}, {e['value']:g}]; {hi} with SIC - 1 sigma")
        rows.append(row)
    sig = result["significance"]
    parts.append(
        f"Injected S/sqrt(B) needed for {sig:g} sigma after the selection at background "
        f"efficiency {min(wps):g} (as Fig. 7): the bracket of scanned injections it lies in "
        "(the significance is known at the scanned injections only), then the first scanned "
        "injection that reaches it with the SIC one standard deviation lower; '>' not "
        "reached in the scanned range:\n\n" + markdown_table(header, rows)
    )
    rows = [
        [
            name,
            f"{v['auc']:.3f} ± {v['spread']:.3f}",
            f"{v['mean_auc_error']:.3f}",
            str(len(v["values"])),
        ]
        for name, v in result["sculpting"].items()
    ]
    parts.append(
        "Sculpting check without signal: AUC of the template against the true signal-region "
        "background (mean ± spread over encoders and instances; per-run statistical error; "
        "runs):\n\n" + markdown_table(["configuration", "AUC", "stat. error", "runs"], rows)
    )
    sig_cmp = [
        x
        for x in result["comparisons"]
        if x["verdict"] not in ("no significant difference", "undecided (one instance)")
    ]
    lines = [
        f"- {x['signal']}: {x['verdict']} (difference {x['difference']:.2f} ± {x['error']:.2f})"
        for x in sig_cmp
    ]
    parts.append(
        f"Significant differences (paired over instances, > 2 sigma) at S/sqrt(B) = "
        f"{nominal:g}, background efficiency {min(wps):g}:\n\n"
        + ("\n".join(lines) if lines else "- none")
        + "\n"
    )
    return "\n".join(parts)


def _figures(
    folder: Path,
    study: Any,
    result: Mapping[str, Any],
    unique: Mapping[str, Any],
    cathode: Mapping[str, list[list[StageResult]]],
    maps: Mapping[str, StageResult],
    information: StageResult | None,
) -> dict[str, dict[str, str]]:
    """Every figure as PNG under ``figures/``; returns ``{key: {path, title}}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from contrastx.cathode.sculpting import SpectrumCheck
    from contrastx.plots import cathode as pc
    from contrastx.plots import signal_aware as ps
    from contrastx.plots.latent import plot_latent_by_process

    figdir = folder / "figures"
    figdir.mkdir(exist_ok=True)
    figs: dict[str, dict[str, str]] = {}

    def save(fig: Any, key: str, title: str) -> None:
        path = figdir / f"{key}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        figs[key] = {"path": f"figures/{key}.png", "title": title}

    for s, curves in result["sic"].items():
        save(
            ps.plot_sic_vs_injection(curves, signal=s),
            f"sic_{s}",
            f"SIC against injected S/sqrt(B): {s} (as Figs. 4-6)",
        )
    save(
        ps.plot_injection_summary(
            result["injection_for_significance"], significance=result["significance"]
        ),
        "injection_summary",
        "Injection needed for the significance target (as Fig. 7)",
    )
    if "ID" in cathode:
        st = cathode["ID"][0][0]
        with np.load(st.path("scores")) as f:
            if "projections/data" in f:
                x_data = f["projections/data"]
                save(
                    pc.plot_projections(
                        x_data,
                        f["projections/template"],
                        w_template=f["projections/template_weights"],
                        x_background=f["projections/background"],
                        x_signal=f["projections/signal"],
                        feature_names=[f"z{i}" for i in range(x_data.shape[1])],
                        data_label=f"SR data ({st.info['projections_signal']} at S/sqrt(B) = "
                        f"{result['nominal_injection']:g})",
                    ),
                    "projections_ID",
                    "Latent features in the SR: data with signal, true background, flow "
                    "template and the signal (ID encoder 0, instance 0; as Fig. 1)",
                )
            if "sculpting/fpr" in f:
                fig, ax = plt.subplots(figsize=(4.5, 4))
                ax.plot(f["sculpting/fpr"], f["sculpting/tpr"], label="template vs background")
                ax.plot([0, 1], [0, 1], ls=":", color="0.5")
                auc = st.info["sculpting"]
                ax.set_title(f"AUC = {auc['auc']:.3f} ± {auc['auc_error']:.3f}", fontsize=9)
                ax.set_xlabel("false positive rate")
                ax.set_ylabel("true positive rate")
                save(
                    fig,
                    "sculpting_roc_ID",
                    "Template vs true SR background, no signal "
                    "(ID encoder 0, instance 0; as Fig. 3a)",
                )
        checks = []
        for chk in st.info.get("mass_sculpting", []):
            checks.append(
                {
                    "efficiency": chk["efficiency"],
                    "threshold": chk["threshold"],
                    **{r: _spectrum(SpectrumCheck, chk[r]) for r in ("signal_region", "sidebands")},
                }
            )
        if checks:
            save(
                pc.plot_mass_spectra(checks, m_label="m_gammagamma [GeV]"),
                "mass_sculpting_ID",
                "m_gammagamma before and after the anomaly-score cut, no signal (as Fig. 3b)",
            )
    for cname, st in maps.items():
        with np.load(st.path("map")) as f:
            groups = [str(g) for g in f["groups"]]
            # The map is already 2-D: drawn as it is, its axes named after its method.
            fig = plot_latent_by_process(f["xy"], f["labels"], groups, method="pca", title=cname)
            fig.axes[0].set_xlabel(f"{st.info['method']} 1")
            fig.axes[0].set_ylabel(f"{st.info['method']} 2")
            save(
                fig,
                f"map_{cname}",
                f"2-D map of the latent space: {cname} (as Fig. 2)",
            )
    if "information" in result:
        save(
            ps.plot_confusion_matrices(result["information"]),
            "information",
            "Confusion matrices (as Appendix A, Fig. 8)",
        )
    return figs


def _spectrum(cls: type, d: Mapping[str, Any]) -> Any:
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(
        **{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
    )


def _write_report(path: Path, result: Mapping[str, Any], tables: str) -> None:
    import html
    import json

    from contrastx.pipeline.report import _CSS, markdown_table_to_html

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>contrastx signal-aware study"
        f"</title><style>{_CSS}</style></head><body>",
        "<h1>Signal-aware contrastive latent spaces + CATHODE</h1>",
        f"<p class='note'>Created {html.escape(result['created'])}. "
        f"{result['encoders']} encoders per configuration x {result['models_per_encoder']} "
        f"k-fold BDTs each, grouped into ensembles of {result['ensemble_size']}; "
        f"{len(result['pseudo_data']['instances'])} pseudo-data instances. Values: mean over "
        "instances ± spread across instances ± spread across ensembles.</p>",
        markdown_table_to_html(tables),
        "<h2>Figures</h2>",
    ]
    for fig in result["figures"].values():
        title = html.escape(fig["title"])
        parts.append(f"<h3>{title}</h3><img src='{html.escape(fig['path'])}' alt='{title}'>")
    parts.append(
        "<h2>Stage timings</h2><table><tr><th>stage</th><th>seconds</th><th>skipped</th></tr>"
    )
    for st in result.get("stage_times", []):
        label = st["stage"] + (f"/{st['name']}" if st["name"] else "")
        parts.append(
            f"<tr><td>{html.escape(label)}</td><td>{st['seconds']:.1f}</td>"
            f"<td>{st['skipped']}</td></tr>"
        )
    parts.append("</table><h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(result['config'], indent=2))}</pre></body></html>")
    path.write_text("\n".join(parts))
