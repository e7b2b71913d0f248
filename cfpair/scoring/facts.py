"""Every measured fact of every candidate as (K,) arrays, computed once per scoring call, with
the field names of the stored ``Facts`` row; :meth:`FactArrays.row` only selects and rounds.
:class:`LazyFacts` (what ``score_trajectories`` returns, for generate) computes the same values
only for the rows that are asked for.

Events and sub-scores are NAVSIM's view; ``exact_*`` the exact view's sub-scores; the distance,
constant-velocity TTC, safety score and per-step costs are measured on the exact states."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfpair.geometry.comfort import ComfortBounds, comfort_of_path
from cfpair.geometry.transforms import wrap_angle
from cfpair.geometry.ttc import constant_velocity_ttc
from cfpair.records import schema as m
from cfpair.scoring.boxes import agent_boxes, ego_boxes
from cfpair.scoring.context import DT, EvalContext
from cfpair.scoring.pdms import COLLISION_TYPES, EgoStates, RiskScores, Scores, score_states
from cfpair.types import F64, Bool

PROXIMITY_M = 2.0     # per-step proximity cost reaches 0 at this box-to-box distance
TTC_HORIZON_S = 3.0   # nuPlan's TTC horizon
FAR_M = 1e3           # min_distance_m when there is no agent at all
DECIMALS = 4
COSTS = ("collision", "proximity", "offroad", "comfort", "safety")


@dataclass(frozen=True)
class FactArrays:
    """(K,) arrays named as the ``Facts`` columns (plus the scorer's events and the per-step
    ``costs`` (K, T)); ``critical_agent`` is an agent index (-1 = none), ``first_conflict``
    a step (-1 = none); values are unrounded (``row`` rounds as stored). ``scores`` and
    ``exact_scores`` are the two views' full scorer outputs."""

    scores: Scores
    exact_scores: Scores
    collides: Bool
    at_fault: Bool
    collision_type: np.ndarray
    first_conflict: np.ndarray
    first_conflict_time_s: F64
    critical_agent: np.ndarray
    relative_heading_deg: F64
    min_ttc_s: F64
    min_distance_m: F64
    ttc_ok: Bool
    drivable_ok: Bool
    comfort_ok: Bool
    feasible: Bool
    progress_m: F64
    nc: F64
    dac: F64
    ttc: F64
    ep: F64
    comfort: F64
    pdms: F64
    safety_score: F64
    dac_evaluated: Bool
    exact_nc: F64
    exact_dac: F64
    exact_ttc: F64
    exact_ep: F64
    exact_comfort: F64
    exact_pdms: F64
    costs: dict[str, F64]

    @property
    def risky(self) -> Bool:
        """(K,) collision, TTC violation or off the drivable area (NAVSIM's view)."""
        return self.scores.risky

    @property
    def safe(self) -> Bool:
        """(K,) no contact, NC = TTC = 1 and DAC = 1 (or no map) in both views."""
        return self.scores.safe & self.exact_scores.safe

    def exact_on(self, rows: np.ndarray) -> Scores:
        """The exact view's scores of ``rows`` (as :meth:`LazyFacts.exact_on`)."""
        return self.exact_scores.select(np.asarray(rows, np.int64))

    def nav_on(self, rows: np.ndarray) -> Scores:
        """NAVSIM's view's scores of ``rows`` (as :meth:`LazyFacts.nav_on`)."""
        return self.scores.select(np.asarray(rows, np.int64))

    @property
    def nav_risk(self) -> Scores:
        """NAVSIM's view's risk and safety of all K (as :attr:`LazyFacts.nav_risk`)."""
        return self.scores

    def prepare(self, rows: list[int] | np.ndarray) -> None:
        """Nothing to do: every fact is already measured (as :meth:`LazyFacts.prepare`)."""

    def row(self, ctx: EvalContext, i: int) -> m.Facts:
        """The stored (rounded) ``Facts`` of candidate i."""
        crit = int(self.critical_agent[i])
        first = int(self.first_conflict[i])
        min_ttc = float(self.min_ttc_s[i])
        t_first = round(float(self.first_conflict_time_s[i]), 3)
        rel = round(float(self.relative_heading_deg[i]), 2)
        return m.Facts(
            collides=bool(self.collides[i]), at_fault=bool(self.at_fault[i]),
            collision_type=COLLISION_TYPES[int(self.collision_type[i])],
            first_conflict_time_s=None if first < 0 else t_first,
            critical_agent_id=None if crit < 0 else str(ctx.ids[crit]),
            critical_agent_class=None if crit < 0 else str(ctx.classes[crit]),
            relative_heading_deg=None if crit < 0 else rel,
            min_ttc_s=round(min_ttc, DECIMALS) if np.isfinite(min_ttc) else None,
            min_distance_m=round(float(self.min_distance_m[i]), DECIMALS),
            ttc_ok=bool(self.ttc_ok[i]), drivable_ok=bool(self.drivable_ok[i]),
            comfort_ok=bool(self.comfort_ok[i]), feasible=bool(self.feasible[i]),
            progress_m=round(float(self.progress_m[i]), DECIMALS), nc=float(self.nc[i]),
            dac=_opt(self.dac[i]), ttc=float(self.ttc[i]),
            ep=round(float(self.ep[i]), DECIMALS), comfort=float(self.comfort[i]),
            pdms=round(float(self.pdms[i]), DECIMALS),
            safety_score=round(float(self.safety_score[i]), DECIMALS),
            dac_evaluated=bool(self.dac_evaluated[i]), exact_nc=float(self.exact_nc[i]),
            exact_dac=_opt(self.exact_dac[i]), exact_ttc=float(self.exact_ttc[i]),
            exact_ep=round(float(self.exact_ep[i]), DECIMALS),
            exact_comfort=float(self.exact_comfort[i]),
            exact_pdms=round(float(self.exact_pdms[i]), DECIMALS))

    def cost_row(self, i: int) -> m.Costs:
        """The stored (rounded) per-step costs of candidate i."""
        return m.Costs(**{k: np.round(v[i], DECIMALS).tolist() for k, v in self.costs.items()})


