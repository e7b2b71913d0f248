"""PDMS-style scoring of K candidate futures at once (NAVSIM v1.1 weights).

PDMS = NC * DAC * (5 * EP + 5 * TTC + 2 * C) / 12 over 41 states at 0.1 s (4 s). Every rule
follows ../shared/specs/navsim-format-and-pdms.md section 4 except for the deviations listed in
``DEVIATIONS`` (also in the README), which come from not having NAVSIM's metric cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from cfpair.counterfactual.context import DT, EvalContext
from cfpair.geometry.boxes import box_corners
from cfpair.geometry.collision import BoxSeq, collisions
from cfpair.geometry.comfort import comfort_of_path
from cfpair.geometry.progress import project_to_polyline
from cfpair.geometry.ttc import projected_ego_hits
from cfpair.types import F64, Bool

I64 = np.ndarray
COLLISION_TYPES = ("none", "stopped_ego", "stopped_track", "active_front", "active_rear",
                   "active_lateral")
STOPPED_SPEED = 0.05
TTC_STOPPED_SPEED = 0.005
STATIC_CLASSES = ("static",)

DEVIATIONS = (
    "Ego states come from cfpair's bicycle rollout with a pure-pursuit tracker, not NAVSIM's LQR.",
    "EP = min(progress / expert progress, 1) (1 when the expert moves <= 5 m; 0 where NC*DAC ="
    " 0): the logged expert plays PDM-Closed's role, as there is no metric cache. EP therefore"
    " does not depend on which other candidates are in the batch.",
    "Progress is measured along the expert's own path (extended straight), not along the PDM"
    " route centreline.",
    "The observation ends with the plan (41 states); NAVSIM's TTC also looks 0.9 s past it.",
    "No intersection layer: the TTC rule 'ego rear axle inside an intersection' is not applied;"
    " multiple-lanes and off-road still are.",
    "Drivable area is the union of the map's drivable polygons (a corner on a shared edge of two"
    " roadblocks counts as drivable); a scene without a map gets DAC = 1 and says so.",
    "Comfort uses finite-difference accelerations of the rolled-out poses (NAVSIM's simulator"
    " writes its own), with NAVSIM's savgol filters and strict bounds.",
    "Agents are non-reactive log replays resampled to 0.1 s (as in NAVSIM); a class 'static'"
    " object caps NC at 0.5, any other class at 0.",
)


@dataclass(frozen=True)
class Scores:
    """Per-candidate (K,) sub-scores and the events behind them.

    nc in {0, 0.5, 1}; dac, ttc, comfort in {0, 1}; ep in [0, 1]; score in [0, 1];
    collides: any contact at all; at_fault: an at-fault contact; collision_type: index into
    COLLISION_TYPES of the first at-fault contact (else of the first contact; 0 = none);
    collision_step / collision_agent: that contact (-1 if none); ttc_step / ttc_agent: first
    TTC infraction (-1 if none); offroad_step: first step with a corner off the drivable area;
    offroad (K, T) per step; progress: metres along the reference path.
    """

    nc: F64
    dac: F64
    ttc: F64
    ep: F64
    comfort: F64
    score: F64
    collides: Bool
    at_fault: Bool
    collision_type: I64
    collision_step: I64
    collision_agent: I64
    ttc_step: I64
    ttc_agent: I64
    offroad: Bool
    offroad_step: I64
    progress: F64

    def take(self, i: int) -> dict[str, float | int | bool]:
        """Scalar values of candidate i."""
        return {k: v[i].item() for k, v in vars(self).items() if v.ndim == 1}


def ego_boxes(ctx: EvalContext, x: F64, y: F64, yaw: F64) -> BoxSeq:
    """Ego boxes (K, T) from rear-axle poses."""
    scn = ctx.scenario
    off = scn.ego_rear_to_center
    return BoxSeq(x + off * np.cos(yaw), y + off * np.sin(yaw), yaw, scn.ego_length,
                  scn.ego_width)


def agent_boxes(ctx: EvalContext) -> tuple[BoxSeq, F64, F64]:
    """Agent boxes over the future (N, T), their speed (N, T) and heading (N, T)."""
    a, valid = ctx.agents_future()
    return (BoxSeq(a["x"], a["y"], a["yaw"], ctx.length, ctx.width, valid),
            np.hypot(a["vx"], a["vy"]), a["yaw"])


def _angle_to(px: F64, py: F64, yaw: F64, qx: F64, qy: F64) -> F64:
    """Angle (rad, [0, pi]) between the heading at p and the vector p -> q."""
    return np.abs(np.arctan2(np.sin(np.arctan2(qy - py, qx - px) - yaw),
                             np.cos(np.arctan2(qy - py, qx - px) - yaw)))


def segment_hits_box(p0: F64, p1: F64, cx: F64, cy: F64, yaw: F64, hl: F64, hw: F64) -> Bool:
    """Does segment p0-p1 (..., 2) touch the oriented box? (Liang-Barsky in the box frame.)"""
    c, s = np.cos(yaw), np.sin(yaw)

    def local(p: F64) -> tuple[F64, F64]:
        dx, dy = p[..., 0] - cx, p[..., 1] - cy
        return c * dx + s * dy, -s * dx + c * dy

    ax, ay = local(p0)
    bx, by = local(p1)
    dx, dy = bx - ax, by - ay
    lo, hi = np.zeros_like(ax), np.ones_like(ax)
    ok = np.ones(ax.shape, bool)
    for d, a, h in ((dx, ax, hl), (-dx, -ax, hl), (dy, ay, hw), (-dy, -ay, hw)):
        # constraint: a + d * u <= h
        par = np.abs(d) < 1e-12
        ok &= ~(par & (a > h + 1e-9))
        u = np.where(par, 0.0, (h - a) / np.where(par, 1.0, d))
        hi = np.where(~par & (d > 0), np.minimum(hi, u), hi)
        lo = np.where(~par & (d < 0), np.maximum(lo, u), lo)
    return ok & (lo <= hi + 1e-12)


def multiple_lanes(ctx: EvalContext, corners: F64) -> Bool:
    """NAVSIM MULTIPLE_LANES for boxes given by corners (M, 4, 2): more than one lane polygon
    holds a corner and no single lane holds all four."""
    m = corners.shape[0]
    if not ctx.lanes or m == 0:
        return np.zeros(m, bool)
    touched = np.zeros(m, np.int64)
    whole = np.zeros(m, bool)
    for lane in ctx.lanes:
        inside = shapely.intersects_xy(lane, corners[..., 0], corners[..., 1])
        touched += inside.any(axis=1)
        whole |= inside.all(axis=1)
    return (touched > 1) & ~whole


def score_candidates(ctx: EvalContext, x: F64, y: F64, yaw: F64, v: F64, line: F64) -> Scores:
    """Score K rear-axle futures (K, T) on the context's 0.1 s grid; row 0 must be the logged
    expert (EP reference); ``line`` (M, 2) is the reference path for progress (the expert's,
    extended: ``Candidates.path.xy``)."""
    k, n_t = x.shape
    ego = ego_boxes(ctx, x, y, yaw)
    agents, a_speed, _ = agent_boxes(ctx)
    n = agents.x.shape[0]
    corners = box_corners(ego.x, ego.y, ego.yaw, ego.length, ego.width)   # (K, T, 4, 2)
    if ctx.drivable is not None:
        offroad = ~ctx.drivable.contains(corners).all(axis=-1)
    else:
        offroad = np.zeros((k, n_t), bool)
    is_static = np.isin(ctx.classes, STATIC_CLASSES)

    # --- NC: the first contact with each agent decides (later ones are ignored) ---------------
    nc = np.ones(k)
    at_fault = np.zeros(k, bool)
    ctype = np.zeros(k, np.int64)
    cstep = np.full(k, -1, np.int64)
    cagent = np.full(k, -1, np.int64)
    c = collisions(ego, agents) if n else None
    collides = c.any() if c is not None else np.zeros(k, bool)
    if c is not None and c.k.size:
        _, first = np.unique(c.k * n + c.n, return_index=True)
        ck, cn, cs = c.k[first], c.n[first], c.step[first]
        ev = v[ck, cs]
        ex, ey, eyaw = x[ck, cs], y[ck, cs], yaw[ck, cs]
        behind = _angle_to(ex, ey, eyaw, agents.x[cn, cs], agents.y[cn, cs]) > np.deg2rad(150)
        fl, fr = corners[ck, cs, 0], corners[ck, cs, 3]
        front = segment_hits_box(fl, fr, agents.x[cn, cs], agents.y[cn, cs],
                                 agents.yaw[cn, cs], ctx.length[cn] / 2, ctx.width[cn] / 2)
        kind = np.where(ev <= STOPPED_SPEED, 1,
                        np.where((a_speed[cn, cs] <= STOPPED_SPEED) | is_static[cn], 2,
                                 np.where(behind, 4, np.where(front, 3, 5))))
        lateral = kind == 5
        ml = np.zeros(kind.size, bool)
        ml[lateral] = multiple_lanes(ctx, corners[ck[lateral], cs[lateral]])
        fault = (kind == 3) | (kind == 2) | (lateral & (ml | offroad[ck, cs]))
        value = np.where(is_static[cn], 0.5, 0.0)
        # per candidate: first at-fault contact, else first contact
        order = np.lexsort((cn, cs, ~fault, ck))
        ks, idx = np.unique(ck[order], return_index=True)
        pick = order[idx]
        ctype[ks], cstep[ks], cagent[ks] = kind[pick], cs[pick], cn[pick]
        at_fault[ks] = fault[pick]
        np.minimum.at(nc, ck[fault], value[fault])

    # --- TTC: NAVSIM's projected ego at +0, 0.3, 0.6, 0.9 s ------------------------------------
    ttc = np.ones(k)
    tstep = np.full(k, -1, np.int64)
    tagent = np.full(k, -1, np.int64)
    if n:
        h = projected_ego_hits(ego, v, agents, DT)
        keep = v[h.k, h.t] >= TTC_STOPPED_SPEED
        hk, ht, hj, hn = h.k[keep], h.t[keep], h.j[keep], h.n[keep]
        if hk.size:
            _, first = np.unique(hk * n + hn, return_index=True)   # first hit per (k, agent)
            hk, ht, hj, hn = hk[first], ht[first], hj[first], hn[first]
            ta = np.minimum(ht + 3 * hj, n_t - 1)
            ang = _angle_to(x[hk, ht], y[hk, ht], yaw[hk, ht], agents.x[hn, ta],
                            agents.y[hn, ta])
            ml = multiple_lanes(ctx, corners[hk, ht])
            infr = (ang < np.deg2rad(30)) | ((ml | offroad[hk, ht]) & (ang <= np.deg2rad(150)))
            order = np.lexsort((hn[infr], ht[infr], hk[infr]))
            ik, it, inn = hk[infr][order], ht[infr][order], hn[infr][order]
            ks, idx = np.unique(ik, return_index=True)
            ttc[ks], tstep[ks], tagent[ks] = 0.0, it[idx], inn[idx]

    dac = (~offroad.any(axis=1)).astype(float)
    off_any = offroad.any(axis=1)
    offroad_step = np.where(off_any, np.argmax(offroad, axis=1), -1)

    # --- EP: progress along the expert path, normalised over the candidate set --------------
    ends = np.stack([ego.x[:, [0, -1]], ego.y[:, [0, -1]]], -1)
    arc, _ = project_to_polyline(ends, line)
    progress = np.maximum(arc[:, 1] - arc[:, 0], 0.0)
    multi = nc * dac
    ref = float(progress[0])   # row 0 is the logged expert
    ep = (np.clip(progress / ref, 0.0, 1.0) if ref > 5.0 else np.ones(k)) * (multi > 0)

    comf = comfort_of_path(x, y, yaw, DT).ok.astype(float)
    score = multi * (5 * ep + 5 * ttc + 2 * comf) / 12
    return Scores(nc, dac, ttc, ep, comf, score, collides, at_fault, ctype, cstep, cagent,
                  tstep, tagent, offroad, offroad_step, progress)

