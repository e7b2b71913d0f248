"""Oriented boxes: corners, exact separating-axis overlap, and minimum box-to-box distance.

A box is (x, y, yaw, length, width): centre in metres, yaw in radians counter-clockwise from +x,
full length along the heading and full width across it. Every function takes plain arrays whose
shapes broadcast against each other (any leading dimensions) and is vectorised: no Python loop.
Corner order follows NAVSIM: front-left, rear-left, rear-right, front-right.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]

#: Contacts closer than this (metres) count as touching, so touching boxes overlap (as in
#: shapely's ``intersects``) despite rounding in sin/cos.
TOUCH_EPS = 1e-9

_CORNER_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


def box_corners(x: ArrayLike, y: ArrayLike, yaw: ArrayLike, length: ArrayLike,
                width: ArrayLike) -> F64:
    """Corners of oriented boxes: (..., 4, 2) metres, order FL, RL, RR, FR (counter-clockwise)."""
    x, y, yaw, length, width = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (x, y, yaw, length, width)))
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    lx = _CORNER_SIGNS[:, 0] * (length[..., None] / 2.0)
    ly = _CORNER_SIGNS[:, 1] * (width[..., None] / 2.0)
    cx = x[..., None] + c * lx - s * ly
    cy = y[..., None] + s * lx + c * ly
    return np.stack([cx, cy], axis=-1)


def sat_overlap_cs(dx: F64, dy: F64, c1: F64, s1: F64, hl1: F64, hw1: F64,
                   c2: F64, s2: F64, hl2: F64, hw2: F64, eps: float = TOUCH_EPS) -> Bool:
    """Separating-axis test on precomputed cos/sin; (dx, dy) = centre2 - centre1.

    Two convex quadrilaterals overlap iff no edge normal separates them; for rectangles the four
    candidate axes are the two headings and their normals, and each box projects onto an axis
    as an interval of radius hl*|cos| + hw*|sin|. Shapes broadcast; returns a bool array.
    """
    ac = np.abs(c1 * c2 + s1 * s2)  # |cos(yaw2 - yaw1)|
    as_ = np.abs(c1 * s2 - s1 * c2)  # |sin(yaw2 - yaw1)|
    ok = np.abs(dx * c1 + dy * s1) <= hl1 + hl2 * ac + hw2 * as_ + eps
    ok &= np.abs(dy * c1 - dx * s1) <= hw1 + hl2 * as_ + hw2 * ac + eps
    ok &= np.abs(dx * c2 + dy * s2) <= hl2 + hl1 * ac + hw1 * as_ + eps
    ok &= np.abs(dy * c2 - dx * s2) <= hw2 + hl1 * as_ + hw1 * ac + eps
    return ok


def boxes_overlap(box1: tuple[ArrayLike, ...], box2: tuple[ArrayLike, ...],
                  eps: float = TOUCH_EPS) -> Bool:
    """Do boxes overlap (touching counts)? box = (x, y, yaw, length, width), shapes broadcast."""
    x1, y1, yaw1, l1, w1 = (np.asarray(v, dtype=np.float64) for v in box1)
    x2, y2, yaw2, l2, w2 = (np.asarray(v, dtype=np.float64) for v in box2)
    return sat_overlap_cs(x2 - x1, y2 - y1, np.cos(yaw1), np.sin(yaw1), l1 / 2, w1 / 2,
                          np.cos(yaw2), np.sin(yaw2), l2 / 2, w2 / 2, eps)


def _point_segment_distance(px: F64, py: F64, ax: F64, ay: F64, bx: F64, by: F64) -> F64:
    """Distance from points p to segments [a, b], coordinates as separate arrays that
    broadcast (component arithmetic: no reductions over a length-2 axis)."""
    abx, aby = bx - ax, by - ay
    denom = np.maximum(abx * abx + aby * aby, 1e-300)
    t = np.clip(((px - ax) * abx + (py - ay) * aby) / denom, 0.0, 1.0)
    return np.hypot(px - (ax + t * abx), py - (ay + t * aby))


def box_distance(box1: tuple[ArrayLike, ...], box2: tuple[ArrayLike, ...]) -> F64:
    """Minimum Euclidean distance between oriented boxes (0 where they overlap), metres.

    For disjoint convex polygons the closest pair always includes a vertex of one polygon, so the
    distance is the least of the 32 corner-to-edge distances. Shapes broadcast like the inputs.
    """
    c1 = box_corners(*box1)
    c2 = box_corners(*box2)
    c1, c2 = np.broadcast_arrays(c1, c2)
    x1, y1, x2, y2 = c1[..., 0], c1[..., 1], c2[..., 0], c2[..., 1]   # (..., 4)

    def corner_to_edges(px: F64, py: F64, ex: F64, ey: F64) -> F64:
        # (..., 4 corners, 1) against (..., 1, 4 edges)
        nx, ny = np.roll(ex, -1, axis=-1), np.roll(ey, -1, axis=-1)
        return _point_segment_distance(px[..., :, None], py[..., :, None], ex[..., None, :],
                                       ey[..., None, :], nx[..., None, :], ny[..., None, :])

    d12 = corner_to_edges(x1, y1, x2, y2)
    d21 = corner_to_edges(x2, y2, x1, y1)
    dist = np.minimum(d12.min(axis=(-1, -2)), d21.min(axis=(-1, -2)))
    return np.where(boxes_overlap(box1, box2), 0.0, dist)


def bounding_radius(length: ArrayLike, width: ArrayLike) -> F64:
    """Radius of the circle around a box's centre that contains the box (half diagonal)."""
    return np.hypot(np.asarray(length, dtype=np.float64), np.asarray(width, dtype=np.float64)) / 2
