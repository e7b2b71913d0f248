"""Summary plots of many pairs: the risk-level distribution (whatever levels the records carry),
hazard types, corrective actions, minimum TTC and PDMS of negatives against positives."""

from __future__ import annotations

from collections import Counter

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cfpair.records.label import HazardType, RiskLevel
from cfpair.records.schema import PairRecord
from cfpair.render.bev import COLOURS, png_bytes

#: colours of the known risk levels, mildest first; other levels the records carry are grey
RISK_COLOURS = {"none": "#9ecae1", "low": "#a1d99b", "medium": "#fdd49e", "high": "#fc8d59",
                "critical": "#b30000", "unlabeled": "#cccccc"}
FONT = 10.0


def risk_of(rec: PairRecord) -> str:
    """The record's risk level as text ('unlabeled' without a label)."""
    return str(rec.label.risk_level) if rec.label is not None else "unlabeled"


def risk_order(values: list[str], every: bool = False) -> list[str]:
    """Known levels mildest first (all of them with ``every``, else those in ``values``),
    then any other level the records carry (sorted), then 'unlabeled'."""
    known = [str(v) for v in RiskLevel]
    seen = set(values)
    other = sorted(v for v in seen if v not in known and v != "unlabeled")
    return [v for v in known if every or v in seen] + other + (
        ["unlabeled"] if "unlabeled" in seen else [])


def _bars(ax: Axes, counts: Counter[str], order: list[str], title: str,
          colours: list[str] | str) -> None:
    vals = [counts.get(k, 0) for k in order]
    bars = ax.barh(order, vals, color=colours)
    ax.bar_label(bars, padding=3, fontsize=FONT - 1)
    ax.set_title(title, fontsize=FONT + 1, loc="left")
    ax.tick_params(labelsize=FONT - 1)
    ax.invert_yaxis()
    ax.set_xlim(0, max(vals + [1]) * 1.18)


def draw_risk(ax: Axes, recs: list[PairRecord]) -> None:
    """Pairs per risk level (every known level, so the shape of the distribution shows, and
    any other level the records carry), coloured from mild to severe, counts written on."""
    risks = [risk_of(r) for r in recs]
    order = risk_order(risks, every=True)
    _bars(ax, Counter(risks), order, f"risk level ({len(recs)} pairs)",
          [RISK_COLOURS.get(k, "#888888") for k in order])


def draw_pdms(ax: Axes, recs: list[PairRecord], seed: int = 0) -> None:
    """PDMS of each pair's negative against its positive: jittered, translucent, coloured by
    risk level, so the many pairs at the same corner stay countable."""
    neg = np.asarray([r.negative.facts.pdms for r in recs], np.float64)
    pos = np.asarray([r.positive.facts.pdms for r in recs], np.float64)
    jitter = np.random.default_rng(seed).uniform(-0.025, 0.025, (2, len(recs)))
    risks = np.asarray([risk_of(r) for r in recs])
    for level in risk_order(list(risks)):
        m = risks == level
        ax.scatter(neg[m] + jitter[0, m], pos[m] + jitter[1, m], s=22, alpha=0.45,
                   color=RISK_COLOURS.get(level, "#888888"), edgecolor="black", lw=0.3,
                   label=f"{level} ({int(m.sum())})")
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":")
    ax.set_xlim(-0.06, 1.06)
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlabel("negative PDMS", fontsize=FONT)
    ax.set_ylabel("positive PDMS", fontsize=FONT)
    title = "PDMS per pair (jittered ±0.025)"
    if len(recs):
        title += f": negative mean {neg.mean():.2f}, positive {pos.mean():.2f}"
    ax.set_title(title, fontsize=FONT + 1, loc="left")
    ax.tick_params(labelsize=FONT - 1)
    if len(recs):
        ax.legend(fontsize=FONT - 1.5, loc="lower right", title="risk level",
                  title_fontsize=FONT - 1.5, framealpha=0.85)


def draw_ttc(ax: Axes, recs: list[PairRecord]) -> None:
    """Minimum time to collision of negatives and positives (3 s and beyond in the last bin)."""
    bins = np.linspace(0.0, 3.0, 16)
    for role in ("negative", "positive"):
        ttc = [getattr(r, role).facts.min_ttc_s for r in recs]
        vals = [min(v, 2.999) for v in ttc if v is not None]
        none = sum(v is None for v in ttc)
        ax.hist(vals, bins=bins, alpha=0.6, color=COLOURS[role],
                label=f"{role} ({none} with no TTC within 3 s)")
    ax.axvline(1.0, color="black", lw=0.8, ls=":")
    ax.set_title("minimum TTC [s] (dotted: NAVSIM's 1 s)", fontsize=FONT + 1, loc="left")
    ax.legend(fontsize=FONT - 1.5)
    ax.tick_params(labelsize=FONT - 1)


def summary_png(recs: list[PairRecord], dpi: int = 90) -> bytes:
    """Six panels: risk level, hazard type, corrective action, minimum TTC, PDMS scatter and
    pairs by source and split."""
    fig = Figure(figsize=(15, 8.4))
    axs = fig.subplots(2, 3)
    draw_risk(axs[0, 0], recs)
    labels = [r.label for r in recs if r.label is not None]
    hazards = Counter(str(lab.hazard_type) for lab in labels)
    order = [str(v) for v in HazardType if hazards.get(str(v))] + sorted(
        k for k in hazards if k not in {str(v) for v in HazardType})
    _bars(axs[0, 1], hazards, order, f"hazard type ({len(labels)} labels)", "#8172b2")
    acts = Counter(f"{r.meta_action.longitudinal} + {r.meta_action.lateral}" for r in recs)
    _bars(axs[0, 2], acts, [k for k, _ in acts.most_common(10)],
          "corrective action (10 most common)", "#55a868")
    draw_ttc(axs[1, 0], recs)
    draw_pdms(axs[1, 1], recs)
    where = Counter(f"{r.provenance.source} / {r.split}" for r in recs)
    _bars(axs[1, 2], where, sorted(where), "pairs by source / split", "#4c72b0")
    fig.tight_layout()
    return png_bytes(fig, dpi)
