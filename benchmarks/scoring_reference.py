"""A straightforward per-trajectory NAVSIM v1.1 simulator (spec §1-§4), the peer in scoring.py.

One proposal at a time and one step at a time, on Python floats and small numpy arrays, written
from the spec's text the way one would without batching in mind: the 9 knots interpolated with
``np.interp``; both profile fits as dense least squares with ``np.linalg.pinv`` (the 80 x 40
velocity design matrix and NAVSIM's banded regulariser as NAVSIM builds it); the lateral LQR's
10-step lift multiplied out with 3 x 3 matrices; the bicycle step on scalars. It shares no code
with ``cfpair.scoring`` and so doubles as an independent check of it (scoring.py compares both).
"""

from __future__ import annotations

import math

import numpy as np

WHEEL_BASE = 3.089
DT = 0.1
N_STEPS = 40
HORIZON = 10
JERK_PENALTY = 1e-4
CURVATURE_RATE_PENALTY = 1e-2
INITIAL_CURVATURE_PENALTY = 1e-10
Q_LON, R_LON = 10.0, 1.0
Q_LAT = np.diag([1.0, 10.0, 0.0])
R_LAT = 1.0
STOP_GAIN, STOP_SPEED = 0.5, 0.2
MAX_STEER = math.pi / 3
TAU_ACCEL, TAU_STEER = 0.2, 0.05


