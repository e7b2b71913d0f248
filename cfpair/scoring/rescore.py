"""Re-scoring a stored record: its scoring context, and the facts of its own or new trajectories.

Used by ``cfpair validate`` (are the stored facts what the geometry says?), by the export reward
and by the trainer; all of them go through :mod:`cfpair.scoring.views`, the one scoring path
(a policy's 8 poses -> NAVSIM's view -> PDMS). The record keeps agents on the 0.1 s grid to
5 s rounded to 1e-4 and the map out to the trajectories' reach (at least 60 m) simplified to
0.02 m, so recomputed facts match the stored ones up to that rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from cfpair.geometry.drivable import DrivableArea
from cfpair.records import schema as m
from cfpair.scoring import views
from cfpair.scoring.context import EvalContext
from cfpair.scoring.facts import FactArrays

ROLES = ("expert", "negative", "positive")


def _poly(flat: list[float]) -> shapely.Polygon:
    return shapely.Polygon(np.asarray(flat, np.float64).reshape(-1, 2)).buffer(0)


def context_from_record(rec: m.PairRecord) -> EvalContext:
    """The scoring context equivalent to the one the record was made from."""
    c = rec.context
    n_h = len(c.ego_history.t)
    t = np.asarray(c.t, np.float64)
    h = c.ego_history
    yaw_h, v_h = np.asarray(h.yaw), np.asarray(h.v)
    hist = {"x": np.asarray(h.x), "y": np.asarray(h.y), "yaw": yaw_h,
            "vx": v_h * np.cos(yaw_h), "vy": v_h * np.sin(yaw_h)}
    e = rec.expert
    yaw_e, v_e = np.asarray(e.yaw), np.asarray(e.v)
    expert = {"x": np.asarray(e.x), "y": np.asarray(e.y), "yaw": yaw_e,
              "vx": v_e * np.cos(yaw_e), "vy": v_e * np.sin(yaw_e)}
    n_t = len(e.t)
    agents = {k: np.asarray([getattr(a, k) for a in c.agents], np.float64).reshape(-1, len(t))
              for k in ("x", "y", "yaw", "vx", "vy")}
    valid = np.asarray([a.valid for a in c.agents], bool).reshape(-1, len(t))
    polys = tuple(np.asarray(p, np.float64).reshape(-1, 2) for p in c.map.drivable)
    drivable = (DrivableArea([_poly(p) for p in c.map.drivable])
                if c.map.available and polys else None)
    return EvalContext(
        source=rec.provenance.source, scenario_id=rec.provenance.scenario_id,
        anchor=rec.provenance.anchor_index, ego_length=c.ego_length, ego_width=c.ego_width,
        ego_rear_to_center=c.ego_rear_to_center,
        t_hist=t[:n_h], t_fut=np.asarray(e.t, np.float64), t_obs=t[n_h:], ego_hist=hist,
        ego_hist_valid=np.asarray(h.valid, bool),
        expert=expert, expert_valid=np.ones(n_t, bool), agents=agents, agent_valid=valid,
        ids=np.asarray([a.id for a in c.agents], object),
        classes=np.asarray([str(a.cls) for a in c.agents], object),
        length=np.asarray([a.length for a in c.agents], np.float64),
        width=np.asarray([a.width for a in c.agents], np.float64),
        drivable=drivable, lanes=tuple(_poly(p) for p in c.map.lanes), polygons=polys,
        centerlines=tuple(np.asarray(p, np.float64).reshape(-1, 2) for p in c.map.centerlines),
        on_route=np.asarray(c.map.on_route, bool))


def _stack(trajs: list[Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray([getattr(tr, k) for tr in trajs], np.float64)
            for k in ("x", "y", "yaw", "v")}


def rescore(rec: m.PairRecord, ctx: EvalContext | None = None) -> FactArrays:
    """Both views of the record's expert, negative and positive (rows 0, 1, 2), from the stored
    states and poses."""
    ctx = ctx or context_from_record(rec)
    trs = [getattr(rec, r) for r in ROLES]
    st = _stack(trs)
    return views.score_trajectories(ctx, st["x"], st["y"], st["yaw"], st["v"],
                                    np.asarray([t.facts.feasible for t in trs], bool)).full()


def recompute_facts(rec: m.PairRecord, ctx: EvalContext | None = None) -> dict[str, m.Facts]:
    """The facts of the expert, negative and positive, measured again from the stored data."""
    ctx = ctx or context_from_record(rec)
    f = rescore(rec, ctx)
    return {role: f.row(ctx, i) for i, role in enumerate(ROLES)}


def score_poses(rec: m.PairRecord, poses: Any, ctx: EvalContext | None = None
                ) -> list[m.Facts]:
    """Facts (collision, TTC, drivable area, comfort, PDMS, safety score) of each of K pose
    sequences (K, 8, 3) [x, y, yaw] at 0.5 s .. 4 s (rear axle, ego frame at the anchor), in
    NAVSIM's view of the record's scene: tracked from the anchor's ego state by NAVSIM's
    tracker, EP against the stored expert's poses. Pass ``ctx`` (from
    :func:`context_from_record`) to reuse it across calls."""
    ctx = ctx or context_from_record(rec)
    f = views.score_poses(ctx, np.asarray(poses, np.float64), np.asarray(rec.expert.poses))
    return [f.row(ctx, i) for i in range(1, f.pdms.shape[0])]
