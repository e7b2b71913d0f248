"""Bird's-eye drawings of one record: the review view (all three trajectories, the conflict and
the label) and the observation view (only what a policy may see at the anchor).

Plot frame: the ego frame at the anchor turned so that the ego drives up the page: plot
u = -y (metres, right of the ego is +u), w = x (metres ahead). Uses matplotlib's object API
(no pyplot state), so it is safe in worker processes and threads.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon

from cfpair.geometry.boxes import box_corners
from cfpair.labels.models import PairRecord, anchor_index

#: colours of the three roles and of the scene
COLOURS = {"expert": "#6b6b6b", "negative": "#d62728", "positive": "#2ca02c",
           "ego": "#1f4e9c", "agent": "#4c72b0", "critical": "#ff7f0e", "drivable": "#deded6",
           "lane": "#b9b9b0", "route": "#9ecae1"}
#: observation view window (metres): lateral half-width and the span behind / ahead of the ego
OBS_HALF_WIDTH, OBS_BEHIND, OBS_AHEAD = 32.0, 16.0, 48.0


def _uv(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame (x, y) to plot (u, w)."""
    return -np.asarray(y, np.float64), np.asarray(x, np.float64)


def _flat(poly: list[float]) -> np.ndarray:
    return np.asarray(poly, np.float64).reshape(-1, 2)


def _box(ax: Axes, x: float, y: float, yaw: float, length: float, width: float,
         face: str, edge: str, alpha: float = 0.9, lw: float = 1.0, ls: str = "-",
         z: float = 3.0) -> None:
    corners = box_corners(x, y, yaw, length, width)
    u, w = _uv(corners[:, 0], corners[:, 1])
    ax.add_patch(MplPolygon(np.stack([u, w], -1), closed=True, facecolor=face,
                            edgecolor=edge, alpha=alpha, lw=lw, ls=ls, zorder=z))
    # a short tick from the centre toward the front shows the heading
    fu, fw = _uv(x + 0.5 * length * np.cos(yaw), y + 0.5 * length * np.sin(yaw))
    cu, cw = _uv(x, y)
    ax.plot([cu, fu], [cw, fw], color=edge, lw=lw, zorder=z + 0.1)


def draw_map(ax: Axes, rec: PairRecord) -> None:
    """Drivable area (filled), lane outlines and centrelines (on-route ones tinted)."""
    mp = rec.context.map
    for poly in mp.drivable:
        u, w = _uv(*_flat(poly).T)
        ax.fill(u, w, color=COLOURS["drivable"], zorder=0, lw=0)
    for poly in mp.lanes:
        u, w = _uv(*_flat(poly).T)
        ax.plot(np.append(u, u[:1]), np.append(w, w[:1]), color=COLOURS["lane"], lw=0.5,
                zorder=0.5)
    for line, route in zip(mp.centerlines, mp.on_route, strict=False):
        u, w = _uv(*_flat(line).T)
        ax.plot(u, w, color=COLOURS["route"] if route else COLOURS["lane"],
                lw=1.4 if route else 0.6, ls="--", zorder=0.6)


def draw_agents(ax: Axes, rec: PairRecord, critical: str | None, ids: bool = True,
                trail_s: float = 1.0) -> None:
    """Agents at the anchor as boxes (critical in orange) with a trail of their past."""
    c = rec.context
    k = anchor_index(c.t)
    t = np.asarray(c.t)
    past = (t >= -trail_s) & (t <= 0)
    for a in c.agents:
        if not a.valid[k]:
            continue
        crit = a.id == critical
        colour = COLOURS["critical"] if crit else COLOURS["agent"]
        v = np.asarray(a.valid) & past
        if v.sum() > 1:
            u, w = _uv(np.asarray(a.x)[v], np.asarray(a.y)[v])
            ax.plot(u, w, color=colour, lw=1.0, alpha=0.6, zorder=2)
        _box(ax, a.x[k], a.y[k], a.yaw[k], a.length, a.width, colour, "black" if crit else
             colour, alpha=0.85 if crit else 0.55, lw=1.6 if crit else 0.8)
        if crit:  # where the critical agent goes: dotted
            fut = np.asarray(a.valid) & (t >= 0)
            u, w = _uv(np.asarray(a.x)[fut], np.asarray(a.y)[fut])
            ax.plot(u, w, color=colour, lw=1.2, ls=":", zorder=2)
        if ids:
            u, w = _uv(a.x[k], a.y[k])
            ax.annotate(a.id, (float(u), float(w)), xytext=(4, 4), textcoords="offset points",
                        fontsize=7, color="black", zorder=6,
                        fontweight="bold" if crit else "normal")


