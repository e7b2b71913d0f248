"""NAVSIM v1.1 tracking simulator: hand cases, NAVSIM's numbers, batch invariance, properties."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring import make_scene  # benchmarks/ (on sys.path via conftest)
from scoring_reference import simulate_reference

from cfpair.errors import ShapeError
from cfpair.scoring.navsim_profiles import navsim_banded_matrix, velocity_profile
from cfpair.scoring.navsim_tracker import (
    MAX_STEERING_ANGLE,
    STATE_FIELDS,
    TRACKING_HORIZON,
    curvature_moments,
    horizon_coefficients,
    reference_from_poses,
    simulate,
    simulate_poses,
)

T = np.arange(1, 9) * 0.5  # NAVSIM's 8 pose times
ROOT_DIR = Path(__file__).resolve().parents[2]


def init_state(x=0.0, y=0.0, heading=0.0, v=0.0, vy=0.0, a=0.0, ay=0.0) -> np.ndarray:
    s = np.zeros(len(STATE_FIELDS))
    s[:7] = x, y, heading, v, vy, a, ay
    return s


def arc_poses(speed: float, yaw_rate: float, t: np.ndarray = T) -> np.ndarray:
    if yaw_rate == 0.0:
        return np.stack([speed * t, 0 * t, 0 * t], -1)
    r = speed / yaw_rate
    return np.stack([r * np.sin(yaw_rate * t), r * (1 - np.cos(yaw_rate * t)), yaw_rate * t], -1)


def stop_poses(v0: float = 12.0, decel: float = 8.0) -> np.ndarray:
    tc = np.minimum(T, v0 / decel)
    return np.stack([v0 * tc - 0.5 * decel * tc * tc, 0 * T, 0 * T], -1)


def to_local(states: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Global (x, y, heading) of states -> the frame of origin; other fields unchanged."""
    out = states.copy()
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx, dy = states[..., 0] - origin[0], states[..., 1] - origin[1]
    out[..., 0], out[..., 1] = c * dx + s * dy, -s * dx + c * dy
    out[..., 2] = np.angle(np.exp(1j * (states[..., 2] - origin[2])))
    return out


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a - b))))


# --- hand cases -------------------------------------------------------------------------------

def test_straight_constant_speed_tracks_to_centimetres():
    s = simulate_poses(arc_poses(10.0, 0.0)[None], init_state(v=10.0))[0]
    assert s.shape == (41, 11)
    t = np.arange(41) * 0.1
    assert np.max(np.abs(s[:, 0] - 10.0 * t)) < 0.01
    assert np.max(np.abs(s[:, 1])) < 1e-12 and np.max(np.abs(s[:, 2])) < 1e-12
    assert np.max(np.abs(s[:, 3] - 10.0)) < 1e-3


def test_stop_overshoots_as_navsim_does():
    # 12 m/s at -8 m/s^2 stops after 9 m at t = 1.5 s; NAVSIM's tracker (logged acceleration 0,
    # as in the issue) ends 5.30 m further on, still creeping in its stopping controller
    s = simulate_poses(stop_poses()[None], init_state(v=12.0))[0]
    assert s[-1, 0] - 9.0 == pytest.approx(5.298440476640204, abs=1e-9)
    assert s[-1, 3] == pytest.approx(0.12479221680899166, abs=1e-9)
    # NAVSIM v1.1's own simulator (run unmodified) on the same input, final state and x(t)
    np.testing.assert_allclose(s[[10, 20, 30], 0], [9.501236792386829, 13.064186786362141,
                                                    14.044801202674583], rtol=0, atol=1e-9)
    assert s[-1, 5] == pytest.approx(-0.11655321243166954, abs=1e-9)
    # with the braking already under way at t = 0 the overshoot is smaller, but still metres
    braking = simulate_poses(stop_poses()[None], init_state(v=12.0, a=-8.0))[0]
    assert 3.0 < braking[-1, 0] - 9.0 < 4.0


