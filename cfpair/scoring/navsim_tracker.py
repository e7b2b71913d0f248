"""NAVSIM v1.1's tracking simulator (batch LQR + kinematic bicycle), vectorised over K proposals.

Spec ``navsim-tracking-and-scoring.md``; which function implements what:

- :func:`reference_from_poses` (from :mod:`cfpair.scoring.navsim_reference`): §1.2-§1.6, the
  agent's poses -> 41 interpolated global reference poses.
- :func:`cfpair.scoring.navsim_profiles.velocity_profile` / ``curvature_profile``: §2.2, the
  reference speed and curvature fits, including NAVSIM's banded-matrix quirk.
- :func:`simulate`: §2.3-§2.8 (per-step reference, error state, stopping controller,
  longitudinal and lateral one-step LQR), §3 (bicycle with actuator lags, steering clip) and §4
  (40 steps, 41 states, index 0 the unmodified initial state).
- :func:`simulate_poses`: §1 + §2-§4 for poses relative to the initial state's pose.

The lateral LQR's 10-step lift ``z_N = Phi z_0 + Gamma u + gamma`` (§2.7) is evaluated in closed
form: every F_k is unit upper triangular, so Phi, Gamma and gamma are sums over the horizon that
are polynomials in the current speed and the commanded acceleration, with fixed coefficients and
five curvature moments per step computed once before the loop. The only Python loops are the
40 simulation steps and the fixed-length recursions of the curvature fit.

Proposals whose reference is not finite come back with NaN in states 1..40 (NAVSIM would raise
for the whole batch, §6.8); the others are unaffected. Results do not depend on K or on the other
proposals in the batch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cfpair.errors import ShapeError
from cfpair.scoring.navsim_profiles import (
    along_heading_displacements,
    curvature_profile_t,
    velocity_profile_t,
)
from cfpair.scoring.navsim_reference import principal_value, reference_from_poses, wrap_atan2
from cfpair.types import F64

__all__ = ["STATE_FIELDS", "reference_from_poses", "simulate", "simulate_poses"]

#: NAVSIM's StateIndex order (§1.5): rear-axle pose, velocity, acceleration, steering, yaw rate
STATE_FIELDS = ("x", "y", "heading", "vx", "vy", "ax", "ay", "steering", "steering_rate",
                "yaw_rate", "yaw_accel")
X, Y, HEADING, VX, VY, AX, AY, STEERING, STEERING_RATE, YAW_RATE, YAW_ACCEL = range(11)

#: Chrysler Pacifica wheel base (get_pacifica_parameters), m
WHEEL_BASE = 3.089
#: LQR look-ahead N in steps (tracking_horizon), §2.1
TRACKING_HORIZON = 10
Q_LONGITUDINAL = 10.0
R_LONGITUDINAL = 1.0
#: weights on (lateral error, heading error, steering angle) at the horizon; steering weight 0
Q_LATERAL = (1.0, 10.0, 0.0)
R_LATERAL = 1.0
STOPPING_GAIN = 0.5
STOPPING_VELOCITY = 0.2
#: bicycle model (§3)
MAX_STEERING_ANGLE = np.pi / 3
ACCEL_TIME_CONSTANT = 0.2
STEERING_TIME_CONSTANT = 0.05


@lru_cache(maxsize=16)
def _horizon_coefficients(n: int) -> tuple[tuple[float, ...], F64]:
    """Integer sums over the horizon k = 0..n-1 and the (n, 5) curvature-moment weights.

    With v_k = v0 + k*d (d = dt * a_cmd): sum_k v_k = n v0 + s1 d; sum_k k v_k = s1 v0 + s2 d;
    sum_{j<k} v_j v_k = p00 v0^2 + p01 v0 d + p11 d^2; sum_{j<k} j v_j v_k = q0 v0^2 + q1 v0 d
    + q2 d^2; and with kappa_j the per-step curvature sequence, sum_j v_j kappa_j = m0 v0 + m1 d,
    sum_{j<k} v_j v_k kappa_j = m2 v0^2 + m3 v0 d + m4 d^2, where m_r = sum_j weight[j, r] kappa_j.
    """
    k = np.arange(n, dtype=np.float64)
    j_idx, k_idx = np.triu_indices(n, k=1)  # all pairs j < k
    j, kk = j_idx.astype(np.float64), k_idx.astype(np.float64)
    sums = (float(k.sum()), float((k * k).sum()),
            float(j_idx.size), float((j + kk).sum()), float((j * kk).sum()),
            float(j.sum()), float((j * (j + kk)).sum()), float((j * j * kk).sum()))
    tail = np.array([k[i + 1:].sum() for i in range(n)])  # T_j = sum_{k=j+1}^{n-1} k
    later = n - 1 - k  # number of k > j
    weights = np.stack([np.ones(n), k, later, tail + k * later, k * tail], axis=1)
    weights.setflags(write=False)
    return sums, weights


def _as_init(init_state: object, k: int) -> F64:
    s = np.asarray(init_state, dtype=np.float64)
    if s.shape == (11,):
        s = np.broadcast_to(s, (k, 11))
    if s.shape != (k, 11):
        raise ShapeError(f"init_state must have shape (11,) or ({k}, 11), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ShapeError("init_state must be finite")
    return s


def simulate(reference: F64, init_state: F64, dt: float = 0.1) -> F64:
    """(K, 41, 3) reference + (11,) or (K, 11) initial state -> (K, 41, 11) states, §2–§4."""
    ref = np.array(reference, dtype=np.float64)  # a copy: non-finite rows are overwritten below
    if ref.ndim != 3 or ref.shape[2] != 3 or ref.shape[1] < 4:
        raise ShapeError(f"reference must have shape (K, T >= 4, 3), got {ref.shape}")
    if not (np.isfinite(dt) and dt > 0):
        raise ShapeError(f"dt must be positive, got {dt}")
    n_prop, n_states = ref.shape[0], ref.shape[1]
    init = _as_init(init_state, n_prop)
    out = np.empty((n_prop, n_states, 11), dtype=np.float64)
    out[:, 0] = init
    if n_prop == 0:
        return out
    bad = ~np.all(np.isfinite(ref), axis=(1, 2))
    if bad.any():
        ref[bad] = init[bad, None, :3]  # a harmless stand-in, so warnings and NaNs stay out
    _run(ref, init, float(dt), out)
    out[bad, 1:] = np.nan
    return out


def _run(ref: F64, init: F64, dt: float, out: F64) -> None:
    """The 40-step tracker/bicycle loop of §4, writing states 1..T-1 into ``out``."""
    n_prop, n_steps = ref.shape[0], ref.shape[1] - 1
    n = TRACKING_HORIZON
    speeds = velocity_profile_t(along_heading_displacements(ref), dt)  # (M, K), M = n_steps
    dpsi = np.ascontiguousarray(wrap_atan2(np.diff(ref[:, :, 2], axis=1)).T)
    kappa = curvature_profile_t(dpsi, speeds, dt)  # (M, K)
    last = n_steps - 1
    # per-step reference (§2.3): v at the look-ahead index; curvature moments (see
    # _horizon_coefficients) of the sequence kappa[min(i + k, last)], k = 0..n-1, summed in order
    v_ref = speeds[np.minimum(np.arange(n_steps) + n, last)]  # (M, K)
    sums, weights = _horizon_coefficients(n)
    s1, s2, p00, p01, p11, q0, q1, q2 = sums
    moments = np.zeros((5, n_steps, n_prop))
    for k in range(n):
        window = kappa[np.minimum(np.arange(n_steps) + k, last)]  # (M, K)
        moments += weights[k][:, None, None] * window
    x_ref = np.ascontiguousarray(ref[:, :n_steps, 0].T)
    y_ref = np.ascontiguousarray(ref[:, :n_steps, 1].T)
    h_ref = np.ascontiguousarray(ref[:, :n_steps, 2].T)
    sin_ref, cos_ref = np.sin(h_ref), np.cos(h_ref)

    big_t = n * dt  # the longitudinal one-step LQR (§2.6), NAVSIM's operation order
    lon_gain = (-1.0 / (big_t * Q_LONGITUDINAL * big_t + R_LONGITUDINAL)) * big_t * Q_LONGITUDINAL
    ql0, ql1 = Q_LATERAL[0], Q_LATERAL[1]
    c1 = dt / WHEEL_BASE
    c2 = dt * dt / WHEEL_BASE
    c3 = dt * dt * dt / WHEEL_BASE
    accel_lag = dt / (dt + ACCEL_TIME_CONSTANT)
    steer_lag = dt / (dt + STEERING_TIME_CONSTANT)

    x, y, h = init[:, X].copy(), init[:, Y].copy(), init[:, HEADING].copy()
    v, a, delta, omega = init[:, VX].copy(), init[:, AX].copy(), init[:, STEERING].copy(), \
        init[:, YAW_RATE].copy()
    buf = np.empty((11, n_steps, n_prop), dtype=np.float64)
    buf[VY] = 0.0
    buf[AY] = 0.0
    for i in range(n_steps):
        # §2.4 error state against the time-aligned reference pose
        dx = x - x_ref[i]
        dy = y - y_ref[i]
        e_lat = dy * cos_ref[i] - dx * sin_ref[i]
        e_head = wrap_atan2(h - h_ref[i])
        # §2.5/§2.6 longitudinal command
        v_err = v - v_ref[i]
        stop = (v_ref[i] <= STOPPING_VELOCITY) & (v <= STOPPING_VELOCITY)
        a_cmd = np.where(stop, -STOPPING_GAIN * v_err, lon_gain * v_err)
        # §2.7 lateral LQR, lift in closed form (see _horizon_coefficients)
        d = dt * a_cmd
        vd = v * d
        vv = v * v
        dd = d * d
        sum_v = n * v + s1 * d
        phi_02 = c2 * (p00 * vv + p01 * vd + p11 * dd)
        g0 = c3 * (q0 * vv + q1 * vd + q2 * dd)
        g1 = c2 * (s1 * v + s2 * d)
        m = moments[:, i]
        gam1 = -dt * (m[0] * v + m[1] * d)
        gam0 = -(dt * dt) * (m[2] * vv + m[3] * vd + m[4] * dd)
        err0 = e_lat + dt * sum_v * e_head + phi_02 * delta + gam0
        err1 = wrap_atan2(e_head + c1 * sum_v * delta + gam1)
        # Gamma = (g0, g1, n*dt); its steering part meets Q's zero weight and drops out
        u = -(ql0 * g0 * err0 + ql1 * g1 * err1) / (ql0 * g0 * g0 + ql1 * g1 * g1 + R_LATERAL)
        rate_cmd = np.where(stop, 0.0, u)
        # §3 bicycle: lags, derivatives at the old pose/speed/steering, Euler step
        a_new = accel_lag * (a_cmd - a) + a
        ideal = dt * rate_cmd + delta
        rate = (steer_lag * (ideal - delta) + delta - delta) / dt
        x_new = x + v * np.cos(h) * dt
        y_new = y + v * np.sin(h) * dt
        h_new = principal_value(h + v * np.tan(delta) / WHEEL_BASE * dt)
        v_new = v + a_new * dt
        delta_new = np.clip(delta + rate * dt, -MAX_STEERING_ANGLE, MAX_STEERING_ANGLE)
        omega_new = v_new * np.tan(delta_new) / WHEEL_BASE
        row = buf[:, i]
        row[X], row[Y], row[HEADING], row[VX] = x_new, y_new, h_new, v_new
        row[AX], row[STEERING], row[STEERING_RATE] = a_new, delta_new, rate
        row[YAW_RATE], row[YAW_ACCEL] = omega_new, (omega_new - omega) / dt
        x, y, h, v, a, delta, omega = x_new, y_new, h_new, v_new, a_new, delta_new, omega_new
    out[:, 1:] = buf.transpose(2, 1, 0)


def simulate_poses(poses: F64, init_state: F64, pose_dt: float = 0.5) -> F64:
    """Convenience: poses relative to init_state's (x, y, heading) -> (K, 41, 11)."""
    init = np.asarray(init_state, dtype=np.float64)
    if init.shape[-1:] != (11,) or init.ndim not in (1, 2):
        raise ShapeError(f"init_state must have shape (11,) or (K, 11), got {init.shape}")
    reference = reference_from_poses(poses, init[..., :3], pose_dt=pose_dt)
    return simulate(reference, init)