def _opt(v: float) -> float | None:
    """A sub-score that may be NaN (not evaluated) as stored: None."""
    return None if np.isnan(v) else float(v)


def _box_gap(dx: F64, dy: F64, c1: F64, s1: F64, hl1: float, hw1: float, c2: F64, s2: F64,
             hl2: F64, hw2: F64, sat_gap: F64) -> F64:
    """Distance between boxes 1 and 2 (centre 2 - centre 1 = (dx, dy)); 0 where they overlap
    (``sat_gap`` <= 0). For disjoint boxes it is the least distance from a corner of one to
    the other box (the closest pair always includes a corner), each a clamp in that box's
    frame: 8 corner-to-box distances instead of 32 corner-to-edge ones."""
    best = np.full(dx.shape, np.inf)
    for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
        # corner of box 2 in box 1's frame, and corner of box 1 in box 2's frame
        px = dx + sx * hl2 * c2 - sy * hw2 * s2
        py = dy + sx * hl2 * s2 + sy * hw2 * c2
        u, v = c1 * px + s1 * py, -s1 * px + c1 * py
        best = np.minimum(best, np.hypot(np.maximum(np.abs(u) - hl1, 0.0),
                                         np.maximum(np.abs(v) - hw1, 0.0)))
        qx = -dx + sx * hl1 * c1 - sy * hw1 * s1
        qy = -dy + sx * hl1 * s1 + sy * hw1 * c1
        u, v = c2 * qx + s2 * qy, -s2 * qx + c2 * qy
        best = np.minimum(best, np.hypot(np.maximum(np.abs(u) - hl2, 0.0),
                                         np.maximum(np.abs(v) - hw2, 0.0)))
    return np.where(sat_gap <= 0.0, 0.0, best)


