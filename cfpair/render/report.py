"""Grid overviews, summary plots and the self-contained HTML report of an output folder.

The report is one HTML file with every image inlined as a base64 PNG, so it opens from disk
in any browser with no server and no network.
"""

from __future__ import annotations

import base64
import html
import math
from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cfpair.labels.models import HazardType, PairRecord, RiskLevel
from cfpair.labels.risk import risk_distribution
from cfpair.render.bev import COLOURS, draw_review, png_bytes, review_png


def grid_png(recs: list[PairRecord], cols: int = 4, cell: float = 3.2, dpi: int = 90) -> bytes:
    """Many pairs on one page, each titled with its id, risk and hazard."""
    rows = max(1, math.ceil(len(recs) / cols))
    fig = Figure(figsize=(cols * cell, rows * (cell + 0.35)))
    for i, rec in enumerate(recs):
        ax = fig.add_subplot(rows, cols, i + 1)
        draw_review(ax, rec, legend=False)
        ax.set_xlabel("")
        ax.set_ylabel("")
        lab = rec.label
        tag = f"{lab.risk_level} / {lab.hazard_type}" if lab else "unlabeled"
        ax.set_title(f"{rec.pair_id}\n{tag}", fontsize=7)
    fig.tight_layout()
    return png_bytes(fig, dpi)


def _bar(ax: object, counts: Counter[str], order: list[str], title: str, colour: str) -> None:
    keys = [k for k in order if counts.get(k) or k in order]
    ax.barh(keys, [counts.get(k, 0) for k in keys], color=colour)  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    ax.tick_params(labelsize=7)  # type: ignore[attr-defined]


def summary_png(recs: list[PairRecord], dpi: int = 90) -> bytes:
    """Four panels: risk levels, hazard types, min-TTC histograms (negative vs positive) and
    PDMS of negatives vs positives."""
    fig = Figure(figsize=(11, 7.5))
    axs = fig.subplots(2, 2)
    labels = [r.label for r in recs if r.label is not None]
    _bar(axs[0, 0], Counter(str(lab.risk_level) for lab in labels),
         [str(v) for v in RiskLevel], f"risk level ({len(labels)} labels)", "#c44e52")
    _bar(axs[0, 1], Counter(str(lab.hazard_type) for lab in labels),
         [str(v) for v in HazardType], "hazard type", "#8172b2")
    ax = axs[1, 0]
    bins = np.linspace(0.0, 3.0, 16)
    for role in ("negative", "positive"):
        ttc = [getattr(r, role).facts.min_ttc_s for r in recs]
        vals = [min(v, 3.0) for v in ttc if v is not None]
        none = sum(v is None for v in ttc)
        ax.hist(vals, bins=bins, alpha=0.6, color=COLOURS[role],
                label=f"{role} ({none} with no TTC within 3 s)")
    ax.axvline(1.0, color="black", lw=0.8, ls=":")
    ax.set_title("minimum time to collision [s] (NAVSIM threshold 1 s dotted)", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    ax = axs[1, 1]
    neg = np.asarray([r.negative.facts.pdms for r in recs])
    pos = np.asarray([r.positive.facts.pdms for r in recs])
    jitter = np.random.default_rng(0).uniform(-0.01, 0.01, (2, len(recs)))
    ax.scatter(neg + jitter[0], pos + jitter[1], s=12, color="#4c72b0", alpha=0.7)
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("negative PDMS", fontsize=8)
    ax.set_ylabel("positive PDMS", fontsize=8)
    ax.set_title(f"PDMS per pair: negative mean {neg.mean():.2f}, positive mean "
                 f"{pos.mean():.2f}" if len(recs) else "PDMS per pair", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return png_bytes(fig, dpi)


def _img(data: bytes, alt: str, width: str = "100%") -> str:
    b64 = base64.b64encode(data).decode()
    return (f'<img alt="{html.escape(alt)}" style="width:{width}" '
            f'src="data:image/png;base64,{b64}">')


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;
vertical-align:top}th{background:#f3f3f3}.pairs{display:grid;grid-template-columns:
repeat(auto-fill,minmax(360px,1fr));gap:16px}.pair{border:1px solid #ddd;padding:8px}
.small{font-size:12px;color:#555}"""


def html_report(recs: list[PairRecord], title: str, total: int, pictured: int = 24,
                images: dict[str, bytes] | None = None) -> str:
    """The report: counts, the summary plots, a table of every pair and review images of the
    first ``pictured`` pairs (taken from ``images`` by pair id where given, else drawn);
    ``total`` is the number of rows in the folder."""
    images = images or {}
    risk = risk_distribution(recs)   # graded from the facts: cfpair.labels.risk
    status = Counter(r.label_status for r in recs)
    sources = Counter(r.provenance.source for r in recs)
    esc = html.escape
    head = (f"<h1>{esc(title)}</h1><p>{len(recs)} of {total} pairs summarised; sources "
            f"{esc(', '.join(f'{k}: {v}' for k, v in sources.items()))}; label status "
            f"{esc(', '.join(f'{k}: {v}' for k, v in status.items()))}; risk "
            f"{esc(', '.join(f'{k}: {v}' for k, v in risk.items()))}.</p>")
    rows = []
    for r in recs:
        lab = r.label
        n, p = r.negative.facts, r.positive.facts
        rows.append("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in (
            r.pair_id, r.split, lab.risk_level if lab else "-", lab.hazard_type if lab else "-",
            lab.critical_agent.id if lab and lab.critical_agent else "-",
            "-" if n.min_ttc_s is None else f"{n.min_ttc_s:.2f}", f"{n.pdms:.2f}",
            f"{p.pdms:.2f}", f"{r.meta_action.longitudinal} + {r.meta_action.lateral}")) +
            "</tr>")
    table = ("<table><tr><th>pair</th><th>split</th><th>risk</th><th>hazard</th>"
             "<th>critical</th><th>neg. min TTC s</th><th>neg. PDMS</th><th>pos. PDMS</th>"
             "<th>corrective action</th></tr>" + "".join(rows) + "</table>")
    pairs = []
    for r in recs[:pictured]:
        text = esc(r.label.counterfactual_reasoning) if r.label else "unlabeled"
        png = images.get(r.pair_id) or review_png(r, dpi=80)
        pairs.append(f'<div class="pair">{_img(png, r.pair_id)}<p class="small">{text}</p></div>')
    body = (head + "<h2>Summary</h2>" + _img(summary_png(recs), "summary plots") +
            f"<h2>Pairs ({min(pictured, len(recs))} pictured)</h2><div class=pairs>"
            + "".join(pairs) + "</div><h2>All pairs</h2>" + table)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def write_report(recs: list[PairRecord], path: Path, title: str, total: int,
                 pictured: int = 24, images: dict[str, bytes] | None = None) -> Path:
    """Write :func:`html_report` to ``path``."""
    path.write_text(html_report(recs, title, total, pictured, images), encoding="utf-8")
    return path
