"""ScenarioNet ``map_features`` -> MapGeometry: lanes, drivable area, centrelines and route.

Drivable area, in order of preference per lane: the lane's own ``polygon`` (nuScenes, nuPlan);
else a polygon built from the centreline and the per-point ``width`` (Waymo: (N, 2) left/right
half-widths measured to the lane boundaries; 0 where unknown); else the centreline widened by
half the default lane width, each side reaching out to a road edge (``ROAD_EDGE_*``) when one is
within ``edge_reach_m`` and never crossing one; the drivable-area outlines ScenarioNet writes as
``boundary_<n>`` lines count as road edges too. Closed outlines (nuScenes, nuPlan) are filled
(even-odd rule, so holes stay holes); Argoverse 2's come in open pieces and only bound the
lanes. Bike lanes are not drivable. Every choice is counted in :attr:`BuiltMap.notes` for the
scenario's meta.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from cfpair.types import MapGeometry

F64 = NDArray[np.float64]

DRIVABLE_LANES = ("LANE_SURFACE_STREET", "LANE_SURFACE_UNSTRUCTURE", "LANE_UNKNOWN",
                  "LANE_FREEWAY")
ROAD_EDGES = ("ROAD_EDGE_BOUNDARY", "ROAD_EDGE_MEDIAN")


@dataclass
class BuiltMap:
    """The map and what had to be guessed to build it."""

    geometry: MapGeometry
    notes: dict[str, Any] = field(default_factory=dict)


def _kept(value: Any) -> tuple[F64, NDArray[np.bool_]] | None:
    """(M, >=2) points -> their finite, non-repeated (K, 2) part and the (M,) mask of the
    points kept (repeated points have no direction); None when unusable."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] < 1:
        return None
    a = a[:, :2]
    keep = np.all(np.isfinite(a), axis=1)
    idx = np.flatnonzero(keep)
    if idx.size > 1:
        same = np.all(np.diff(a[idx], axis=0) == 0, axis=1)
        keep[idx[1:][same]] = False
    return a[keep], keep


def _xy(value: Any) -> F64 | None:
    """(M, >=2) points -> finite, non-repeated (K, 2) float array, or None when unusable."""
    got = _kept(value)
    return None if got is None else got[0]


def _widths(value: Any) -> F64:
    """A lane's per-point (left, right) half-widths, or an empty array when unusable."""
    try:
        return np.asarray(value, dtype=np.float64) if value is not None else np.zeros(0)
    except (TypeError, ValueError):
        return np.zeros(0)


def _near(a: F64, lo: F64, hi: F64) -> bool:
    """Does the bounding box of the points overlap the box [lo, hi]?"""
    return bool(np.all(a.min(axis=0) <= hi) and np.all(a.max(axis=0) >= lo))


def _normals(c: F64) -> F64:
    d = np.gradient(c, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _ribbon(c: F64, left: F64, right: F64) -> shapely.Geometry:
    """Polygon between the centreline offset ``left`` (m) to its left and ``right`` to its
    right; self-intersections on tight curves are repaired with buffer(0)."""
    n = _normals(c)
    ring = np.concatenate([c + n * left[:, None], (c - n * right[:, None])[::-1]])
    poly = shapely.Polygon(ring)
    if not poly.is_valid:
        poly = poly.buffer(0)
    return poly


def densify(c: F64, step: float = 1.0) -> F64:
    """The polyline with extra points so that no segment is longer than ``step`` metres."""
    seg = np.linalg.norm(np.diff(c, axis=0), axis=1)
    n = np.maximum(np.ceil(seg / step).astype(int), 1)
    which = np.repeat(np.arange(len(seg)), n)
    frac = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1) / np.repeat(n, n)
    return np.concatenate([c[:1], c[which] + frac[:, None] * (c[which + 1] - c[which])])


