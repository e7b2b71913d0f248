"""Data model: validation catches bad arrays, frame changes round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from cfpair.errors import ShapeError
from cfpair.types import AgentTracks, MapGeometry, Scenario, Trajectory


def make_scenario(n_agents: int = 2, steps: int = 21) -> Scenario:
    t = np.arange(steps) * 0.1
    ego = Trajectory.from_poses(100 + 10 * t, 50 + 0 * t, np.full(steps, 0.3), t)
    ax = np.stack([130 - 5 * t, 120 + 0 * t])[:n_agents]
    ay = np.stack([52 + 0 * t, 40 + 0 * t])[:n_agents]
    agents = AgentTracks(ax, ay, np.zeros_like(ax), np.gradient(ax, t, axis=1),
                         np.zeros_like(ax), np.ones(ax.shape, bool), t,
                         np.array(["a", "b"][:n_agents]), np.array(["vehicle", "pedestrian"]
                                                                   [:n_agents]),
                         np.array([4.5, 0.6][:n_agents]), np.array([1.8, 0.6][:n_agents]))
    road = np.array([[0, 30], [300, 30], [300, 70], [0, 70]], float)
    m = MapGeometry(drivable=(road,), centerlines=(np.array([[0, 50], [300, 50.0]]),),
                    on_route=np.array([True]), lane_ids=("l1",))
    return Scenario("s1", "synthetic", ego, agents, m, 0.1, anchors=(5,)).validate()


def test_valid_scenario_passes():
    s = make_scenario()
    assert s.n_steps == 21 and s.agents.n == 2


def test_nan_at_valid_sample_is_rejected_but_allowed_when_invalid():
    s = make_scenario()
    x = s.agents.x.copy()
    x[0, 3] = np.nan
    bad = AgentTracks(**{**s.agents.__dict__, "x": x})
    with pytest.raises(ShapeError, match="NaN"):
        bad.validate()
    valid = s.agents.valid.copy()
    valid[0, 3] = False
    AgentTracks(**{**s.agents.__dict__, "x": x, "valid": valid}).validate()


@pytest.mark.parametrize("field,value,match", [
    ("classes", np.array(["vehicle", "spaceship"]), "unknown classes"),
    ("ids", np.array(["a", "a"]), "unique"),
    ("length", np.array([4.5, -1.0]), "> 0"),
])
def test_agent_validation_errors(field, value, match):
    s = make_scenario()
    with pytest.raises(ShapeError, match=match):
        AgentTracks(**{**s.agents.__dict__, field: value}).validate()


def test_trajectory_shape_and_time_checks():
    t = np.arange(5) * 0.1
    tr = Trajectory.from_poses(t, t, t, t)
    with pytest.raises(ShapeError, match="strictly increasing"):
        Trajectory(**{**tr.__dict__, "t": t[::-1].copy()}).validate()
    with pytest.raises(ShapeError, match="shape"):
        Trajectory(**{**tr.__dict__, "y": np.zeros(4)}).validate()
    with pytest.raises(ShapeError, match=r"\(M>=3, 2\)"):
        MapGeometry(drivable=(np.zeros((2, 2)),)).validate()


def test_frame_round_trip_and_ego_frame():
    s = make_scenario()
    tr = s.ego.to_frame(7.0, -3.0, 1.1).from_frame(7.0, -3.0, 1.1)
    for f in ("x", "y", "yaw", "vx", "vy"):
        np.testing.assert_allclose(getattr(tr, f), getattr(s.ego, f), atol=1e-9)
    e = s.in_ego_frame(5)
    assert e.ego.x[5] == pytest.approx(0) and e.ego.y[5] == pytest.approx(0)
    assert e.ego.yaw[5] == pytest.approx(0) and e.ego.t[5] == pytest.approx(0)
    # ego moves at 10 m/s along its own heading -> along +x in its frame
    # the ego drives along world +x with heading 0.3: in its own frame the velocity is
    # (10 cos 0.3, -10 sin 0.3)
    np.testing.assert_allclose(e.ego.vx, 10.0 * np.cos(0.3), atol=1e-9)
    np.testing.assert_allclose(e.ego.vy, -10.0 * np.sin(0.3), atol=1e-9)
    # distances are preserved
    d_world = np.hypot(s.agents.x[0] - s.ego.x, s.agents.y[0] - s.ego.y)
    d_ego = np.hypot(e.agents.x[0] - e.ego.x, e.agents.y[0] - e.ego.y)
    np.testing.assert_allclose(d_world, d_ego, atol=1e-9)
