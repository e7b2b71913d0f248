"""Write Scenarios in ScenarioNet's layout (``ScenarioDescription`` pickles, summary, mapping).

For the tests and the sample data; the output is read back by
:mod:`cfpair.sources.scenarionet` like a folder converted by ScenarioNet. Two styles, as the
real converters write them:

* ``nuscenes``: ego poses at the rear axle (1.37 m behind the box centre) with the size stored
  swapped (length < width, as nuScenes' converter does), lanes with ``polygon`` where the scene
  has a lane polygon (the rest are polyline-only, like nuScenes' lane connectors), and the
  drivable area's outline as closed ``boundary_<n>`` lines.
* ``waymo``: ego = the SDC's box centre, numeric track ids, float32 arrays and timestamps with
  jitter, lanes as polylines only (half of them with a per-point ``width``), the drivable
  outline as many open ``ROAD_EDGE_BOUNDARY`` polylines of different lengths.

Velocities are stored as ScenarioNet stores them: forward differences, zero at the last step
and next to every gap.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from cfpair.sources.safe_pickle import safe_load
from cfpair.sources.scenarionet_map import densify
from cfpair.sources.scenarionet_tracks import EGO_BY_DATASET
from cfpair.types import Scenario

_TYPE_BACK = {"vehicle": ("VEHICLE", "vehicle.car"), "truck": ("VEHICLE", "vehicle.truck"),
              "bus": ("VEHICLE", "vehicle.bus.rigid"),
              "pedestrian": ("PEDESTRIAN", "human.pedestrian.adult"),
              "cyclist": ("CYCLIST", "vehicle.bicycle"),
              "motorcycle": ("CYCLIST", "vehicle.motorcycle"),
              "static": ("TRAFFIC_CONE", "movable_object.trafficcone"),
              "unknown": ("OTHER", "unknown")}
STYLES = ("nuscenes", "waymo")


def _velocity(x: np.ndarray, y: np.ndarray, valid: np.ndarray, dt: float) -> np.ndarray:
    v = np.zeros((len(x), 2))
    v[:-1, 0], v[:-1, 1] = np.diff(x) / dt, np.diff(y) / dt
    bad = ~valid
    v[bad] = 0.0
    v[np.flatnonzero(bad[1:])] = 0.0  # the step before a gap
    v[-1] = 0.0
    return v


def _track(x: Any, y: Any, yaw: Any, valid: Any, length: float, width: float, dt: float,
           md_type: str, original: str, tid: str, style: str) -> dict[str, Any]:
    """nuScenes style: float64, valid as 0/1 floats, sizes (T, 1); Waymo style: float32,
    valid as bools, sizes (T,), as the two converters write them."""
    x, y, yaw = (np.asarray(a, np.float64) for a in (x, y, yaw))
    valid = np.asarray(valid, bool)
    n = len(x)
    pos = np.zeros((n, 3))
    pos[:, 0], pos[:, 1] = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    state = {"position": pos, "heading": np.where(valid, yaw, 0.0),
             "velocity": _velocity(pos[:, 0], pos[:, 1], valid, dt),
             "valid": valid.astype(np.float64), "length": np.where(valid, length, 0.0),
             "width": np.where(valid, width, 0.0), "height": np.where(valid, 1.6, 0.0)}
    if style == "waymo":
        state = {k: v if k == "valid" else v.astype(np.float32) for k, v in state.items()}
        state["valid"] = valid
        meta = {"track_length": n, "type": md_type, "object_id": tid, "dataset": "waymo"}
    else:
        state.update({k: state[k][:, None] for k in ("length", "width", "height")})
        meta = {"track_length": n, "type": original, "object_id": tid, "original_id": tid}
    return {"type": md_type, "state": state, "metadata": meta}


def _outline(scn: Scenario) -> list[np.ndarray]:
    """Closed rings of the union of the drivable polygons (exteriors and holes)."""
    union = shapely.union_all([shapely.Polygon(p).buffer(0) for p in scn.map.drivable])
    rings = []
    for poly in shapely.get_parts(union):
        if poly.geom_type != "Polygon":
            continue
        rings.append(np.asarray(poly.exterior.coords))
        rings += [np.asarray(r.coords) for r in poly.interiors]
    return rings


def _map_features(scn: Scenario, style: str) -> dict[str, Any]:
    feats: dict[str, Any] = {}
    m = scn.map
    ids = m.lane_ids or tuple(f"lane_{i}" for i in range(len(m.centerlines)))
    for i, (lid, line) in enumerate(zip(ids, m.centerlines, strict=True)):
        c = np.asarray(line, np.float64)
        feat: dict[str, Any] = {"type": "LANE_SURFACE_STREET",
                                "polyline": np.concatenate([c, np.zeros((len(c), 1))], 1)}
        if style == "nuscenes" and i < len(m.lanes):
            feat["polygon"] = [[float(a), float(b)] for a, b in np.asarray(m.lanes[i])]
        elif style == "waymo":
            feat.update({"entry_lanes": [], "exit_lanes": [], "left_neighbor": [],
                         "right_neighbor": [], "speed_limit_mph": 25.0})
            if i % 2 == 0:
                feat["width"] = np.full((len(c), 2), 1.75, dtype=np.float32)
        feats[str(lid)] = feat
    edge_id = 900
    for k, ring in enumerate(_outline(scn)):
        if style == "nuscenes":
            feats[f"boundary_{k}"] = {"type": "ROAD_LINE_SOLID_SINGLE_WHITE", "polyline": ring}
            continue
        # Waymo: road edges are many open polylines of different lengths, sampled densely
        dense = densify(ring, 0.5)
        for start in range(0, len(dense) - 1, 37 + 11 * (k % 3)):
            piece = dense[start:start + 38 + 11 * (k % 3)]
            feats[str(edge_id)] = {"type": "ROAD_EDGE_BOUNDARY", "polyline": np.concatenate(
                [piece, np.zeros((len(piece), 1))], 1).astype(np.float32)}
            edge_id += 1
    return feats


def description(scn: Scenario, style: str = "nuscenes", scene_name: str | None = None
                ) -> dict[str, Any]:
    """A ScenarioDescription dict of ``scn`` in the given converter style."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    name = scene_name or scn.scenario_id
    cx, cy = scn.ego_box_centre()
    dt = scn.dt
    if style == "nuscenes":
        back = EGO_BY_DATASET["nuscenes"][2]
        ex, ey = cx - back * np.cos(scn.ego.yaw), cy - back * np.sin(scn.ego.yaw)
        # the nuScenes converter stores the ego's size swapped (1.73 x 4.08)
        size = (scn.ego_width, scn.ego_length)
        sdc, ts = "ego", np.arange(scn.n_steps) * dt
    else:
        ex, ey, size, sdc = cx, cy, (scn.ego_length, scn.ego_width), "1000"
        # Waymo's timestamps jitter by tens of microseconds and are stored as float32
        jitter = 2e-5 * np.sin(np.arange(scn.n_steps))
        ts = (np.arange(scn.n_steps) * dt + jitter).astype(np.float32)
    tracks = {sdc: _track(ex, ey, scn.ego.yaw, scn.ego.valid, size[0], size[1], dt,
                          "VEHICLE", "vehicle.car", sdc, style)}
    a = scn.agents
    for i in range(a.n):
        tid = str(a.ids[i]) if style == "nuscenes" else str(1001 + i)
        md_type, original = _TYPE_BACK[str(a.classes[i])]
        tracks[tid] = _track(a.x[i], a.y[i], a.yaw[i], a.valid[i], float(a.length[i]),
                             float(a.width[i]), dt, md_type, original, tid, style)
    meta = {"dataset": style, "metadrive_processed": False,
            "coordinate": "right-handed" if style == "nuscenes" else "waymo",
            "scenario_id": name, "id": name, "sample_rate": dt, "ts": ts, "sdc_id": sdc,
            "map": "cfpair-synthetic"}
    if style == "waymo":
        meta["sdc_track_index"] = 0
    return {"id": name, "version": f"cfpair-{style}", "length": scn.n_steps, "metadata": meta,
            "tracks": tracks, "dynamic_map_states": {}, "map_features": _map_features(scn, style)}


