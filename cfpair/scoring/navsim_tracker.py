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
five curvature moments per step (:func:`curvature_moments`) computed once before the loop.
Nothing loops over proposals: the Python loops are the 40 simulation steps and fixed-length
recursions over steps or horizon entries (the fits' banded solves, the 41 interpolation rows, the
moments' tail sums), each an operation on (K,)-wide rows.

Agreement with NAVSIM v1.1's own simulator (run unmodified, nuPlan imports stubbed): <= 1.5e-11
on every state field (one ulp of a 1e5 m coordinate) over random, stopping, reversing, saturating
and heading-wrapping cases. Deliberate rounding-level differences: the angle wraps inside the loop
use ``wrap_fast`` and the steering lag ``steer_lag * u`` (both ~1e-16 from NAVSIM's forms).

Proposals whose reference is not finite, or whose simulation overflows, come back with NaN in
states 1..40 (NAVSIM would raise for the whole batch, §6.8); the others are unaffected. Results
are bit for bit independent of K and of the other proposals in the batch (no BLAS or einsum
reductions across proposals).
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
from cfpair.scoring.navsim_reference import (
    reference_from_poses,
    reference_t,
    wrap_fast,
)
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
def horizon_coefficients(n: int) -> tuple[tuple[float, ...], F64]:
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


def curvature_moments(kappa: F64, n: int = TRACKING_HORIZON) -> list[F64]:
    """(M, K) curvature profile -> the five moments m_r[i] = sum_k weight[k, r] kappa[min(i+k, M-1)]
    of :func:`horizon_coefficients`, for every step i, each an (M, K) array.

    The weights are polynomials of degree <= 3 in k, so the windowed sums come from four nested
    running tail sums (37 additions, in a fixed order, independent of K):
    e_p = sum_k C(k + p - 1, p) kappa_{i+k} for p = 0..3, and in that basis
    m0 = e0, m1 = e1, m2 = (n-1) e0 - e1, m3 = n(n-1)/2 e0 + n e1 - 3 e2,
    m4 = n(n-1)/2 e1 + 2 e2 - 3 e3.
    """
    n_steps, n_prop = kappa.shape
    padded = np.concatenate([kappa, np.broadcast_to(kappa[-1], (n - 1, n_prop))])
    # running tails from k = n-1 down: U_k = sum_{l>=k} row_l, V_k = sum_{l>=k} U_l (k >= 1),
    # W_k likewise over V, X_k over W; then e0 = U_0, e1 = V_1, e2 = W_1, e3 = X_1
    e0, e1, e2, e3 = (np.zeros((n_steps, n_prop)) for _ in range(4))
    for k in range(n - 1, -1, -1):
        e0 += padded[k:k + n_steps]  # row k: kappa[min(i + k, M - 1)] over i
        if k >= 1:
            e1 += e0
            e2 += e1
            e3 += e2
    half = n * (n - 1) / 2
    return [e0, e1, (n - 1) * e0 - e1, half * e0 + n * e1 - 3 * e2, half * e1 + 2 * e2 - 3 * e3]


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
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 3 or ref.shape[2] != 3 or ref.shape[1] < 4:
        raise ShapeError(f"reference must have shape (K, T >= 4, 3), got {ref.shape}")
    return _simulate_t(np.array(ref.transpose(1, 2, 0), order="C"), init_state, dt)  # a copy


def _simulate_t(ref_t: F64, init_state: F64, dt: float) -> F64:
    """:func:`simulate` on a (T, 3, K) reference (the layout the loop reads), ours to modify."""
    if not (np.isfinite(dt) and dt > 0):
        raise ShapeError(f"dt must be positive, got {dt}")
    n_states, n_prop = ref_t.shape[0], ref_t.shape[2]
    init = _as_init(init_state, n_prop)
    if n_prop == 0:
        return np.empty((0, n_states, 11))
    bad = ~np.all(np.isfinite(ref_t), axis=(0, 1))
    if bad.any():
        ref_t[:, :, bad] = init[bad, :3].T  # a harmless stand-in, so warnings and NaNs stay out
    with np.errstate(all="ignore"):  # absurd but finite inputs may overflow: flagged below
        out = _run(ref_t, init, float(dt))
    bad |= ~np.all(np.isfinite(out), axis=(1, 2))
    out[bad, 1:] = np.nan
    return out


def _step_tables(ref_t: F64, dt: float) -> dict[str, F64]:
    """Everything the loop reads that does not depend on the simulated state, per step (M, ...)."""
    n_steps, n_prop = ref_t.shape[0] - 1, ref_t.shape[2]
    n = TRACKING_HORIZON
    h_ref = ref_t[:n_steps, 2]
    sin_ref, cos_ref = np.sin(h_ref), np.cos(h_ref)
    along = along_heading_displacements(ref_t, cos_ref, sin_ref)
    speeds = velocity_profile_t(along, dt)  # (M, K), M = n_steps
    dpsi = wrap_fast(np.diff(ref_t[:, 2], axis=0))
    kappa = curvature_profile_t(dpsi, speeds, dt)  # (M, K)
    last = n_steps - 1
    steps = np.arange(n_steps)
    # §2.3: speed at the look-ahead index, and five moments of the curvature sequence
    # kappa[min(i + k, last)], k = 0..n-1 (see horizon_coefficients), summed in a fixed order
    # the curvature parts of gamma_0 = -dt^2 (m2 v^2 + m3 v d + m4 d^2) and
    # gamma_1 = -dt (m0 v + m1 d), d = dt * a_cmd (see horizon_coefficients)
    m = curvature_moments(kappa, n)
    gam0 = np.empty((n_steps, 3, n_prop))
    gam1 = np.empty((n_steps, 2, n_prop))
    np.multiply(-dt, m[0], out=gam1[:, 0])
    np.multiply(-dt, m[1], out=gam1[:, 1])
    for r in range(3):
        np.multiply(-dt * dt, m[2 + r], out=gam0[:, r])
    return {
        "xy": ref_t[:n_steps, :2],  # (M, 2, K)
        "h": h_ref,
        "sin": sin_ref,
        "cos": cos_ref,
        "v": speeds[np.minimum(steps + n, last)],
        "gam0": gam0,
        "gam1": gam1,
    }


def _run(ref_t: F64, init: F64, dt: float) -> F64:
    """The 40-step tracker/bicycle loop of §4 -> (K, T, 11) states."""
    n_steps, n_prop = ref_t.shape[0] - 1, ref_t.shape[2]
    n = TRACKING_HORIZON
    tab = _step_tables(ref_t, dt)
    xy_ref, h_ref, sin_ref, cos_ref = tab["xy"], tab["h"], tab["sin"], tab["cos"]
    v_ref, gam0_coef, gam1_coef = tab["v"], tab["gam0"], tab["gam1"]
    v_ref_low = v_ref <= STOPPING_VELOCITY
    # per-step coefficient stacks: quad[t, o] multiplies term t of (v^2, v d, d^2) for output o of
    # (Phi_02, Gamma_0, gamma_0); lin[t, o] term t of (v, d) for (Gamma_1, gamma_1); the
    # constant outputs are filled once, the curvature ones (o = last) copied in at each step
    s1, s2, p00, p01, p11, q0, q1, q2 = horizon_coefficients(n)[0]
    c2, c3 = dt * dt / WHEEL_BASE, dt * dt * dt / WHEEL_BASE
    quad = np.empty((3, 3, n_prop))
    quad[:, 0] = (c2 * np.array([p00, p01, p11]))[:, None]
    quad[:, 1] = (c3 * np.array([q0, q1, q2]))[:, None]
    lin = np.empty((2, 2, n_prop))
    lin[:, 0] = (c2 * np.array([s1, s2]))[:, None]

    big_t = n * dt  # the longitudinal one-step LQR (§2.6), NAVSIM's operation order
    lon_gain = (-1.0 / (big_t * Q_LONGITUDINAL * big_t + R_LONGITUDINAL)) * big_t * Q_LONGITUDINAL
    ql1 = Q_LATERAL[1]  # Q_LATERAL[0] == 1 and Q_LATERAL[2] == 0 are folded in below
    sum_v0, sum_v1 = dt * n, dt * horizon_coefficients(n)[0][0]  # sum of v_k dt = a v + b d
    accel_lag = dt / (dt + ACCEL_TIME_CONSTANT)
    steer_lag = dt / (dt + STEERING_TIME_CONSTANT)

    # state rows (step, field, K); the loop reads step i and writes step i + 1 in place
    buf = np.empty((n_steps + 1, 11, n_prop), dtype=np.float64)
    buf[0] = init.T
    buf[1:, VY] = 0.0
    buf[1:, AY] = 0.0
    cs = np.empty((2, n_prop))
    tan_delta = np.tan(init[:, STEERING])  # then carried over from the yaw-rate update
    for i in range(n_steps):
        now, nxt = buf[i], buf[i + 1]
        xy, h, v, a, delta = now[X:Y + 1], now[HEADING], now[VX], now[AX], now[STEERING]
        # §2.4 error state against the time-aligned reference pose
        d_xy = xy - xy_ref[i]
        e_lat = d_xy[1] * cos_ref[i] - d_xy[0] * sin_ref[i]
        e_head = wrap_fast(h - h_ref[i])
        # §2.5/§2.6 longitudinal command
        stop = v_ref_low[i] & (v <= STOPPING_VELOCITY)
        a_cmd = (v - v_ref[i]) * np.where(stop, -STOPPING_GAIN, lon_gain)
        # §2.7 lateral LQR with the 10-step lift in closed form (see horizon_coefficients)
        d = dt * a_cmd
        vd = v * d
        quad[:, 2] = gam0_coef[i]
        lin[:, 1] = gam1_coef[i]
        phi02, g0, gam0 = quad[0] * (v * v) + quad[1] * vd + quad[2] * (d * d)
        g1, gam1 = lin[0] * v + lin[1] * d
        sum_alpha = sum_v0 * v + sum_v1 * d
        err0 = e_lat + sum_alpha * e_head + phi02 * delta + gam0
        err1 = wrap_fast(e_head + sum_alpha * delta / WHEEL_BASE + gam1)
        # Gamma = (g0, g1, n dt); its steering part meets Q's zero weight and drops out
        w1 = ql1 * g1
        u = (g0 * err0 + w1 * err1) / -(g0 * g0 + w1 * g1 + R_LATERAL)
        u *= ~stop  # the stopping controller commands no steering rate (x 1.0 / x 0.0: exact)
        # §3 bicycle: lags, derivatives at the old pose/speed/steering, Euler step
        np.add(accel_lag * (a_cmd - a), a, out=nxt[AX])
        # NAVSIM lags the ideal angle delta + dt u and reads the rate back from the difference;
        # that is steer_lag * u up to the rounding of that difference (~1e-16 rad)
        np.multiply(steer_lag, u, out=nxt[STEERING_RATE])
        np.cos(h, out=cs[0])
        np.sin(h, out=cs[1])
        np.add(xy, v * cs * dt, out=nxt[X:Y + 1])
        np.subtract((h + v * tan_delta / WHEEL_BASE * dt + np.pi) % (2 * np.pi), np.pi,
                    out=nxt[HEADING])  # nuPlan's principal_value
        np.add(v, nxt[AX] * dt, out=nxt[VX])
        steer = delta + nxt[STEERING_RATE] * dt
        np.minimum(np.maximum(steer, -MAX_STEERING_ANGLE, out=steer), MAX_STEERING_ANGLE,
                   out=nxt[STEERING])
        np.tan(nxt[STEERING], out=tan_delta)
        np.divide(nxt[VX] * tan_delta, WHEEL_BASE, out=nxt[YAW_RATE])
        np.divide(nxt[YAW_RATE] - now[YAW_RATE], dt, out=nxt[YAW_ACCEL])
    return np.ascontiguousarray(buf.transpose(2, 0, 1))


def simulate_poses(
    poses: F64, init_state: F64, pose_dt: float = 0.5, timestamp_us: int | None = None
) -> F64:
    """Convenience: poses relative to init_state's (x, y, heading) -> (K, 41, 11).

    ``timestamp_us`` (optional): the initial state's absolute time in integer us, for NAVSIM's
    microsecond truncation of the interpolation times (see :func:`reference_from_poses`).
    """
    init = np.asarray(init_state, dtype=np.float64)
    if init.shape[-1:] != (11,) or init.ndim not in (1, 2):
        raise ShapeError(f"init_state must have shape (11,) or (K, 11), got {init.shape}")
    ref_t = reference_t(poses, init[..., :3], pose_dt=pose_dt, timestamp_us=timestamp_us)
    return _simulate_t(ref_t, init, 0.1)
