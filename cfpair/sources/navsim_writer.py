"""Write Scenarios as OpenScene log pickles plus a nuPlan-style GPKG map.

Builds examples/data/navsim from synthetic scenes; the loader reads the result like real data.
Scenes are sub-sampled to 2 Hz, shifted to a UTM-like origin, and each scene becomes one log.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path

import numpy as np
import shapely

from cfpair.types import Scenario

NAME_BACK = {"vehicle": "vehicle", "truck": "vehicle", "bus": "vehicle",
             "pedestrian": "pedestrian", "cyclist": "bicycle", "motorcycle": "bicycle",
             "static": "generic_object", "unknown": "generic_object"}
UTM_ORIGIN = (664_000.0, 3_996_000.0)  # somewhere in Las Vegas, EPSG:32611
CRS = "EPSG:32611"


def _quat(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def write_log(scn: Scenario, path: str | Path, location: str = "us-nv-las-vegas-strip",
              stride: int = 5, roadblocks: tuple[str, ...] = ("1",)) -> Path:
    """One OpenScene log pickle from a 0.1 s scenario (every ``stride``-th step kept)."""
    ox, oy = UTM_ORIGIN
    idx = np.arange(0, scn.n_steps, stride)
    frames = []
    log_name = scn.scenario_id.replace("/", "_")
    t0 = 1_600_000_000_000_000
    for j, k in enumerate(idx):
        yaw = float(scn.ego.yaw[k])
        c, s = math.cos(yaw), math.sin(yaw)
        vx, vy = float(scn.ego.vx[k]), float(scn.ego.vy[k])
        a = scn.agents
        keep = a.valid[:, k]
        dx, dy = a.x[keep, k] - scn.ego.x[k], a.y[keep, k] - scn.ego.y[k]
        boxes = np.stack([c * dx + s * dy, -s * dx + c * dy, np.full(dx.shape, 0.8),
                          a.length[keep], a.width[keep], np.full(dx.shape, 1.6),
                          a.yaw[keep, k] - yaw], axis=1) if keep.any() else np.zeros((0, 7))
        avx, avy = a.vx[keep, k], a.vy[keep, k]
        vel = np.stack([c * avx + s * avy, -s * avx + c * avy, np.zeros_like(avx)], axis=1) \
            if keep.any() else np.zeros((0, 3))
        token = hashlib.sha1(f"{log_name}/{j}".encode()).hexdigest()[:16]
        trans = [ox + float(scn.ego.x[k]), oy + float(scn.ego.y[k]), 0.0]
        frames.append({
            "token": token, "frame_idx": int(j), "timestamp": t0 + int(round(j * 0.5e6)),
            "log_name": log_name, "log_token": log_name, "scene_name": log_name,
            "scene_token": log_name, "map_location": location,
            "roadblock_ids": list(roadblocks), "vehicle_name": "synthetic",
            "ego2global_translation": np.array(trans), "ego2global_rotation": np.array(_quat(yaw)),
            "ego_dynamic_state": [c * vx + s * vy, -s * vx + c * vy, 0.0, 0.0],
            "driving_command": np.array([0, 1, 0, 0]), "traffic_lights": [],
            "cams": {"CAM_F0": {"data_path": f"{log_name}/CAM_F0/{token}.jpg"}},
            "anns": {"gt_boxes": boxes, "gt_names": np.array([NAME_BACK[str(n)] for n in
                                                               a.classes[keep]]),
                     "gt_velocity_3d": vel, "track_tokens": np.array(a.ids[keep]),
                     "instance_tokens": np.array([f"{i}_{j}" for i in a.ids[keep]])},
        })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(frames, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def write_gpkg(scn: Scenario, path: str | Path) -> Path:
    """A GPKG with meta, lane_groups_polygons, lanes_polygons, intersections, carpark_areas and
    baseline_paths layers from the scenario's map (shifted to UTM_ORIGIN)."""
    from pyogrio import raw

    ox, oy = UTM_ORIGIN
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()

    def polys(rings: tuple) -> np.ndarray:
        return np.array([shapely.Polygon(np.asarray(r) + [ox, oy]) for r in rings], dtype=object)

    m = scn.map
    raw.write(path, None, [np.array(["projectedCoordSystem"]), np.array([CRS])],
              ["key", "value"], layer="meta", driver="GPKG")
    drv = polys(m.drivable)
    raw.write(path, shapely.to_wkb(drv), [np.arange(len(drv))], ["lane_group_index"],
              layer="lane_groups_polygons", driver="GPKG", crs=CRS, geometry_type="Polygon",
              append=True)
    # one lane polygon per centreline (the centreline buffered to a lane), in roadblock "1"
    # when on the route, "2" otherwise, so the loader recovers the on-route flags
    lanes = np.array([shapely.LineString(np.asarray(c) + [ox, oy]).buffer(1.75, cap_style=2)
                      for c in m.centerlines], dtype=object)
    group = np.array(["1" if r else "2" for r in m.on_route])
    raw.write(path, shapely.to_wkb(lanes), [group], ["lane_group_fid"], layer="lanes_polygons",
              driver="GPKG", crs=CRS, geometry_type="Polygon", append=True)
    empty = np.array([shapely.box(ox - 1e5, oy - 1e5, ox - 1e5 + 1, oy - 1e5 + 1)], object)
    for layer in ("intersections", "carpark_areas"):
        raw.write(path, shapely.to_wkb(empty), [np.array([0])], ["dummy"], layer=layer,
                  driver="GPKG", crs=CRS, geometry_type="Polygon", append=True)
    lines = np.array([shapely.LineString(np.asarray(c) + [ox, oy]) for c in m.centerlines],
                     dtype=object)
    lane_fid = np.array([str(i + 1) for i in range(len(lines))])
    raw.write(path, shapely.to_wkb(lines), [lane_fid], ["lane_fid"], layer="baseline_paths",
              driver="GPKG", crs=CRS, geometry_type="LineString", append=True)
    return path