def test_constant_curvature_turn_matches_navsim():
    s = simulate_poses(arc_poses(10.0, 0.2)[None], init_state(v=10.0))[0]
    navsim_final = [3.5496709108169405e+01, 1.5125196364505841e+01, 7.9173032540019550e-01,
                    9.9921173263936502e+00, 0.0, 2.0957212301238667e-04, 0.0,
                    4.6486408994889941e-02, 2.0477309261937096e-02, 1.5047993954050498e-01,
                    6.6378941919029710e-02]
    np.testing.assert_allclose(s[-1], navsim_final, rtol=0, atol=1e-9)
    # starting with the wheels straight it runs wide (by 0.75 m after 1 s, as NAVSIM does), then
    # settles back onto the arc (radius 50 m) and steers left, never far past the arc's angle
    r = np.hypot(s[:, 0], s[:, 1] - 50.0)
    assert np.max(np.abs(r - 50.0)) < 0.8 and abs(r[-1] - 50.0) < 0.3
    assert np.all(s[5:, 7] > 0) and np.max(s[:, 7]) < 2 * np.arctan(3.089 / 50.0)


def test_heading_wrap_across_pi_gives_the_unwrapped_result():
    poses = arc_poses(10.0, 0.2)[None]
    near_zero = simulate_poses(poses, init_state(v=10.0))[0]
    origin = np.array([3.0, -2.0, np.pi - 0.1])  # the turn crosses +pi after 0.5 s
    wrapped = simulate_poses(poses, init_state(*origin, v=10.0))[0]
    assert np.all(wrapped[:, 2] >= -np.pi) and np.all(wrapped[:, 2] < np.pi)
    assert wrapped[-1, 2] < 0  # crossed
    np.testing.assert_allclose(to_local(wrapped, origin), near_zero, rtol=0, atol=1e-9)
    # agent headings shifted by multiples of 2 pi change nothing
    shifted = poses.copy()
    shifted[0, :, 2] += 2 * np.pi * np.array([1, -1, 2, 0, -3, 1, 0, 1])
    np.testing.assert_allclose(simulate_poses(shifted, init_state(v=10.0))[0], near_zero,
                               rtol=0, atol=1e-9)


def test_standing_still_stays_exactly_put():
    origin = np.array([1234.5, -678.9, 2.0])
    s = simulate_poses(np.zeros((2, 8, 3)), init_state(*origin))
    assert np.all(s[:, :, 0] == origin[0]) and np.all(s[:, :, 1] == origin[1])
    assert np.max(angle_diff(s[:, :, 2], origin[2])) < 1e-15
    assert np.all(s[:, :, 3:] == 0.0)


def test_start_from_standstill_moves_forward():
    s = simulate_poses(np.stack([0.75 * T * T, 0 * T, 0 * T], -1)[None], init_state())[0]
    assert np.all(np.diff(s[:, 0]) >= 0) and s[-1, 0] > 4.0
    assert np.all(np.isfinite(s))


def test_global_coordinates_give_the_relative_result():
    rng = np.random.default_rng(3)
    poses = np.cumsum(rng.uniform([2, -0.3, -0.1], [6, 0.3, 0.1], (5, 8, 3)), axis=1)
    here = simulate_poses(poses, init_state(v=8.0, a=0.5))
    origin = np.array([1.0e5, -1.0e5, -2.5])
    there = simulate_poses(poses, init_state(*origin, v=8.0, a=0.5))
    np.testing.assert_allclose(to_local(there, origin), here, rtol=0, atol=1e-6)