def principal_value(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


def se2(x: float, y: float, h: float) -> np.ndarray:
    return np.array([[math.cos(h), -math.sin(h), x], [math.sin(h), math.cos(h), y], [0, 0, 1.0]])


def reference_poses(poses: np.ndarray, origin: np.ndarray, pose_dt: float = 0.5) -> np.ndarray:
    """(P, 3) poses relative to origin -> (41, 3) global reference (§1.2-§1.6)."""
    o = se2(*origin)
    knots = [tuple(origin)]
    for x, y, h in poses:
        m = o @ se2(x, y, h)
        knots.append((m[0, 2], m[1, 2], math.atan2(m[1, 0], m[0, 0])))
    knots_arr = np.array(knots)
    knot_t = np.arange(len(knots)) * pose_dt
    query = np.minimum(np.arange(N_STEPS + 1) * DT, knot_t[-1])
    heading = np.interp(query, knot_t, np.unwrap(knots_arr[:, 2]))
    return np.stack([np.interp(query, knot_t, knots_arr[:, 0]),
                     np.interp(query, knot_t, knots_arr[:, 1]),
                     [principal_value(h) for h in heading]], axis=-1)


def fit_profiles(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(41, 3) reference -> speeds (40,) and curvatures (40,), NAVSIM's two fits (§2.2)."""
    m = len(ref) - 1
    dxy = np.diff(ref[:, :2], axis=0)
    dpsi = np.array([wrap(d) for d in np.diff(ref[:, 2])])
    a = np.zeros((2 * m, m))
    for i in range(m):
        for row, c in ((2 * i, math.cos(ref[i, 2])), (2 * i + 1, math.sin(ref[i, 2]))):
            a[row, 0] = DT * c
            a[row, 1:i + 1] = DT * DT * c
    band = np.zeros((m - 2, m - 1))
    band[:, 1:] = np.eye(m - 2)
    band[:, :-1] = -np.eye(m - 2)  # NAVSIM's matrix, quirk included
    reg = np.hstack([np.zeros((m - 2, 1)), band])
    theta = np.linalg.pinv(a.T @ a + JERK_PENALTY * reg.T @ reg) @ a.T @ dxy.reshape(-1)
    speeds = theta[0] + DT * np.concatenate([[0.0], np.cumsum(theta[1:])])
    b = np.zeros((m, m))
    for i in range(m):
        b[i, 0] = DT * speeds[i]
        b[i, 1:i + 1] = DT * DT * speeds[i]
    q = CURVATURE_RATE_PENALTY * np.eye(m)
    q[0, 0] = INITIAL_CURVATURE_PENALTY
    phi = np.linalg.pinv(b.T @ b + q) @ b.T @ dpsi
    curvatures = phi[0] + DT * np.concatenate([[0.0], np.cumsum(phi[1:])])
    return speeds, curvatures


def track(i: int, state: list[float], ref_pose: np.ndarray, speeds: np.ndarray,
          curvatures: np.ndarray) -> tuple[float, float]:
    """(acceleration, steering rate) commands at step i (§2.3-§2.7)."""
    x, y, h, v, delta = state[0], state[1], state[2], state[3], state[7]
    last = len(speeds) - 1
    j = min(i + HORIZON, last)
    v_ref = speeds[j]
    if v_ref <= STOP_SPEED and v <= STOP_SPEED:
        return -STOP_GAIN * (v - v_ref), 0.0
    big_t = HORIZON * DT
    accel = -(Q_LON * big_t / (Q_LON * big_t * big_t + R_LON)) * (v - v_ref)
    xr, yr, hr = ref_pose
    z0 = np.array([-(x - xr) * math.sin(hr) + (y - yr) * math.cos(hr), wrap(h - hr), delta])
    phi, gamma, offset = np.eye(3), np.zeros(3), np.zeros(3)
    b = np.array([0.0, 0.0, DT])
    for k in range(HORIZON):
        vk = v + k * DT * accel
        kappa = curvatures[min(i + k, last)]
        f = np.array([[1.0, vk * DT, 0.0], [0.0, 1.0, vk * DT / WHEEL_BASE], [0.0, 0.0, 1.0]])
        phi, gamma = f @ phi, f @ gamma + b
        offset = f @ offset + np.array([0.0, -vk * kappa * DT, 0.0])
    err = phi @ z0 + offset
    err[1], err[2] = wrap(err[1]), wrap(err[2])
    rate = -(gamma @ Q_LAT @ err) / (gamma @ Q_LAT @ gamma + R_LAT)
    return accel, float(rate)


def bicycle(state: list[float], accel_cmd: float, rate_cmd: float) -> list[float]:
    """One Euler step of the kinematic bicycle with actuator lags (§3)."""
    x, y, h, v, _, a, _, delta, _, omega, _ = state
    a_new = a + DT / (DT + TAU_ACCEL) * (accel_cmd - a)
    delta_lagged = delta + DT / (DT + TAU_STEER) * (DT * rate_cmd)
    rate = (delta_lagged - delta) / DT
    v_new = v + DT * a_new
    delta_new = min(max(delta + DT * rate, -MAX_STEER), MAX_STEER)
    omega_new = v_new * math.tan(delta_new) / WHEEL_BASE
    return [x + DT * v * math.cos(h), y + DT * v * math.sin(h),
            principal_value(h + DT * v * math.tan(delta) / WHEEL_BASE), v_new, 0.0, a_new, 0.0,
            delta_new, rate, omega_new, (omega_new - omega) / DT]


def simulate_one(ref: np.ndarray, init: np.ndarray) -> np.ndarray:
    """(41, 3) reference, (11,) initial state -> (41, 11) states (§4)."""
    speeds, curvatures = fit_profiles(ref)
    states = [list(map(float, init))]
    for i in range(N_STEPS):
        accel, rate = track(i, states[-1], ref[i], speeds, curvatures)
        states.append(bicycle(states[-1], accel, rate))
    return np.array(states)


def simulate_reference(poses: np.ndarray, init_state: np.ndarray) -> np.ndarray:
    """(K, P, 3) poses relative to init_state's pose, (11,) or (K, 11) -> (K, 41, 11)."""
    poses = np.asarray(poses, dtype=np.float64)
    init = np.broadcast_to(np.asarray(init_state, dtype=np.float64), (len(poses), 11))
    pairs = zip(poses, init, strict=True)
    return np.stack([simulate_one(reference_poses(p, s[:3]), s) for p, s in pairs])
