"""Assemble one PairRecord (scene context, three trajectories with facts, provenance)."""

from __future__ import annotations

import numpy as np
import shapely

from cfpair import __version__
from cfpair.counterfactual.candidates import Candidates
from cfpair.counterfactual.pairing import Pair
from cfpair.geometry.transforms import wrap_angle
from cfpair.records import label as lab
from cfpair.records import schema as m
from cfpair.scoring.context import EvalContext
from cfpair.scoring.facts import DECIMALS
from cfpair.types import F64, Scenario

MAP_RADIUS_M = 60.0     # at least this far; farther when a stored trajectory reaches farther
MAP_MARGIN_M = 15.0
SIMPLIFY_M = 0.02
POSE_STEP = 5          # 0.5 s poses out of the 0.1 s grid


def _r(a: F64) -> list[float]:
    return np.round(np.asarray(a, np.float64), DECIMALS).tolist()


def _flat(geom: shapely.Geometry) -> list[list[float]]:
    """Exterior rings / lines of a clipped geometry as flat [x0, y0, x1, y1, ...] lists."""
    out = []
    for g in getattr(geom, "geoms", [geom]):
        if g.is_empty:
            continue
        coords = np.asarray(g.exterior.coords if g.geom_type == "Polygon" else g.coords)
        if len(coords) >= 2:
            out.append(_r(coords.reshape(-1)))
    return out


def map_summary(ctx: EvalContext, reach_m: float = 0.0) -> m.MapSummary:
    """Map parts within max(MAP_RADIUS_M, reach_m + MAP_MARGIN_M) of the ego at the anchor,
    simplified to SIMPLIFY_M, so the stored trajectories can be scored again from the record."""
    r = max(MAP_RADIUS_M, reach_m + MAP_MARGIN_M)
    box = shapely.box(-r, -r, r, r)

    def clip(polys: tuple[F64, ...], poly: bool) -> tuple[list[list[float]], list[int]]:
        out, idx = [], []
        for i, p in enumerate(polys):
            g = shapely.Polygon(p).buffer(0) if poly else shapely.LineString(p)
            g = shapely.intersection(g, box).simplify(SIMPLIFY_M)
            parts = _flat(g)
            out += parts
            idx += [i] * len(parts)
        return out, idx

    drivable, _ = clip(ctx.polygons, True)
    lanes, _ = clip(tuple(np.asarray(lane.exterior.coords) for lane in ctx.lanes
                          if lane.geom_type == "Polygon"), True)
    centre, idx = clip(ctx.centerlines, False)
    route = [bool(ctx.on_route[i]) if i < len(ctx.on_route) else False for i in idx]
    return m.MapSummary(available=ctx.drivable is not None, drivable=drivable, lanes=lanes,
                        centerlines=centre, on_route=route)


def driving_command(ctx: EvalContext) -> str:
    """left / straight / right from the expert's heading change over the horizon."""
    turn = float(wrap_angle(ctx.expert["yaw"][-1] - ctx.expert["yaw"][0]))
    return "left" if turn > 0.35 else "right" if turn < -0.35 else "straight"


def _trajectory(ctx: EvalContext, c: Candidates, pair: Pair, i: int) -> m.TrajectoryRecord:
    sel = slice(POSE_STEP, None, POSE_STEP)
    poses = np.stack([c.x[i, sel], c.y[i, sel], c.yaw[i, sel]], -1)
    return m.TrajectoryRecord(perturbation=c.describe(i), t=_r(ctx.t_fut), x=_r(c.x[i]),
                        y=_r(c.y[i]), yaw=_r(c.yaw[i]), v=_r(c.v[i]),
                        poses=[_r(p) for p in poses], facts=pair.facts.row(ctx, i),
                        costs=pair.facts.cost_row(i))


def _reach(c: Candidates, pair: Pair) -> float:
    rows = [0, pair.negative, pair.positive]
    return float(np.max(np.abs(np.concatenate([c.x[rows].ravel(), c.y[rows].ravel()]))))


def build_record(scn: Scenario, ctx: EvalContext, c: Candidates, pair: Pair, split: str,
                 seed: int, config_hash: str) -> m.PairRecord:
    """The unlabelled record (label None, status 'unlabeled') of one pair."""
    h = ctx.ego_hist
    history = m.EgoHistory(t=_r(ctx.t_hist), x=_r(h["x"]), y=_r(h["y"]), yaw=_r(h["yaw"]),
                           v=_r(np.hypot(h["vx"], h["vy"])), valid=ctx.ego_hist_valid.tolist())
    agents = [m.Agent(id=str(ctx.ids[j]), cls=str(ctx.classes[j]),
                      length=round(float(ctx.length[j]), DECIMALS),
                      width=round(float(ctx.width[j]), DECIMALS),
                      **{k: _r(np.where(ctx.agent_valid[j], ctx.agents[k][j], 0.0))
                         for k in ("x", "y", "yaw", "vx", "vy")},
                      valid=ctx.agent_valid[j].tolist()) for j in range(len(ctx.ids))]
    cams = [m.Camera(name=name, path=paths[ctx.anchor]) for name, paths in
            sorted(scn.sensors.items()) if paths[ctx.anchor]]
    context = m.Context(t=_r(ctx.t_all), ego_history=history, ego_length=scn.ego_length,
                        ego_width=scn.ego_width, ego_rear_to_center=scn.ego_rear_to_center,
                        driving_command=driving_command(ctx), agents=agents,
                        map=map_summary(ctx, _reach(c, pair)), cameras=cams)
    prov = m.Provenance(source=scn.source, scenario_id=scn.scenario_id, anchor_index=ctx.anchor,
                        anchor_time_s=round(float(scn.ego.t[ctx.anchor]), DECIMALS), seed=seed,
                        n_candidates=c.k, cfpair_version=__version__,
                        schema_version=lab.SCHEMA_VERSION, config_hash=config_hash,
                        labeler="none", prompt_version=None,
                        source_notes=[f"{k}: {v}" for k, v in
                                      scn.meta.get("record_notes", {}).items()])
    return m.PairRecord(
        pair_id=m.pair_id(scn.source, scn.scenario_id, ctx.anchor), split=split, context=context,
        expert=_trajectory(ctx, c, pair, 0),
        negative=_trajectory(ctx, c, pair, pair.negative),
        positive=_trajectory(ctx, c, pair, pair.positive),
        meta_action=lab.MetaAction(longitudinal=pair.longitudinal, lateral=pair.lateral),
        positive_vs_negative=pair.contrast,
        label=None, label_status="unlabeled", provenance=prov)
