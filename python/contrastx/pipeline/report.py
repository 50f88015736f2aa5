"""A single self-contained HTML report of a study (opens in any browser).

The report holds the Table VI-like table (median over trainings, toy error and training
spread, and the per-training values), which embedding beats which (only differences
significant with every uncertainty included, every pair in both directions), the
figures (relative ``figures/*.png`` links, so keep the folder together), every median Z
and 3-sigma power, the linear-evaluation accuracies, the stage timings and the
configuration (each embedding with the settings its kind uses). Every number is also in
``results.json``.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .results import PAPER, TrainedValue

__all__ = ["markdown_table_to_html", "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0eef6; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0 1.2em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-size: 0.92em; }
"""

_METHOD_WORDS = {"chi2": "χ² null", "empirical": "empirical null"}


def markdown_table_to_html(md: str) -> str:
    """Convert the Markdown tables (and plain paragraphs) of ``md`` to HTML."""
    out, rows = [], []

    def flush() -> None:
        if not rows:
            return
        head, body = rows[0], rows[2:] if len(rows) > 1 else []
        out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>")
        for r in body:
            cells = []
            for c in r:
                bold = c.startswith("**") and c.endswith("**")
                text = html.escape(c.strip("*"))
                cells.append(f"<td><b>{text}</b></td>" if bold else f"<td>{text}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        rows.clear()

    for line in md.splitlines():
        s = line.strip()
        if s.startswith("|"):
            rows.append([c.strip() for c in s.strip("|").split("|")])
        else:
            flush()
            if s:
                out.append(f"<p class='note'>{html.escape(s)}</p>")
    flush()
    return "\n".join(out)


def _num(x: Any, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def _abs(x: Any) -> Any:
    return abs(x) if isinstance(x, (int, float)) else x


def _comparisons(result: dict[str, Any]) -> str:
    """Every pair of embeddings per signal: the significant wins (both directions), the
    pairs without a significant difference and the undecided ones."""
    eff = result.get("effect") or {}
    comps = eff.get("comparisons") or {}
    if not comps:
        return ""
    k = eff["threshold_sigma"]
    parts = [
        "<h2>Which embedding beats which</h2>",
        f"<p class='note'>Median Z ({_METHOD_WORDS[eff['z_method']]}) at "
        f"{eff['fraction'] * 100:g} % injection. An embedding beats another only when "
        f"their difference exceeds {k:g} standard deviations, σ² being the sum of both "
        "embeddings' squared toy errors and run spreads (retraining and reference draw); "
        "every pair is tested in both directions, baselines included.</p>",
    ]
    for signal, pairs in comps.items():
        wins = [p for p in pairs if p["winner"] is not None]
        same = [p for p in pairs if p["verdict"] == "no significant difference"]
        open_ = [p for p in pairs if p["verdict"] == "undecided"]
        items = []
        for p in wins:
            w, lo = p["winner"], p["loser"]
            zw, zl = (p["z_a"], p["z_b"]) if w == p["a"] else (p["z_b"], p["z_a"])
            items.append(
                f"<li><b>{html.escape(w)}</b> beats <b>{html.escape(lo)}</b>: "
                f"{_num(zw)} vs {_num(zl)}, difference {_num(_abs(p['difference']))} ± "
                f"{_num(p['sigma'])} ({_num(_abs(p['n_sigma']), 1)} σ)</li>"
            )
        if same:
            txt = "; ".join(
                f"{html.escape(p['a'])} vs {html.escape(p['b'])} ({p['n_sigma']:+.1f} σ)"
                for p in same
            )
            items.append(f"<li>no significant difference (≤ {k:g} σ): {txt}</li>")
        for p in open_:
            items.append(
                f"<li>{html.escape(p['a'])} vs {html.escape(p['b'])}: undecided, "
                f"{html.escape(str(p['reason']))}</li>"
            )
        parts.append(f"<h3>{html.escape(signal)}</h3><ul>{''.join(items)}</ul>")
    return "\n".join(parts)


def _detail_table(result: dict[str, Any]) -> str:
    method = result["table"]["z_method"]
    rows = [
        "<table><tr><th>embedding</th><th>D</th><th>signal</th><th>injection</th>"
        "<th>median Z (χ² null)</th><th>median Z (empirical null)</th>"
        f"<th>median Z of every run ({_METHOD_WORDS[method]})</th>"
        f"<th>power at 3σ ({_METHOD_WORDS[method]})</th></tr>"
    ]
    for name, e in result["embeddings"].items():
        for s, per_f in e["signals"].items():
            for fk, r in per_f.items():
                zc = TrainedValue.from_dict(r["median_z"]["chi2"])
                ze = TrainedValue.from_dict(r["median_z"]["empirical"])
                zm = zc if method == "chi2" else ze
                p3 = r["power"][method][2]
                power = f"{_num(p3['power'])} (−{_num(p3['err_lo'])} +{_num(p3['err_hi'])})"
                if e["n_trainings"] > 1:
                    power += f" ± {_num(p3['training_spread'])}"
                rows.append(
                    f"<tr><td>{html.escape(name)}</td><td>{e['dimension']}</td>"
                    f"<td>{html.escape(s)}</td><td>{float(fk) * 100:g} %</td>"
                    f"<td>{zc.text()}</td><td>{ze.text()}</td>"
                    f"<td>{zm.values_text()}</td>"
                    f"<td>{power}</td></tr>"
                )
    rows.append("</table>")
    return "\n".join(rows)


def _linear_eval_table(result: dict[str, Any]) -> str:
    parts = [
        "<table><tr><th>embedding</th><th>D</th><th>trainings</th>"
        "<th>accuracy ± fold error ± training spread</th><th>per-training accuracy</th></tr>"
    ]
    for name, e in result["embeddings"].items():
        le = e.get("linear_eval") or {}
        if "value" in le:
            tv = TrainedValue.from_dict(le, stat_key="fold_err")
            acc, per = tv.text(4), tv.values_text(4) if e["trained"] else ""
        else:
            acc, per = le.get("skipped", ""), ""
        n = str(e["n_trainings"]) if e["trained"] else "built once (no spread)"
        parts.append(
            f"<tr><td>{html.escape(name)}</td><td>{e['dimension']}</td><td>{n}</td>"
            f"<td>{html.escape(acc)}</td><td>{html.escape(per)}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts)


def _layout_text(result: dict[str, Any]) -> str:
    """``", layout 'diphoton' (unweighted events)"`` (empty for results without it)."""
    layout = result.get("layout")
    if not layout:
        return ""
    return f", layout {html.escape(repr(layout['name']))} (unweighted events)"


def write_report(path: str | Path, result: dict[str, Any], table_md: str) -> Path:
    """Write the HTML report of ``result`` (the ``results.json`` dict) to ``path``."""
    path = Path(path)
    figs = result["figures"]
    n_train = result["config"]["run"]["trainings"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>contrastx study</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>contrastx study report</h1>",
        f"<p class='note'>Created {html.escape(result['created'])}. Events: "
        f"{html.escape(str(result['events'].get('generator') or result['events'].get('source')))}"
        f"{_layout_text(result)}. The built-in fast generator is parametric and for quick "
        "runs only, never physics "
        f"evidence. Every trained embedding was trained {n_train} times with different "
        "seeds; its numbers are the median over those trainings, with the toy error and the "
        "spread across trainings given separately.</p>",
        f"<h2>Median Z per embedding and signal (as Table VI of {html.escape(PAPER)})</h2>",
        markdown_table_to_html(table_md),
        _comparisons(result),
        "<h2>Figures</h2>",
    ]
    order = [k for k in figs if k.startswith("median_z")] + [
        k for k in figs if k.startswith("power3")
    ]
    order += [k for k in ("linear_eval", "latent_map") if k in figs]
    order += [k for k in figs if k.startswith("toys_")]
    for key in order:
        fig = figs[key]
        title = html.escape(fig["title"])
        parts.append(f"<h3>{title}</h3><img src='{html.escape(fig['path'])}' alt='{title}'>")
    parts.append("<h2>Median Z and power for every signal and injection</h2>")
    parts.append(
        "<p class='note'>Median over the runs ± toy error ± run spread (a trained "
        "embedding is retrained in every run; every run of every embedding draws its own "
        "NPLM reference, kernel centres and toys). Power: 68 % Clopper-Pearson interval of "
        "the run(s) the median is made of, ± run spread.</p>"
    )
    parts.append(_detail_table(result))
    parts.append(
        f"<h2>Linear evaluation accuracy on the background classes (as Fig. II of "
        f"{html.escape(PAPER)})</h2>"
    )
    parts.append(_linear_eval_table(result))
    parts.append(
        "<h2>Stage timings</h2><table><tr><th>stage</th><th>seconds</th>"
        "<th>skipped (done before)</th></tr>"
    )
    for st in result.get("stage_times", []):
        label = st["stage"] + (f"/{st['name']}" if st["name"] else "")
        parts.append(f"<tr><td>{html.escape(label)}</td><td>{_num(st['seconds'], 1)}</td>"
                     f"<td>{st['skipped']}</td></tr>")  # fmt: skip
    parts.append("</table><h2>Configuration</h2>")
    parts.append(
        "<p class='note'>Each embedding lists the settings its kind uses.</p>"
        f"<pre>{html.escape(json.dumps(result['config'], indent=2))}</pre>"
    )
    parts.append("</body></html>")
    path.write_text("\n".join(p for p in parts if p))
    return path
