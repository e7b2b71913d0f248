"""SE(2) helpers: angle wrapping and world <-> local frame changes on arrays of any shape."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]


def wrap_angle(a: ArrayLike) -> F64:
    """Wrap angles (radians) to [-pi, pi)."""
    a = np.asarray(a, dtype=np.float64)
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def rotate(xy: ArrayLike, angle: ArrayLike) -> F64:
    """Rotate points counter-clockwise. xy: (..., 2) metres; angle: broadcastable to xy[..., 0]."""
    xy = np.asarray(xy, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def to_local(xy: ArrayLike, yaw: ArrayLike, origin_xy: ArrayLike, origin_yaw: ArrayLike
             ) -> tuple[F64, F64]:
    """World -> local frame whose origin is (origin_xy, origin_yaw).

    xy: (..., 2) world metres; yaw: (...) radians. origin_xy: (..., 2) or (2,), origin_yaw
    broadcastable. Returns (xy_local (..., 2), yaw_local (...) wrapped to [-pi, pi)).
    """
    xy = np.asarray(xy, dtype=np.float64)
    origin_xy = np.asarray(origin_xy, dtype=np.float64)
    origin_yaw = np.asarray(origin_yaw, dtype=np.float64)
    local = rotate(xy - origin_xy, -origin_yaw)
    return local, wrap_angle(np.asarray(yaw, dtype=np.float64) - origin_yaw)


def to_world(xy: ArrayLike, yaw: ArrayLike, origin_xy: ArrayLike, origin_yaw: ArrayLike
             ) -> tuple[F64, F64]:
    """Local -> world frame; the exact inverse of :func:`to_local`."""
    origin_xy = np.asarray(origin_xy, dtype=np.float64)
    origin_yaw = np.asarray(origin_yaw, dtype=np.float64)
    world = rotate(xy, origin_yaw) + origin_xy
    return world, wrap_angle(np.asarray(yaw, dtype=np.float64) + origin_yaw)


def rotate_vectors(vx: ArrayLike, vy: ArrayLike, angle: ArrayLike) -> tuple[F64, F64]:
    """Rotate velocity-like vectors (vx, vy) counter-clockwise by angle; shapes broadcast."""
    c, s = np.cos(angle), np.sin(angle)
    vx = np.asarray(vx, dtype=np.float64)
    vy = np.asarray(vy, dtype=np.float64)
    return c * vx - s * vy, s * vx + c * vy
