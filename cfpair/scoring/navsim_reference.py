"""NAVSIM v1.1's poses -> reference states (spec navsim-tracking-and-scoring §1.2-§1.6), batched.

``reference_from_poses`` turns K agent trajectories, each P poses ``(x, y, heading)`` relative to
the ego rear axle at t = 0, into the (K, n_steps + 1, 3) global reference the LQR tracker follows:

- §1.2 relative -> global by composing SE(2) matrices (heading read back with ``atan2``);
- §1.3 knots: the origin pose at t = 0, then the poses at ``pose_dt, 2 pose_dt, ...``;
- §1.4 linear interpolation of x, y (scipy ``interp1d``'s formula and interval choice), headings
  through ``np.unwrap`` over the knots, linear interpolation and nuPlan's ``principal_value``
  (so between two knots the heading turns the short way and the result lies in [-pi, pi));
- §1.6 query times clipped to the last knot: no extrapolation, a short trajectory holds its pose.

Deliberate deviation (§1.3/§1.4 and §6.7): NAVSIM truncates knot and query times to integer
microseconds after float-seconds arithmetic on an absolute timestamp, which puts them 0-1 us early;
here they are exact multiples of ``pose_dt`` and ``dt`` (the weights differ by <= 2e-6 relative).
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


@lru_cache(maxsize=64)
def _interpolation_tables(
    n_poses: int, pose_dt: float, n_steps: int, dt: float
) -> tuple[I64, I64, F64, F64]:
    """Knot indices (lo, hi) and the scipy ``interp1d`` numerator/denominator per query time."""
    knots_us = np.round(np.arange(n_poses + 1) * pose_dt * 1e6)
    query_us = np.clip(np.round(np.arange(n_steps + 1) * dt * 1e6), knots_us[0], knots_us[-1])
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
    """(K, P, 3) poses in the frame of ``origin`` (K, 3) -> global poses, heading in (-pi, pi]."""
    c0 = np.cos(origin[:, 2])[:, None]
    s0 = np.sin(origin[:, 2])[:, None]
    x, y, h = poses[..., 0], poses[..., 1], poses[..., 2]
    ch, sh = np.cos(h), np.sin(h)
    gx = c0 * x - s0 * y + origin[:, 0:1]
    gy = s0 * x + c0 * y + origin[:, 1:2]
    gh = np.arctan2(s0 * ch + c0 * sh, c0 * ch - s0 * sh)
    return np.stack([gx, gy, gh], axis=-1)


def reference_from_poses(
    poses: F64, origin: F64, pose_dt: float = 0.5, n_steps: int = 40, dt: float = 0.1
) -> F64:
    """(K, P, 3) relative poses (x, y, heading) in the frame of `origin` = (x0, y0, psi0) ->
    (K, n_steps+1, 3) reference, §1.2–1.6 (clipping, unwrap, no extrapolation).

    ``origin`` may also be (K, 3), one origin per proposal; pose i sits at ``(i + 1) * pose_dt``.
    """
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[1] < 1:
        raise ShapeError(f"poses must have shape (K, P >= 1, 3), got {p.shape}")
    if not (np.isfinite(pose_dt) and pose_dt > 0 and np.isfinite(dt) and dt > 0):
        raise ShapeError(f"pose_dt and dt must be positive, got {pose_dt}, {dt}")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ShapeError(f"n_steps must be a positive integer, got {n_steps}")
    k, n_poses = p.shape[0], p.shape[1]
    o = _as_origin(origin, k)
    lo, hi, numerator, denominator = _interpolation_tables(
        n_poses, float(pose_dt), int(n_steps), float(dt)
    )
    with np.errstate(invalid="ignore"):
        glob = relative_to_global(p, o)
        knots = np.concatenate([o[:, None, :], glob], axis=1)  # (K, P + 1, 3)
        knots[:, :, 2] = np.unwrap(knots[:, :, 2], axis=1)
        slope = (knots[:, hi] - knots[:, lo]) / denominator[None, :, None]
        ref = slope * numerator[None, :, None] + knots[:, lo]
        ref[:, :, 2] = principal_value(ref[:, :, 2])
    return ref