def test_global_random_case_matches_navsim_numbers():
    # poses (float32, as NAVSIM stores them) and three states from NAVSIM v1.1's own simulator
    poses = np.array([[4.8752866, -0.1968826, -0.107537165], [10.566928, -0.44507256, -0.14414643],
                      [15.893985, -0.24913575, -0.29624423], [19.569607, -0.10638095, -0.39940727],
                      [23.470106, -0.06421524, -0.5467461], [29.090765, -0.43640247, -0.56555337],
                      [32.10656, -0.4481032, -0.6669491], [37.570248, -0.16998191, -0.64524794]],
                     dtype=np.float32)
    init = init_state(1.2345e5, -6.789e4, 2.9, v=9.0, vy=0.3, a=-1.0, ay=0.2)
    s = simulate_poses(poses[None], init)[0]
    navsim = {
        1: [1.2344912613765137e+05, -6.7889784675603703e+04, 2.9000000000000004e+00,
            8.9840230850608140e+00, 0.0, -1.5976914939186038e-01, 0.0, -8.9918823600196839e-03,
            -8.9918823600196846e-02, -2.6152624145894067e-02, -2.6152624145894071e-01],
        20: [1.2343390954964982e+05, -6.7883859931871106e+04, 2.5625193648091997e+00,
             8.2569976551708688e+00, 0.0, 6.4957027345769436e-01, 0.0, -5.3063537221542681e-02,
             1.0071607166118159e-01, -1.4197384285219597e-01, 2.5683640885409004e-01],
        40: [1.2342070458598931e+05, -6.7875759229097937e+04, 2.7659470155862937e+00,
             8.0402012335563260e+00, 0.0, 4.5533261773571942e-01, 0.0, 9.7640088919183382e-02,
             3.3345043742120106e-02, 2.5495315048528727e-01, 1.0153899083830133e-01],
    }
    for step, expected in navsim.items():
        np.testing.assert_allclose(s[step], expected, rtol=0, atol=1e-8)
    assert np.array_equal(s[0], init)


def test_matches_the_independent_per_trajectory_peer():
    # benchmarks/scoring_reference.py: written from the spec one trajectory at a time, with
    # NAVSIM's dense pinv fits and 3 x 3 lifts; global coordinates up to 1e5 m
    rng = np.random.default_rng(21)
    for _ in range(2):
        poses, init = make_scene(rng, 24)
        batched = simulate_poses(poses, init)
        peer = simulate_reference(poses, init)
        diff = np.abs(batched - peer)
        diff[..., 2] = angle_diff(batched[..., 2], peer[..., 2])
        assert diff.max() < 1e-9


def test_benchmark_runs_and_checks_agreement():
    run = subprocess.run([sys.executable, "benchmarks/scoring.py", "--quick", "--scenes", "1",
                          "--k", "8", "--repeats", "1"], cwd=ROOT_DIR, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "ratio batched / per-trajectory" in run.stdout
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("max |state difference|"))
    diff = float(line.rsplit(":", 1)[1])
    assert diff < 1e-9


def test_navsim_microsecond_truncation_with_a_timestamp():
    # NAVSIM truncates interpolation times to whole microseconds of the absolute scene time
    poses = np.stack([9 * T + 0.4 * T * T, 0.3 * T * T, 0.08 * T], -1)[None]
    init = init_state(3.3e4, -2.1e4, -1.2, v=9.0, a=0.5)
    t0 = 1_623_456_789_123_457
    ref = reference_from_poses(poses, init[:3], timestamp_us=t0)[0]
    navsim_ref = [[3.3002516359008368e+04, -2.1006017105811017e+04, -1.1439999999999999e+00],
                  [3.3009772173845224e+04, -2.1020706188527558e+04, -1.0160000000000000e+00]]
    np.testing.assert_allclose(ref[[7, 23]], navsim_ref, rtol=0, atol=1e-10)
    s = simulate_poses(poses, init, timestamp_us=t0)[0]
    navsim = [[3.3004779700795436e+04, -2.1011307558599827e+04, -1.1076585179834630e+00,
               1.0020683710749477e+01],
              [3.3020843959959122e+04, -2.1036480056284861e+04, -9.5989001988903100e-01,
               1.1923171308480530e+01]]
    np.testing.assert_allclose(s[[13, 40], :4], navsim, rtol=0, atol=1e-8)
    # without the timestamp the times are exact multiples of 0.1 s: a few micrometres off
    exact = simulate_poses(poses, init)[0]
    assert 0 < np.max(np.abs(exact[:, :2] - s[:, :2])) < 1e-4
    with pytest.raises(ShapeError):
        reference_from_poses(poses, init[:3], timestamp_us=-1)


