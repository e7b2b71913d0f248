"""Candidates (operators, bicycle rollout, seeding) and pair selection."""

from __future__ import annotations

import numpy as np
import pytest

from cfpair.counterfactual.candidates import build_candidates
from cfpair.counterfactual.operators import DEFAULT_VARIANTS, OPERATORS, OpInput, apply
from cfpair.counterfactual.pairing import make_pair, meta_action, safe_mask
from cfpair.errors import SceneRejected
from cfpair.geometry.kinematics import VehicleLimits, track
from cfpair.scoring.context import build_context
from cfpair.scoring.views import score_trajectories
from cfpair.sources.synthetic import SyntheticSource

from .scenes import scene
from .scenes import track as straight


def _pair(scn, k=256, seed=0):  # noqa: ANN001, ANN202
    ctx = build_context(scn, scn.anchors[0])
    c = build_candidates(ctx, k, seed)
    s = score_trajectories(ctx, c.x, c.y, c.yaw, c.v, c.feasible)
    return ctx, c, s, make_pair(ctx, c, s)


def test_every_operator_is_registered_and_used() -> None:
    used = {n for n, _ in DEFAULT_VARIANTS}
    assert used | {"expert"} == set(OPERATORS)
    inp = OpInput(np.arange(41) * 0.1, np.full(41, 10.0))
    for name, params in DEFAULT_VARIANTS:
        v, d = apply(name, params, inp)
        assert v.shape == d.shape == (41,) and np.all(v >= 0) and np.all(np.isfinite(d))
    v, _ = apply("hard_brake", {"start": 1.0, "decel": -5.0}, inp)
    assert v[10] == pytest.approx(10.0) and v[20] == pytest.approx(5.0) and v[-1] == 0.0


def test_rollouts_respect_the_actuator_limits_and_track_the_target() -> None:
    lim = VehicleLimits()
    t = np.arange(41) * 0.1
    x = np.stack([8.0 * t, 12.0 * t])
    y = np.stack([np.zeros(41), 0.15 * (12 * t) ** 1.5 / 10])
    rx, ry, ryaw, rv = track(x, y, 0.0, np.array([8.0, 12.0]), 0.1, lim)
    assert np.hypot(rx[0] - x[0], ry[0] - y[0]).max() < 1e-9   # straight: exact
    assert np.all(rv >= 0) and np.all(rv <= lim.max_speed)
    steer = np.arctan(np.diff(ryaw, axis=1) / np.maximum(rv[:, :-1] * 0.1, 1e-9)
                      * lim.wheel_base)
    assert np.all(np.abs(np.diff(steer[:, 1:], axis=1)) / 0.1 <= lim.max_steer_rate + 1e-6)


def test_candidates_are_seeded_by_scene_not_by_order() -> None:
    src = SyntheticSource(n_scenes=4, seed=3)
    a, b = src.generate(1), src.generate(2)
    ca1 = build_candidates(build_context(a, a.anchors[0]), 200, seed=5)
    build_candidates(build_context(b, b.anchors[0]), 200, seed=5)   # in between: no effect
    ca2 = build_candidates(build_context(a, a.anchors[0]), 200, seed=5)
    np.testing.assert_array_equal(ca1.x, ca2.x)
    assert ca1.params == ca2.params
    other = build_candidates(build_context(a, a.anchors[0]), 200, seed=6)
    assert other.params[150:] != ca1.params[150:]
    assert ca1.names[0] == "expert" and ca1.feasible[0]


def test_a_colliding_logged_future_is_the_negative_and_the_positive_is_safe() -> None:
    s = scene(straight(0, -1.75, 12.0), [("parked", "vehicle", straight(40, -1.75, 0.0),
                                          4.8, 2.0)])
    ctx, c, sc, p = _pair(s)
    f, neg = p.facts, p.facts.row(ctx, 0)
    assert p.negative == 0 and neg.collides and f.critical_agent[0] == 0
    assert neg.first_conflict_time_s == pytest.approx(
        round(np.ceil((40 - 2.4 - 4.049) / 12.0 * 10) / 10, 1))
    pos = f.row(ctx, p.positive)
    assert not pos.collides and pos.ttc_ok and pos.drivable_ok and pos.feasible
    assert pos.min_distance_m >= 0.5 and pos.safety_score > neg.safety_score
    assert safe_mask(sc, c.feasible)[p.positive] or not pos.comfort_ok
    costs = f.cost_row(0).model_dump()
    assert costs["collision"][28] == 1.0 and costs["collision"][27] == 0
    assert costs["safety"][28] == 0.0
    assert all(len(v) == 41 for v in costs.values())


def test_a_safe_expert_gets_a_near_expert_risky_negative() -> None:
    s = scene(straight(0, -1.75, 10.0), [("lead", "vehicle", straight(20, -1.75, 10.0),
                                          4.8, 2.0)])
    ctx, c, sc, p = _pair(s)
    assert not sc.risky[0] and p.negative != 0 and sc.risky[p.negative]
    # the chosen negative is the nearest agent-related risky candidate to the expert
    ade = np.mean(np.hypot(c.x - c.x[0], c.y - c.y[0]), axis=1)
    pool = sc.risky & c.feasible & (sc.collides | (sc.ttc == 0))
    assert ade[p.negative] == pytest.approx(ade[pool].min())


def test_meta_actions_from_hand_made_pairs() -> None:
    s = scene(straight(0, -1.75, 10.0), [])
    ctx = build_context(s, s.anchors[0])
    c = build_candidates(ctx, 128, 0)

    def idx(name: str, **params: float) -> int:
        return next(i for i, (n, p) in enumerate(zip(c.names, c.params, strict=True))
                    if n == name and p == params)

    assert meta_action(c, 0, idx("hard_brake", start=0.0, decel=-8.0), None) == (
        "stop", "keep_lane")
    assert meta_action(c, 0, idx("speed_scale", factor=0.5), None)[0] == "decelerate"
    assert meta_action(c, 0, idx("accelerate", accel=2.0), None)[0] == "accelerate"
    assert meta_action(c, 0, idx("lane_change", direction=1.0, duration=2.5), None) == (
        "keep", "change_lane_left")
    assert meta_action(c, 0, idx("lateral_offset", offset=-1.0, ramp=1.5), None) == (
        "keep", "nudge_right")


def test_no_safe_candidate_is_a_named_rejection() -> None:
    # boxed in: walls of parked trucks right ahead and on both sides of the road
    agents = [(f"w{i}", "static", straight(8, y, 0.0), 3.0, 1.5)
              for i, y in enumerate([-2.6, -0.9, 0.9, 2.6])]
    s = scene(straight(0, -1.75, 12.0), agents)
    with pytest.raises(SceneRejected) as err:
        _pair(s)
    assert err.value.reason == "no_safe_candidate"
