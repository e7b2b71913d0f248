"""Rebuild a scoring context from a stored record, and recompute its trajectories' facts.

Used by ``cfpair validate`` (are the stored facts what the geometry says?), by reward
functions that score new trajectories against a stored scene, and by the trainer. The record
keeps the map within 60 m, simplified to 0.1 m, and agents on the 0.1 s grid, so recomputed
facts match the stored ones up to that rounding.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import shapely

from cfpair.counterfactual.candidates import Candidates
from cfpair.counterfactual.context import EvalContext
from cfpair.counterfactual.frenet import RefPath
from cfpair.counterfactual.pairing import trajectory_facts
from cfpair.counterfactual.record import facts_model
from cfpair.geometry.drivable import DrivableArea
from cfpair.labels import models as m
from cfpair.metrics.pdms import Scores, score_candidates

ROLES = ("expert", "negative", "positive")


def _poly(flat: list[float]) -> shapely.Polygon:
    return shapely.Polygon(np.asarray(flat, np.float64).reshape(-1, 2)).buffer(0)


def context_from_record(rec: m.PairRecord) -> EvalContext:
    """An EvalContext equivalent to the one the record was made from."""
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
    n_t = len(t) - n_h
    agents = {k: np.asarray([getattr(a, k) for a in c.agents], np.float64).reshape(-1, len(t))
              for k in ("x", "y", "yaw", "vx", "vy")}
    valid = np.asarray([a.valid for a in c.agents], bool).reshape(-1, len(t))
    polys = tuple(np.asarray(p, np.float64).reshape(-1, 2) for p in c.map.drivable)
    drivable = (DrivableArea([_poly(p) for p in c.map.drivable])
                if c.map.available and polys else None)
    scenario = SimpleNamespace(ego_length=c.ego_length, ego_width=c.ego_width,
                               ego_rear_to_center=c.ego_rear_to_center,
                               source=rec.provenance.source,
                               scenario_id=rec.provenance.scenario_id)
    return EvalContext(
        scenario=scenario, anchor=rec.provenance.anchor_index,  # type: ignore[arg-type]
        t_hist=t[:n_h], t_fut=t[n_h:], ego_hist=hist, ego_hist_valid=np.asarray(h.valid, bool),
        expert=expert, expert_valid=np.ones(n_t, bool), agents=agents, agent_valid=valid,
        ids=np.asarray([a.id for a in c.agents], object),
        classes=np.asarray([str(a.cls) for a in c.agents], object),
        length=np.asarray([a.length for a in c.agents], np.float64),
        width=np.asarray([a.width for a in c.agents], np.float64),
        drivable=drivable, lanes=tuple(_poly(p) for p in c.map.lanes), polygons=polys,
        centerlines=tuple(np.asarray(p, np.float64).reshape(-1, 2) for p in c.map.centerlines),
        on_route=np.asarray(c.map.on_route, bool))


def candidates_of(ctx: EvalContext, trajs: list[dict[str, Any]], names: list[str],
                  feasible: list[bool]) -> Candidates:
    """Candidates from trajectories (dicts of x, y, yaw, v lists); row 0 must be the expert."""
    arr = {k: np.asarray([tr[k] for tr in trajs], np.float64) for k in ("x", "y", "yaw", "v")}
    ex = ctx.expert
    path = RefPath.from_expert(ex["x"], ex["y"], float(ex["yaw"][0]))
    return Candidates(arr["x"], arr["y"], arr["yaw"], arr["v"], tuple(names),
                      tuple({} for _ in names), np.asarray(feasible, bool), path)


def score_trajectories(ctx: EvalContext, c: Candidates) -> Scores:
    """PDMS-style scores of the candidates in ``c``."""
    return score_candidates(ctx, c.x, c.y, c.yaw, c.v, c.path.xy)


def recompute_facts(rec: m.PairRecord) -> dict[str, m.Facts]:
    """The facts of the expert, negative and positive, measured again from the stored data."""
    ctx = context_from_record(rec)
    trs = [getattr(rec, r) for r in ROLES]
    c = candidates_of(ctx, [t.model_dump() for t in trs], [t.perturbation for t in trs],
                      [t.facts.feasible for t in trs])
    s = score_trajectories(ctx, c)
    out = {}
    for i, role in enumerate(ROLES):
        tf = trajectory_facts(ctx, c, s, i, role)
        out[role] = facts_model(ctx, c, tf)
    return out
