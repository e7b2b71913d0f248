"""NAVSIM v1.1's poses -> reference states (spec navsim-tracking-and-scoring §1.2-§1.6), batched.

``reference_from_poses`` turns K agent trajectories, each P poses ``(x, y, heading)`` relative to
the ego rear axle at t = 0, into the (K, n_steps + 1, 3) global reference the LQR tracker follows:

- §1.2 relative -> global by composing SE(2) matrices (heading read back with ``atan2``);
- §1.3 knots: the origin pose at t = 0, then the poses at ``pose_dt, 2 pose_dt, ...``;
- §1.4 linear interpolation of x, y (scipy ``interp1d``'s formula and interval choice), headings
  through ``np.unwrap`` over the knots, linear interpolation and nuPlan's ``principal_value``
  (so between two knots the heading turns the short way and the result lies in [-pi, pi));
- §1.6 query times clipped to the last knot: no extrapolation, a short trajectory holds its pose.

Time quantisation (§1.3/§1.4 and §6.7): NAVSIM truncates knot and query times to integer
microseconds after float-seconds arithmetic on the scene's absolute timestamp, which puts them
0-1 us early. Given that timestamp (``timestamp_us``) the same arithmetic is done here; without
it the times are exact multiples of ``pose_dt`` and ``dt`` (positions then differ from NAVSIM's
by up to ~3e-5 m, measured over random timestamps; with it, by ~1e-11 m).
Non-finite poses are not rejected here (NAVSIM would raise); they yield non-finite reference rows,
which :func:`cfpair.scoring.navsim_tracker.simulate` flags as all-NaN proposals.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from cfpair.errors import ShapeError
from cfpair.types import F64

I64 = NDArray[np.int64]


def principal_value(angle: F64) -> F64:
    """nuPlan's ``principal_value``: wrap to [-pi, pi) as ``(angle + pi) % 2pi - pi``."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def wrap_atan2(angle: F64) -> F64:
    """NAVSIM's ``normalize_angle``: ``atan2(sin a, cos a)`` in (-pi, pi]."""
    return np.arctan2(np.sin(angle), np.cos(angle))


def wrap_fast(angle: F64) -> F64:
    """``wrap_atan2`` without transcendentals: ``a - 2pi * rint(a / 2pi)``, in [-pi, pi].

    Equal to NAVSIM's ``atan2(sin a, cos a)`` to ~1e-16 rad (both round differently); the two
    can only pick different ends of the range for inputs within ~1e-16 of an odd multiple of pi.
    """
    return angle - (2 * np.pi) * np.rint(angle * (1 / (2 * np.pi)))


def _navsim_times(
    n_poses: int, pose_dt: float, n_steps: int, dt: float, timestamp_us: int
) -> tuple[F64, F64]:
    """Knot and query times in integer us, as NAVSIM computes them from an absolute timestamp
    (``_get_fixed_timesteps``, ``int(t_s * 1e6)``, ``get_trajectory_as_array``)."""
    t0_s = timestamp_us * 1e-6  # TimePoint.time_s
    knot_s = np.arange(0.0, n_poses * pose_dt, pose_dt)[:n_poses] + pose_dt + t0_s
    knots = [float(timestamp_us)] + [float(int(t * 1e6)) for t in knot_s]
    query_s = np.arange(0.0, n_steps * dt + dt, dt)[:n_steps + 1] + t0_s
    return np.array(knots), np.array([float(int(t * 1e6)) for t in query_s])


@lru_cache(maxsize=64)
def _interpolation_tables(
    n_poses: int, pose_dt: float, n_steps: int, dt: float, timestamp_us: int | None = None
) -> tuple[I64, I64, F64, F64]:
    """Knot indices (lo, hi) and the scipy ``interp1d`` numerator/denominator per query time."""
    if timestamp_us is None:
        knots_us = np.round(np.arange(n_poses + 1) * pose_dt * 1e6)
        query_us = np.round(np.arange(n_steps + 1) * dt * 1e6)
    else:
        knots_us, query_us = _navsim_times(n_poses, pose_dt, n_steps, dt, timestamp_us)
    query_us = np.clip(query_us, knots_us[0], knots_us[-1])
    # searchsorted(..., "left") then clip(1, P): a query on a knot k >= 1 uses interval (k-1, k)
    hi = np.clip(np.searchsorted(knots_us, query_us, side="left"), 1, n_poses).astype(np.int64)
    lo = hi - 1
    numerator = query_us - knots_us[lo]
    denominator = knots_us[hi] - knots_us[lo]
    for arr in (lo, hi, numerator, denominator):
        arr.setflags(write=False)
    return lo, hi, numerator, denominator


