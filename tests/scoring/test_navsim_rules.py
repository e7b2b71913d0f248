"""The scorer's NAVSIM v1.1 rules on hand cases (spec navsim-tracking-and-scoring.md §5, §6):
collision typing by first observation, EP masked by the reference's NC x DAC, TTC into the
observation past the plan, DAC without a map, NaN angles, comfort on simulated states, and
that a candidate's facts do not depend on the batch it is scored in."""

from __future__ import annotations

import numpy as np
import pytest

from cfpair.counterfactual.candidates import build_candidates
from cfpair.scoring.context import build_context
from cfpair.scoring.pdms import COLLISION_TYPES, EgoStates, relative_angle, score_states
from cfpair.scoring.views import poses_of, score_poses, score_trajectories
from tests.counterfactual.scenes import T, scene, track


def _expert_states(scn, **kw) -> tuple:  # noqa: ANN001, ANN003
    ctx = build_context(scn, scn.anchors[0], **kw)
    ex = ctx.expert
    return ctx, EgoStates(ex["x"][None], ex["y"][None], ex["yaw"][None],
                          np.hypot(ex["vx"], ex["vy"])[None])


def _walker(x: float, y0: float, t_start: float, vy: float) -> dict[str, np.ndarray]:
    """A pedestrian standing at (x, y0) until t_start, then walking +y at vy."""
    moving = T >= t_start
    y = y0 + np.where(moving, (T - t_start) * vy, 0.0)
    return {"x": np.full(T.size, x), "y": y, "yaw": np.full(T.size, np.pi / 2),
            "vx": np.zeros(T.size), "vy": np.where(moving, vy, 0.0)}


def test_a_pedestrian_standing_at_first_sight_who_walks_into_the_side_is_a_stopped_track(
        ) -> None:
    # ego 5 m/s in the right lane; the pedestrian stands 1.6 m right of the ego's side until
    # 1.55 s, then walks into it (contact ~2.2 s, behind the front bumper, ahead of the rear)
    s = scene(track(0, -1.75, 5.0), [("p", "pedestrian", _walker(12.0, -4.5, 1.55, 2.0),
                                      0.6, 0.6)])
    ctx, e = _expert_states(s)
    sc = score_states(ctx, e).take(0)
    assert sc["collides"] and COLLISION_TYPES[sc["collision_type"]] == "stopped_track"
    assert sc["at_fault"] and sc["nc"] == 0.0 and sc["pdms"] == 0.0
    assert 20 <= sc["collision_step"] <= 24
    # typed by its speed at contact (the old rule) it would have been an active lateral hit
    step = sc["collision_step"]
    assert ctx.agents_future()[0]["vy"][0, step] == 2.0


def test_ep_drops_a_colliding_reference_and_keeps_a_clean_one() -> None:
    # row 0 (the reference) hits a parked car; row 1 stops early (10 m), row 2 the same as 0
    s = scene(track(0, -1.75, 10.0), [("car", "vehicle", track(30, -1.75, 0.0), 4.8, 2.0)])
    ctx, e = _expert_states(s)
    t = T[T >= 0][:41]
    stop = np.where(t < 2, 10 * t - 2.5 * t**2, 10.0)
    v_stop = np.maximum(10 - 5 * t, 0.0)
    x = np.stack([e.x[0], stop, e.x[0]])
    z = np.zeros_like(x)
    sc = score_states(ctx, EgoStates(x, z, z, np.stack([e.speed[0], v_stop,
                                                                e.speed[0]])))
    assert sc.nc[0] == 0.0 and sc.nc[1] == 1.0
    # masked reference progress is 0: the candidate's own progress (10 m > 5 m) normalises it
    assert sc.ep[1] == 1.0 and sc.ep[0] == 0.0 and sc.ep[2] == 0.0
    # a clean reference: the same stop is measured against 40 m
    free = scene(track(0, -1.75, 10.0), [])
    ctx_f, e_f = _expert_states(free)
    sf = score_states(ctx_f, EgoStates(np.stack([e_f.x[0], stop]), z[:2], z[:2],
                                       np.stack([e_f.speed[0], v_stop])))
    assert sf.ep[1] == pytest.approx(10.0 / 40.0, abs=1e-9) and sf.ep[0] == 1.0


def test_ep_is_one_below_the_5_m_threshold_unless_nc_dac_is_zero() -> None:
    s = scene(track(0, -1.75, 1.0), [])      # the reference moves 4 m: below the threshold
    ctx, e = _expert_states(s)
    crawl = np.stack([e.x[0], 0.25 * e.x[0]])
    z = np.zeros_like(crawl)
    sc = score_states(ctx, EgoStates(crawl, z, z, np.stack([e.speed[0],
                                                                    0.25 * e.speed[0]])))
    assert sc.progress_m[0] == pytest.approx(4.0, abs=1e-6)
    assert sc.ep[0] == 1.0 and sc.ep[1] == 1.0


