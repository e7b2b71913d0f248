"""Projection of points onto a polyline centreline: arc length, signed lateral offset, progress."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cfpair.errors import ShapeError

F64 = NDArray[np.float64]


def project_to_polyline(points: ArrayLike, line: ArrayLike) -> tuple[F64, F64]:
    """Arc length along ``line`` of the closest point, and the signed lateral offset (left +).

    points: (..., 2) metres; line: (M, 2) with M >= 2 vertices. Matches shapely's
    ``LineString.project`` for the arc length (ties go to the earlier segment).
    """
    p = np.asarray(points, dtype=np.float64)
    ln = np.asarray(line, dtype=np.float64)
    if ln.ndim != 2 or ln.shape[0] < 2 or ln.shape[1] != 2:
        raise ShapeError(f"centreline must be (M>=2, 2), got {ln.shape}")
    a, b = ln[:-1], ln[1:]
    ab = b - a
    seg_len = np.hypot(ab[:, 0], ab[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    rel = p[..., None, :] - a  # (..., S, 2)
    denom = np.maximum(seg_len**2, 1e-300)
    t = np.clip(np.sum(rel * ab, axis=-1) / denom, 0.0, 1.0)
    closest = a + t[..., None] * ab
    d2 = np.sum((p[..., None, :] - closest) ** 2, axis=-1)
    best = np.argmin(d2, axis=-1)
    t_best = np.take_along_axis(t, best[..., None], axis=-1)[..., 0]
    arc = cum[best] + t_best * seg_len[best]
    rel_b = np.take_along_axis(rel, best[..., None, None], axis=-2)[..., 0, :]
    ab_b = ab[best]
    cross = ab_b[..., 0] * rel_b[..., 1] - ab_b[..., 1] * rel_b[..., 0]
    lateral = np.sign(cross) * np.sqrt(np.take_along_axis(d2, best[..., None], axis=-1)[..., 0])
    return arc, lateral


def progress_along(points_start: ArrayLike, points_end: ArrayLike, line: ArrayLike) -> F64:
    """Progress (m) from start to end points along the centreline, clipped at 0 as NAVSIM."""
    s0, _ = project_to_polyline(points_start, line)
    s1, _ = project_to_polyline(points_end, line)
    return np.maximum(s1 - s0, 0.0)
