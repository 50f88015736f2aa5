"""A single self-contained HTML report of a study (opens in any browser).

The report holds the Table VI-like table, a per-signal, per-fraction table of every
median Z and 3-sigma power, the linear-evaluation accuracies, the figures (relative
``figures/*.png`` links, so keep the folder together), the stage timings and the
configuration. Every number is also in ``results.json``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

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


def _detail_table(result: dict[str, Any]) -> str:
    method = result["table"]["z_method"]
    rows = [
        "<table><tr><th>embedding</th><th>D</th><th>signal</th><th>fraction</th>"
        "<th>median Z (χ²)</th><th>median Z (emp.)</th><th>power 3σ</th></tr>"
    ]
    for name, e in result["embeddings"].items():
        for s, per_f in e["signals"].items():
            for fk, r in per_f.items():
                zc, ze = r["median_z"]["chi2"], r["median_z"]["empirical"]
                p3 = r["power"][method][2]
                rows.append(
                    f"<tr><td>{html.escape(name)}</td><td>{e['dimension']}</td>"
                    f"<td>{html.escape(s)}</td><td>{float(fk) * 100:g} %</td>"
                    f"<td>{zc['z']:.2f} ± {zc['z_err']:.2f}</td><td>{ze['z']:.2f}</td>"
                    f"<td>{p3['power']:.2f} [{p3['lo']:.2f}, {p3['hi']:.2f}]</td></tr>"
                )
    rows.append("</table>")
    return "\n".join(rows)


def write_report(path: str | Path, result: dict[str, Any], table_md: str) -> Path:
    """Write the HTML report of ``result`` (the ``results.json`` dict) to ``path``."""
    path = Path(path)
    figs = result["figures"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>contrastx study</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>contrastx study report</h1>",
        f"<p class='note'>Created {html.escape(result['created'])}. Events: "
        f"{html.escape(str(result['events'].get('generator') or result['events'].get('source')))}"
        ". The built-in fast generator is parametric and for quick runs only, never physics "
        "evidence.</p>",
        "<h2>Median Z (Table VI)</h2>",
        markdown_table_to_html(table_md),
    ]
    eff = result.get("effect", {}).get("beats_raw", {})
    if eff:
        items = []
        for name, wins in eff.items():
            if wins:
                txt = ", ".join(f"{w['signal']} ({w['z']:.2f} vs {w['z_raw']:.2f})" for w in wins)
            else:
                txt = "no signal"
            items.append(f"<li><b>{html.escape(name)}</b> beats the 57-D raw input on {txt}</li>")
        parts.append("<ul>" + "".join(items) + "</ul>")
    parts.append("<h2>Figures</h2>")
    order = [k for k in figs if k.startswith("median_z")] + [
        k for k in figs if k.startswith("power3")
    ]
    order += [k for k in ("linear_eval", "latent_map") if k in figs]
    order += [k for k in figs if k.startswith("toys_")]
    for key in order:
        parts.append(f"<h3>{html.escape(key)}</h3><img src='{html.escape(figs[key])}' alt='{key}'>")
    parts.append("<h2>All signal runs</h2>")
    parts.append(_detail_table(result))
    parts.append("<h2>Linear evaluation (Fig. II)</h2><table><tr><th>embedding</th><th>D</th>"
                 "<th>accuracy</th></tr>")  # fmt: skip
    for name, e in result["embeddings"].items():
        le = e.get("linear_eval") or {}
        acc = f"{le['mean']:.4f} ± {le['sem']:.4f}" if "mean" in le else le.get("skipped", "")
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{e['dimension']}</td>"
                     f"<td>{html.escape(acc)}</td></tr>")  # fmt: skip
    parts.append("</table><h2>Stage timings</h2><table><tr><th>stage</th><th>seconds</th>"
                 "<th>skipped</th></tr>")  # fmt: skip
    for st in result.get("stage_times", []):
        label = st["stage"] + (f"/{st['name']}" if st["name"] else "")
        parts.append(f"<tr><td>{html.escape(label)}</td><td>{st['seconds']:.1f}</td>"
                     f"<td>{st['skipped']}</td></tr>")  # fmt: skip
    parts.append("</table><h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(result['config'], indent=2))}</pre>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
