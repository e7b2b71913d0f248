"""PDMS scoring against hand-computed cases, shapely, and rigid-motion invariance."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cfpair.counterfactual.candidates import build_candidates
from cfpair.geometry.boxes import box_corners
from cfpair.scoring.boxes import segment_hits_box
from cfpair.scoring.context import build_context
from cfpair.scoring.pdms import COLLISION_TYPES, score_candidates
from cfpair.scoring.views import score_trajectories
from tests.counterfactual.scenes import LANE_W, scene, track

EGO_FRONT = 1.461 + 5.176 / 2      # rear axle to front bumper


def score_expert(scn):  # noqa: ANN001, ANN201
    ctx = build_context(scn, scn.anchors[0])
    ex = ctx.expert
    x, y, yaw = ex["x"][None], ex["y"][None], ex["yaw"][None]
    v = np.hypot(ex["vx"], ex["vy"])[None]
    return score_candidates(ctx, x, y, yaw, v).take(0)


def test_stopped_vehicle_ahead_is_an_at_fault_collision_at_the_computed_step() -> None:
    # rear axle reaches 30 - 2.4 - EGO_FRONT = 23.551 m at 10 m/s: t = 2.3551 s -> step 24
    s = scene(track(0, -1.75, 10.0), [("parked", "vehicle", track(30, -1.75, 0.0), 4.8, 2.0)])
    e = score_expert(s)
    assert COLLISION_TYPES[e["collision_type"]] == "stopped_track"
    assert e["collision_step"] == 24 and e["at_fault"] and e["nc"] == 0.0
    assert e["pdms"] == 0.0 and e["ttc"] == 0.0


def test_rear_end_by_another_car_is_not_at_fault() -> None:
    # a faster car behind in the same lane: contact at the ego's rear, ACTIVE_REAR
    s = scene(track(0, -1.75, 5.0), [("chaser", "vehicle", track(-12, -1.75, 9.0), 4.8, 2.0)])
    e = score_expert(s)
    assert e["collides"] and COLLISION_TYPES[e["collision_type"]] == "active_rear"
    assert not e["at_fault"] and e["nc"] == 1.0


def test_closing_on_a_slower_lead_is_active_front() -> None:
    # bumper gap 10 - 2.4 - EGO_FRONT = 3.551 m closing at 5 m/s: contact at 0.71 s -> step 8
    s = scene(track(0, -1.75, 10.0), [("lead", "vehicle", track(10, -1.75, 5.0), 4.8, 2.0)])
    e = score_expert(s)
    assert COLLISION_TYPES[e["collision_type"]] == "active_front"
    assert e["collision_step"] == 8 and e["nc"] == 0.0


def test_side_swipe_from_the_next_lane_is_lateral_and_not_at_fault_in_one_lane() -> None:
    # the other car drifts from the left lane into the ego's side while the ego stays in lane
    other = track(1.0, 1.75, 10.0, -1.0)
    s = scene(track(0, -1.75, 10.0), [("drifter", "vehicle", other, 4.8, 2.0)])
    e = score_expert(s)
    assert e["collides"] and COLLISION_TYPES[e["collision_type"]] == "active_lateral"
    assert not e["at_fault"] and e["nc"] == 1.0


def test_drivable_area_progress_and_score_formula() -> None:
    free = scene(track(0, -1.75, 10.0), [])
    e = score_expert(free)
    assert e["dac"] == 1 and e["nc"] == 1 and e["ttc"] == 1 and e["comfort"] == 1
    assert e["progress_m"] == pytest.approx(40.0, abs=1e-6) and e["ep"] == 1.0
    assert e["pdms"] == 1.0
    # drifting left across the left lane's outer edge: off the drivable area
    off = scene(track(0, -1.75, 10.0, 2.0), [])
    o = score_expert(off)
    assert o["dac"] == 0 and o["pdms"] == 0.0
    # the first off-road step: the left corners cross y = 3.5
    ego = off.ego.at(slice(off.anchors[0], None))     # world frame, 41 future states
    cx = ego.x + 1.461 * np.cos(ego.yaw)
    cy = ego.y + 1.461 * np.sin(ego.yaw)
    corners = box_corners(cx, cy, ego.yaw, 5.176, 2.297)
    first = int(np.argmax((corners[..., 1] > LANE_W).any(axis=1)))
    assert o["offroad_step"] == first


def test_hard_braking_is_uncomfortable_and_ep_is_relative_to_the_expert() -> None:
    s = scene(track(0, -1.75, 10.0), [])
    ctx = build_context(s, s.anchors[0])
    cands = build_candidates(ctx, 128, seed=0)
    sc = score_candidates(ctx, cands.x, cands.y, cands.yaw, cands.v)
    i = cands.names.index("hard_brake")
    while cands.params[i] != {"start": 0.0, "decel": -8.0}:
        i += 1
    assert sc.comfort[i] == 0.0
    # EP = progress / expert progress (40 m), for every candidate with NC * DAC > 0
    ok = sc.nc * sc.dac > 0
    np.testing.assert_allclose(sc.ep[ok], np.minimum(sc.progress_m[ok] / 40.0, 1.0), atol=1e-9)
    np.testing.assert_allclose(
        sc.pdms, sc.nc * sc.dac * (5 * sc.ep + 5 * sc.ttc + 2 * sc.comfort) / 12)


def test_segment_box_test_agrees_with_shapely() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    p0, p1 = rng.uniform(-6, 6, (n, 2)), rng.uniform(-6, 6, (n, 2))
    cx, cy, yaw = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(-np.pi, np.pi, n)
    hl, hw = rng.uniform(0.5, 3, n), rng.uniform(0.3, 1.5, n)
    ours = segment_hits_box(p0, p1, cx, cy, yaw, hl, hw)
    boxes = shapely.polygons(box_corners(cx, cy, yaw, 2 * hl, 2 * hw))
    segs = shapely.linestrings(np.stack([p0, p1], 1))
    np.testing.assert_array_equal(ours, shapely.intersects(boxes, segs))


def test_scores_do_not_depend_on_the_world_frame() -> None:
    from cfpair.types import AgentTracks, MapGeometry, Scenario, Trajectory  # noqa: F401
    base = scene(track(0, -1.75, 10.0), [("lead", "vehicle", track(20, -1.75, 6.0), 4.8, 2.0),
                                         ("x", "pedestrian", track(35, 6, 0.0, -1.4), 0.6, 0.6)])
    ang, off = 2.1, np.array([664000.0, 3996000.0])
    c, s_ = np.cos(ang), np.sin(ang)

    def move(x, y):  # noqa: ANN001, ANN202
        return c * x - s_ * y + off[0], s_ * x + c * y + off[1]

    def moved_traj(tr):  # noqa: ANN001, ANN202
        x, y = move(tr.x, tr.y)
        vx, vy = c * tr.vx - s_ * tr.vy, s_ * tr.vx + c * tr.vy
        return type(tr)(**{**vars(tr), "x": x, "y": y, "yaw": tr.yaw + ang, "vx": vx, "vy": vy})

    polys = tuple(np.stack(move(p[:, 0], p[:, 1]), -1) for p in base.map.drivable)
    lines = tuple(np.stack(move(p[:, 0], p[:, 1]), -1) for p in base.map.centerlines)
    moved = type(base)(**{**vars(base), "ego": moved_traj(base.ego),
                          "agents": moved_traj(base.agents),
                          "map": type(base.map)(drivable=polys, lanes=polys, centerlines=lines,
                                                on_route=base.map.on_route,
                                                lane_ids=base.map.lane_ids)})
    out, navsim = [], []
    for scn in (base, moved):
        ctx = build_context(scn, scn.anchors[0])
        cands = build_candidates(ctx, 96, seed=4)
        out.append((cands, score_candidates(ctx, cands.x, cands.y, cands.yaw, cands.v)))
        navsim.append(score_trajectories(ctx, cands.x, cands.y, cands.yaw, cands.v,
                                         cands.feasible))
    (ca, sa), (cb, sb) = out
    # NAVSIM's view too: the same sub-scores for every candidate wherever the scene lies
    for name in ("nc", "dac", "ttc", "comfort", "collides"):
        np.testing.assert_array_equal(getattr(navsim[0], name), getattr(navsim[1], name),
                                      err_msg=name)
    np.testing.assert_allclose(navsim[0].pdms, navsim[1].pdms, atol=1e-6)
    np.testing.assert_allclose(ca.x, cb.x, atol=1e-6)
    for name in ("nc", "dac", "ttc", "comfort", "collision_step", "ttc_step"):
        np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name), err_msg=name)
    np.testing.assert_allclose(sa.pdms, sb.pdms, atol=1e-6)
