"""Bird's-eye drawings of one record: the scene with the three trajectories, the conflict and
the critical agent (for review pictures and grid cells), and the observation view (only what a
policy may see at the anchor).

Plot frame: the ego frame at the anchor turned so that the ego drives up the page: plot
u = -y (metres, right of the ego is +u), w = x (metres ahead). Uses matplotlib's object API
(no pyplot state), so it is safe in worker processes and threads.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon

from cfpair.errors import ShardError
from cfpair.geometry.boxes import box_corners
from cfpair.records.schema import PairRecord, TrajectoryRecord, anchor_index

#: colours of the three roles and of the scene
COLOURS = {"expert": "#6b6b6b", "negative": "#d62728", "positive": "#2ca02c",
           "ego": "#1f4e9c", "agent": "#4c72b0", "critical": "#ff7f0e", "drivable": "#deded6",
           "lane": "#b9b9b0", "route": "#9ecae1", "vru": "#9467bd", "nomap": "#f3f0ea"}
#: classes drawn with a marker of a fixed on-screen size on top of their (small) box
VRU_MARKERS = {"pedestrian": "o", "cyclist": "^"}
#: observation view window (metres): lateral half-width and the span behind / ahead of the ego
OBS_HALF_WIDTH, OBS_BEHIND, OBS_AHEAD = 32.0, 16.0, 48.0
#: marker shape of the whole-second ticks of each role
TICK_MARKERS = {"expert": "o", "negative": "o", "positive": "D"}
#: the negative is drawn wider than the positive, so a positive on the same path shows inside it
ROLE_WIDTHS = {"expert": 7.0, "negative": 3.4, "positive": 1.6}


def _uv(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame (x, y) to plot (u, w)."""
    return -np.asarray(y, np.float64), np.asarray(x, np.float64)


def _flat(poly: list[float]) -> np.ndarray:
    return np.asarray(poly, np.float64).reshape(-1, 2)


def _box(ax: Axes, x: float, y: float, yaw: float, length: float, width: float,
         face: str, edge: str, alpha: float = 0.9, lw: float = 1.0, ls: str = "-",
         z: float = 3.0, heading: bool = True, gid: str | None = None) -> None:
    corners = box_corners(x, y, yaw, length, width)
    u, w = _uv(corners[:, 0], corners[:, 1])
    ax.add_patch(MplPolygon(np.stack([u, w], -1), closed=True, facecolor=face,
                            edgecolor=edge, alpha=alpha, lw=lw, ls=ls, zorder=z, gid=gid))
    if heading:  # a short tick from the centre toward the front shows the heading
        fu, fw = _uv(x + 0.5 * length * np.cos(yaw), y + 0.5 * length * np.sin(yaw))
        cu, cw = _uv(x, y)
        ax.plot([cu, fu], [cw, fw], color=edge, lw=lw, zorder=z + 0.1)


def check_drawable(rec: PairRecord) -> None:
    """Raise :class:`ShardError` naming the pair when its arrays cannot be drawn (a row that
    passed the schema but not ``cfpair validate``): empty or ragged trajectories, agent or
    history series whose length differs from the context's time axis."""
    c = rec.context
    n = len(c.t)
    problems = []
    if n == 0:
        problems.append("the context has no time steps")
    for role in ("expert", "negative", "positive"):
        tr = getattr(rec, role)
        lens = {len(getattr(tr, k)) for k in ("t", "x", "y", "yaw", "v")}
        if len(lens) != 1 or 0 in lens:
            problems.append(f"{role} trajectory has series of lengths {sorted(lens)}")
    h = c.ego_history
    if len({len(getattr(h, k)) for k in ("t", "x", "y", "yaw", "v", "valid")}) != 1:
        problems.append("ego history series differ in length")
    for a in c.agents:
        if {len(getattr(a, k)) for k in ("x", "y", "yaw", "vx", "vy", "valid")} != {n}:
            problems.append(f"agent {a.id!r} series do not match the {n} context steps")
            break
    if problems:
        raise ShardError(f"pair {rec.pair_id}: cannot draw: {'; '.join(problems)} "
                         "(run cfpair validate)")


def has_map(rec: PairRecord) -> bool:
    """Whether the record carries any road geometry to draw."""
    mp = rec.context.map
    return bool(mp.available and (mp.drivable or mp.lanes or mp.centerlines))


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