def write_scenario(sd: dict[str, Any], folder: str | Path, file_name: str | None = None
                   ) -> Path:
    """Pickle one description as ``folder/sd_<id>.pkl`` (or ``file_name``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (file_name or f"sd_{sd['id']}.pkl")
    with open(path, "wb") as fh:
        pickle.dump(sd, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def write_index(folder: str | Path, files: dict[str, dict[str, Any]] | list[Path],
                summary: bool = True, mapping: bool = True,
                sub_folders: dict[str, str] | None = None) -> None:
    """``dataset_summary.pkl`` (file -> metadata) and/or ``dataset_mapping.pkl`` (file -> the
    sub-folder holding it, relative to ``folder``; '' = the same folder)."""
    folder = Path(folder)
    if isinstance(files, list):
        files = {p.name: safe_load(p)["metadata"] for p in files}
    sub_folders = sub_folders or {}
    if summary:
        with open(folder / "dataset_summary.pkl", "wb") as fh:
            pickle.dump(dict(files), fh)
    if mapping:
        with open(folder / "dataset_mapping.pkl", "wb") as fh:
            pickle.dump({k: sub_folders.get(k, "") for k in files}, fh)


def combine(folder: str | Path, parts: list[str | Path]) -> Path:
    """A combined dataset in ``folder`` pointing at its ``parts`` the way ScenarioNet's merge
    does: a summary of all scenarios and a mapping to each part's folder (relative path)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    subs: dict[str, str] = {}
    for part in map(Path, parts):
        for p in sorted(part.glob("*.pkl")):
            if p.name in ("dataset_summary.pkl", "dataset_mapping.pkl"):
                continue
            files[p.name] = safe_load(p)["metadata"]
            subs[p.name] = os.path.relpath(part.resolve(), folder.resolve())
    write_index(folder, files, sub_folders=subs)
    return folder
