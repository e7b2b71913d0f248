"""Write a Scenario in DeepAccident's on-disk layout (labels, calib pickles, meta, split file).

Used to build examples/data/deepaccident from synthetic scenes and by the tests; the output is
read back by :mod:`cfpair.sources.deepaccident` like real data. Two recording views are written:
``ego_vehicle`` and ``other_vehicle`` (the agent the ego conflicts with), each seeing objects
within ``view_range`` metres, in its own left-handed lidar frame (mounted 1.7 m up).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cfpair.geometry.collision import BoxSeq, collisions
from cfpair.types import Scenario

F64 = NDArray[np.float64]
LIDAR_HEIGHT = 1.7
EGO_ID = 100
EGO_BEHIND_ID, OTHER_BEHIND_ID = 101, 103
_CLASS_BACK = {"vehicle": "car", "truck": "truck", "bus": "truck", "pedestrian": "pedestrian",
               "cyclist": "cyclist", "motorcycle": "motorcycle", "static": "car",
               "unknown": "car"}


def _agent_ids(scn: Scenario) -> list[int]:
    return [20001 + i if c == "static" else 200 + i for i, c in enumerate(scn.agents.classes)]


def _pose_matrix(x: float, y: float, yaw: float, z: float = 0.0) -> F64:
    """4x4 pose in CARLA's left-handed world from a right-handed (x, y, yaw)."""
    yc, yawc = -y, -yaw
    c, s = math.cos(yawc), math.sin(yawc)
    return np.array([[c, -s, 0, x], [s, c, 0, yc], [0, 0, 1, z], [0, 0, 0, 1]], dtype=float)


def _conflict_agent(scn: Scenario) -> tuple[int | None, bool]:
    """Index of the agent the logged ego future first collides with (or comes closest to)."""
    if scn.agents.n == 0:
        return None, False
    cx, cy = scn.ego_box_centre()
    c = collisions(BoxSeq(cx[None], cy[None], scn.ego.yaw[None], scn.ego_length, scn.ego_width,
                          scn.ego.valid[None]),
                   BoxSeq(scn.agents.x, scn.agents.y, scn.agents.yaw, scn.agents.length,
                          scn.agents.width, scn.agents.valid))
    step, agent, _ = c.first()
    if step[0] >= 0:
        return int(agent[0]), True
    d = np.hypot(scn.agents.x - cx, scn.agents.y - cy)
    d = np.where(scn.agents.valid, d, np.inf)
    return int(np.argmin(d.min(axis=1))), False


def write_deepaccident(scn: Scenario, root: str | Path, scenario_type: str, name: str,
                       weather: str = "ClearNoon", view_range: float = 60.0) -> Path:
    """Write one scenario under ``root/scenario_type``; returns the meta file path.

    ``name`` should follow ``Town<NN>_type<NNN>_subtype<NNNN>_scenario<NNNNN>``.
    """
    base = Path(root) / scenario_type
    ids = _agent_ids(scn)
    other, collided = _conflict_agent(scn)
    cx, cy = scn.ego_box_centre()
    # ego and agents as (x, y, yaw, length, width, class, id, valid) tracks, right-handed
    tracks = [(cx, cy, scn.ego.yaw, scn.ego_length, scn.ego_width, "vehicle", EGO_ID,
               scn.ego.valid)]
    for i in range(scn.agents.n):
        a = scn.agents
        tracks.append((a.x[i], a.y[i], a.yaw[i], a.length[i], a.width[i], a.classes[i], ids[i],
                       a.valid[i]))
    views = {"ego_vehicle": 0}
    if other is not None and scn.agents.classes[other] in ("vehicle", "truck", "bus"):
        views["other_vehicle"] = other + 1
    n_t = scn.n_steps
    for view, vi in views.items():
        for sub in ("label", "calib"):
            (base / view / sub / name).mkdir(parents=True, exist_ok=True)
        vx_, vy_, vyaw = tracks[vi][0], tracks[vi][1], tracks[vi][2]
        for k in range(n_t):
            stem = f"{name}_{k + 1:03d}"
            ego_to_world = _pose_matrix(vx_[k], vy_[k], vyaw[k])
            lidar_to_ego = np.eye(4)
            lidar_to_ego[2, 3] = LIDAR_HEIGHT
            to_world = ego_to_world @ lidar_to_ego
            inv = np.linalg.inv(to_world)
            lines = [f"{_speed(vx_, k):.6f} {-_speed(vy_, k):.6f}"]
            for ti, (x, y, yaw, ln, wd, cls, actor, valid) in enumerate(tracks):
                if not valid[k]:
                    continue
                p = inv @ np.array([x[k], -y[k], 0.8, 1.0])
                if ti != vi and math.hypot(p[0], p[1]) > view_range:
                    continue
                yaw_l = (-yaw[k]) - (-vyaw[k])
                row_id = -100 if ti == vi else actor
                lines.append(f"{_CLASS_BACK[str(cls)]} {p[0]:.6f} {p[1]:.6f} {p[2]:.6f} "
                             f"{ln:.4f} {wd:.4f} 1.6000 {yaw_l:.6f} {_speed(x, k):.6f} "
                             f"{-_speed(y, k):.6f} {row_id} 100 True")
            (base / view / "label" / name / f"{stem}.txt").write_text("\n".join(lines) + "\n")
            calib = {"lidar_to_ego": lidar_to_ego, "ego_to_world": ego_to_world}
            for cam in ("Front", "FrontLeft", "FrontRight", "Back", "BackLeft", "BackRight"):
                calib[f"lidar_to_Camera_{cam}"] = np.eye(4)
                calib[f"intrinsic_Camera_{cam}"] = np.array(
                    [[800.0, 1142.5184, 0], [450.0, 0, -1142.5184], [1.0, 0, 0]])
            with open(base / view / "calib" / name / f"{stem}.pkl", "wb") as fh:
                pickle.dump(calib, fh, protocol=pickle.HIGHEST_PROTOCOL)
    other_id = ids[other] if other is not None else 102
    if collided:
        cls2 = _CLASS_BACK[str(scn.agents.classes[other])]
        who = "other" if "other_vehicle" in views else "none"
        head = f"{weather} {EGO_ID} car {other_id} {cls2} 1000.0 same front {n_t + 10}"
        colliding = f"ego {who}"
    else:
        head = f"{weather} -1 -1 -1 -1 -1 -1 -1 {n_t + 10}"
        colliding = "none none"
    meta = [head, f" colliding agents: {colliding}",
            f" agents id: {EGO_ID} {EGO_BEHIND_ID} {other_id} {OTHER_BEHIND_ID}",
            " road_type: four-way junction", " another_vehicle_spawn_side: left",
            " ego_vehicle_direction: straight", " other_vehicle_direction: straight"]
    (base / "meta").mkdir(parents=True, exist_ok=True)
    path = base / "meta" / f"{name}.txt"
    path.write_text("\n".join(meta) + "\n")
    return path


def _speed(a: F64, k: int) -> float:
    lo, hi = max(k - 1, 0), min(k + 1, len(a) - 1)
    return float((a[hi] - a[lo]) / (0.1 * max(hi - lo, 1)))


def write_split(root: str | Path, split: str, entries: list[tuple[str, str]]) -> Path:
    """Write ``split_txt_files/<split>.txt`` with '<scenario_type> <name>' lines."""
    p = Path(root) / "split_txt_files" / f"{split}.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"{t} {n}\n" for t, n in entries))
    return p