# --- reference (§1) ---------------------------------------------------------------------------

def test_reference_interpolates_knots_and_holds_a_short_trajectory():
    origin = np.array([10.0, 20.0, 0.5])
    poses = arc_poses(8.0, 0.1, t=np.arange(1, 5) * 0.5)[None]  # 4 poses: ends at 2.0 s
    ref = reference_from_poses(poses, origin)
    assert ref.shape == (1, 41, 3)
    assert np.array_equal(ref[0, 0, :2], origin[:2]) and abs(ref[0, 0, 2] - 0.5) < 1e-15
    c, s = np.cos(0.5), np.sin(0.5)
    knots = np.stack([10 + c * poses[0, :, 0] - s * poses[0, :, 1],
                      20 + s * poses[0, :, 0] + c * poses[0, :, 1], 0.5 + poses[0, :, 2]], -1)
    np.testing.assert_allclose(ref[0, 5:21:5], knots, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref[0, 2], 0.6 * ref[0, 0] + 0.4 * ref[0, 5], rtol=0, atol=1e-12)
    assert np.all(ref[0, 20:] == ref[0, 20])  # no extrapolation past the last pose


def test_poses_beyond_four_seconds_are_ignored():
    origin = np.array([7.0, -3.0, 0.4])
    long = arc_poses(9.0, 0.15, t=np.arange(1, 13) * 0.5)[None]  # 6 s of poses
    np.testing.assert_array_equal(reference_from_poses(long, origin),
                                  reference_from_poses(long[:, :8], origin))


def test_reference_heading_turns_the_short_way_and_wraps_to_minus_pi():
    origin = np.array([0.0, 0.0, 3.0])
    poses = np.array([[[1.0, 0.0, 0.3], [2.0, 0.0, 0.5]]])  # crosses +pi after the first knot
    ref = reference_from_poses(poses, origin, n_steps=10)
    assert np.all(ref[0, :, 2] >= -np.pi) and np.all(ref[0, :, 2] < np.pi)
    unwrapped = np.unwrap(ref[0, :, 2])
    np.testing.assert_allclose(unwrapped[[0, 5, 10]], [3.0, 3.3, 3.5], atol=1e-12)
    assert np.all(np.diff(unwrapped) > 0)


def test_banded_matrix_quirk_is_reproduced():
    d = navsim_banded_matrix(38)
    expected = np.zeros((38, 39))
    expected[np.arange(38), np.arange(38)] = -1.0
    expected[37, 38] = 1.0
    assert np.array_equal(d, expected)
    # the quirk is what NAVSIM fits: a steady 2 m/s^2 deceleration from 12 m/s comes out with a
    # NAVSIM-specific speed profile (the ridge pulls the accelerations towards 0)
    t = np.arange(41) * 0.1
    ref = np.stack([12 * t - t * t, 0 * t, 0 * t], -1)[None]
    v = velocity_profile(ref, 0.1)[0]
    assert abs(v[20] - (12 - 2 * 2.05)) < 0.05 and np.all(np.diff(v) < 0)


def test_lateral_lift_closed_form_equals_the_3x3_products():
    # Phi, Gamma, gamma of §2.7 multiplied out with 3 x 3 matrices vs the closed form's sums
    n, dt, wb = TRACKING_HORIZON, 0.1, 3.089
    sums, weights = horizon_coefficients(n)
    s1, s2, p00, p01, p11, q0, q1, q2 = sums
    rng = np.random.default_rng(8)
    for v0, acc in [(0.0, 0.0), (12.0, -3.0), (3.0, 2.5), (-2.0, 1.0)]:
        kappa = rng.normal(0, 0.05, n)
        phi, gamma, offset = np.eye(3), np.zeros(3), np.zeros(3)
        for k in range(n):
            vk = v0 + k * dt * acc
            f = np.array([[1, vk * dt, 0], [0, 1, vk * dt / wb], [0, 0, 1.0]])
            phi, gamma = f @ phi, f @ gamma + [0, 0, dt]
            offset = f @ offset + [0, -vk * kappa[k] * dt, 0]
        d = dt * acc
        m = weights.T @ kappa
        np.testing.assert_allclose(
            [phi[0, 1], phi[1, 2], phi[0, 2], gamma[0], gamma[1], gamma[2], offset[1], offset[0]],
            [dt * (n * v0 + s1 * d), dt / wb * (n * v0 + s1 * d),
             dt**2 / wb * (p00 * v0**2 + p01 * v0 * d + p11 * d**2),
             dt**3 / wb * (q0 * v0**2 + q1 * v0 * d + q2 * d**2), dt**2 / wb * (s1 * v0 + s2 * d),
             n * dt, -dt * (m[0] * v0 + m[1] * d),
             -dt**2 * (m[2] * v0**2 + m[3] * v0 * d + m[4] * d**2)], rtol=1e-12, atol=1e-15)


