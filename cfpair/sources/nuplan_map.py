"""nuPlan GPKG maps without the devkit: read with pyogrio, reproject to the map's projected CRS,
and cut a MapGeometry around a point (spec: navsim-format-and-pdms.md section 3).

Drivable area = roadblocks (``lane_groups_polygons``) + ``intersections`` + ``carpark_areas``
+ ``generic_drivable_areas`` where present; lanes = ``lanes_polygons`` + lane-connector polygons;
centrelines = ``baseline_paths``, on-route when their lane's roadblock is on the route.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray

from cfpair.errors import DatasetFormatError
from cfpair.types import MapGeometry

DRIVABLE_LAYERS = ("lane_groups_polygons", "intersections", "carpark_areas",
                   "generic_drivable_areas")
LANE_LAYERS = ("lanes_polygons", "gen_lane_connectors_scaled_width_polygons")


@dataclass(frozen=True)
class Layer:
    """One vector layer: ids (GPKG fids as str), shapely geometries, attribute columns."""

    ids: NDArray[np.str_]
    geoms: NDArray[np.object_]
    fields: dict[str, NDArray]


class NuplanMap:
    """A nuPlan ``map.gpkg`` loaded once; :meth:`crop` gives a MapGeometry around a point."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            import pyogrio
            from pyogrio import raw
        except ImportError as exc:  # pragma: no cover - the maps extra is installed in tests
            raise DatasetFormatError(self.path, "reading nuPlan maps needs pyogrio: "
                                     "pip install 'cfpair[maps]'") from exc
        try:
            layers = {str(n) for n, _ in pyogrio.list_layers(self.path)}
            meta = raw.read(self.path, layer="meta")
        except Exception as exc:
            raise DatasetFormatError(self.path, f"not a readable GPKG map ({exc})") from exc
        keys = dict(zip(meta[3][0].tolist(), meta[3][1].tolist(), strict=False)) if \
            meta[0]["fields"].tolist()[:2] == ["key", "value"] else {}
        self.crs = keys.get("projectedCoordSystem")
        if not self.crs or not isinstance(self.crs, str):
            raise DatasetFormatError(self.path, "meta layer has no projectedCoordSystem row")
        _check_crs(self.path, self.crs, "meta projectedCoordSystem")
        self.layers: dict[str, Layer] = {}
        for name in set(DRIVABLE_LAYERS + LANE_LAYERS + ("baseline_paths",)) & layers:
            self.layers[name] = self._read(name)
        missing = {"lane_groups_polygons", "lanes_polygons", "baseline_paths"} - set(self.layers)
        if missing:
            raise DatasetFormatError(self.path, f"map lacks layers {sorted(missing)}")

    def _read(self, name: str) -> Layer:
        from pyogrio import raw

        try:
            meta, fids, wkb, data = raw.read(self.path, layer=name, return_fids=True)
        except Exception as exc:
            raise DatasetFormatError(self.path, f"cannot read layer {name!r} ({exc})") from exc
        try:
            geoms = shapely.from_wkb(wkb)
            src_crs = meta.get("crs")
            if src_crs and src_crs != self.crs:
                _check_crs(self.path, src_crs, f"layer {name!r} CRS")
                geoms = _reproject(geoms, src_crs, self.crs)
            fields = {str(f): np.asarray(v) for f, v in zip(meta["fields"], data, strict=True)}
        except DatasetFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - GEOS / PROJ errors on a garbage map
            raise DatasetFormatError(self.path, f"layer {name!r} has unreadable geometry or "
                                     f"cannot be reprojected ({type(exc).__name__}: {exc})"
                                     ) from None
        if geoms.size and (np.any(shapely.is_missing(geoms)) or not np.all(
                np.isfinite(shapely.get_coordinates(geoms)))):
            raise DatasetFormatError(self.path, f"layer {name!r} has empty or non-finite "
                                     "geometries")
        return Layer(np.array([str(f) for f in fids]), geoms, fields)

    def crop(self, x: float, y: float, radius: float = 100.0,
             route_roadblocks: tuple[str, ...] = ()) -> MapGeometry:
        """Map objects within ``radius`` of (x, y) in the projected CRS."""
        area = shapely.Point(x, y).buffer(radius)
        drivable, lanes = [], []
        for name in DRIVABLE_LAYERS:
            if name in self.layers:
                drivable += _polys(self.layers[name].geoms, area)
        for name in LANE_LAYERS:
            if name in self.layers:
                lanes += _polys(self.layers[name].geoms, area)
        lane_rb = {}
        lp = self.layers["lanes_polygons"]
        if "lane_group_fid" in lp.fields:
            lane_rb = dict(zip(lp.ids.tolist(), [str(v) for v in lp.fields["lane_group_fid"]],
                               strict=True))
        bp = self.layers["baseline_paths"]
        near = shapely.intersects(bp.geoms, area)
        centre, ids, on_route = [], [], []
        lane_col = bp.fields.get("lane_fid")
        route = set(route_roadblocks)
        for i in np.flatnonzero(near):
            coords = shapely.get_coordinates(bp.geoms[i])
            if len(coords) < 2:
                continue
            lane = str(lane_col[i]) if lane_col is not None else ""
            centre.append(coords)
            ids.append(lane or bp.ids[i])
            on_route.append(lane_rb.get(lane, "") in route)
        return MapGeometry(drivable=tuple(drivable), lanes=tuple(lanes),
                           centerlines=tuple(centre), on_route=np.array(on_route, bool),
                           lane_ids=tuple(ids))


def _polys(geoms: NDArray[np.object_], area: shapely.Geometry) -> list[NDArray]:
    out = []
    for g in geoms[shapely.intersects(geoms, area)]:
        for part in getattr(g, "geoms", [g]):
            if isinstance(part, shapely.Polygon) and not part.is_empty:
                out.append(np.asarray(part.exterior.coords)[:-1])
    return out


def _check_crs(path: Path, crs: str, what: str) -> None:
    """A CRS pyproj understands and that is projected (metres), or an error naming the map."""
    try:
        from pyproj import CRS

        parsed = CRS.from_user_input(crs)
    except Exception as exc:  # noqa: BLE001 - pyproj raises CRSError and friends
        raise DatasetFormatError(path, f"{what} {crs[:80]!r} is not a coordinate reference "
                                 f"system ({type(exc).__name__})") from None
    if not parsed.is_projected:
        raise DatasetFormatError(path, f"{what} {crs[:80]!r} is not a projected CRS in metres")


def _reproject(geoms: NDArray[np.object_], src: str, dst: str) -> NDArray[np.object_]:
    from pyproj import Transformer

    tf = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(geoms, lambda xy: np.stack(tf.transform(xy[:, 0], xy[:, 1]), 1))


@lru_cache(maxsize=8)
def load_map(path: str) -> NuplanMap:
    """Cached map per process (maps are large and shared by many scenes)."""
    return NuplanMap(path)
