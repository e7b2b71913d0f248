"""The review picture of one pair: a title naming the scenario type, source and split, the
bird's-eye scene cropped to its content, a speed-over-time panel for expert / negative /
positive, a complete legend and the label's key fields.

The figure is laid out in inches: the bird's-eye axes take the shape of the content (taller
for a straight drive, wider for a turn), the right column keeps a fixed width, so nothing
overlaps and no panel is mostly empty.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon
from matplotlib.ticker import MaxNLocator

from cfpair.records.schema import PairRecord
from cfpair.render.bev import (
    COLOURS,
    ROLE_WIDTHS,
    TICK_MARKERS,
    check_drawable,
    content_aspect,
    content_points,
    critical_at,
    draw_scene,
    no_map_note,
    png_bytes,
    second_ticks,
)
from cfpair.render.legend import legend_entries

#: figure height, title band, bird's-eye height and right column width (inches)
HEIGHT, TITLE_BAND, BEV_HEIGHT, RIGHT_WIDTH = 7.8, 0.95, 6.25, 5.4
LEFT_MARGIN, GAP = 0.7, 0.65
#: speed panel height and the height of one legend row at 8.5 pt (inches)
SPEED_HEIGHT, LEGEND_ROW = 2.4, 0.19


def scenario_kind(rec: PairRecord) -> str:
    """The scenario type where the source names one (synthetic family, DeepAccident type
    folder), else the label's hazard type, else 'scenario'."""
    sid, src = rec.provenance.scenario_id, rec.provenance.source
    if src == "synthetic" and sid.count("-") >= 2:
        return sid.split("-", 2)[1].replace("_", " ")
    if src == "deepaccident" and "/" in sid:
        return sid.split("/", 1)[0].replace("_", " ")
    if rec.label is not None:
        return rec.label.hazard_type.replace("_", " ")
    return "scenario"


def title_lines(rec: PairRecord) -> tuple[str, str]:
    """(headline, detail): 'type · source · split' and what went wrong / what fixes it."""
    head = f"{scenario_kind(rec)}  ·  {rec.provenance.source}  ·  {rec.split}"
    lab = rec.label
    if lab is None:
        f = rec.negative.facts
        what = "collides" if f.collides else "no collision"
        return head, f"unlabeled; negative {what}, PDMS {f.pdms:.2f}"
    hazard = lab.hazard_type.replace("_", " ")
    act = rec.meta_action
    return head, (f"{lab.risk_level} risk  ·  {hazard} hazard  ·  corrective action: "
                  f"{act.longitudinal} + {act.lateral.replace('_', ' ')}")


def draw_speed(ax: Axes, rec: PairRecord, fontsize: float = 9.0) -> None:
    """Ego speed over time: the last seconds before the anchor and each role's plan after it,
    the critical agent's speed dotted, the first conflict as a vertical line."""
    h = rec.context.ego_history
    hv = np.asarray(h.valid)
    if hv.any():
        ax.plot(np.asarray(h.t)[hv], np.asarray(h.v)[hv], color=COLOURS["ego"], lw=1.8)
    for role in ("expert", "negative", "positive"):
        tr = getattr(rec, role)
        t, v = np.asarray(tr.t), np.asarray(tr.v)
        z = {"expert": 2.0, "negative": 2.2, "positive": 2.4}[role]
        ax.plot(t, v, color=COLOURS[role], lw=ROLE_WIDTHS[role] * 0.8, zorder=z,
                alpha=0.35 if role == "expert" else 1.0, solid_capstyle="round",
                gid=f"speed-{role}")
        i = second_ticks(tr)
        ax.scatter(t[i], v[i], marker=TICK_MARKERS[role], s=24, color=COLOURS[role],
                   edgecolor="white", lw=0.6, zorder=z + 0.05)
    crit = rec.negative.facts.critical_agent_id
    c = rec.context
    for a in c.agents:
        if a.id == crit:
            ok = np.asarray(a.valid)
            speed = np.hypot(np.asarray(a.vx), np.asarray(a.vy))
            ax.plot(np.asarray(c.t)[ok], speed[ok], color=COLOURS["critical"], lw=1.4, ls=":",
                    label=f"critical agent ({agent_name(a.cls, a.id)})")
    tc = rec.negative.facts.first_conflict_time_s
    if tc is not None:
        ax.axvline(tc, color=COLOURS["negative"], lw=1.0, ls="--",
                   label=f"first conflict {tc:.1f} s")
    ax.axvline(0.0, color="black", lw=0.6, alpha=0.5)
    ax.set_ylim(0.0, max(ax.get_ylim()[1] * 1.2, 1.0))   # headroom for the legend
    ax.set_xlabel("time from the anchor [s]", fontsize=fontsize)
    ax.set_ylabel("speed [m/s]", fontsize=fontsize)
    ax.set_title("speed over time: ego past (blue), expert, negative, positive",
                 fontsize=fontsize, loc="left")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize - 1, loc="best", framealpha=0.85)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=fontsize - 1)
    ax.yaxis.set_major_locator(MaxNLocator(5))


