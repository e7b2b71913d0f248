"""PDMS scoring of K ego futures at once, following NAVSIM v1.1's ``PDMScorer``; the metrics are
small registered functions over one shared struct of arrays (waymax-style).

PDMS = NC * DAC * (5 * EP + 5 * TTC + 2 * C) / 12 over 41 states at 0.1 s (4 s). Where a scene
has no map (DeepAccident) DAC is not evaluated: it is NaN here (null in the record, with
``dac_evaluated`` False) and the formula reads PDMS = NC * (5 * EP + 5 * TTC + 2 * C) / 12.
Every remaining deliberate difference from NAVSIM is in ``DEVIATIONS`` (and the README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shapely

from cfpair.geometry.boxes import box_corners
from cfpair.geometry.collision import BoxSeq, collisions
from cfpair.geometry.comfort import comfort, comfort_of_path
from cfpair.geometry.progress import project_to_polyline
from cfpair.records.label import CollisionType
from cfpair.scoring.boxes import agent_boxes, ego_boxes, segment_hits_box
from cfpair.scoring.context import DT, EvalContext
from cfpair.types import F64, Bool

I64 = np.ndarray
#: collision_type indexes this tuple (0 = none)
COLLISION_TYPES = tuple(c.value for c in CollisionType)
_STOPPED_EGO, _STOPPED_TRACK, _FRONT, _REAR, _LATERAL = (
    COLLISION_TYPES.index(n) for n in ("stopped_ego", "stopped_track", "active_front",
                                       "active_rear", "active_lateral"))
STOPPED_SPEED = 0.05           # m/s, ego or track "stopped" (inclusive)
TTC_STOPPED_SPEED = 0.005      # m/s, TTC skips steps with the ego slower than this (strict)
TTC_OFFSETS = (0, 3, 6, 9)     # steps the ego is projected ahead for TTC (0 .. 0.9 s)
AHEAD_DEG, BEHIND_DEG = 30.0, 150.0
PROGRESS_THRESHOLD_M = 5.0     # EP is 1 below this masked reference progress (strict >)
STATIC_CLASSES = ("static",)   # NAVSIM's non-agent objects: NC 0.5, always a stopped track
WEIGHTS = {"ep": 5.0, "ttc": 5.0, "comfort": 2.0}

#: Deliberate differences from NAVSIM v1.1's scoring of the same poses, each with its measured
#: effect (``benchmarks/deviations.py`` on the default synthetic run: 108 pairs, 324
#: trajectories; BENCHMARKS.md "Scoring"). The states scored are NAVSIM's own (its tracker on
#: the 8 poses, ``cfpair.scoring.navsim_tracker``); the exact view is kept beside it.
DEVIATIONS = (
    "PDM-Closed is not run (no metric cache): the logged expert's poses, tracked like any"
    " candidate, are the EP reference row. Effect: EP and PDMS of a candidate whose progress"
    " lies between the expert's and PDM-Closed's; not measurable without NAVSIM's cache.",
    "Progress runs along the expert's own path (extended straight 250 m), not the PDM route"
    " centreline. Effect: PDMS changes by > 0.01 for 0.0 % of trajectories when the on-route"
    " lane centreline is used instead.",
    "Drivable area is the union of the map's drivable polygons: a corner exactly on a shared"
    " edge of two roadblocks counts as drivable (NAVSIM: off-road). Effect: measure zero"
    " (no such corner in the run).",
    "No intersection layer: TTC's 'ego rear axle inside an intersection' clause is not"
    " applied (multiple lanes and off-road are). Effect: none on synthetic maps (they have no"
    " intersection layer); on nuPlan maps TTC may be 1 where NAVSIM says 0.",
    "The initial ego state is the logged speed with v_y = a_y = 0 and a_x the speed's first"
    " difference (NAVSIM: the logged ego_dynamic_state). Effect: with a_x = 0 instead,"
    " comfort flips for 0.6 % and PDMS moves by > 0.01 for 1.5 % of trajectories.",
    "Agents are cfpair's 0.1 s resampling of the log (NAVSIM interpolates its 2 Hz annotations"
    " the same way); a track seen in one frame only is not replicated over all 51 maps."
    " Effect: none on sources logged at 10 Hz (synthetic, DeepAccident, CARLA).",
    "Agent classes: 'static' is NAVSIM's non-agent object (NC 0.5); every other class,"
    " 'unknown' included, is an agent (NC 0). Effect: none on synthetic data.",
    "A trajectory whose simulation is not finite (e.g. poses of 1e300 m) scores 0 in every"
    " sub-score with safety score 0 (NAVSIM raises and leaves the scene out of its mean)."
    " Effect: none on generated candidates (all finite); a reward sees the worst score.",
)


@dataclass(frozen=True)
class EgoStates:
    """Ego states (K, T) on the 0.1 s grid: rear-axle x, y, heading, speed hypot(v_x, v_y);
    ax, ay the simulator's accelerations (NAVSIM's view) or None, then comfort reads the
    finite-difference accelerations of the poses (cfpair's exact rollouts)."""

    x: F64
    y: F64
    yaw: F64
    speed: F64
    ax: F64 | None = None
    ay: F64 | None = None

    def select(self, rows: np.ndarray) -> EgoStates:
        """The states of ``rows`` (contiguous copies)."""
        return EgoStates(self.x[rows], self.y[rows], self.yaw[rows], self.speed[rows],
                         None if self.ax is None else self.ax[rows],
                         None if self.ay is None else self.ay[rows])

    @classmethod
    def from_navsim(cls, s: F64) -> EgoStates:
        """From NAVSIM's (K, 41, 11) simulated states."""
        return cls(s[..., 0], s[..., 1], s[..., 2], np.hypot(s[..., 3], s[..., 4]), s[..., 5],
                   s[..., 6])


@dataclass(frozen=True)
class Scores:
    """Per-candidate (K,) sub-scores and the events behind them.

    nc in {0, 0.5, 1}; dac, ttc, comfort in {0, 1} (dac NaN: no map, not evaluated); ep in
    [0, 1]; pdms in [0, 1]; collides: any contact at all; at_fault: an at-fault contact;
    collision_type: index into COLLISION_TYPES of the first at-fault contact (else of the
    first contact; 0 = none); collision_step / collision_agent: that contact (-1 if none);
    ttc_step / ttc_agent: first TTC infraction (-1 if none); offroad_step: first step with a
    corner off the drivable area; offroad (K, T) per step; progress_m: metres along the route.
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

    def select(self, rows: np.ndarray) -> Scores:
        """The scores of ``rows`` only (every field indexed along its candidate axis)."""
        return Scores(**{k: v[rows] for k, v in vars(self).items()})

    @property
    def risky(self) -> Bool:
        """(K,) a contact, a TTC infraction or a corner off the drivable area."""
        return risky(self.collides, self.ttc == 1, self.dac != 0)

    @property
    def safe(self) -> Bool:
        """(K,) no contact at all, NC = TTC = 1 and DAC = 1 (or not evaluated)."""
        return ~self.collides & (self.nc == 1) & (self.ttc == 1) & (self.dac != 0)


def risky(collides: Bool | bool, ttc_ok: Bool | bool, drivable_ok: Bool | bool) -> Bool:
    """The one 'risky' predicate: a collision, a TTC violation or off the drivable area
    (arrays or the booleans of a stored Facts row)."""
    return np.asarray(collides) | ~np.asarray(ttc_ok) | ~np.asarray(drivable_ok)


@dataclass(frozen=True)
class Scene:
    """What every metric reads, computed once per call: states (K, T), boxes, corners
    (K, T, 4, 2), per-step off-road flags, agents over the plan (N, T) and the observation
    (N, O), each track's first-observation 'stopped' flag and static flag."""

    ctx: EvalContext
    ego_states: EgoStates
    ego: BoxSeq
    agents: BoxSeq
    observed: BoxSeq
    corners: F64
    offroad: Bool
    track_stopped: Bool
    is_static: Bool
    cache: dict[str, object] = field(default_factory=dict)   # shared between metrics

    @property
    def k(self) -> int:
        """Number of candidates."""
        return int(self.ego_states.x.shape[0])


Metric = Callable[[Scene, dict[str, np.ndarray]], dict[str, np.ndarray]]
#: metric name -> function(scene, results so far) -> new (K,) fields; run in this order
METRICS: dict[str, Metric] = {}


def metric(name: str) -> Callable[[Metric], Metric]:
    """Register a metric under ``name`` (runs after the ones registered before it)."""
    def deco(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn
    return deco


def relative_angle(px: F64, py: F64, yaw: F64, qx: F64, qy: F64) -> F64:
    """nuPlan's get_agent_relative_angle: arccos of the heading at p dotted with the unit
    vector p -> q, unclipped (NaN when q = p, as NAVSIM)."""
    dx, dy = qx - px, qy - py
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.hypot(dx, dy)
        return np.arccos((np.cos(yaw) * dx + np.sin(yaw) * dy) / n)


def multiple_lanes(ctx: EvalContext, corners: F64) -> Bool:
    """NAVSIM MULTIPLE_LANES for boxes given by corners (M, 4, 2): more than one lane polygon
    strictly contains a corner and no single lane contains all four."""
    m = corners.shape[0]
    if not ctx.lanes or m == 0:
        return np.zeros(m, bool)
    touched = np.zeros(m, np.int64)
    whole = np.zeros(m, bool)
    for lane in ctx.lanes:
        inside = shapely.contains_xy(lane, corners[..., 0], corners[..., 1])
        touched += inside.any(axis=1)
        whole |= inside.all(axis=1)
    return (touched > 1) & ~whole


@metric("nc")
def no_at_fault_collisions(g: Scene, _: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NC: the first contact with each track decides; typed as NAVSIM does, the track being
    'stopped' by its speed when first observed (unique_objects), not at the contact."""
    k, agents, n, e = g.k, g.agents, g.agents.x.shape[0], g.ego_states
    nc = np.ones(k)
    at_fault = np.zeros(k, bool)
    ctype = np.zeros(k, np.int64)
    cstep = np.full(k, -1, np.int64)
    cagent = np.full(k, -1, np.int64)
    c = collisions(g.ego, agents) if n else None
    g.cache["contacts"] = c      # TTC's unprojected (offset 0) hits are exactly these
    collides = c.any() if c is not None else np.zeros(k, bool)
    if c is not None and c.k.size:
        _, first = np.unique(c.k * n + c.n, return_index=True)
        ck, cn, cs = c.k[first], c.n[first], c.step[first]
        ang = relative_angle(e.x[ck, cs], e.y[ck, cs], e.yaw[ck, cs], agents.x[cn, cs],
                             agents.y[cn, cs])
        fl, fr = g.corners[ck, cs, 0], g.corners[ck, cs, 3]
        front = segment_hits_box(fl, fr, agents.x[cn, cs], agents.y[cn, cs],
                                 agents.yaw[cn, cs], g.ctx.length[cn] / 2, g.ctx.width[cn] / 2)
        kind = np.where(e.speed[ck, cs] <= STOPPED_SPEED, _STOPPED_EGO,
                        np.where(g.track_stopped[cn], _STOPPED_TRACK,
                                 np.where(ang > np.deg2rad(BEHIND_DEG), _REAR,
                                          np.where(front, _FRONT, _LATERAL))))
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
    """DAC: 0 if any corner leaves the drivable area at any step (NaN: no map)."""
    off_any = g.offroad.any(axis=1)
    dac = (~off_any).astype(float) if g.ctx.drivable is not None else np.full(g.k, np.nan)
    return {"dac": dac, "offroad": g.offroad,
            "offroad_step": np.where(off_any, np.argmax(g.offroad, axis=1), -1)}


def _ttc_reach(g: Scene) -> np.ndarray:
    """Candidates whose projected ego can reach any observed track at all: the centre at t,
    moved up to speed * 0.9 s, within both circumradii of the track's centre at some t + offset
    (a conservative bound; the exact test runs on these rows only)."""
    e, obs = g.ego_states, g.observed
    n_t = e.x.shape[1]
    r_e = 0.5 * float(np.hypot(g.ctx.ego_length, g.ctx.ego_width))
    r_a = 0.5 * np.hypot(g.ctx.length, g.ctx.width)[:, None, None]
    ox, oy = np.asarray(obs.x), np.asarray(obs.y)
    valid = np.asarray(obs.valid, bool)
    near = np.zeros(e.x.shape[0], bool)
    for off in TTC_OFFSETS:
        m = min(n_t, ox.shape[1] - off)       # ego steps whose t + offset is observed
        if m <= 0:
            continue
        ax, ay = ox[:, off:off + m], oy[:, off:off + m]              # (N, m)
        d = np.hypot(ax[:, None] - g.ego.x[None, :, :m], ay[:, None] - g.ego.y[None, :, :m])
        reach = r_e + r_a + np.abs(e.speed[:, :m])[None] * off * DT + 1e-6
        near |= ((d <= reach) & valid[:, None, off:off + m]).any(axis=(0, 2))
    return np.flatnonzero(near)


def _projected_hits(g: Scene, rows: np.ndarray, j: int) -> tuple[np.ndarray, ...]:
    """Contacts (k, t, j, track) of the ego boxes of ``rows`` at step t, moved ahead along
    their heading by speed * offset, with the observed tracks at step t + offset."""
    off, e, obs = TTC_OFFSETS[j], g.ego_states, g.observed
    m = min(e.x.shape[1], np.asarray(obs.x).shape[1] - off)   # steps with t + offset observed
    if m <= 0:
        return (np.zeros(0, np.int64),) * 4
    yaw = g.ego.yaw[rows, :m]
    shift = e.speed[rows, :m] * (off * DT)
    ego = BoxSeq(g.ego.x[rows, :m] + shift * np.cos(yaw), g.ego.y[rows, :m] + shift * np.sin(yaw),
                 yaw, g.ego.length, g.ego.width)
    sl = slice(off, off + m)
    ahead = BoxSeq(np.asarray(obs.x)[:, sl], np.asarray(obs.y)[:, sl],
                   np.asarray(obs.yaw)[:, sl], obs.length, obs.width,
                   np.asarray(obs.valid)[:, sl])
    c = collisions(ego, ahead)
    return rows[c.k], c.step, np.full(c.k.size, j, np.int64), c.n


@metric("ttc")
def time_to_collision(g: Scene, _: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TTC: the ego projected 0, 0.3, 0.6, 0.9 s ahead at its speed against the observation at
    t + offset (to 4.9 s); per track the first hit decides (an infraction, or ignored)."""
    k, obs, n, e = g.k, g.observed, g.observed.x.shape[0], g.ego_states
    ttc = np.ones(k)
    tstep = np.full(k, -1, np.int64)
    tagent = np.full(k, -1, np.int64)
    rows = _ttc_reach(g) if n else np.zeros(0, np.int64)
    if rows.size:
        c = g.cache.get("contacts")
        parts = [(c.k, c.step, np.zeros(c.k.size, np.int64), c.n)] if c is not None else []
        parts += [_projected_hits(g, rows, j) for j in range(1, len(TTC_OFFSETS))]
        hk, ht, hj, hn = (np.concatenate(a) for a in zip(*parts, strict=True))
        order = np.lexsort((hn, hj, ht, hk))       # NAVSIM's loop order: t, offset, track
        hk, ht, hj, hn = hk[order], ht[order], hj[order], hn[order]
        keep = e.speed[hk, ht] >= TTC_STOPPED_SPEED
        hk, ht, hj, hn = hk[keep], ht[keep], hj[keep], hn[keep]
        if hk.size:
            _, first = np.unique(hk * n + hn, return_index=True)   # first hit per (k, track)
            hk, ht, hj, hn = hk[first], ht[first], hj[first], hn[first]
            ta = ht + np.asarray(TTC_OFFSETS)[hj]
            ang = relative_angle(e.x[hk, ht], e.y[hk, ht], e.yaw[hk, ht], obs.x[hn, ta],
                                 obs.y[hn, ta])
            ml = multiple_lanes(g.ctx, g.corners[hk, ht])
            infr = (ang < np.deg2rad(AHEAD_DEG)) | ((ml | g.offroad[hk, ht])
                                                    & ~(ang > np.deg2rad(BEHIND_DEG)))
            order = np.lexsort((hn[infr], ht[infr], hk[infr]))
            ik, it, inn = hk[infr][order], ht[infr][order], hn[infr][order]
            ks, idx = np.unique(ik, return_index=True)
            ttc[ks], tstep[ks], tagent[ks] = 0.0, it[idx], inn[idx]
    return {"ttc": ttc, "ttc_step": tstep, "ttc_agent": tagent}


@metric("ep")
def ego_progress(g: Scene, r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """EP: progress of the box centre along the route, masked by NC * DAC, normalised by
    max(masked reference progress, own) where the reference is row 0 (the expert); 1 when that
    maximum is <= 5 m (0 where NC * DAC = 0)."""
    ends = np.stack([g.ego.x[:, [0, -1]], g.ego.y[:, [0, -1]]], -1)
    arc, _ = project_to_polyline(ends, g.ctx.route)
    progress = np.maximum(arc[:, 1] - arc[:, 0], 0.0)
    multi = r["nc"] * np.nan_to_num(r["dac"], nan=1.0)
    masked = progress * multi
    top = np.maximum(masked[0], masked)
    with np.errstate(invalid="ignore", divide="ignore"):
        ep = np.where(top > PROGRESS_THRESHOLD_M, masked / top, np.where(multi == 0, 0.0, 1.0))
    return {"ep": ep, "progress_m": progress}


@metric("comfort")
def comfortable(g: Scene, _: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """C: NAVSIM's six savgol-filtered comfort checks on the simulator's accelerations (on
    finite differences of the poses for exact rollouts)."""
    e = g.ego_states
    c = (comfort_of_path(e.x, e.y, e.yaw, DT) if e.ax is None
         else comfort(e.ax, e.ay, e.yaw, DT))
    return {"comfort": c.ok.astype(float)}


def scene_of(ctx: EvalContext, e: EgoStates) -> Scene:
    """The shared arrays of one scoring call."""
    k, n_t = e.x.shape
    ego = ego_boxes(ctx, e.x, e.y, e.yaw)
    agents, _, _ = agent_boxes(ctx)
    observed, speed, _ = agent_boxes(ctx, observed=True)
    corners = box_corners(ego.x, ego.y, ego.yaw, ego.length, ego.width)   # (K, T, 4, 2)
    if ctx.drivable is not None:
        offroad = ~ctx.drivable.contains(corners).all(axis=-1)
    else:
        offroad = np.zeros((k, n_t), bool)
    valid = np.asarray(observed.valid, bool)
    first = np.argmax(valid, axis=1)
    first_speed = speed[np.arange(len(first)), first]
    is_static = np.isin(ctx.classes, STATIC_CLASSES)
    return Scene(ctx, e, ego, agents, observed, corners, offroad,
                 is_static | (first_speed <= STOPPED_SPEED), is_static)


def score_states(ctx: EvalContext, e: EgoStates) -> Scores:
    """Score K ego futures (K, T) on the context's 0.1 s grid; row 0 must be the logged
    expert (the EP reference)."""
    g = scene_of(ctx, e)
    out: dict[str, np.ndarray] = {}
    for fn in METRICS.values():
        out.update(fn(g, out))
    bad = ~np.isfinite(np.stack([e.x, e.y, e.yaw, e.speed])).all(axis=(0, 2))
    if bad.any():   # NAVSIM raises on such a trajectory; here it scores 0 (a definite worst)
        for name in ("nc", "ttc", "ep", "comfort", "progress_m"):
            out[name] = np.where(bad, 0.0, out[name])
        out["dac"] = np.where(bad & ~np.isnan(out["dac"]), 0.0, out["dac"])
    dac = np.nan_to_num(out["dac"], nan=1.0)
    out["pdms"] = out["nc"] * dac * sum(w * out[n] for n, w in WEIGHTS.items()) / 12
    return Scores(**out)


#: the metrics pairing reads for every candidate (risk and safety); the others (EP, comfort,
#: hence PDMS) it reads only for candidates that could be a negative or a positive
RISK_METRICS = ("nc", "dac", "ttc")


def _bad_rows(e: EgoStates) -> Bool:
    return ~np.isfinite(np.stack([e.x, e.y, e.yaw, e.speed])).all(axis=(0, 2))


@dataclass(frozen=True)
class RiskScores:
    """:func:`score_states` in two steps: the risk metrics of all K now (``risk``, with the
    zeros of non-finite rows applied, as :class:`Scores` has them), the rest (EP, comfort,
    PDMS) per row with :meth:`finish`; a row's values equal those of :func:`score_states`."""

    scene: Scene
    raw: dict[str, np.ndarray]       # the risk metrics' own outputs (what EP reads)
    risk: dict[str, np.ndarray]
    bad: Bool

    def finish(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every :class:`Scores` field of ``rows`` (row 0 first: the EP reference)."""
        g = self.scene
        if rows.size == 0 or rows[0] != 0:
            raise ValueError("rows must start with row 0 (the EP reference)")
        e, ego = g.ego_states.select(rows), g.ego
        sub = Scene(g.ctx, e, BoxSeq(ego.x[rows], ego.y[rows], ego.yaw[rows], ego.length,
                                     ego.width), g.agents, g.observed, g.corners[rows],
                    g.offroad[rows], g.track_stopped, g.is_static)
        out = {k: v[rows] for k, v in self.raw.items()}
        for name, fn in METRICS.items():
            if name not in RISK_METRICS:
                out.update(fn(sub, out))
        bad = self.bad[rows]
        out.update({k: v[rows] for k, v in self.risk.items()})
        if bad.any():
            for name in ("ep", "comfort", "progress_m"):
                out[name] = np.where(bad, 0.0, out[name])
        dac = np.nan_to_num(out["dac"], nan=1.0)
        out["pdms"] = out["nc"] * dac * sum(w * out[n] for n, w in WEIGHTS.items()) / 12
        return out


    @property
    def collides(self) -> Bool:
        """(K,) any contact (NAVSIM's view when the states are NAVSIM's)."""
        return self.risk["collides"]

    @property
    def ttc(self) -> F64:
        """(K,) the TTC sub-score."""
        return self.risk["ttc"]

    @property
    def risky(self) -> Bool:
        """(K,) as :attr:`Scores.risky`."""
        return risky(self.risk["collides"], self.risk["ttc"] == 1, self.risk["dac"] != 0)

    @property
    def safe(self) -> Bool:
        """(K,) as :attr:`Scores.safe`."""
        r = self.risk
        return ~r["collides"] & (r["nc"] == 1) & (r["ttc"] == 1) & (r["dac"] != 0)


def score_risk(ctx: EvalContext, e: EgoStates) -> RiskScores:
    """The risk metrics (NC, DAC, TTC) of K ego futures (row 0 the expert), the rest on demand
    (:meth:`RiskScores.finish`)."""
    g = scene_of(ctx, e)
    raw: dict[str, np.ndarray] = {}
    for name in RISK_METRICS:
        raw.update(METRICS[name](g, raw))
    bad = _bad_rows(e)
    risk = dict(raw)
    if bad.any():   # as score_states
        for name in ("nc", "ttc"):
            risk[name] = np.where(bad, 0.0, risk[name])
        risk["dac"] = np.where(bad & ~np.isnan(risk["dac"]), 0.0, risk["dac"])
    return RiskScores(g, raw, risk, bad)


def score_candidates(ctx: EvalContext, x: F64, y: F64, yaw: F64, v: F64) -> Scores:
    """:func:`score_states` of exact rollouts: rear-axle poses and speed (K, T)."""
    return score_states(ctx, EgoStates(x, y, yaw, v))
