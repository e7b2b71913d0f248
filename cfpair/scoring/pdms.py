"""PDMS scoring of K candidate futures at once (NAVSIM v1.1 weights), metrics as registered
functions over one shared struct of arrays (waymax-style).

PDMS = NC * DAC * (5 * EP + 5 * TTC + 2 * C) / 12 over 41 states at 0.1 s (4 s). The rules
follow NAVSIM v1.1's ``PDMScorer`` except for the deviations listed in ``DEVIATIONS`` (also in
the README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

from cfpair.geometry.boxes import box_corners
from cfpair.geometry.collision import BoxSeq, collisions
from cfpair.geometry.comfort import comfort_of_path
from cfpair.geometry.progress import project_to_polyline
from cfpair.geometry.ttc import projected_ego_hits
from cfpair.labels.models import CollisionType
from cfpair.scoring.boxes import agent_boxes, angle_to, ego_boxes, segment_hits_box
from cfpair.scoring.context import DT, EvalContext
from cfpair.types import F64, Bool

I64 = np.ndarray
#: collision_type indexes this tuple (0 = none)
COLLISION_TYPES = tuple(c.value for c in CollisionType)
_STOPPED_EGO, _STOPPED_TRACK, _FRONT, _REAR, _LATERAL = (
    COLLISION_TYPES.index(n) for n in ("stopped_ego", "stopped_track", "active_front",
                                       "active_rear", "active_lateral"))
STOPPED_SPEED = 0.05
TTC_STOPPED_SPEED = 0.005
STATIC_CLASSES = ("static",)
WEIGHTS = {"ep": 5.0, "ttc": 5.0, "comfort": 2.0}

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

    nc in {0, 0.5, 1}; dac, ttc, comfort in {0, 1}; ep in [0, 1]; pdms in [0, 1];
    collides: any contact at all; at_fault: an at-fault contact; collision_type: index into
    COLLISION_TYPES of the first at-fault contact (else of the first contact; 0 = none);
    collision_step / collision_agent: that contact (-1 if none); ttc_step / ttc_agent: first
    TTC infraction (-1 if none); offroad_step: first step with a corner off the drivable area;
    offroad (K, T) per step; progress_m: metres along the reference path.
    """

    nc: F64
    dac: F64
    ttc: F64
    ep: F64
    comfort: F64
    pdms: F64
    collides: Bool
    at_fault: Bool
    collision_type: I64
    collision_step: I64
    collision_agent: I64
    ttc_step: I64
    ttc_agent: I64
    offroad: Bool
    offroad_step: I64
    progress_m: F64

    def take(self, i: int) -> dict[str, float | int | bool]:
        """Scalar values of candidate i (the (K,) fields)."""
        return {k: v[i].item() for k, v in vars(self).items() if v.ndim == 1}

    @property
    def risky(self) -> Bool:
        """(K,) a contact, a TTC infraction or a corner off the drivable area."""
        return risky(self.collides, self.ttc == 1, self.dac == 1)


def risky(collides: Bool | bool, ttc_ok: Bool | bool, drivable_ok: Bool | bool) -> Bool:
    """The one 'risky' predicate: a collision, a TTC violation or off the drivable area
    (arrays or the booleans of a stored Facts row)."""
    return np.asarray(collides) | ~np.asarray(ttc_ok) | ~np.asarray(drivable_ok)


@dataclass(frozen=True)
class Scene:
    """What every metric reads, computed once per call: states (K, T), boxes, corners
    (K, T, 4, 2), per-step off-road flags, agents and the progress reference line."""

    ctx: EvalContext
    x: F64
    y: F64
    yaw: F64
    v: F64
    line: F64
    ego: BoxSeq
    agents: BoxSeq
    agent_speed: F64
    corners: F64
    offroad: Bool
    is_static: Bool

    @property
    def k(self) -> int:
        """Number of candidates."""
        return int(self.x.shape[0])


Metric = Callable[[Scene, dict[str, np.ndarray]], dict[str, np.ndarray]]
#: metric name -> function(scene, results so far) -> new (K,) fields; run in this order
METRICS: dict[str, Metric] = {}


