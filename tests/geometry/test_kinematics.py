"""Bicycle rollout, the clamped scan and the feasibility check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cfpair.geometry.kinematics import (
    VehicleLimits,
    bicycle_rollout,
    check_feasibility,
    clamped_cumsum,
)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(1, 70), elements=st.floats(-3, 3)),
       st.floats(-5, 5), st.floats(-4, 0), st.floats(0, 4))
def test_clamped_cumsum_matches_loop(inc, y0, lo, hi):
    got = clamped_cumsum(inc, y0, lo, hi)
    ref = [min(max(y0, lo), hi)]
    for d in inc:
        ref.append(min(max(ref[-1] + d, lo), hi))
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_straight_line_constant_accel():
    r = bicycle_rollout(0.0, 0.0, 0.0, 10.0, np.full(40, 1.0), np.zeros(40), 0.1)
    np.testing.assert_allclose(r.v, 10 + 0.1 * np.arange(41))
    # explicit Euler: x[t] = sum_{i<t} v_i dt
    np.testing.assert_allclose(r.x[-1], sum((10 + 0.1 * i) * 0.1 for i in range(40)))
    assert np.all(r.y == 0) and np.all(r.yaw == 0)


def test_circle_radius_from_steering():
    lim = VehicleLimits()
    steer = 0.1
    r = bicycle_rollout(0.0, 0.0, 0.0, 5.0, np.zeros(400), np.zeros(400), 0.01, steer0=steer)
    radius = lim.wheel_base / np.tan(steer)
    centre = np.array([0.0, radius])
    d = np.hypot(r.x - centre[0], r.y - centre[1])
    np.testing.assert_allclose(d, radius, rtol=2e-3)


def test_limits_respected():
    rng = np.random.default_rng(0)
    lim = VehicleLimits()
    r = bicycle_rollout(0, 0, 0, rng.uniform(0, 30, 200), rng.normal(0, 20, (200, 40)),
                        rng.normal(0, 5, (200, 40)), 0.1)
    assert r.v.min() >= 0 and r.v.max() <= lim.max_speed
    assert np.abs(r.steer).max() <= lim.max_steer + 1e-12
    assert np.all(np.abs(np.diff(r.steer, axis=-1)) <= lim.max_steer_rate * 0.1 + 1e-12)
    f = check_feasibility(r.x, r.y, r.yaw, 0.1)
    # actuator limits hold by construction; lateral limits are judged, not imposed
    assert f.steer_ok.all() and f.steer_rate_ok.all() and f.accel_ok.all()
    assert f.reverse_ok.all() and f.heading_ok.all()
    lat_ok = np.all((np.abs(r.v * r.yaw_rate) <= lim.max_lat_accel + 1e-3)
                    & (np.abs(r.yaw_rate) <= lim.max_yaw_rate + 1e-6), axis=-1)
    assert np.array_equal(f.lat_accel_ok, lat_ok) and 0 < lat_ok.sum() < lat_ok.size
    np.testing.assert_array_equal(f.ok, lat_ok)


def test_infeasible_paths_are_flagged():
    t = np.arange(21) * 0.1
    straight = np.stack([10 * t, 0 * t, 0 * t])
    assert check_feasibility(*straight, 0.1).ok
    # sideways motion (crab): heading 90 deg off the direction of travel
    f = check_feasibility(10 * t, 0 * t, np.full_like(t, np.pi / 2), 0.1)
    assert not f.ok and not f.heading_ok
    # reversing at speed
    f = check_feasibility(-10 * t, 0 * t, 0 * t, 0.1)
    assert not f.ok and not f.reverse_ok
    # teleport: a 5 m jump in one step -> 50 m/s^2 and back
    x = 10 * t
    x[10:] += 5.0
    f = check_feasibility(x, 0 * t, 0 * t, 0.1)
    assert not f.accel_ok
    # too tight a turn: radius 1 m at 10 m/s
    ang = 10 * t
    f = check_feasibility(np.sin(ang), 1 - np.cos(ang), ang, 0.1)
    assert not f.steer_ok and not f.lat_accel_ok


@pytest.mark.parametrize("ang", [0.3, -2.5])
def test_rollout_equivariant_under_rotation(ang):
    rng = np.random.default_rng(1)
    acc, rate = rng.normal(0, 2, (5, 30)), rng.normal(0, 0.3, (5, 30))
    a = bicycle_rollout(0.0, 0.0, 0.0, 8.0, acc, rate, 0.1)
    b = bicycle_rollout(100.0, -50.0, ang, 8.0, acc, rate, 0.1)
    c, s = np.cos(ang), np.sin(ang)
    np.testing.assert_allclose(b.x, 100 + c * a.x - s * a.y, atol=1e-9)
    np.testing.assert_allclose(b.y, -50 + s * a.x + c * a.y, atol=1e-9)
    np.testing.assert_allclose(b.v, a.v)


def test_side_slip_is_flagged_and_a_bicycle_has_none():
    # a real bicycle (Euler, as NAVSIM) and an exact circular arc: the rear axle moves along
    # its heading, so no slip at all
    r = bicycle_rollout(0.0, 0.0, 0.0, 6.0, np.zeros(50), np.full(50, 0.2), 0.1)
    f = check_feasibility(r.x, r.y, r.yaw, 0.1)
    assert f.slip_ok and float(f.max_abs_slip) < 1e-9
    t = np.arange(51) * 0.1
    ang = 0.5 * t   # radius 12 m at 6 m/s
    f = check_feasibility(12 * np.sin(ang), 12 * (1 - np.cos(ang)), ang, 0.1)
    assert f.ok and float(f.max_abs_slip) < 1e-9
    # the same arc with the heading of a point 1.461 m ahead of the rear axle (the old
    # synthetic expert's mistake): yaw leads the motion by atan(1.461 / 12) = 6.9 degrees,
    # inside the 20-degree heading check but a side-slip
    lead = np.arctan(1.461 / 12)
    f = check_feasibility(12 * np.sin(ang), 12 * (1 - np.cos(ang)), ang + lead, 0.1)
    assert f.heading_ok and not f.slip_ok and not f.ok
    assert float(f.max_abs_slip) == pytest.approx(lead - 0.5 * 0.1 / 2, abs=1e-3)
    # standing still or barely moving: no verdict on slip
    f = check_feasibility(0.01 * t, 0 * t, np.full_like(t, 1.0), 0.1)
    assert f.slip_ok and float(f.max_abs_slip) == 0.0