def test_ttc_looks_into_the_observation_past_the_plan() -> None:
    # the ego's front reaches 44.05 m at 4 s; a parked car 5 m further is within the 0.9 s
    # projection only at steps whose t + offset lies past 4 s (observation to 5 s)
    car_x = 40 + 4.049 + 5.0 + 2.4
    s = scene(track(0, -1.75, 10.0), [("car", "vehicle", track(car_x, -1.75, 0.0), 4.8, 2.0)])
    ctx, e = _expert_states(s)
    sc = score_states(ctx, e).take(0)
    assert not sc["collides"] and sc["ttc"] == 0.0 and sc["ttc_step"] >= 36
    short_ctx, short_e = _expert_states(s, observation_s=4.0)
    assert score_states(short_ctx, short_e).take(0)["ttc"] == 1.0


def test_dac_is_not_evaluated_without_a_map() -> None:
    s = scene(track(0, -1.75, 10.0), [], with_map=False)
    ctx, e = _expert_states(s)
    sc = score_states(ctx, e)
    assert np.isnan(sc.dac[0]) and sc.pdms[0] == pytest.approx(
        sc.nc[0] * (5 * sc.ep[0] + 5 * sc.ttc[0] + 2 * sc.comfort[0]) / 12)
    ex = ctx.expert
    f = score_trajectories(ctx, ex["x"][None], ex["y"][None], ex["yaw"][None],
                           np.hypot(ex["vx"], ex["vy"])[None])
    row = f.row(ctx, 0)
    assert row.dac is None and row.exact_dac is None and not row.dac_evaluated
    assert row.drivable_ok and row.pdms == 1.0


def test_relative_angle_is_nan_on_the_rear_axle_and_neither_ahead_nor_behind() -> None:
    a = relative_angle(np.array([0.0, 0.0]), np.zeros(2), np.zeros(2), np.array([0.0, -3.0]),
                       np.zeros(2))
    assert np.isnan(a[0]) and a[1] == pytest.approx(np.pi)
    assert not (a[0] < np.deg2rad(30)) and not (a[0] > np.deg2rad(150))


def test_navsim_view_of_a_steady_drive_is_perfect_and_a_hard_stop_is_uncomfortable() -> None:
    s = scene(track(0, -1.75, 10.0), [])
    ctx = build_context(s, s.anchors[0])
    t = np.arange(1, 9) * 0.5
    steady = np.stack([10 * t, np.zeros(8), np.zeros(8)], -1)
    stop = np.stack([np.where(t < 1, 10 * t - 5 * t**2, 5.0), np.zeros(8), np.zeros(8)], -1)
    expert = poses_of(ctx.expert["x"][None], ctx.expert["y"][None], ctx.expert["yaw"][None])[0]
    f = score_poses(ctx, np.stack([steady, stop]), expert)
    assert f.pdms[1] == 1.0 and f.comfort[1] == 1.0 and f.nc[1] == 1.0 and f.dac[1] == 1.0
    assert f.comfort[2] == 0.0 and f.ttc[2] == 1.0
    # NAVSIM's tracker overshoots a stop the poses place at 5 m (actuator lags)
    assert 6.0 < f.progress_m[2] < 15.0 and f.ep[2] == pytest.approx(f.progress_m[2] / 40.0)


def test_a_candidates_facts_do_not_depend_on_its_batch() -> None:
    s = scene(track(0, -1.75, 10.0), [("lead", "vehicle", track(20, -1.75, 6.0), 4.8, 2.0),
                                      ("x", "pedestrian", track(35, 6, 0.0, -1.4), 0.6, 0.6)])
    ctx = build_context(s, s.anchors[0])
    c = build_candidates(ctx, 64, seed=2)
    full = score_trajectories(ctx, c.x, c.y, c.yaw, c.v, c.feasible)
    for i in (1, 17, 63):
        rows = [0, i]
        alone = score_trajectories(ctx, c.x[rows], c.y[rows], c.yaw[rows], c.v[rows],
                                   c.feasible[rows])
        assert alone.row(ctx, 1) == full.row(ctx, i)
        assert alone.cost_row(1) == full.cost_row(i)


def test_a_trajectory_the_simulator_cannot_follow_scores_zero_and_stores_cleanly() -> None:
    s = scene(track(0, -1.75, 10.0), [("lead", "vehicle", track(30, -1.75, 10.0), 4.8, 2.0)])
    ctx = build_context(s, s.anchors[0])
    t = np.arange(1, 9) * 0.5
    good = np.stack([10 * t, np.zeros(8), np.zeros(8)], -1)
    wild = good.copy()
    wild[3, 0] = 1e300           # finite text, but the tracker overflows
    expert = poses_of(ctx.expert["x"][None], ctx.expert["y"][None], ctx.expert["yaw"][None])[0]
    f = score_poses(ctx, np.stack([good, wild]), expert)
    assert f.pdms[1] > 0.9 and f.pdms[2] == 0.0 and f.safety_score[2] == 0.0
    row = f.row(ctx, 2)
    assert row.pdms == 0.0 and row.progress_m == 0.0 and row.safety_score == 0.0