def draw_agents(ax: Axes, rec: PairRecord, critical: str | None, trail_s: float = 1.0,
                review: bool = True) -> None:
    """Agents at the anchor as boxes (critical in orange, with its future dotted) and a trail of
    their past; with ``review`` pedestrians and cyclists are purple and get a marker of a fixed
    on-screen size, so they stay visible however far the view is zoomed out (the observation
    image keeps one colour for every agent)."""
    c = rec.context
    k = anchor_index(c.t)
    t = np.asarray(c.t)
    past = (t >= -trail_s) & (t <= 0)
    for a in c.agents:
        if not a.valid[k]:
            continue
        crit = a.id == critical
        vru = review and a.cls in VRU_MARKERS
        colour = COLOURS["critical"] if crit else COLOURS["vru"] if vru else COLOURS["agent"]
        v = np.asarray(a.valid) & past
        if v.sum() > 1:
            u, w = _uv(np.asarray(a.x)[v], np.asarray(a.y)[v])
            ax.plot(u, w, color=colour, lw=1.0, alpha=0.6, zorder=2)
        _box(ax, a.x[k], a.y[k], a.yaw[k], a.length, a.width, colour, "black" if crit else
             colour, alpha=0.85 if crit else 0.55, lw=1.6 if crit else 0.8)
        if vru:
            u, w = _uv(a.x[k], a.y[k])
            ax.scatter([u], [w], marker=VRU_MARKERS[a.cls], s=70 if crit else 45,
                       color=colour, edgecolor="black", lw=1.2 if crit else 0.6, zorder=3.5)
        if crit:  # where the critical agent goes: dotted
            fut = np.asarray(a.valid) & (t >= 0)
            u, w = _uv(np.asarray(a.x)[fut], np.asarray(a.y)[fut])
            ax.plot(u, w, color=colour, lw=1.4, ls=":", zorder=2)


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


def second_ticks(tr: TrajectoryRecord) -> np.ndarray:
    """Indices of the states at whole seconds after the anchor (1 s, 2 s, ...)."""
    t = np.asarray(tr.t)
    whole = np.arange(1.0, t.max() + 1e-6)
    return np.unique(np.abs(t[None, :] - whole[:, None]).argmin(1)).astype(int)


def draw_trajectories(ax: Axes, rec: PairRecord, ticks: bool = True) -> None:
    """Expert (wide grey, underneath), negative (red) and positive (green, thinner, on top)
    with a marker at every whole second, so equal paths at different speeds show as markers
    at different places."""
    for role in ("expert", "negative", "positive"):
        tr = getattr(rec, role)
        u, w = _uv(tr.x, tr.y)
        z = {"expert": 4.2, "negative": 4.4, "positive": 4.6}[role]
        ax.plot(u, w, color=COLOURS[role], lw=ROLE_WIDTHS[role], zorder=z,
                alpha=0.35 if role == "expert" else 1.0, solid_capstyle="round",
                gid=f"path-{role}")
        if ticks:
            i = second_ticks(tr)
            ax.scatter(u[i], w[i], marker=TICK_MARKERS[role], s=30 if role == "negative" else 20,
                       color=COLOURS[role], edgecolor="white", lw=0.7, zorder=z + 0.05,
                       alpha=0.6 if role == "expert" else 1.0, gid=f"ticks-{role}")


def snapshot_time(rec: PairRecord) -> float:
    """When the ego boxes are drawn: the negative's first conflict, else the end of the plan."""
    f = rec.negative.facts
    return float(f.first_conflict_time_s if f.first_conflict_time_s is not None
                 else rec.negative.t[-1])


def ego_centre_at(rec: PairRecord, role: str, time_s: float) -> tuple[float, float, float]:
    """(x, y, yaw) of the ego box centre of ``role`` at ``time_s``."""
    tr = getattr(rec, role)
    i = int(np.argmin(np.abs(np.asarray(tr.t) - time_s)))
    off = rec.context.ego_rear_to_center
    return (tr.x[i] + off * np.cos(tr.yaw[i]), tr.y[i] + off * np.sin(tr.yaw[i]), tr.yaw[i])


def critical_at(rec: PairRecord, time_s: float) -> tuple[float, float, float, Any] | None:
    """(x, y, yaw, agent) of the critical agent at ``time_s`` where it is observed then."""
    crit = rec.negative.facts.critical_agent_id
    c = rec.context
    k = int(np.argmin(np.abs(np.asarray(c.t) - time_s)))
    for a in c.agents:
        if a.id == crit and a.valid[k]:
            return a.x[k], a.y[k], a.yaw[k], a
    return None


def draw_snapshot(ax: Axes, rec: PairRecord) -> None:
    """At :func:`snapshot_time`: the negative's ego box (red, dashed), the positive's (green,
    dashed) and the critical agent's (orange, dashed), with an X where the negative conflicts."""
    ts = snapshot_time(rec)
    c = rec.context
    for role in ("negative", "positive"):
        x, y, yaw = ego_centre_at(rec, role, ts)
        _box(ax, x, y, yaw, c.ego_length, c.ego_width, COLOURS[role], COLOURS[role],
             alpha=0.25, lw=0.0, z=5.4, heading=False)
        _box(ax, x, y, yaw, c.ego_length, c.ego_width, "none", COLOURS[role], alpha=1.0,
             lw=1.8, ls="--", z=5.5, gid=f"snapshot-{role}")
    if rec.negative.facts.first_conflict_time_s is None:
        return
    ex, ey, _ = ego_centre_at(rec, "negative", ts)
    mark = (ex, ey)
    at = critical_at(rec, ts)
    if at is not None:
        x, y, yaw, a = at
        _box(ax, x, y, yaw, a.length, a.width, "none", COLOURS["critical"], alpha=1.0, lw=1.8,
             ls="--", z=5.5, gid="snapshot-critical")
        mark = ((ex + x) / 2, (ey + y) / 2)
    u, w = _uv(*mark)
    ax.scatter([u], [w], marker="X", s=90, color=COLOURS["negative"], edgecolor="black",
               lw=0.8, zorder=7)