def _as_origin(origin: object, k: int) -> F64:
    o = np.asarray(origin, dtype=np.float64)
    if o.shape == (3,):
        o = np.broadcast_to(o, (k, 3))
    if o.shape != (k, 3):
        raise ShapeError(f"origin must have shape (3,) or ({k}, 3), got {o.shape}")
    if not np.all(np.isfinite(o)):
        raise ShapeError("origin (x0, y0, psi0) must be finite")
    return o


def relative_to_global(poses: F64, origin: F64) -> F64:
    """(K, P, 3) poses in the frame of ``origin`` (K, 3) -> (P, 3, K) global poses, heading in
    (-pi, pi] (nuPlan's ``relative_to_absolute_poses``: SE(2) product, heading by ``atan2``)."""
    c0, s0 = np.cos(origin[:, 2]), np.sin(origin[:, 2])
    x, y, h = poses[:, :, 0].T, poses[:, :, 1].T, poses[:, :, 2].T  # (P, K)
    ch, sh = np.cos(h), np.sin(h)
    out = np.empty((poses.shape[1], 3, poses.shape[0]))
    out[:, 0] = c0 * x - s0 * y + origin[:, 0]
    out[:, 1] = s0 * x + c0 * y + origin[:, 1]
    out[:, 2] = np.arctan2(s0 * ch + c0 * sh, c0 * ch - s0 * sh)
    return out


def _check(poses: object, pose_dt: float, n_steps: int, dt: float) -> F64:
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[1] < 1:
        raise ShapeError(f"poses must have shape (K, P >= 1, 3), got {p.shape}")
    if not (np.isfinite(pose_dt) and pose_dt > 0 and np.isfinite(dt) and dt > 0):
        raise ShapeError(f"pose_dt and dt must be positive, got {pose_dt}, {dt}")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ShapeError(f"n_steps must be a positive integer, got {n_steps}")
    return p


def reference_t(
    poses: F64, origin: F64, pose_dt: float = 0.5, n_steps: int = 40, dt: float = 0.1,
    timestamp_us: int | None = None,
) -> F64:
    """:func:`reference_from_poses` in the simulator's layout: (n_steps + 1, 3, K)."""
    p = _check(poses, pose_dt, n_steps, dt)
    o = _as_origin(origin, p.shape[0])
    if timestamp_us is not None and (int(timestamp_us) != timestamp_us or timestamp_us < 0):
        raise ShapeError(f"timestamp_us must be a non-negative integer, got {timestamp_us}")
    lo, hi, numerator, denominator = _interpolation_tables(
        p.shape[1], float(pose_dt), int(n_steps), float(dt),
        None if timestamp_us is None else int(timestamp_us),
    )
    with np.errstate(all="ignore"):  # non-finite or absurd poses: non-finite rows, flagged later
        knots = np.concatenate([o.T[None], relative_to_global(p, o)])  # (P + 1, 3, K)
        knots[:, 2] = np.unwrap(knots[:, 2], axis=0)
        # interp1d: slope of the query's interval times (t - t_lo), plus the value at t_lo
        slopes = np.diff(knots, axis=0)  # (P, 3, K); interval k joins knots k and k + 1
        ref = np.empty((len(lo), 3, p.shape[0]))
        for j, (k, num, den) in enumerate(zip(lo.tolist(), numerator.tolist(),
                                              denominator.tolist(), strict=True)):
            np.multiply(slopes[k] / den, num, out=ref[j])
            ref[j] += knots[k]
        ref[:, 2] += np.pi
        ref[:, 2] %= 2 * np.pi
        ref[:, 2] -= np.pi  # principal_value
    return ref


def reference_from_poses(
    poses: F64, origin: F64, pose_dt: float = 0.5, n_steps: int = 40, dt: float = 0.1,
    timestamp_us: int | None = None,
) -> F64:
    """(K, P, 3) relative poses (x, y, heading) in the frame of `origin` = (x0, y0, psi0) ->
    (K, n_steps+1, 3) reference, §1.2–1.6 (clipping, unwrap, no extrapolation).

    ``origin`` may also be (K, 3), one origin per proposal; pose i sits at ``(i + 1) * pose_dt``.
    ``timestamp_us``: the initial state's absolute time (NAVSIM's ``TimePoint``, integer us); when
    given, knot and query times are truncated to whole us exactly as NAVSIM does.
    """
    ref = reference_t(poses, origin, pose_dt, n_steps, dt, timestamp_us)
    return np.ascontiguousarray(ref.transpose(2, 0, 1))