def draw_ego(ax: Axes, rec: PairRecord) -> None:
    """The ego box at the anchor and its past positions."""
    c = rec.context
    h = c.ego_history
    v = np.asarray(h.valid)
    if v.sum() > 1:
        u, w = _uv(np.asarray(h.x)[v], np.asarray(h.y)[v])
        ax.plot(u, w, color=COLOURS["ego"], lw=1.5, alpha=0.7, zorder=4)
    off = c.ego_rear_to_center
    _box(ax, off, 0.0, 0.0, c.ego_length, c.ego_width, COLOURS["ego"], "black", alpha=1.0,
         lw=1.2, z=5)


def draw_trajectories(ax: Axes, rec: PairRecord) -> None:
    """Expert (grey), negative (red) and positive (green) with their 0.5 s poses."""
    # the expert is drawn wide and underneath so it stays visible where another one follows it
    for role, lw, alpha in (("expert", 6.0, 0.45), ("negative", 2.0, 1.0),
                            ("positive", 2.0, 1.0)):
        tr = getattr(rec, role)
        u, w = _uv(tr.x, tr.y)
        ax.plot(u, w, color=COLOURS[role], lw=lw, zorder=4.4 if role == "expert" else 4.5,
                label=role, alpha=alpha, solid_capstyle="round")
        p = np.asarray(tr.poses)
        pu, pw = _uv(p[:, 0], p[:, 1])
        ax.scatter(pu, pw, s=10, color=COLOURS[role], zorder=4.6)


def draw_conflict(ax: Axes, rec: PairRecord) -> None:
    """Where the negative first conflicts: the ego box there (red, dashed), the critical agent's
    box at the same time (orange, dashed) and an X between them."""
    f = rec.negative.facts
    if f.first_conflict_time_s is None:
        return
    tr = rec.negative
    i = int(np.argmin(np.abs(np.asarray(tr.t) - f.first_conflict_time_s)))
    c = rec.context
    off = c.ego_rear_to_center
    ex = tr.x[i] + off * np.cos(tr.yaw[i])
    ey = tr.y[i] + off * np.sin(tr.yaw[i])
    _box(ax, ex, ey, tr.yaw[i], c.ego_length, c.ego_width, "none", COLOURS["negative"],
         alpha=1.0, lw=1.5, ls="--", z=5.5)
    mark_x, mark_y = ex, ey
    if f.critical_agent_id is not None:
        k = int(np.argmin(np.abs(np.asarray(c.t) - f.first_conflict_time_s)))
        for a in c.agents:
            if a.id == f.critical_agent_id and a.valid[k]:
                _box(ax, a.x[k], a.y[k], a.yaw[k], a.length, a.width, "none",
                     COLOURS["critical"], alpha=1.0, lw=1.5, ls="--", z=5.5)
                mark_x, mark_y = (ex + a.x[k]) / 2, (ey + a.y[k]) / 2
    u, w = _uv(mark_x, mark_y)
    ax.scatter([u], [w], marker="X", s=140, color=COLOURS["negative"], edgecolor="black",
               lw=0.8, zorder=7, label=f"first conflict {f.first_conflict_time_s:.1f} s")


