"""Drivable-area compliance: are box corners (or any points) inside the map's drivable polygons?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry.base import BaseGeometry

from cfpair.geometry.boxes import box_corners

Bool = NDArray[np.bool_]


class DrivableArea:
    """The union of drivable polygons, prepared once for fast vectorised point queries.

    Adjacent polygons are merged, so a corner on a shared edge between two roadblocks counts as
    drivable (NAVSIM tests each polygon separately and flags it; cfpair does not).
    """

    def __init__(self, polygons: Sequence[BaseGeometry] | BaseGeometry) -> None:
        geoms = [polygons] if isinstance(polygons, BaseGeometry) else list(polygons)
        self.geometry = shapely.union_all(geoms) if geoms else shapely.Polygon()
        shapely.prepare(self.geometry)

    @property
    def empty(self) -> bool:
        """True when there is no drivable polygon at all."""
        return bool(self.geometry.is_empty)

    def contains(self, xy: ArrayLike) -> Bool:
        """Points (..., 2) strictly inside or on the boundary of the drivable area."""
        xy = np.asarray(xy, dtype=np.float64)
        return shapely.intersects_xy(self.geometry, xy[..., 0], xy[..., 1])

    def boxes_inside(self, x: ArrayLike, y: ArrayLike, yaw: ArrayLike, length: ArrayLike,
                     width: ArrayLike) -> Bool:
        """Per box (shapes broadcast): are all four corners in the drivable area?"""
        return self.contains(box_corners(x, y, yaw, length, width)).all(axis=-1)