SHORT_ID = 10  # real logs use 32-character track tokens: the picture shows their start


def agent_name(cls: str, agent_id: str) -> str:
    """'pedestrian ped_3', or just 'pedestrian' where the id repeats the class; an id longer
    than ``SHORT_ID`` characters is cut to its first 8 and '…' (the record keeps it whole)."""
    if agent_id == cls:
        return cls
    short = agent_id if len(agent_id) <= SHORT_ID else agent_id[:8] + "…"
    return f"{cls} {short}"


def _free_spot(ax: Axes, rec: PairRecord, anchor: tuple[float, float], size_pt: tuple[float,
               float]) -> tuple[float, float, str, str]:
    """(dx, dy) in points, ha, va of a label of ``size_pt`` near ``anchor`` (data) that stays
    inside the axes and covers the fewest drawn points (trajectories, boxes)."""
    fig_w, fig_h = ax.figure.get_size_inches()
    pos = ax.get_position()
    aw, ah = pos.width * fig_w * 72, pos.height * fig_h * 72
    (u0, u1), (w0, w1) = ax.get_xlim(), ax.get_ylim()
    pts = [np.stack(content_points(rec), -1)]
    for role in ("expert", "negative", "positive"):
        tr = getattr(rec, role)
        pts.append(np.stack([-np.asarray(tr.y), np.asarray(tr.x)], -1))
    for patch in ax.patches:   # boxes (not the map underneath): corners, edge middles, centre
        if patch.get_zorder() >= 1 and isinstance(patch, MplPolygon):
            c = patch.get_xy()
            pts += [c, (c + np.roll(c, 1, 0)) / 2, c.mean(0, keepdims=True)]
    xy = np.concatenate(pts)
    px = (xy[:, 0] - u0) / (u1 - u0) * aw
    py = (xy[:, 1] - w0) / (w1 - w0) * ah
    ax0 = (anchor[0] - u0) / (u1 - u0) * aw
    ay0 = (anchor[1] - w0) / (w1 - w0) * ah
    tw, th = size_pt
    best: tuple[float, tuple[float, float, str, str]] | None = None
    for r in (34.0, 60.0, 95.0):
        for ang in np.deg2rad(np.arange(0, 360, 30) + 15):
            dx, dy = r * np.cos(ang), r * np.sin(ang)
            left = ax0 + dx - (tw if dx < 0 else 0)
            bottom = ay0 + dy - (th if dy < 0 else 0)
            out = max(0, -left) + max(0, left + tw - aw) + max(0, -bottom) + \
                max(0, bottom + th - ah)
            inside = ((px >= left - 4) & (px <= left + tw + 4) & (py >= bottom - 4) &
                      (py <= bottom + th + 4)).sum()
            score = 50 * out + 10 * inside + r / 10
            if best is None or score < best[0]:
                best = (score, (dx, dy, "right" if dx < 0 else "left",
                                "top" if dy < 0 else "bottom"))
    assert best is not None
    return best[1]