def review_extent(rec: PairRecord, pad: float = 8.0, least: float = 30.0) -> tuple[float, ...]:
    """A square (u0, u1, w0, w1) holding the ego history, all trajectories and the critical
    agent, padded, at least ``least`` metres wide."""
    xs, ys = [0.0], [0.0]
    for role in ("expert", "negative", "positive"):
        tr = getattr(rec, role)
        xs += tr.x
        ys += tr.y
    h = rec.context.ego_history
    recent = [v and t >= -1.0 for t, v in zip(h.t, h.valid, strict=True)]
    xs += [x for x, v in zip(h.x, recent, strict=True) if v]
    ys += [y for y, v in zip(h.y, recent, strict=True) if v]
    crit = rec.negative.facts.critical_agent_id
    k = anchor_index(rec.context.t)
    for a in rec.context.agents:
        if a.id == crit and a.valid[k]:
            xs.append(a.x[k])
            ys.append(a.y[k])
    u, w = _uv(np.asarray(xs), np.asarray(ys))
    cu, cw = (u.min() + u.max()) / 2, (w.min() + w.max()) / 2
    half = max(u.max() - u.min(), w.max() - w.min(), least) / 2 + pad
    return cu - half, cu + half, cw - half, cw + half


def label_text(rec: PairRecord, width: int = 70) -> str:
    """The label's key fields (or the facts when the record is unlabeled), wrapped."""
    n, p = rec.negative.facts, rec.positive.facts
    scores = (f"PDMS negative {n.pdms:.2f} / positive {p.pdms:.2f} / expert "
              f"{rec.expert.facts.pdms:.2f}")
    lab = rec.label
    if lab is None:
        return f"{rec.pair_id}  (unlabeled)\n{scores}"
    agent = (f"{lab.critical_agent.cls} {lab.critical_agent.id}" if lab.critical_agent
             else "none")
    ttc = "-" if lab.time_to_conflict_s is None else f"{lab.time_to_conflict_s:.1f} s"
    lines = [f"{rec.pair_id}  [{rec.label_status}, {rec.provenance.labeler}]",
             f"risk {lab.risk_level} | hazard {lab.hazard_type} | critical {agent} | "
             f"conflict in {ttc}",
             f"action {lab.corrective_action.longitudinal} + {lab.corrective_action.lateral} | "
             f"safety {lab.safety_score:.2f}", scores]
    body = textwrap.fill(lab.failure_description, width, max_lines=3, placeholder=" ...")
    return "\n".join(lines) + "\n" + body


def draw_review(ax: Axes, rec: PairRecord, legend: bool = True) -> None:
    """The full review drawing of one pair on ``ax`` (no text panel)."""
    crit = rec.negative.facts.critical_agent_id
    draw_map(ax, rec)
    draw_agents(ax, rec, crit)
    draw_trajectories(ax, rec)
    draw_ego(ax, rec)
    draw_conflict(ax, rec)
    u0, u1, w0, w1 = review_extent(rec)
    ax.set_xlim(u0, u1)
    ax.set_ylim(w0, w1)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.set_xlabel("right of ego [m]", fontsize=7)
    ax.set_ylabel("ahead of ego [m]", fontsize=7)
    if legend:
        ax.legend(loc="lower right", fontsize=7, framealpha=0.85)


def png_bytes(fig: Figure, dpi: int) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def review_png(rec: PairRecord, dpi: int = 110) -> bytes:
    """One pair as a PNG: the drawing above, the label's key fields below."""
    fig = Figure(figsize=(6.4, 7.6))
    ax = fig.add_axes((0.11, 0.25, 0.86, 0.72))
    draw_review(ax, rec)
    fig.text(0.03, 0.175, label_text(rec), fontsize=7.5, va="top", family="monospace")
    return png_bytes(fig, dpi)


def observation_png(rec: PairRecord, pixels: int = 448) -> bytes:
    """What a policy may see at the anchor, as a square PNG of ``pixels`` x ``pixels``: map,
    agents at t = 0 with a 1 s trail (no ids, no critical mark), the ego and its history, in a
    fixed ego-centred window. No future, no trajectories, no label: this is the image that
    exports use where a scene has no camera."""
    fig = Figure(figsize=(pixels / 100, pixels / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor("white")
    draw_map(ax, rec)
    draw_agents(ax, rec, None, ids=False)
    draw_ego(ax, rec)
    ax.set_xlim(-OBS_HALF_WIDTH, OBS_HALF_WIDTH)
    ax.set_ylim(-OBS_BEHIND, OBS_AHEAD)
    ax.set_aspect("auto")
    ax.axis("off")
    from PIL import Image  # matplotlib's own dependency

    rgb = Image.open(io.BytesIO(png_bytes(fig, 100))).convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="png", optimize=True)
    return buf.getvalue()