def _edge_reach(c: F64, edges: shapely.Geometry | None, default_half: float, reach: float
                ) -> tuple[F64, F64]:
    """Half-widths left/right: to the first road edge along the normal when it is within
    ``reach`` m, else ``default_half``. Hits closer than 0.5 m are ignored (an edge running
    through the centre point itself, as at the ends of a road, bounds nothing)."""
    left, right = np.full(len(c), default_half), np.full(len(c), default_half)
    if edges is None:
        return left, right
    n = _normals(c)
    for side, out in ((1.0, left), (-1.0, right)):
        rays = shapely.linestrings(np.stack([c, c + side * n * reach], axis=1))
        hits = shapely.intersection(rays, edges)
        for i in np.flatnonzero(~shapely.is_empty(hits)):
            d = np.linalg.norm(shapely.get_coordinates(hits[i]) - c[i], axis=1)
            d = d[d >= 0.5]
            if d.size:
                out[i] = float(d.min())
    return left, right


def _split_holes(poly: shapely.Geometry) -> list[shapely.Polygon]:
    """Hole-free pieces of a polygon (MapGeometry stores exteriors): cut through each hole."""
    todo, out = [poly], []
    while todo:
        g = todo.pop()
        if g.is_empty:
            continue
        if g.geom_type in ("MultiPolygon", "GeometryCollection"):
            todo += [p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon")]
            continue
        if g.geom_type != "Polygon":
            continue
        if not g.interiors:
            out.append(g)
            continue
        hx = shapely.Polygon(g.interiors[0]).centroid.x
        x0, y0, x1, y1 = g.bounds
        halves = (shapely.box(x0 - 1, y0 - 1, hx, y1 + 1), shapely.box(hx, y0 - 1, x1 + 1,
                                                                        y1 + 1))
        todo += [shapely.intersection(g, h) for h in halves]
    return out


def _outline_faces(rings: list[F64]) -> list[shapely.Polygon]:
    """Faces enclosed by an odd number of closed outlines (the area the outlines bound)."""
    lines = [shapely.LineString(r) for r in rings]
    shells = [shapely.Polygon(r).buffer(0) for r in rings]
    faces = list(shapely.get_parts(shapely.polygonize(lines)))
    out = []
    for f in faces:
        p = f.representative_point()
        if sum(bool(s.contains(p)) for s in shells) % 2 == 1:
            out.append(f)
    return out


def build_map(features: Any, ego_xy: F64, ego_yaw: F64, radius_m: float = 150.0,
              default_lane_width: float = 3.7, edge_reach_m: float = 4.0) -> BuiltMap:
    """MapGeometry of the features within ``radius_m`` of the ego path's bounding box; the
    path (valid ego positions and headings) also infers the route."""
    notes: dict[str, Any] = {"lanes_with_polygon": 0, "lanes_from_width": 0,
                             "lanes_from_default_width": 0, "lanes_skipped": 0,
                             "outline_faces": 0, "crop_radius_m": radius_m}
    if not isinstance(features, dict) or ego_xy.size == 0:
        notes["no_map"] = "map_features missing or not a dict" if not isinstance(
            features, dict) else "no valid ego position"
        return BuiltMap(MapGeometry(), notes)
    lo, hi = ego_xy.min(axis=0) - radius_m, ego_xy.max(axis=0) + radius_m
    lanes, rings, edge_lines = [], [], []
    for fid, feat in features.items():
        if not isinstance(feat, dict):
            continue
        typ = str(feat.get("type", ""))
        got = _kept(feat.get("polyline")) if "polyline" in feat else None
        line, kept = got if got is not None else (None, None)
        outline = str(fid).startswith("boundary_")
        if (typ in ROAD_EDGES or outline) and line is not None and len(line) >= 2 and \
                _near(line, lo, hi):
            edge_lines.append(line)  # Argoverse 2 chops its outline into open 20-point pieces
        if outline and line is not None and len(line) >= 4 and np.allclose(line[0], line[-1]) \
                and _near(line, lo, hi):
            rings.append(line)
        if typ in DRIVABLE_LANES:
            if line is None or len(line) < 2 or not _near(line, lo, hi):
                notes["lanes_skipped"] += line is None or len(line) < 2
                continue
            lanes.append((str(fid), line, kept, feat))
    edges = shapely.MultiLineString(edge_lines) if edge_lines else None
    half = default_lane_width / 2
    polys, centres, ids, route_flags = [], [], [], []
    for fid, line, kept, feat in sorted(lanes, key=lambda r: r[0]):
        poly = None
        given = _xy(feat.get("polygon")) if "polygon" in feat else None
        if given is not None and len(given) >= 3:
            poly = shapely.Polygon(given).buffer(0)
            if poly.is_empty or poly.area <= 0:
                poly = None
            else:
                notes["lanes_with_polygon"] += 1
        if poly is None:
            width = _widths(feat.get("width"))
            if width.ndim == 2 and width.shape[0] == kept.size:
                width = width[kept]  # the points the centreline kept
            if width.shape == (len(line), 2) and np.all(np.isfinite(width)) and np.any(
                    width > 0):
                w = np.where(width > 0, width, np.where(width[:, ::-1] > 0, width[:, ::-1],
                                                        half))
                poly = _ribbon(line, w[:, 0], w[:, 1])
                notes["lanes_from_width"] += 1
            else:
                dense = densify(line)
                left, right = _edge_reach(dense, edges, half, edge_reach_m)
                poly = _ribbon(dense, left, right)
                notes["lanes_from_default_width"] += 1
        polys += _split_holes(poly)
        centres.append(line)
        ids.append(fid)
        route_flags.append(feat.get("is_sdc_route"))
    faces = _outline_faces(rings) if rings else []
    notes["outline_faces"] = len(faces)
    # one union, cut into hole-free pieces: a few large polygons instead of hundreds of
    # overlapping lanes keep every anchor's clip, union and stored map small
    union = shapely.union_all([*polys, *faces]) if polys or faces else shapely.Polygon()
    keep = [p for p in _split_holes(union) if p.geom_type == "Polygon" and p.area > 1e-6]
    notes["drivable_pieces"] = len(keep)
    lane_polys = tuple(np.asarray(p.exterior.coords) for p in polys
                       if p.geom_type == "Polygon" and p.area > 1e-6)
    centre_t = tuple(c for c in centres if len(c) >= 2)
    given_route = [f for f in route_flags if f is not None]
    if given_route:
        on_route = np.array([bool(f) for f in route_flags], bool)
        notes["route"] = "is_sdc_route flags of the lanes"
    else:
        on_route = infer_route(centre_t, ego_xy, ego_yaw, default_lane_width / 2)
        notes["route"] = "inferred: lanes the logged ego path follows"
    geo = MapGeometry(drivable=tuple(np.asarray(p.exterior.coords) for p in keep),
                      lanes=lane_polys, centerlines=centre_t, on_route=on_route,
                      lane_ids=tuple(ids))
    return BuiltMap(geo, notes)


def infer_route(centres: tuple[F64, ...], path: F64, yaw: F64, tol_m: float
                ) -> NDArray[np.bool_]:
    """Lanes along which the logged ego drives: >= 3 of its positions within ``tol_m`` of the
    centreline while heading with the lane (within 45 degrees); a parked ego's lane counts."""
    flags = np.zeros(len(centres), bool)
    if len(path) < 3 or not centres:
        return flags
    pts, dirs = path, np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    lines = np.array([shapely.LineString(c) for c in centres], dtype=object)
    points = shapely.points(pts)
    pt_idx, line_idx = shapely.STRtree(lines).query(points, predicate="dwithin", distance=tol_m)
    for i in np.unique(line_idx):
        near = pt_idx[line_idx == i]
        if near.size < 3:
            continue
        s = shapely.line_locate_point(lines[i], points[near])
        a = shapely.get_coordinates(shapely.line_interpolate_point(lines[i], s - 0.5))
        b = shapely.get_coordinates(shapely.line_interpolate_point(lines[i], s + 0.5))
        tangent = b - a
        ok = np.einsum("ij,ij->i", tangent, dirs[near]) > 0.707 * np.linalg.norm(
            tangent, axis=1) * np.linalg.norm(dirs[near], axis=1)
        flags[i] = int(ok.sum()) >= 3
    return flags