def content_points(rec: PairRecord) -> tuple[np.ndarray, np.ndarray]:
    """Plot (u, w) of everything a review picture must show: the ego box, its last half second, the
    three trajectories, the critical agent now and at the snapshot, the snapshot boxes."""
    c = rec.context
    xs: list[float] = [c.ego_rear_to_center - c.ego_length / 2,
                       c.ego_rear_to_center + c.ego_length / 2]
    ys: list[float] = [0.0, 0.0]
    for role in ("expert", "negative", "positive"):
        tr = getattr(rec, role)
        xs += tr.x
        ys += tr.y
    h = c.ego_history
    for t, v, x, y in zip(h.t, h.valid, h.x, h.y, strict=True):
        if v and t >= -0.5:
            xs.append(x)
            ys.append(y)
    ts = snapshot_time(rec)
    for time_s in (0.0, ts):
        at = critical_at(rec, time_s)
        if at is not None:
            xs.append(at[0])
            ys.append(at[1])
    return _uv(np.asarray(xs), np.asarray(ys))


def content_extent(rec: PairRecord, aspect: float, pad: float = 5.0,
                   least: float = 20.0) -> tuple[float, float, float, float]:
    """(u0, u1, w0, w1) holding :func:`content_points` with ``pad`` metres around, at least
    ``least`` metres across, widened along one axis to the height / width ratio ``aspect``
    of the axes, so the drawing fills its axes with no empty band."""
    u, w = content_points(rec)
    cu, cw = (u.min() + u.max()) / 2, (w.min() + w.max()) / 2
    du = max(u.max() - u.min() + 2 * pad, least)
    dw = max(w.max() - w.min() + 2 * pad, least)
    if dw / du > aspect:
        du = dw / aspect
    else:
        dw = du * aspect
    return cu - du / 2, cu + du / 2, cw - dw / 2, cw + dw / 2


def content_aspect(rec: PairRecord, lo: float = 0.75, hi: float = 1.9, pad: float = 5.0,
                   least: float = 20.0) -> float:
    """Height / width of the padded content (as in :func:`content_extent`), clamped to
    [``lo``, ``hi``] so a long straight drive still gets a usable width."""
    u, w = content_points(rec)
    du = max(u.max() - u.min() + 2 * pad, least)
    dw = max(w.max() - w.min() + 2 * pad, least)
    return float(np.clip(dw / du, lo, hi))


def draw_scene(ax: Axes, rec: PairRecord, aspect: float | None = None) -> None:
    """The full bird's-eye drawing of one pair on ``ax`` cropped to its content (no legend, no
    text): ``aspect`` is the height / width of ``ax`` (default: measured from ``ax``)."""
    check_drawable(rec)
    crit = rec.negative.facts.critical_agent_id
    if has_map(rec):
        draw_map(ax, rec)
    else:
        ax.set_facecolor(COLOURS["nomap"])
    draw_agents(ax, rec, crit)
    draw_trajectories(ax, rec)
    draw_ego(ax, rec)
    draw_snapshot(ax, rec)
    if aspect is None:
        pos = ax.get_position()
        fw, fh = ax.figure.get_size_inches()
        aspect = (pos.height * fh) / (pos.width * fw)
    u0, u1, w0, w1 = content_extent(rec, aspect)
    ax.set_xlim(u0, u1)
    ax.set_ylim(w0, w1)
    ax.set_aspect("equal", adjustable="datalim")


def no_map_note(ax: Axes, rec: PairRecord, fontsize: float = 9.0) -> None:
    """A boxed note in the axes when the source has no map, instead of a blank background."""
    if has_map(rec):
        return
    ax.text(0.02, 0.98, f"no map in this source ({rec.provenance.source}):\nroad not drawn",
            transform=ax.transAxes, ha="left", va="top", fontsize=fontsize, color="#444444",
            zorder=8, bbox={"boxstyle": "round", "fc": "white", "ec": "#999999", "alpha": 0.9},
            gid="no-map")


def png_bytes(fig: Figure, dpi: int) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    # level 3 instead of PIL's 6: about a tenth of the encode time for a few % more bytes
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def review_png(rec: PairRecord, dpi: int = 110) -> bytes:
    """One pair as a PNG (see :mod:`cfpair.render.pair_figure`; kept here for callers)."""
    from cfpair.render.pair_figure import review_png as draw

    return draw(rec, dpi)


def observation_png(rec: PairRecord, pixels: int = 448) -> bytes:
    """What a policy may see at the anchor, as a square PNG of ``pixels`` x ``pixels``: map,
    agents at t = 0 with a 1 s trail (no ids, no critical mark), the ego and its history, in a
    fixed ego-centred window. No future, no trajectories, no label: this is the image that
    exports use where a scene has no camera."""
    check_drawable(rec)
    fig = Figure(figsize=(pixels / 100, pixels / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor("white")
    draw_map(ax, rec)
    draw_agents(ax, rec, None, review=False)
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
