"""Comfort (and its savgol filter), progress along a centreline, drivable-area compliance."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cfpair.geometry.comfort import ComfortBounds, comfort, comfort_of_path
from cfpair.geometry.drivable import DrivableArea
from cfpair.geometry.kinematics import bicycle_rollout
from cfpair.geometry.progress import progress_along, project_to_polyline
from cfpair.geometry.signal import savgol_filter


@pytest.mark.parametrize("window,poly,deriv", [(41, 2, 0), (41, 2, 1), (8, 2, 0), (5, 2, 1),
                                               (5, 3, 2), (7, 2, 0), (6, 2, 1), (2, 1, 0)])
def test_savgol_matches_scipy(window, poly, deriv):
    scipy_signal = pytest.importorskip("scipy.signal")
    x = np.random.default_rng(window * 10 + deriv).normal(size=(4, 41)).cumsum(-1)
    ref = scipy_signal.savgol_filter(x, window, poly, deriv=deriv, delta=0.1)
    np.testing.assert_allclose(savgol_filter(x, window, poly, deriv=deriv, delta=0.1), ref,
                               atol=1e-9)


def test_comfort_hand_cases():
    t = np.arange(41) * 0.1
    zeros = np.zeros(41)
    c = comfort(zeros, zeros, zeros, 0.1)
    assert c.ok
    # constant -3 m/s^2 braking is comfortable; -4.5 is not (bound -4.05)
    assert comfort(np.full(41, -3.0), zeros, zeros, 0.1).lon_accel_ok
    assert not comfort(np.full(41, -4.5), zeros, zeros, 0.1).lon_accel_ok
    # the bound is strict: exactly 2.40 fails
    assert not comfort(np.full(41, 2.40), zeros, zeros, 0.1).lon_accel_ok
    # yaw rate 0.5 rad/s ok, 1.0 rad/s not (bound 0.95)
    assert comfort(zeros, zeros, 0.5 * t, 0.1).yaw_rate_ok
    assert not comfort(zeros, zeros, 1.0 * t, 0.1).yaw_rate_ok
    # lateral 5 m/s^2 is too much
    assert not comfort(zeros, np.full(41, 5.0), zeros, 0.1).lat_accel_ok
    # NAVSIM differentiates a 41-sample quadratic fit, so jerk is the slope of a ramp:
    # 1 m/s^3 passes, 5 m/s^3 fails (bound 4.13) for both jerk checks
    c = comfort(1.0 * (t - 2.0), zeros, zeros, 0.1)
    assert c.lon_jerk_ok and c.jerk_ok
    # ~1 (scipy's even window 8 shifts the interior half a sample, the edges not)
    np.testing.assert_allclose(c.lon_jerk, 1.0, atol=0.1)
    c = comfort(5.0 * (t - 2.0), zeros, zeros, 0.1)
    assert not c.lon_jerk_ok


def test_comfort_of_path_matches_rollout_accel_and_is_invariant():
    r = bicycle_rollout(0.0, 0.0, 0.2, 12.0, np.full((3, 40), [[0.5], [-2.0], [-6.0]]),
                        np.full((3, 40), 0.02), 0.1)
    c = comfort_of_path(r.x, r.y, r.yaw, 0.1)
    assert c.ok.tolist()[:2] == [True, True] and not c.ok[2]
    ang, tx, ty = 1.3, 3.0e5, -2.0e6
    co, si = np.cos(ang), np.sin(ang)
    moved = comfort_of_path(co * r.x - si * r.y + tx, si * r.x + co * r.y + ty, r.yaw + ang, 0.1)
    np.testing.assert_allclose(moved.lon_accel, c.lon_accel, atol=1e-5)
    np.testing.assert_allclose(moved.yaw_rate, c.yaw_rate, atol=1e-6)
    assert np.array_equal(moved.ok, c.ok)
    assert ComfortBounds().lon_accel == (-4.05, 2.40)


def test_projection_matches_shapely():
    rng = np.random.default_rng(0)
    line = np.cumsum(rng.uniform(-1, 3, (30, 2)), axis=0)
    pts = rng.uniform(line.min(0) - 5, line.max(0) + 5, (2000, 2))
    arc, lat = project_to_polyline(pts, line)
    ls = shapely.LineString(line)
    ref = shapely.line_locate_point(ls, shapely.points(pts))
    np.testing.assert_allclose(arc, ref, atol=1e-9)
    np.testing.assert_allclose(np.abs(lat), shapely.distance(ls, shapely.points(pts)), atol=1e-9)


def test_progress_hand_computed():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    start = np.array([[2.0, 1.0], [9.0, 0.0]])
    end = np.array([[12.0, 5.0], [5.0, 0.0]])
    # (2,1)->s=2; (12,5)->s=15 -> 13; second goes backwards -> clipped to 0
    np.testing.assert_allclose(progress_along(start, end, line), [13.0, 0.0])
    _, lat = project_to_polyline(np.array([[5.0, 2.0], [5.0, -2.0]]), line)
    np.testing.assert_allclose(lat, [2.0, -2.0])  # left positive


def test_drivable_matches_shapely_and_hand_cases():
    road = shapely.box(-10, -4, 100, 4)
    junction = shapely.box(40, -30, 48, 30)
    area = DrivableArea([road, junction])
    # ego box 4 x 2 at (20, 0) inside; at (20, 3.5) its left corners leave the road
    assert area.boxes_inside(20.0, 0.0, 0.0, 4.0, 2.0)
    assert not area.boxes_inside(20.0, 3.5, 0.0, 4.0, 2.0)
    assert area.boxes_inside(44.0, 20.0, np.pi / 2, 4.0, 2.0)  # in the crossing road
    # corner on the shared boundary of the two polygons counts as drivable (union)
    assert area.boxes_inside(39.0, 4.0 - 1.0, 0.0, 2.0, 2.0)
    rng = np.random.default_rng(1)
    pts = rng.uniform([-20, -40], [110, 40], (5000, 2))
    union = shapely.union_all([road, junction])
    ref = shapely.intersects_xy(union, pts[:, 0], pts[:, 1])
    assert np.array_equal(area.contains(pts), ref)
    # invariance: rotate and translate map and boxes together
    ang, tx, ty = 0.9, 6.0e5, 4.0e6
    co, si = np.cos(ang), np.sin(ang)
    moved = DrivableArea([shapely.affinity.affine_transform(g, [co, -si, si, co, tx, ty])
                          for g in (road, junction)])
    bx = rng.uniform(-10, 100, 500)
    by = rng.uniform(-8, 8, 500)
    byaw = rng.uniform(-np.pi, np.pi, 500)
    base = area.boxes_inside(bx, by, byaw, 4.0, 2.0)
    got = moved.boxes_inside(co * bx - si * by + tx, si * bx + co * by + ty, byaw + ang, 4.0, 2.0)
    assert np.array_equal(base, got) and 0 < base.sum() < base.size
