"""The scene context scoring reads for one (scenario, anchor): cfpair's 0.1 s grid, ego frame.

Everything is in the ego rear-axle frame at the anchor.

History covers ``history_s`` before the anchor, the future ``horizon_s`` after it (41 states for
NAVSIM's 4 s). Sources with other steps (NAVSIM logs at 0.5 s) are linearly interpolated;
a resampled sample is valid only where both neighbours are valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely

from cfpair.errors import SceneRejected
from cfpair.geometry.drivable import DrivableArea
from cfpair.geometry.transforms import wrap_angle
from cfpair.types import F64, Bool, Scenario

DT = 0.1


def resample(t_src: F64, values: dict[str, F64], valid: Bool, t_dst: F64
             ) -> tuple[dict[str, F64], Bool]:
    """Linear interpolation along the last axis from ``t_src`` to ``t_dst`` (yaw-aware).

    values: name -> (..., S) arrays; valid: (..., S). Out-of-range or straddling an invalid
    sample -> invalid (value 0).
    """
    t_src = np.asarray(t_src, np.float64)
    idx = np.clip(np.searchsorted(t_src, t_dst, side="right") - 1, 0, len(t_src) - 1)
    nxt = np.clip(idx + 1, 0, len(t_src) - 1)
    span = t_src[nxt] - t_src[idx]
    w = np.where(span > 0, (t_dst - t_src[idx]) / np.where(span > 0, span, 1.0), 0.0)
    exact = np.isclose(t_dst, t_src[idx], atol=1e-6)
    w = np.where(exact, 0.0, w)
    inside = (t_dst >= t_src[0] - 1e-6) & (t_dst <= t_src[-1] + 1e-6)
    ok = inside & valid[..., idx] & (exact | valid[..., nxt])
    out = {}
    for name, v in values.items():
        a, b = v[..., idx], v[..., nxt]
        delta = wrap_angle(b - a) if name == "yaw" else b - a
        res = a + w * delta
        out[name] = np.where(ok, wrap_angle(res) if name == "yaw" else res, 0.0)
    return out, ok


def expert_line(x: F64, y: F64, yaw0: float, ahead_m: float = 250.0, behind_m: float = 20.0,
                min_step: float = 0.05) -> F64:
    """The expert's rear-axle path (M, 2) without near-duplicate points (a stopped car),
    extended straight ``behind_m`` before its start and ``ahead_m`` past its end."""
    pts = np.stack([x, y], -1)
    keep = [0]
    for i in range(1, len(pts)):
        if np.hypot(*(pts[i] - pts[keep[-1]])) >= min_step:
            keep.append(i)
    pts = pts[keep]
    if len(pts) < 2:
        head0 = head1 = np.array([np.cos(yaw0), np.sin(yaw0)])
    else:
        d0, d1 = pts[1] - pts[0], pts[-1] - pts[-2]
        head0, head1 = d0 / np.linalg.norm(d0), d1 / np.linalg.norm(d1)
    return np.concatenate([[pts[0] - behind_m * head0], pts, [pts[-1] + ahead_m * head1]])


@dataclass(frozen=True)
class EvalContext:
    """One anchor of one scenario, ready for scoring: only what scoring reads (no Scenario).

    source, scenario_id, anchor: where it comes from; ego_length, ego_width (m) and
    ego_rear_to_center (m, rear axle to box centre along the heading): the ego box;
    t_hist (H,), t_fut (T,) seconds from the anchor (T = 41 by default); t_obs (O,) the
    agents' future (O = 51: NAVSIM's observation runs 1 s past the plan, to 5 s);
    ego_hist / expert: dicts x, y, yaw, vx, vy of (H,) / (T,) (rear axle, ego frame);
    expert_valid (T,): logged samples (the rest is constant-velocity extrapolation);
    agents: x, y, yaw, vx, vy (N, H + O) on ``t_all``; agent_valid (N, H + O); ids, classes,
    length, width (N,); drivable: DrivableArea or None (no map); lanes: shapely polygons.
    """

    source: str
    scenario_id: str
    anchor: int
    ego_length: float
    ego_width: float
    ego_rear_to_center: float
    t_hist: F64
    t_fut: F64
    t_obs: F64
    ego_hist: dict[str, F64]
    ego_hist_valid: Bool
    expert: dict[str, F64]
    expert_valid: Bool
    agents: dict[str, F64]
    agent_valid: Bool
    ids: np.ndarray
    classes: np.ndarray
    length: F64
    width: F64
    drivable: DrivableArea | None
    lanes: tuple[shapely.Polygon, ...]
    polygons: tuple[F64, ...]
    centerlines: tuple[F64, ...]
    on_route: Bool

    @property
    def t_all(self) -> F64:
        """History then observation times (the agents' grid)."""
        return np.concatenate([self.t_hist, self.t_obs])

    @property
    def n_hist(self) -> int:
        """Number of history steps (t < 0); t = 0 is the first future step."""
        return int(self.t_hist.size)

    @cached_property
    def route(self) -> F64:
        """The progress reference line (M, 2): the expert's path, extended."""
        return expert_line(self.expert["x"], self.expert["y"], float(self.expert["yaw"][0]))

    def agents_future(self, observed: bool = False) -> tuple[dict[str, F64], Bool]:
        """Agent arrays over the plan's future steps (N, T), or over the whole observation
        (N, O) with ``observed``."""
        h = self.n_hist
        e = h + (self.t_obs.size if observed else self.t_fut.size)
        return {k: v[:, h:e] for k, v in self.agents.items()}, self.agent_valid[:, h:e]


def _extrapolate(traj: dict[str, F64], valid: Bool, t: F64) -> dict[str, F64]:
    """Fill invalid future samples after the last valid one by constant velocity/heading."""
    last = int(np.flatnonzero(valid)[-1])
    out = {k: v.copy() for k, v in traj.items()}
    dt = t[last + 1:] - t[last]
    for k in ("vx", "vy", "yaw"):
        out[k][last + 1:] = traj[k][last]
    out["x"][last + 1:] = traj["x"][last] + traj["vx"][last] * dt
    out["y"][last + 1:] = traj["y"][last] + traj["vy"][last] * dt
    return out


def build_context(scn: Scenario, anchor: int, horizon_s: float = 4.0, history_s: float = 2.0,
                  radius_m: float = 80.0, max_agents: int = 64, min_future_s: float = 0.5,
                  observation_s: float = 5.0) -> EvalContext:
    """Cut, resample and frame one anchor; raises SceneRejected when it cannot be scored."""
    local = scn.in_ego_frame(anchor)
    n_f, n_h = int(round(horizon_s / DT)) + 1, int(round(history_s / DT))
    t_fut = np.arange(n_f) * DT
    t_obs = np.arange(max(int(round(observation_s / DT)) + 1, n_f)) * DT
    t_hist = (np.arange(n_h) - n_h) * DT
    e = local.ego
    ego_vals = {k: getattr(e, k) for k in ("x", "y", "yaw", "vx", "vy")}
    fut, fut_ok = resample(e.t, ego_vals, e.valid, t_fut)
    if not fut_ok[0]:
        raise SceneRejected("ego_invalid_at_anchor", f"anchor {anchor}")
    # a logged future with a gap ends at the gap
    gap = np.flatnonzero(~fut_ok)
    if gap.size:
        fut_ok[gap[0]:] = False
    future_s = float(t_fut[np.flatnonzero(fut_ok)[-1]])
    if future_s < min_future_s - 1e-9:
        raise SceneRejected("expert_future_too_short",
                            f"{future_s:.1f} s logged after the anchor, need {min_future_s} s")
    fut = _extrapolate(fut, fut_ok, t_fut)
    hist, hist_ok = resample(e.t, ego_vals, e.valid, t_hist)

    a = local.agents
    t_all = np.concatenate([t_hist, t_obs])
    avals, aok = resample(a.t, {k: getattr(a, k) for k in ("x", "y", "yaw", "vx", "vy")},
                          a.valid, t_all)
    plan = slice(0, n_h + n_f)   # agents are kept by their distance to the ego over the plan
    dist = np.hypot(avals["x"][:, plan] - np.concatenate([hist["x"], fut["x"]]),
                    avals["y"][:, plan] - np.concatenate([hist["y"], fut["y"]]))
    dmin = np.min(np.where(aok[:, plan], dist, np.inf), axis=1, initial=np.inf)
    keep = np.flatnonzero(dmin <= radius_m)
    keep = keep[np.argsort(dmin[keep], kind="stable")][:max_agents]
    keep.sort()
    avals = {k: v[keep] for k, v in avals.items()}

    polys = tuple(np.asarray(p) for p in local.map.drivable)
    drivable = None
    if polys:
        box = shapely.box(-radius_m - 50, -radius_m - 50, radius_m + 50, radius_m + 50)
        clipped = [shapely.intersection(shapely.Polygon(p).buffer(0), box) for p in polys]
        drivable = DrivableArea([c for c in clipped if not c.is_empty])
    lanes = tuple(shapely.Polygon(p).buffer(0) for p in local.map.lanes)
    return EvalContext(
        source=scn.source, scenario_id=scn.scenario_id, anchor=anchor,
        ego_length=scn.ego_length, ego_width=scn.ego_width,
        ego_rear_to_center=scn.ego_rear_to_center, t_hist=t_hist, t_fut=t_fut, t_obs=t_obs,
        ego_hist=hist, ego_hist_valid=hist_ok, expert=fut, expert_valid=fut_ok, agents=avals,
        agent_valid=aok[keep], ids=a.ids[keep], classes=a.classes[keep],
        length=a.length[keep], width=a.width[keep], drivable=drivable, lanes=lanes,
        polygons=polys, centerlines=tuple(np.asarray(c) for c in local.map.centerlines),
        on_route=np.asarray(local.map.on_route, bool))