def _distances(ctx: EvalContext, x: F64, y: F64, yaw: F64) -> tuple[F64, F64]:
    """Least box-to-box distance to any valid agent: per step (K, T), exact wherever it is
    below ``PROXIMITY_M`` (elsewhere only known to be >= it), and overall (K,), exact (inf
    without agents). Cheap bounds leave out the agent/step pairs that cannot matter."""
    ego = ego_boxes(ctx, x, y, yaw)
    agents, _, _ = agent_boxes(ctx)
    _, valid = ctx.agents_future()
    k, n_t = x.shape
    if agents.x.shape[0] == 0:
        return np.full((k, n_t), np.inf), np.full(k, np.inf)
    # SAT: the largest gap between the boxes' projections on their four axes is a lower bound
    # of the distance; the centre distance minus both half widths an upper bound
    dx, dy = agents.x[:, None] - ego.x[None], agents.y[:, None] - ego.y[None]    # (N, K, T)
    c1, s1 = np.cos(ego.yaw)[None], np.sin(ego.yaw)[None]
    c2, s2 = np.cos(agents.yaw)[:, None], np.sin(agents.yaw)[:, None]
    hl1, hw1 = ctx.ego_length / 2, ctx.ego_width / 2
    hl2, hw2 = ctx.length[:, None, None] / 2, ctx.width[:, None, None] / 2
    ac, as_ = np.abs(c1 * c2 + s1 * s2), np.abs(c1 * s2 - s1 * c2)
    lower = np.maximum.reduce([
        np.abs(dx * c1 + dy * s1) - hl1 - hl2 * ac - hw2 * as_,
        np.abs(dy * c1 - dx * s1) - hw1 - hl2 * as_ - hw2 * ac,
        np.abs(dx * c2 + dy * s2) - hl2 - hl1 * ac - hw1 * as_,
        np.abs(dy * c2 - dx * s2) - hw2 - hl1 * as_ - hw1 * ac])
    valid_nkt = np.broadcast_to(valid[:, None], lower.shape)
    lower = np.where(valid_nkt, lower, np.inf)
    upper = np.where(valid_nkt, np.maximum(np.hypot(dx, dy) - hw1 - hw2, 0.0), np.inf)
    need = (lower < PROXIMITY_M) | (lower <= upper.min(axis=(0, 2))[None, :, None])
    n_i, k_i, t_i = np.nonzero(need)
    d = _box_gap(dx[n_i, k_i, t_i], dy[n_i, k_i, t_i], c1[0, k_i, t_i], s1[0, k_i, t_i], hl1,
                 hw1, c2[n_i, 0, t_i], s2[n_i, 0, t_i], hl2[n_i, 0, 0], hw2[n_i, 0, 0],
                 lower[n_i, k_i, t_i])
    step = np.full((k, n_t), np.inf)
    np.minimum.at(step, (k_i, t_i), d)
    overall = np.full(k, np.inf)
    np.minimum.at(overall, k_i, d)
    return step, overall


def first_conflict(s: Scores) -> np.ndarray:
    """(K,) the conflict step (NAVSIM's view): the first contact if there is one, else the
    first TTC infraction, else the first step off the drivable area (-1: none)."""
    return np.where(s.collision_step >= 0, s.collision_step,
                    np.where(s.ttc_step >= 0, s.ttc_step, s.offroad_step))


