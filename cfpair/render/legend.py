"""The legend of bird's-eye pictures: one proxy artist per thing drawn, built from what the
records hold (map or no map, pedestrians, cyclists, a conflict or none)."""

from __future__ import annotations

from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cfpair.records.schema import PairRecord, anchor_index
from cfpair.render.bev import (
    COLOURS,
    ROLE_WIDTHS,
    TICK_MARKERS,
    VRU_MARKERS,
    has_map,
    snapshot_time,
)

ROLE_NAMES = {"expert": "expert (logged future)", "negative": "negative (risky)",
              "positive": "positive (safe)"}


def _classes_present(recs: list[PairRecord]) -> set[str]:
    out = set()
    for rec in recs:
        k = anchor_index(rec.context.t)
        out |= {a.cls for a in rec.context.agents if a.valid[k]}
    return out


def _role(role: str) -> Line2D:
    return Line2D([], [], color=COLOURS[role], lw=ROLE_WIDTHS[role],
                  alpha=0.35 if role == "expert" else 1.0, marker=TICK_MARKERS[role],
                  markersize=6, markerfacecolor=COLOURS[role], markeredgecolor="white")


def _dashed(colour: str) -> Patch:
    return Patch(facecolor="none", edgecolor=colour, ls="--", lw=1.8)


def legend_entries(recs: list[PairRecord]) -> list[tuple[Artist, str]]:
    """(artist, label) for everything the pictures of ``recs`` draw; for one record the
    snapshot entries name its time."""
    classes = _classes_present(recs)
    conflict = [r.negative.facts.first_conflict_time_s is not None for r in recs]
    one = recs[0] if len(recs) == 1 else None
    if one is not None:
        ts = snapshot_time(one)
        when = f"first conflict, t = {ts:.1f} s" if conflict[0] else f"t = {ts:.1f} s (end)"
    else:
        when = "first conflict" if all(conflict) else "first conflict (else end)"
    entries: list[tuple[Artist, str]] = [
        (Patch(facecolor=COLOURS["ego"], edgecolor="black"), "ego at t = 0 (line: its past)")]
    entries += [(_role(role), ROLE_NAMES[role]) for role in ("expert", "negative", "positive")]
    entries.append((Line2D([], [], ls="none", marker="o", color="#555555", markersize=5),
                    "markers: every 1 s from t = 0"))
    if any(r.negative.facts.critical_agent_id is not None for r in recs):
        entries.append((Patch(facecolor=COLOURS["critical"], edgecolor="black"),
                        "critical agent at t = 0 (dotted: future)"))
    entries.append((Patch(facecolor=COLOURS["agent"], alpha=0.55, edgecolor=COLOURS["agent"]),
                    "other road users at t = 0"))
    for cls, marker in VRU_MARKERS.items():
        if cls in classes:
            entries.append((Line2D([], [], ls="none", marker=marker, markersize=7,
                                   color=COLOURS["vru"], markeredgecolor="black"), cls))
    entries += [
        (Patch(facecolor=COLOURS["negative"], alpha=0.4, edgecolor=COLOURS["negative"], ls="--",
               lw=1.8), f"negative ego at {when}"),
        (Patch(facecolor=COLOURS["positive"], alpha=0.4, edgecolor=COLOURS["positive"], ls="--",
               lw=1.8), "positive ego at the same time")]
    if any(conflict):
        entries += [(_dashed(COLOURS["critical"]), "critical agent at the same time"),
                    (Line2D([], [], ls="none", marker="X", markersize=9,
                            color=COLOURS["negative"], markeredgecolor="black"), "conflict point")]
    if any(has_map(r) for r in recs):
        entries += [(Patch(facecolor=COLOURS["drivable"]), "drivable area"),
                    (Line2D([], [], color=COLOURS["route"], lw=1.4, ls="--"),
                     "route (lane centreline)"),
                    (Line2D([], [], color=COLOURS["lane"], lw=0.8, ls="--"), "other lanes")]
    if not all(has_map(r) for r in recs):
        entries.append((Patch(facecolor=COLOURS["nomap"], edgecolor="#999999"),
                        "no map in the source"))
    return entries
