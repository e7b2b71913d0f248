"""Kinematic bicycle rollout from (acceleration, steering rate) with limits, its one-step form,
a closed-loop pose tracker on it, and a feasibility check of any trajectory. Vectorised over any
leading dimensions; the per-step clamps that make the recurrences sequential are solved with an
associative scan in O(log T) array passes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cfpair.geometry.transforms import wrap_angle

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class VehicleLimits:
    """Bicycle-model parameters and limits. Defaults: nuPlan's Pacifica wheel base, NAVSIM's
    max steering pi/3, and the nuPlan/NAVSIM comfort bounds for acceleration and yaw rate."""

    wheel_base: float = 3.089
    max_steer: float = float(np.pi / 3)
    max_steer_rate: float = 0.8  # rad/s at the wheels (our choice; no public source)
    min_accel: float = -8.0  # emergency braking is allowed for rollouts, not for comfort
    max_accel: float = 4.0
    max_speed: float = 40.0
    max_lat_accel: float = 6.0  # friction-circle style cap on v^2 * curvature
    max_yaw_rate: float = 1.2


def clamped_cumsum(increments: ArrayLike, start: ArrayLike, lo: ArrayLike, hi: ArrayLike
                   ) -> F64:
    """y[0] = clip(start), y[t+1] = clip(y[t] + inc[t], lo, hi) along the last axis.

    Each step is f_t(y) = min(max(y + a, l), h); such clamped shifts are closed under
    composition (g after f = clamp(y + a_f + a_g, clamp(l_f + a_g, l_g, h_g), clamp(h_f + a_g,
    l_g, h_g))), so all prefixes come from a Hillis-Steele scan. Returns (..., T + 1).
    """
    inc = np.asarray(increments, dtype=np.float64)
    lo_b = np.broadcast_to(np.asarray(lo, dtype=np.float64), inc.shape[:-1])[..., None]
    hi_b = np.broadcast_to(np.asarray(hi, dtype=np.float64), inc.shape[:-1])[..., None]
    a = inc.copy()
    lo_c = np.broadcast_to(lo_b, inc.shape).copy()
    hi_c = np.broadcast_to(hi_b, inc.shape).copy()
    n = inc.shape[-1]
    step = 1
    while step < n:  # log2(T) passes over the whole array, not a loop over steps
        pa, pl, ph = a[..., :-step], lo_c[..., :-step], hi_c[..., :-step]
        ca, cl, ch = a[..., step:], lo_c[..., step:], hi_c[..., step:]
        new_l = np.clip(pl + ca, cl, ch)
        new_h = np.clip(ph + ca, cl, ch)
        a = np.concatenate([a[..., :step], pa + ca], axis=-1)
        lo_c = np.concatenate([lo_c[..., :step], new_l], axis=-1)
        hi_c = np.concatenate([hi_c[..., :step], new_h], axis=-1)
        step *= 2
    y0 = np.clip(np.broadcast_to(np.asarray(start, dtype=np.float64), inc.shape[:-1]),
                 lo_b[..., 0], hi_b[..., 0])[..., None]
    rest = np.clip(y0 + a, lo_c, hi_c)
    return np.concatenate([y0, rest], axis=-1)


@dataclass(frozen=True)
class Rollout:
    """States at T + 1 steps (..., T + 1): rear-axle x, y (m), yaw (rad), speed v (m/s),
    steering angle (rad), applied acceleration (m/s^2, last repeated) and yaw rate (rad/s)."""

    x: F64
    y: F64
    yaw: F64
    v: F64
    steer: F64
    accel: F64
    yaw_rate: F64


def bicycle_rollout(x0: ArrayLike, y0: ArrayLike, yaw0: ArrayLike, v0: ArrayLike,
                    accel: ArrayLike, steer_rate: ArrayLike, dt: float,
                    steer0: ArrayLike = 0.0, limits: VehicleLimits = VehicleLimits()
                    ) -> Rollout:
    """Roll a kinematic bicycle (rear-axle reference, explicit Euler as in NAVSIM) forward.

    accel, steer_rate: (..., T) commands, clipped to the limits; speed is clamped to
    [0, max_speed] and the steering angle to +-max_steer at every step; the yaw rate
    v * tan(steer) / L is not capped here: the actuator limits alone shape the rollout, and
    :func:`check_feasibility` judges yaw rate and lateral acceleration, so a caller can reject
    candidates that exceed them. Initial values broadcast against the leading shape.
    """
    acc = np.clip(np.asarray(accel, dtype=np.float64), limits.min_accel, limits.max_accel)
    rate = np.clip(np.asarray(steer_rate, dtype=np.float64), -limits.max_steer_rate,
                   limits.max_steer_rate)
    acc, rate = np.broadcast_arrays(acc, rate)
    lead = acc.shape[:-1]
    v = clamped_cumsum(acc * dt, np.broadcast_to(v0, lead), 0.0, limits.max_speed)
    steer = clamped_cumsum(rate * dt, np.broadcast_to(steer0, lead), -limits.max_steer,
                           limits.max_steer)
    applied = np.diff(v, axis=-1) / dt
    applied = np.concatenate([applied, applied[..., -1:]], axis=-1)
    omega = v * np.tan(steer) / limits.wheel_base
    yaw0b = np.broadcast_to(np.asarray(yaw0, dtype=np.float64), lead)[..., None]
    yaw = yaw0b + np.concatenate([np.zeros(lead + (1,)),
                                  np.cumsum(omega[..., :-1] * dt, axis=-1)], axis=-1)
    step_x = v[..., :-1] * np.cos(yaw[..., :-1]) * dt
    step_y = v[..., :-1] * np.sin(yaw[..., :-1]) * dt
    x = np.broadcast_to(np.asarray(x0, dtype=np.float64), lead)[..., None] + np.concatenate(
        [np.zeros(lead + (1,)), np.cumsum(step_x, axis=-1)], axis=-1)
    y = np.broadcast_to(np.asarray(y0, dtype=np.float64), lead)[..., None] + np.concatenate(
        [np.zeros(lead + (1,)), np.cumsum(step_y, axis=-1)], axis=-1)
    return Rollout(x, y, wrap_angle(yaw), v, steer, applied, omega)


def bicycle_step(x: F64, y: F64, yaw: F64, v: F64, steer: F64, accel: F64, steer_rate: F64,
                 dt: float, limits: VehicleLimits) -> tuple[F64, F64, F64, F64, F64]:
    """One explicit Euler step of the kinematic bicycle (the equations of
    :func:`bicycle_rollout`): new x, y, yaw (unwrapped), speed and steering angle."""
    nx = x + v * np.cos(yaw) * dt
    ny = y + v * np.sin(yaw) * dt
    nyaw = yaw + v * np.tan(steer) / limits.wheel_base * dt
    nv = np.clip(v + accel * dt, 0.0, limits.max_speed)
    nsteer = np.clip(steer + steer_rate * dt, -limits.max_steer, limits.max_steer)
    return nx, ny, nyaw, nv, nsteer


def track(x: F64, y: F64, yaw0: float, v0: F64, dt: float, limits: VehicleLimits,
          lookahead_s: float = 0.6) -> tuple[F64, F64, F64, F64]:
    """Follow target positions (K, T) with a closed-loop controller on the kinematic bicycle:
    pure pursuit on the rear axle for steering (rate-limited) and a speed/along-track feedback
    with feed-forward for acceleration, one step at a time for all K at once (NAVSIM tracks its
    proposals with an LQR controller instead). The recorded commands are then rolled with
    :func:`bicycle_rollout`, so the result is exactly a bicycle trajectory within the actuator
    limits. Returns rear-axle x, y, yaw, v (K, T)."""
    k, n_t = x.shape
    v_ref = np.concatenate([np.hypot(np.diff(x), np.diff(y)) / dt,
                            np.zeros((k, 1))], axis=1)
    v_ref[:, -1] = v_ref[:, -2]
    a_ref = np.concatenate([np.diff(v_ref, axis=1), np.zeros((k, 1))], axis=1) / dt
    ahead = max(int(round(lookahead_s / dt)), 1)
    px, py = x[:, 0].copy(), y[:, 0].copy()
    yaw = np.full(k, yaw0, np.float64)
    v = np.asarray(v0, np.float64).copy()
    steer = np.zeros(k)
    accels, rates = np.zeros((k, n_t - 1)), np.zeros((k, n_t - 1))
    for t in range(n_t - 1):
        j = min(t + ahead, n_t - 1)
        gx, gy = x[:, j] - px, y[:, j] - py
        ld = np.hypot(gx, gy)
        alpha = np.arctan2(gy, gx) - yaw
        kappa = np.where(ld > 0.5, 2 * np.sin(alpha) / np.maximum(ld, 1e-6), 0.0)
        want = np.clip(np.arctan(limits.wheel_base * kappa), -limits.max_steer, limits.max_steer)
        rate = np.clip((want - steer) / dt, -limits.max_steer_rate, limits.max_steer_rate)
        ex, ey = x[:, t + 1] - px, y[:, t + 1] - py
        along = ex * np.cos(yaw) + ey * np.sin(yaw) - v * dt
        acc = a_ref[:, t] + (v_ref[:, t] - v) / 0.5 + 1.0 * along / dt
        acc = np.clip(acc, limits.min_accel, limits.max_accel)
        accels[:, t], rates[:, t] = acc, rate
        px, py, yaw, v, steer = bicycle_step(px, py, yaw, v, steer, acc, rate, dt, limits)
    r = bicycle_rollout(x[:, 0], y[:, 0], yaw0, v0, accels, rates, dt, 0.0, limits)
    return r.x, r.y, r.yaw, r.v


@dataclass(frozen=True)
class Feasibility:
    """Per-trajectory (leading shape) feasibility verdicts and the worst value of each signal."""

    ok: Bool
    reverse_ok: Bool
    accel_ok: Bool
    steer_ok: Bool
    steer_rate_ok: Bool
    lat_accel_ok: Bool  # lateral acceleration and yaw rate within limits
    heading_ok: Bool
    max_abs_steer: F64
    max_abs_lat_accel: F64
    slip_ok: Bool  # the rear axle moves along its heading (no side-slip)
    max_abs_slip: F64  # rad, the worst side-slip angle of a moving step


def check_feasibility(x: ArrayLike, y: ArrayLike, yaw: ArrayLike, dt: float,
                      limits: VehicleLimits = VehicleLimits(), tol: float = 1e-6,
                      heading_tol: float = 0.35, slip_tol: float = 0.05) -> Feasibility:
    """Could a kinematic bicycle within ``limits`` drive this rear-axle path?

    x, y, yaw: (..., T) sampled every dt seconds. Speeds come from displacements; the motion
    must follow the heading (|course - yaw| < heading_tol where moving faster than 0.5 m/s, no
    reversing), and the implied acceleration, steering angle atan(L * curvature), steering rate
    and lateral acceleration must respect the limits (+ tol).

    Side-slip: a kinematic bicycle's rear axle moves along its heading, so over one step its
    displacement points between the headings at the two ends (exactly at the first for
    explicit Euler, at the mean for an exact arc). The slip of a moving step is how far the
    course lies outside [yaw_k, yaw_k+1]; beyond ``slip_tol`` (rad, ~3 degrees by default:
    room for rounded coordinates) the path slides sideways and is flagged (``slip_ok``).
    """
    x, y, yaw = (np.asarray(a, dtype=np.float64) for a in (x, y, yaw))
    dx, dy = np.diff(x, axis=-1), np.diff(y, axis=-1)
    dist = np.hypot(dx, dy)
    v = dist / dt
    course = np.arctan2(dy, dx)
    moving = v > 0.5
    dyaw = wrap_angle(np.diff(yaw, axis=-1))
    along = np.cos(course - yaw[..., :-1])
    reverse_ok = ~np.any(moving & (along < 0), axis=-1)
    heading_ok = ~np.any(moving & (np.abs(wrap_angle(course - yaw[..., :-1])) > heading_tol)
                         & (along >= 0), axis=-1)
    rel = wrap_angle(course - yaw[..., :-1])
    slip = np.maximum(np.maximum(np.minimum(dyaw, 0.0) - rel, rel - np.maximum(dyaw, 0.0)), 0.0)
    slip = np.where(moving & (along >= 0), slip, 0.0)
    max_abs_slip = np.max(slip, axis=-1, initial=0.0)
    slip_ok = max_abs_slip <= slip_tol
    accel = np.diff(v, axis=-1) / dt
    accel_ok = np.all((accel >= limits.min_accel - tol) & (accel <= limits.max_accel + tol),
                      axis=-1)
    # curvature (hence steering) is only defined while moving; below 0.5 m/s it is not judged
    curvature = np.where(moving, dyaw / np.maximum(dist, 1e-9), 0.0)
    steer = np.arctan(curvature * limits.wheel_base)
    max_abs_steer = np.max(np.abs(steer), axis=-1, initial=0.0)
    steer_ok = max_abs_steer <= limits.max_steer + tol
    steer_rate = np.diff(steer, axis=-1) / dt
    both = moving[..., 1:] & moving[..., :-1]
    steer_rate_ok = np.all(~both | (np.abs(steer_rate) <= limits.max_steer_rate + 1e-3),
                           axis=-1)
    yaw_rate = dyaw / dt
    lat = v * yaw_rate
    max_abs_lat = np.max(np.abs(lat), axis=-1, initial=0.0)
    lat_ok = (max_abs_lat <= limits.max_lat_accel + 1e-3) & np.all(
        np.abs(yaw_rate) <= limits.max_yaw_rate + 1e-6, axis=-1)
    ok = reverse_ok & heading_ok & slip_ok & accel_ok & steer_ok & steer_rate_ok & lat_ok
    return Feasibility(ok, reverse_ok, accel_ok, steer_ok, steer_rate_ok, lat_ok, heading_ok,
                       max_abs_steer, max_abs_lat, slip_ok, max_abs_slip)