def measure(ctx: EvalContext, exact: EgoStates, s_exact: Scores, nav: EgoStates, s: Scores,
            feasible: Bool) -> FactArrays:
    """All facts and per-step costs of K trajectories at once: ``exact`` states (K, T) and their
    scores ``s_exact``, NAVSIM's view ``nav`` and its scores ``s``."""
    x, y, yaw, v = exact.x, exact.y, exact.yaw, exact.speed
    k, n_t = x.shape
    ego = ego_boxes(ctx, x, y, yaw)
    agents, _, _ = agent_boxes(ctx)
    fut, _ = ctx.agents_future()
    if agents.x.shape[0]:
        ttc, ttc_agent = constant_velocity_ttc(ego, v * np.cos(yaw), v * np.sin(yaw), agents,
                                               fut["vx"], fut["vy"], TTC_HORIZON_S)
    else:
        ttc, ttc_agent = np.full((k, n_t), np.inf), np.full((k, n_t), -1)
    step_dist, dmin = _distances(ctx, x, y, yaw)
    min_ttc = ttc.min(axis=1)
    cf = comfort_of_path(x, y, yaw, DT)
    b = ComfortBounds()
    comfort_cost = ((cf.lon_accel <= b.lon_accel[0]) | (cf.lon_accel >= b.lon_accel[1])
                    | (np.abs(cf.lat_accel) >= b.lat_accel)
                    | (np.abs(cf.yaw_rate) >= b.yaw_rate))
    costs = {"collision": (step_dist <= 0.0).astype(float),
             "proximity": np.clip(1 - step_dist / PROXIMITY_M, 0.0, 1.0),
             "offroad": s_exact.offroad.astype(float), "comfort": comfort_cost.astype(float)}
    costs["safety"] = 1 - np.maximum.reduce([costs["collision"], costs["proximity"],
                                             costs["offroad"]])
    first = first_conflict(s)
    rows = np.arange(k)
    cv_agent = ttc_agent[rows, np.argmin(ttc, axis=1)]
    critical = np.where(s.collision_step >= 0, s.collision_agent,
                        np.where(s.ttc_step >= 0, s.ttc_agent,
                                 np.where(np.isfinite(min_ttc), cv_agent, -1)))
    step = np.maximum(first, 0)
    a_yaw = (ctx.agents["yaw"][np.maximum(critical, 0), ctx.n_hist + step] if len(ctx.ids)
             else np.zeros(k))
    rel = np.degrees(wrap_angle(a_yaw - nav.yaw[rows, step]))
    min_dist = np.where(np.isfinite(dmin), dmin, FAR_M)
    dac = np.nan_to_num(s_exact.dac, nan=1.0)
    finite = np.isfinite(np.stack([x, y, yaw, v])).all(axis=(0, 2))
    safety = np.where(s_exact.collides | ~finite, 0.0,
                      0.5 * np.minimum(min_ttc / TTC_HORIZON_S, 1.0)
                      + 0.3 * np.minimum(min_dist / PROXIMITY_M, 1.0) + 0.2 * dac)
    return FactArrays(
        scores=s, exact_scores=s_exact, collides=s.collides, at_fault=s.at_fault,
        collision_type=s.collision_type, first_conflict=first,
        first_conflict_time_s=ctx.t_fut[step], critical_agent=critical,
        relative_heading_deg=rel, min_ttc_s=min_ttc, min_distance_m=min_dist,
        ttc_ok=s.ttc == 1, drivable_ok=s.dac != 0, comfort_ok=s.comfort == 1,
        feasible=np.asarray(feasible, bool), progress_m=s.progress_m, nc=s.nc, dac=s.dac,
        ttc=s.ttc, ep=s.ep, comfort=s.comfort, pdms=s.pdms, safety_score=safety,
        dac_evaluated=~np.isnan(s.dac), exact_nc=s_exact.nc, exact_dac=s_exact.dac,
        exact_ttc=s_exact.ttc, exact_ep=s_exact.ep, exact_comfort=s_exact.comfort,
        exact_pdms=s_exact.pdms, costs=costs)