def test_curvature_moments_equal_the_weighted_window_sums():
    rng = np.random.default_rng(0)
    kappa = rng.normal(0, 0.05, (40, 7))
    _, weights = horizon_coefficients(TRACKING_HORIZON)
    steps = np.arange(40)
    moments = curvature_moments(kappa)
    for r in range(5):
        direct = sum(weights[k, r] * kappa[np.minimum(steps + k, 39)]
                     for k in range(TRACKING_HORIZON))
        np.testing.assert_allclose(moments[r], direct, rtol=0, atol=1e-13 * np.abs(direct).max())


# --- batch behaviour, dtypes, errors ----------------------------------------------------------

def random_poses(rng: np.random.Generator, k: int) -> np.ndarray:
    speed = rng.uniform(0, 20, (k, 1))
    accel = rng.uniform(-4, 3, (k, 1))
    yaw = rng.uniform(-0.5, 0.5, (k, 1))
    s = np.maximum.accumulate(np.maximum(speed * T + 0.5 * accel * T * T, 0), axis=1)
    h = yaw * T + rng.normal(0, 0.02, (k, 8))
    step = np.diff(np.c_[np.zeros(k), s], axis=1)
    return np.stack([np.cumsum(step * np.cos(h), 1), np.cumsum(step * np.sin(h), 1), h], -1)


def test_batch_equals_each_proposal_alone():
    rng = np.random.default_rng(11)
    poses = random_poses(rng, 37)
    init = init_state(5.0e4, 3.0e4, 1.0, v=7.0, a=-0.5)
    together = simulate_poses(poses, init)
    for p in (0, 1, 17, 36):
        assert np.array_equal(simulate_poses(poses[p:p + 1], init)[0], together[p])
    assert np.array_equal(simulate_poses(poses[::-1], init)[::-1], together)


def test_per_proposal_initial_states():
    rng = np.random.default_rng(5)
    poses = random_poses(rng, 4)
    inits = np.stack([init_state(v=v, a=a) for v, a in [(0, 0), (5, 1), (12, -2), (20, 0)]])
    batched = simulate_poses(poses, inits)
    for p in range(4):
        assert np.array_equal(simulate_poses(poses[p:p + 1], inits[p])[0], batched[p])


def test_float32_poses_are_cast_like_navsim():
    poses = random_poses(np.random.default_rng(2), 6).astype(np.float32)
    init = init_state(v=9.0)
    s32 = simulate_poses(poses, init)
    assert s32.dtype == np.float64
    assert np.array_equal(s32, simulate_poses(poses.astype(np.float64), init))


def test_non_finite_proposal_is_flagged_alone():
    poses = random_poses(np.random.default_rng(4), 3)
    init = init_state(v=6.0)
    clean = simulate_poses(poses, init)
    poses[1, 4, 0] = np.nan
    poses[2, 2, 2] = np.inf
    with np.errstate(all="raise"):
        dirty = simulate_poses(poses, init)
    assert np.all(np.isnan(dirty[1:, 1:])) and np.array_equal(dirty[1:, 0], clean[1:, 0])
    assert np.array_equal(dirty[0], clean[0])