def label_critical(ax: Axes, rec: PairRecord, fontsize: float = 9.0) -> None:
    """Name the critical agent next to it, with a leader line, where the label covers the
    fewest drawn things and stays inside the axes (call after the limits are set)."""
    at = critical_at(rec, 0.0)
    if at is None:
        return
    x, y, _, a = at
    text = f"critical\n{agent_name(a.cls, a.id)}"
    width = max(len(line) for line in text.split("\n")) * 0.64 * fontsize + 6
    dx, dy, ha, va = _free_spot(ax, rec, (-y, x), (width, 2.5 * fontsize + 6))
    ax.annotate(text, (-y, x), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                fontsize=fontsize, fontweight="bold", zorder=9, gid="critical-label",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": COLOURS["critical"],
                      "alpha": 0.9},
                arrowprops={"arrowstyle": "-", "color": "black", "lw": 0.8})


def detail_text(rec: PairRecord, width: int = 80) -> str:
    """The facts that decide the pair and the label's reasoning, wrapped to ``width``."""
    rows = []
    for role in ("expert", "negative", "positive"):
        f = getattr(rec, role).facts
        ttc = "-" if f.min_ttc_s is None else f"{f.min_ttc_s:.1f}"
        rows.append(f"{role:<9} PDMS {f.pdms:.2f}  collides {'yes' if f.collides else 'no ':<3} "
                    f" min TTC {ttc:>4} s  gap {f.min_distance_m:4.1f} m  "
                    f"progress {f.progress_m:4.1f} m")
    lab = rec.label
    if lab is not None:
        rows += textwrap.wrap(lab.failure_description, width, max_lines=3, placeholder=" ...")
    p = rec.provenance
    safety = "" if lab is None else f"safety {lab.safety_score:.2f} · "
    rows.append(f"{safety}label {rec.label_status} ({p.labeler}) · pair {rec.pair_id}")
    rows.append(f"scenario {p.scenario_id} at {p.anchor_time_s:.1f} s")
    return "\n".join(textwrap.shorten(r, width + 4, placeholder=" ...") if len(r) > width + 4
                     else r for r in rows)


def review_figure(rec: PairRecord) -> Figure:
    """The review picture of ``rec`` as a matplotlib Figure (see the module docstring)."""
    check_drawable(rec)
    aspect = content_aspect(rec)
    bev_w = BEV_HEIGHT / aspect
    x_right = LEFT_MARGIN + bev_w + GAP
    width = x_right + RIGHT_WIDTH + 0.25
    fig = Figure(figsize=(width, HEIGHT))
    bottom = HEIGHT - TITLE_BAND - BEV_HEIGHT
    ax = fig.add_axes((LEFT_MARGIN / width, bottom / HEIGHT, bev_w / width, BEV_HEIGHT / HEIGHT))
    draw_scene(ax, rec, aspect)
    no_map_note(ax, rec)
    label_critical(ax, rec)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.yaxis.set_major_locator(MaxNLocator(8))
    ax.set_xlabel("right of ego [m]", fontsize=9)
    ax.set_ylabel("ahead of ego [m]", fontsize=9)
    head, detail = title_lines(rec)
    fig.text(0.12 / width, 1 - 0.12 / HEIGHT, head, fontsize=15, fontweight="bold", va="top",
             gid="title")
    fig.text(0.12 / width, 1 - 0.52 / HEIGHT, detail, fontsize=11, va="top", color="#333333",
             gid="subtitle")
    top = HEIGHT - TITLE_BAND
    sp = fig.add_axes((x_right / width, (top - SPEED_HEIGHT) / HEIGHT,
                       (RIGHT_WIDTH - 0.2) / width, SPEED_HEIGHT / HEIGHT))
    draw_speed(sp, rec)
    entries = legend_entries([rec])
    handles, labels = zip(*entries, strict=True)
    legend_top = top - SPEED_HEIGHT - 0.55
    fig.legend(handles, labels, loc="upper left", ncol=2, fontsize=8.5, frameon=False,
               bbox_to_anchor=((x_right - 0.55) / width, legend_top / HEIGHT),
               handlelength=2.2, columnspacing=1.0, borderaxespad=0.0)
    text_top = legend_top - LEGEND_ROW * math.ceil(len(entries) / 2) - 0.2
    fig.text((x_right - 0.5) / width, text_top / HEIGHT, detail_text(rec), fontsize=8.2,
             family="monospace", va="top", color="#222222", linespacing=1.3, gid="details")
    return fig


def review_png(rec: PairRecord, dpi: int = 110) -> bytes:
    """One pair as a PNG: see :func:`review_figure`."""
    return png_bytes(review_figure(rec), dpi)