class LazyFacts:
    """The facts of K trajectories as :func:`measure` gives them, computed only where asked.

    NAVSIM's view is scored for all K up front (``scores``; pairing reads its risk, safety and
    PDMS everywhere). The exact view (:meth:`exact_on`) and the per-candidate facts
    (:meth:`row`, :meth:`cost_row`, :meth:`prepare`) are computed for the rows asked for only,
    each row once; a row's values do not depend on which other rows share its batch (every
    metric is per row, EP's reference is row 0, which every batch of the exact view leads
    with), so they equal the full computation's. Any other :class:`FactArrays` field (e.g.
    ``f.exact_pdms``, ``f.min_ttc_s``) is the full computation over all K, done once on first
    use.
    """

    def __init__(self, ctx: EvalContext, exact: EgoStates, nav: EgoStates, risk: RiskScores,
                 feasible: Bool) -> None:
        self.ctx, self.exact, self.nav, self.nav_risk = ctx, exact, nav, risk
        self.feasible = np.asarray(feasible, bool)
        r = risk.risk
        self.first_conflict = np.where(r["collision_step"] >= 0, r["collision_step"],
                                       np.where(r["ttc_step"] >= 0, r["ttc_step"],
                                                r["offroad_step"]))
        self._k = int(exact.x.shape[0])
        self._ex: dict[str, np.ndarray] = {}          # exact-view fields, filled where known
        self._ex_known = np.zeros(self._k, bool)
        self._nv: dict[str, np.ndarray] = {}          # NAVSIM-view fields, filled where known
        self._nv_known = np.zeros(self._k, bool)
        self._scores: Scores | None = None
        self._rows: dict[int, tuple[FactArrays, int]] = {}   # row -> (facts of a batch, index)
        self._full: FactArrays | None = None

    def exact_on(self, rows: np.ndarray) -> Scores:
        """The exact view's scores of ``rows`` (scoring those not yet scored, in one batch led
        by row 0, the EP reference)."""
        rows = np.asarray(rows, np.int64)
        todo = np.unique(rows[~self._ex_known[rows]])
        if todo.size or not self._ex:
            batch = np.concatenate([[0], todo[todo != 0]])
            got = score_states(self.ctx, self.exact.select(batch))
            for name, v in vars(got).items():
                if name not in self._ex:
                    self._ex[name] = np.empty((self._k,) + v.shape[1:], v.dtype)
                self._ex[name][batch] = v
            self._ex_known[batch] = True
        return Scores(**{name: v[rows] for name, v in self._ex.items()})

    def nav_on(self, rows: np.ndarray) -> Scores:
        """NAVSIM's view's scores of ``rows``: the risk metrics are known for all K, EP,
        comfort and PDMS are computed for the rows not yet finished (one batch led by row 0)."""
        rows = np.asarray(rows, np.int64)
        todo = np.unique(rows[~self._nv_known[rows]])
        if todo.size or not self._nv:
            batch = np.concatenate([[0], todo[todo != 0]])
            for name, v in self.nav_risk.finish(batch).items():
                if name not in self._nv:
                    self._nv[name] = np.empty((self._k,) + v.shape[1:], v.dtype)
                self._nv[name][batch] = v
            self._nv_known[batch] = True
        return Scores(**{name: v[rows] for name, v in self._nv.items()})

    @property
    def scores(self) -> Scores:
        """NAVSIM's view's scores of all K (finishing every row, once)."""
        if self._scores is None:
            self._scores = self.nav_on(np.arange(self._k))
        return self._scores

    def prepare(self, rows: list[int] | np.ndarray) -> None:
        """Measure the facts of ``rows`` (those not yet measured) in one batch."""
        todo = sorted({int(i) for i in rows} - set(self._rows))
        if not todo:
            return
        idx = np.asarray(todo, np.int64)
        f = measure(self.ctx, self.exact.select(idx), self.exact_on(idx), self.nav.select(idx),
                    self.nav_on(idx), self.feasible[idx])
        for j, i in enumerate(todo):
            self._rows[i] = (f, j)

    @property
    def reported(self) -> dict[str, np.ndarray]:
        """The rows computed so far: ``exact`` (exact view), ``nav`` (NAVSIM view's EP, comfort
        and PDMS) and ``facts`` (measured facts), each sorted."""
        return {"exact": np.flatnonzero(self._ex_known), "nav": np.flatnonzero(self._nv_known),
                "facts": np.asarray(sorted(self._rows), np.int64)}

    def _at(self, i: int) -> tuple[FactArrays, int]:
        if self._full is not None:
            return self._full, i
        self.prepare([i])
        return self._rows[i]

    def row(self, ctx: EvalContext, i: int) -> m.Facts:
        """The stored (rounded) ``Facts`` of candidate i."""
        f, j = self._at(int(i))
        return f.row(ctx, j)

    def cost_row(self, i: int) -> m.Costs:
        """The stored (rounded) per-step costs of candidate i."""
        f, j = self._at(int(i))
        return f.cost_row(j)

    @property
    def risky(self) -> Bool:
        """(K,) collision, TTC violation or off the drivable area (NAVSIM's view)."""
        return self.nav_risk.risky

    def full(self) -> FactArrays:
        """Every fact of every candidate (the eager :func:`measure`), computed once."""
        if self._full is None:
            self._full = measure(self.ctx, self.exact, score_states(self.ctx, self.exact),
                                 self.nav, self.scores, self.feasible)
        return self._full

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full(), name)