def test_overflowing_proposal_is_flagged_alone_and_quietly():
    poses = random_poses(np.random.default_rng(6), 3)
    init = init_state(v=6.0)
    clean = simulate_poses(poses, init)
    poses[2, :, 0] = np.linspace(1e303, 8e303, 8)  # finite, but its speeds overflow
    with np.errstate(all="raise"):
        dirty = simulate_poses(poses, init)
    assert np.all(np.isnan(dirty[2, 1:])) and np.array_equal(dirty[:2], clean[:2])


def test_empty_batch():
    assert simulate_poses(np.zeros((0, 8, 3)), init_state()).shape == (0, 41, 11)


@pytest.mark.parametrize("call", [
    lambda: simulate(np.zeros((41, 3)), init_state()),
    lambda: simulate(np.zeros((2, 41, 2)), init_state()),
    lambda: simulate(np.zeros((2, 3, 3)), init_state()),
    lambda: simulate(np.zeros((2, 41, 3)), np.zeros(10)),
    lambda: simulate(np.zeros((2, 41, 3)), np.zeros((3, 11))),
    lambda: simulate(np.zeros((2, 41, 3)), np.full(11, np.nan)),
    lambda: simulate(np.zeros((2, 41, 3)), init_state(), dt=0.0),
    lambda: reference_from_poses(np.zeros((8, 3)), np.zeros(3)),
    lambda: reference_from_poses(np.zeros((1, 8, 2)), np.zeros(3)),
    lambda: reference_from_poses(np.zeros((1, 8, 3)), np.zeros(2)),
    lambda: reference_from_poses(np.zeros((1, 8, 3)), np.zeros(3), pose_dt=-0.5),
    lambda: simulate_poses(np.zeros((1, 8, 3)), np.zeros((1, 2, 11))),
])
def test_bad_shapes_raise_shape_error(call):
    with pytest.raises(ShapeError):
        call()


# --- properties -------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 6), scale=st.sampled_from([0.0, 1e3, 1e5]),
       speed=st.floats(0.0, 30.0), accel=st.floats(-8.0, 4.0), heading=st.floats(-4.0, 4.0),
       noise=st.floats(0.0, 3.0))
def test_bounded_inputs_give_finite_states_within_limits(seed, k, scale, speed, accel, heading,
                                                         noise):
    rng = np.random.default_rng(seed)
    poses = random_poses(rng, k) + rng.normal(0, noise, (k, 8, 3))
    poses[..., 2] += 2 * np.pi * rng.integers(-2, 3, (k, 8))
    init = init_state(rng.uniform(-scale, scale), rng.uniform(-scale, scale), heading, v=speed,
                      vy=rng.uniform(-1, 1), a=accel, ay=rng.uniform(-1, 1))
    init[7:] = rng.uniform(-0.3, 0.3, 4)
    s = simulate_poses(poses, init)
    assert s.shape == (k, 41, 11)
    assert np.all(np.isfinite(s))
    assert np.all(s[:, 0] == init)  # state 0 is the initial state, bit for bit
    assert np.all(np.abs(s[:, 1:, 7]) <= MAX_STEERING_ANGLE)
    assert np.all(s[:, 1:, 2] >= -np.pi) and np.all(s[:, 1:, 2] < np.pi)
    assert np.all(s[:, 1:, 4] == 0.0) and np.all(s[:, 1:, 6] == 0.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), x0=st.floats(-1e5, 1e5), y0=st.floats(-1e5, 1e5),
       psi0=st.floats(-np.pi, np.pi), pick=st.integers(0, 5))
def test_frame_and_batch_invariance(seed, x0, y0, psi0, pick):
    rng = np.random.default_rng(seed)
    poses = random_poses(rng, 6)
    speed = rng.uniform(0, 20)
    here = simulate_poses(poses, init_state(v=speed))
    there = simulate_poses(poses, init_state(x0, y0, psi0, v=speed))
    np.testing.assert_allclose(to_local(there, np.array([x0, y0, psi0])), here, rtol=0, atol=1e-6)
    alone = simulate_poses(poses[pick:pick + 1], init_state(x0, y0, psi0, v=speed))
    assert np.array_equal(alone[0], there[pick])