def metric(name: str) -> Callable[[Metric], Metric]:
    """Register a metric under ``name`` (runs after the ones registered before it)."""
    def deco(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn
    return deco


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


@metric("nc")
def no_at_fault_collisions(g: Scene, _: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NC: the first contact with each agent decides (later ones are ignored)."""
    k, agents, n = g.k, g.agents, g.agents.x.shape[0]
    nc = np.ones(k)
    at_fault = np.zeros(k, bool)
    ctype = np.zeros(k, np.int64)
    cstep = np.full(k, -1, np.int64)
    cagent = np.full(k, -1, np.int64)
    c = collisions(g.ego, agents) if n else None
    collides = c.any() if c is not None else np.zeros(k, bool)
    if c is not None and c.k.size:
        _, first = np.unique(c.k * n + c.n, return_index=True)
        ck, cn, cs = c.k[first], c.n[first], c.step[first]
        ev = g.v[ck, cs]
        ex, ey, eyaw = g.x[ck, cs], g.y[ck, cs], g.yaw[ck, cs]
        behind = angle_to(ex, ey, eyaw, agents.x[cn, cs], agents.y[cn, cs]) > np.deg2rad(150)
        fl, fr = g.corners[ck, cs, 0], g.corners[ck, cs, 3]
        front = segment_hits_box(fl, fr, agents.x[cn, cs], agents.y[cn, cs],
                                 agents.yaw[cn, cs], g.ctx.length[cn] / 2, g.ctx.width[cn] / 2)
        kind = np.where(ev <= STOPPED_SPEED, _STOPPED_EGO,
                        np.where((g.agent_speed[cn, cs] <= STOPPED_SPEED) | g.is_static[cn],
                                 _STOPPED_TRACK,
                                 np.where(behind, _REAR, np.where(front, _FRONT, _LATERAL))))
        lateral = kind == _LATERAL
        ml = np.zeros(kind.size, bool)
        ml[lateral] = multiple_lanes(g.ctx, g.corners[ck[lateral], cs[lateral]])
        fault = (kind == _FRONT) | (kind == _STOPPED_TRACK) | (lateral & (ml | g.offroad[ck, cs]))
        value = np.where(g.is_static[cn], 0.5, 0.0)
        # per candidate: first at-fault contact, else first contact
        order = np.lexsort((cn, cs, ~fault, ck))
        ks, idx = np.unique(ck[order], return_index=True)
        pick = order[idx]
        ctype[ks], cstep[ks], cagent[ks] = kind[pick], cs[pick], cn[pick]
        at_fault[ks] = fault[pick]
        np.minimum.at(nc, ck[fault], value[fault])
    return {"nc": nc, "collides": collides, "at_fault": at_fault, "collision_type": ctype,
            "collision_step": cstep, "collision_agent": cagent}


@metric("dac")
def drivable_area_compliance(g: Scene, _: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """DAC: 0 if any corner leaves the drivable area at any step."""
    off_any = g.offroad.any(axis=1)
    return {"dac": (~off_any).astype(float), "offroad": g.offroad,
            "offroad_step": np.where(off_any, np.argmax(g.offroad, axis=1), -1)}


@metric("ttc")
def time_to_collision(g: Scene, _: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TTC: NAVSIM's projected ego at +0, 0.3, 0.6, 0.9 s."""
    k, agents, n = g.k, g.agents, g.agents.x.shape[0]
    n_t = g.x.shape[1]
    ttc = np.ones(k)
    tstep = np.full(k, -1, np.int64)
    tagent = np.full(k, -1, np.int64)
    if n:
        h = projected_ego_hits(g.ego, g.v, agents, DT)
        keep = g.v[h.k, h.t] >= TTC_STOPPED_SPEED
        hk, ht, hj, hn = h.k[keep], h.t[keep], h.j[keep], h.n[keep]
        if hk.size:
            _, first = np.unique(hk * n + hn, return_index=True)   # first hit per (k, agent)
            hk, ht, hj, hn = hk[first], ht[first], hj[first], hn[first]
            ta = np.minimum(ht + 3 * hj, n_t - 1)
            ang = angle_to(g.x[hk, ht], g.y[hk, ht], g.yaw[hk, ht], agents.x[hn, ta],
                           agents.y[hn, ta])
            ml = multiple_lanes(g.ctx, g.corners[hk, ht])
            infr = (ang < np.deg2rad(30)) | ((ml | g.offroad[hk, ht]) & (ang <= np.deg2rad(150)))
            order = np.lexsort((hn[infr], ht[infr], hk[infr]))
            ik, it, inn = hk[infr][order], ht[infr][order], hn[infr][order]
            ks, idx = np.unique(ik, return_index=True)
            ttc[ks], tstep[ks], tagent[ks] = 0.0, it[idx], inn[idx]
    return {"ttc": ttc, "ttc_step": tstep, "ttc_agent": tagent}


@metric("ep")
def ego_progress(g: Scene, r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """EP: progress along the expert path, normalised by the expert's (row 0)."""
    ends = np.stack([g.ego.x[:, [0, -1]], g.ego.y[:, [0, -1]]], -1)
    arc, _ = project_to_polyline(ends, g.line)
    progress = np.maximum(arc[:, 1] - arc[:, 0], 0.0)
    multi = r["nc"] * r["dac"]
    ref = float(progress[0])   # row 0 is the logged expert
    ep = (np.clip(progress / ref, 0.0, 1.0) if ref > 5.0 else np.ones(g.k)) * (multi > 0)
    return {"ep": ep, "progress_m": progress}


@metric("comfort")
def comfort(g: Scene, _: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """C: NAVSIM's six savgol-filtered comfort checks."""
    return {"comfort": comfort_of_path(g.x, g.y, g.yaw, DT).ok.astype(float)}


def scene_of(ctx: EvalContext, x: F64, y: F64, yaw: F64, v: F64) -> Scene:
    """The shared arrays of one scoring call."""
    k, n_t = x.shape
    ego = ego_boxes(ctx, x, y, yaw)
    agents, a_speed, _ = agent_boxes(ctx)
    corners = box_corners(ego.x, ego.y, ego.yaw, ego.length, ego.width)   # (K, T, 4, 2)
    if ctx.drivable is not None:
        offroad = ~ctx.drivable.contains(corners).all(axis=-1)
    else:
        offroad = np.zeros((k, n_t), bool)
    return Scene(ctx, x, y, yaw, v, ctx.route, ego, agents, a_speed, corners, offroad,
                 np.isin(ctx.classes, STATIC_CLASSES))


def score_candidates(ctx: EvalContext, x: F64, y: F64, yaw: F64, v: F64) -> Scores:
    """Score K rear-axle futures (K, T) on the context's 0.1 s grid; row 0 must be the logged
    expert (EP reference); progress runs along ``ctx.route``."""
    g = scene_of(ctx, x, y, yaw, v)
    out: dict[str, np.ndarray] = {}
    for fn in METRICS.values():
        out.update(fn(g, out))
    out["pdms"] = out["nc"] * out["dac"] * sum(w * out[n] for n, w in WEIGHTS.items()) / 12
    return Scores(**out)
