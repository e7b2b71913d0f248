"""Pick the risky negative and the counterfactual positive among scored candidates, and measure
the facts that separate them (first conflict, critical agent, TTC, costs, meta-action)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cfpair.counterfactual.candidates import Candidates
from cfpair.counterfactual.context import DT, EvalContext
from cfpair.errors import SceneRejected
from cfpair.geometry.boxes import box_distance
from cfpair.geometry.collision import collisions
from cfpair.geometry.comfort import ComfortBounds, comfort_of_path
from cfpair.geometry.transforms import wrap_angle
from cfpair.geometry.ttc import constant_velocity_ttc
from cfpair.scoring.pdms import COLLISION_TYPES, Scores, agent_boxes, ego_boxes
from cfpair.types import F64

PROXIMITY_M = 2.0     # per-step proximity cost reaches 0 at this box-to-box distance
TTC_HORIZON_S = 3.0   # nuPlan's TTC horizon
TTC_BOUND_S = 0.95    # nuPlan: pass if min TTC > 0.95 s
MARGIN_M = 0.5        # a positive keeps at least this far from every agent box


@dataclass(frozen=True)
class TrajectoryFacts:
    """What geometry measured for one trajectory (times in s from the anchor)."""

    role: str
    candidate: int
    perturbation: str
    collides: bool
    at_fault: bool
    collision_type: str
    first_conflict_time_s: float | None
    critical_agent: int | None
    min_ttc_s: float | None
    min_distance_m: float
    ttc_ok: bool
    drivable_ok: bool
    comfort_ok: bool
    feasible: bool
    progress_m: float
    nc: float
    dac: float
    ttc: float
    ep: float
    comfort: float
    score: float
    safety_score: float
    costs: dict[str, list[float]] = field(default_factory=dict)

    @property
    def risky(self) -> bool:
        """Collision, TTC violation or off the drivable area."""
        return self.collides or not self.ttc_ok or not self.drivable_ok


@dataclass(frozen=True)
class Pair:
    """The outcome for one anchor: indices into the candidates and the three facts."""

    negative: int
    positive: int
    expert_facts: TrajectoryFacts
    negative_facts: TrajectoryFacts
    positive_facts: TrajectoryFacts
    longitudinal: str
    lateral: str
    stats: dict[str, Any]


def risky_mask(s: Scores) -> np.ndarray:
    """Candidates with a contact, a TTC infraction or a corner off the drivable area."""
    return s.collides | (s.ttc == 0) | (s.dac == 0)


def safe_mask(s: Scores, feasible: np.ndarray, need_comfort: bool = True) -> np.ndarray:
    """Feasible, contact-free, TTC- and drivable-compliant (and comfortable) candidates."""
    ok = feasible & ~s.collides & (s.nc == 1) & (s.dac == 1) & (s.ttc == 1)
    return ok & (s.comfort == 1) if need_comfort else ok


def margin_mask(ctx: EvalContext, c: Candidates) -> np.ndarray:
    """(K,) True where the candidate keeps ``MARGIN_M`` from every agent box at every step."""
    agents, _, _ = agent_boxes(ctx)
    if agents.x.shape[0] == 0:
        return np.ones(c.k, bool)
    grown = agents._replace(length=ctx.length + 2 * MARGIN_M, width=ctx.width + 2 * MARGIN_M)
    return ~collisions(ego_boxes(ctx, c.x, c.y, c.yaw), grown).any()


def _ade(c: Candidates, ref: int) -> F64:
    return np.mean(np.hypot(c.x - c.x[ref], c.y - c.y[ref]), axis=1)


def choose(c: Candidates, s: Scores, margin_ok: np.ndarray, score_weight_m: float = 2.0
           ) -> tuple[int, int]:
    """(negative, positive) candidate indices, or SceneRejected.

    Negative: the logged expert when it is risky; else the feasible risky candidate closest to
    the expert (mean displacement), preferring hazards with an agent (contact or TTC) over
    off-road-only ones. Positive: among safe candidates, the one that changes the negative
    least: minimum mean displacement from it + ``score_weight_m`` * (1 - score). Safe means
    feasible, NC = DAC = TTC = 1, no contact even with every agent grown by ``MARGIN_M`` on each
    side (``margin_ok``) and comfortable; when no candidate is also comfortable, comfort is
    waived (an emergency brake can be the right answer) and the facts say so.
    """
    risky = risky_mask(s)
    if risky[0]:
        neg = 0
    else:
        agent_hazard = risky & c.feasible & (s.collides | (s.ttc == 0))
        pool = agent_hazard if agent_hazard.any() else risky & c.feasible
        if not pool.any():
            raise SceneRejected("no_risky_candidate",
                                f"none of {c.k} candidates collides, violates TTC or leaves the "
                                "drivable area")
        d = np.where(pool, _ade(c, 0), np.inf)
        neg = int(np.argmin(d))
    safe = safe_mask(s, c.feasible) & margin_ok
    if not safe.any():   # an emergency manoeuvre may be the only way out: comfort not required
        safe = safe_mask(s, c.feasible, need_comfort=False) & margin_ok
    if not safe.any():
        raise SceneRejected("no_safe_candidate",
                            f"none of {c.k} candidates is feasible, collision-free with a "
                            f"{MARGIN_M} m margin, TTC- and drivable-compliant")
    cost = np.where(safe, _ade(c, neg) + score_weight_m * (1 - s.score), np.inf)
    return neg, int(np.argmin(cost))


def trajectory_facts(ctx: EvalContext, c: Candidates, s: Scores, i: int, role: str
                     ) -> TrajectoryFacts:
    """Facts and per-step costs of candidate i."""
    x, y, yaw, v = c.x[i:i + 1], c.y[i:i + 1], c.yaw[i:i + 1], c.v[i:i + 1]
    ego = ego_boxes(ctx, x, y, yaw)
    agents, _, _ = agent_boxes(ctx)
    fut, valid = ctx.agents_future()
    n_t = x.shape[1]
    if agents.x.shape[0]:
        ttc, ttc_agent = constant_velocity_ttc(ego, v * np.cos(yaw), v * np.sin(yaw), agents,
                                               fut["vx"], fut["vy"], TTC_HORIZON_S)
        ttc, ttc_agent = ttc[0], ttc_agent[0]
        dist = box_distance((ego.x, ego.y, ego.yaw, ego.length, ego.width),
                            (agents.x, agents.y, agents.yaw, ctx.length[:, None],
                             ctx.width[:, None]))
        dist = np.where(valid, dist, np.inf)
        step_dist = dist.min(axis=0)
        overlap = (dist <= 0.0).any(axis=0)
    else:
        ttc, ttc_agent = np.full(n_t, np.inf), np.full(n_t, -1)
        step_dist, overlap = np.full(n_t, np.inf), np.zeros(n_t, bool)
    min_ttc = float(ttc.min())
    comfort = comfort_of_path(x, y, yaw, DT)
    b = ComfortBounds()
    comfort_cost = ((comfort.lon_accel[0] <= b.lon_accel[0])
                    | (comfort.lon_accel[0] >= b.lon_accel[1])
                    | (np.abs(comfort.lat_accel[0]) >= b.lat_accel)
                    | (np.abs(comfort.yaw_rate[0]) >= b.yaw_rate))
    proximity = np.clip(1 - step_dist / PROXIMITY_M, 0.0, 1.0)
    offroad = s.offroad[i]
    costs = {"collision": overlap.astype(float), "proximity": proximity,
             "offroad": offroad.astype(float), "comfort": comfort_cost.astype(float)}
    costs["safety"] = 1 - np.maximum.reduce([costs["collision"], costs["proximity"],
                                             costs["offroad"]])
    # the conflict is the first contact if there is one, else the first TTC infraction, else
    # the first step off the drivable area
    events = [st for st in (s.collision_step[i], s.ttc_step[i], s.offroad_step[i]) if st >= 0]
    first = int(events[0]) if events else None
    if s.collision_step[i] >= 0:
        critical = int(s.collision_agent[i])
    elif s.ttc_step[i] >= 0:
        critical = int(s.ttc_agent[i])
    elif np.isfinite(min_ttc):
        critical = int(ttc_agent[int(np.argmin(ttc))])
    else:
        critical = None
    min_dist = float(step_dist.min()) if np.isfinite(step_dist.min()) else 1e3
    collides = bool(s.collides[i])
    safety = 0.0 if collides else float(
        0.5 * min(min_ttc / TTC_HORIZON_S, 1.0) + 0.3 * min(min_dist / PROXIMITY_M, 1.0)
        + 0.2 * s.dac[i])
    return TrajectoryFacts(
        role=role, candidate=i, perturbation=c.describe(i), collides=collides,
        at_fault=bool(s.at_fault[i]), collision_type=COLLISION_TYPES[int(s.collision_type[i])],
        first_conflict_time_s=None if first is None else round(float(ctx.t_fut[first]), 3),
        critical_agent=critical, min_ttc_s=min_ttc if np.isfinite(min_ttc) else None,
        min_distance_m=min_dist, ttc_ok=bool(s.ttc[i] == 1) and not (min_ttc <= TTC_BOUND_S
                                                                    and collides),
        drivable_ok=bool(s.dac[i] == 1), comfort_ok=bool(s.comfort[i] == 1),
        feasible=bool(c.feasible[i]), progress_m=float(s.progress[i]), nc=float(s.nc[i]),
        dac=float(s.dac[i]), ttc=float(s.ttc[i]), ep=float(s.ep[i]),
        comfort=float(s.comfort[i]), score=float(s.score[i]), safety_score=safety,
        costs={k: np.round(v, 4).tolist() for k, v in costs.items()})


def meta_action(c: Candidates, neg: int, pos: int, conflict_step: int | None
                ) -> tuple[str, str]:
    """The corrective meta-action that turns the negative into the positive.

    Longitudinal (up to the conflict, else over the horizon): stop if the positive comes to a
    halt (< 0.3 m/s) that the negative does not; decelerate / accelerate if the mean speed
    differs by more than 0.5 m/s; else keep. Lateral: turn_<side> if the positive turns by
    > 0.5 rad itself and ends > 0.5 rad further that way than the negative; else from the
    largest lateral separation from the negative at the same step:
    < 0.5 m keep_lane, < 2.5 m nudge_<side>, else change_lane_<side>.
    """
    end = c.x.shape[1] if conflict_step is None else max(conflict_step + 1, 2)
    vp, vn = c.v[pos, :end], c.v[neg, :end]
    if vp.min() < 0.3 <= vn.min():
        lon = "stop"
    elif np.mean(vp - vn) < -0.5:
        lon = "decelerate"
    elif np.mean(vp - vn) > 0.5:
        lon = "accelerate"
    else:
        lon = "keep"
    dyaw = float(wrap_angle(c.yaw[pos, -1] - c.yaw[neg, -1]))
    own = float(wrap_angle(c.yaw[pos, -1] - c.yaw[pos, 0]))
    turns = abs(dyaw) > 0.5 and abs(own) > 0.5 and np.sign(own) == np.sign(dyaw)
    # signed lateral separation of the positive from the negative's pose at the same step
    dx, dy = c.x[pos] - c.x[neg], c.y[pos] - c.y[neg]
    lat = -np.sin(c.yaw[neg]) * dx + np.cos(c.yaw[neg]) * dy
    worst = float(lat[np.argmax(np.abs(lat))])
    side = "left" if (dyaw if turns else worst) > 0 else "right"
    if turns:
        return lon, f"turn_{side}"
    if abs(worst) < 0.5:
        return lon, "keep_lane"
    return lon, f"nudge_{side}" if abs(worst) < 2.5 else f"change_lane_{side}"


def make_pair(ctx: EvalContext, c: Candidates, s: Scores) -> Pair:
    """Choose and measure; raises SceneRejected with a reason when there is no valid pair."""
    margin = margin_mask(ctx, c)
    neg, pos = choose(c, s, margin)
    facts = {role: trajectory_facts(ctx, c, s, i, role)
             for role, i in (("expert", 0), ("negative", neg), ("positive", pos))}
    conflict = facts["negative"].first_conflict_time_s
    lon, lat = meta_action(c, neg, pos, None if conflict is None
                           else int(round(conflict / DT)))
    risky = risky_mask(s)
    stats = {"candidates": c.k, "feasible": int(c.feasible.sum()), "risky": int(risky.sum()),
             "safe": int((safe_mask(s, c.feasible) & margin).sum())}
    return Pair(neg, pos, facts["expert"], facts["negative"], facts["positive"], lon, lat, stats)
