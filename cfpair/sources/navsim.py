"""NAVSIM / OpenScene loader without nuplan-devkit (spec: navsim-format-and-pdms.md, 1-2).

A log pickle (read with the restricted unpickler) is a list of 2 Hz frame dicts. Scenes are cut
as NAVSIM cuts them: windows of ``num_history + num_future`` frames (4 + 10) every
``frame_interval`` frames; the scene key is the token of the current frame (index
num_history - 1). Ego poses are rear-axle (``ego2global_translation`` + quaternion yaw);
``ego_dynamic_state`` velocities are ego-frame and are rotated to the world. Boxes in ``anns``
are ego-frame and are moved to the world with each frame's pose; tracks are keyed by
``track_tokens``. Maps: ``<maps_root>/<map_location>/<version>/map.gpkg`` via pyogrio.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cfpair.errors import DatasetFormatError
from cfpair.geometry.transforms import wrap_angle
from cfpair.sources.base import ScenarioRef
from cfpair.sources.safe_pickle import safe_load
from cfpair.types import AgentTracks, MapGeometry, Scenario, Trajectory

DT = 0.5
CLASS_MAP = {"vehicle": "vehicle", "pedestrian": "pedestrian", "bicycle": "cyclist",
             "traffic_cone": "static", "barrier": "static", "czone_sign": "static",
             "generic_object": "static", "ego": "vehicle"}
CAMERAS = ("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0")
REQUIRED = ("token", "timestamp", "ego2global_translation", "ego2global_rotation",
            "ego_dynamic_state", "log_name", "map_location")
PACIFICA = (5.176, 2.297, 1.461)  # length, width, rear axle -> centre


def quaternion_yaw(q: Any) -> float:
    """Yaw of a [w, x, y, z] quaternion (rotation about z)."""
    w, x, y, z = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def _read_log(path: str) -> list[dict]:
    """The frames of a log; cached per (path, size, mtime) so an edited file is re-read."""
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise DatasetFormatError(path, f"cannot read log: {exc.strerror or exc}") from exc
    return _read_log_cached(path, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4)
def _read_log_cached(path: str, size: int, mtime_ns: int) -> list[dict]:
    del size, mtime_ns  # cache key only
    frames = safe_load(path)
    if not isinstance(frames, list) or not frames:
        raise DatasetFormatError(path, "log pickle must be a non-empty list of frame dicts, "
                                 f"got {type(frames).__name__} of length "
                                 f"{len(frames) if hasattr(frames, '__len__') else '?'}")
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict):
            raise DatasetFormatError(path, f"frame {i} is a {type(fr).__name__}, not a dict")
        missing = [k for k in REQUIRED if k not in fr]
        if missing:
            raise DatasetFormatError(path, f"frame {i} lacks keys {missing}")
    return frames


class NavsimSource:
    """OpenScene logs under ``root/navsim_logs/<split>/*.pkl`` (or ``root/<split>``), maps under
    ``maps_root`` (default ``root/maps``)."""

    name = "navsim"
    default_splits = ("mini",)
    needs_root = True

    def splits(self) -> list[str]:
        """Folders holding log pickles under ``root/navsim_logs`` or ``root``."""
        found = {p.parent.name for base in (self.root / "navsim_logs", self.root)
                 if base.is_dir() for p in base.glob("*/*.pkl")}
        return sorted(found)

    def __init__(self, root: str | Path, maps_root: str | Path | None = None,
                 num_history: int = 4, num_future: int = 10, frame_interval: int | None = None,
                 require_route: bool = True, map_radius: float = 100.0) -> None:
        self.root = Path(root)
        self.maps_root = Path(maps_root) if maps_root else self.root / "maps"
        self.num_history, self.num_future = num_history, num_future
        self.frame_interval = frame_interval or (num_history + num_future)
        self.require_route = require_route
        self.map_radius = map_radius

    def _log_dir(self, split: str) -> Path:
        for cand in (self.root / "navsim_logs" / split, self.root / split):
            if cand.is_dir():
                return cand
        raise DatasetFormatError(self.root / "navsim_logs" / split, "no log folder for split "
                                 f"{split!r}")

    def list(self, split: str) -> list[ScenarioRef]:
        """Scene windows of every log in the split, NAVSIM-style."""
        refs = []
        n = self.num_history + self.num_future
        for log in sorted(self._log_dir(split).glob("*.pkl")):
            try:
                frames = _read_log(str(log))
            except DatasetFormatError as exc:
                refs.append(ScenarioRef(self.name, f"{log.stem}/<unreadable>", split, str(log),
                                        (("error", str(exc)),)))
                continue
            for start in range(0, len(frames) - n + 1, self.frame_interval):
                cur = frames[start + self.num_history - 1]
                if self.require_route and not cur.get("roadblock_ids"):
                    continue
                refs.append(ScenarioRef(self.name, f"{log.stem}/{cur['token']}", split,
                                        str(log), (("start", start),)))
        return refs

    def load(self, ref: ScenarioRef) -> Scenario:
        """One scene window as a Scenario in the map's projected (UTM) frame, dt = 0.5 s."""
        if ref.hint("error"):
            raise DatasetFormatError(ref.path, ref.hint("error"))
        frames = _read_log(ref.path)
        start = int(ref.hint("start", 0))
        n = self.num_history + self.num_future
        win = frames[start:start + n]
        if len(win) < n:
            raise DatasetFormatError(ref.path, f"scene at frame {start} needs {n} frames, "
                                     f"the log has {len(frames) - start}")
        ts = np.array([fr["timestamp"] for fr in win], dtype=np.float64) * 1e-6
        gaps = np.diff(ts)
        if np.any(np.abs(gaps - DT) > 0.05):
            bad = int(np.argmax(np.abs(gaps - DT) > 0.05))
            raise DatasetFormatError(ref.path, f"time gap of {gaps[bad]:.2f} s between frames "
                                     f"{start + bad} and {start + bad + 1} (expected {DT} s)")
        t = ts - ts[self.num_history - 1]
        ego = self._ego(win, t, ref.path)
        agents = self._agents(win, ego, t, ref.path)
        cur = win[self.num_history - 1]
        route = tuple(str(r) for r in cur.get("roadblock_ids") or ())
        m = self._map(str(cur["map_location"]), float(ego.x[self.num_history - 1]),
                      float(ego.y[self.num_history - 1]), route)
        # NAVSIM's data_path is relative to sensor_blobs/<split>; cfpair's are dataset-root
        blobs = f"sensor_blobs/{ref.split}/"
        sensors = {cam: tuple(blobs + p if (p := str(fr.get("cams", {}).get(cam, {})
                                                      .get("data_path", ""))) else ""
                              for fr in win) for cam in CAMERAS
                   if any(cam in fr.get("cams", {}) for fr in win)}
        cmd = np.asarray(cur.get("driving_command", [0, 0, 0, 1])).tolist()
        meta = {"log_name": cur["log_name"], "token": cur["token"],
                "map_location": cur["map_location"], "roadblock_ids": list(route),
                "driving_command": ["left", "forward", "right", "unknown"][int(np.argmax(cmd))],
                "scene_token": cur.get("scene_token", ""), "num_history": self.num_history}
        return Scenario(f"{cur['log_name']}/{cur['token']}", self.name, ego, agents, m, DT,
                        anchors=(self.num_history - 1,), ego_length=PACIFICA[0],
                        ego_width=PACIFICA[1], ego_rear_to_center=PACIFICA[2], sensors=sensors,
                        meta=meta).validate()

    def _ego(self, win: list[dict], t: np.ndarray, path: str) -> Trajectory:
        xy = np.array([np.asarray(fr["ego2global_translation"], float)[:2] for fr in win])
        yaw = np.array([quaternion_yaw(fr["ego2global_rotation"]) for fr in win])
        dyn = np.array([np.asarray(fr["ego_dynamic_state"], float)[:2] for fr in win])
        if not (np.all(np.isfinite(xy)) and np.all(np.isfinite(yaw)) and
                np.all(np.isfinite(dyn))):
            raise DatasetFormatError(path, "ego pose or dynamic state has NaN/inf")
        c, s = np.cos(yaw), np.sin(yaw)
        vx = c * dyn[:, 0] - s * dyn[:, 1]
        vy = s * dyn[:, 0] + c * dyn[:, 1]
        return Trajectory(xy[:, 0], xy[:, 1], yaw, vx, vy, t, np.ones(len(win), bool))

    def _agents(self, win: list[dict], ego: Trajectory, t: np.ndarray, path: str
                ) -> AgentTracks:
        rows: dict[str, dict[int, tuple]] = {}
        for k, fr in enumerate(win):
            anns = fr.get("anns")
            if anns is None:
                continue  # private-test logs carry no annotations
            boxes = np.asarray(anns.get("gt_boxes", np.zeros((0, 7))), dtype=np.float64)
            names = list(anns.get("gt_names", []))
            tokens = list(anns.get("track_tokens", []))
            vel = np.asarray(anns.get("gt_velocity_3d", np.zeros((len(boxes), 3))), float)
            if boxes.ndim != 2 or boxes.shape[1] != 7 or not (
                    len(names) == len(tokens) == len(boxes) == len(vel)):
                raise DatasetFormatError(path, f"frame {fr['token']}: anns need gt_boxes (N, 7)"
                                         f" and equally long gt_names / track_tokens / "
                                         f"gt_velocity_3d, got {boxes.shape}, {len(names)}, "
                                         f"{len(tokens)}, {len(vel)}")
            if not np.all(np.isfinite(boxes)):
                raise DatasetFormatError(path, f"frame {fr['token']}: gt_boxes has NaN/inf")
            c, s = math.cos(ego.yaw[k]), math.sin(ego.yaw[k])
            for b, name, tok, v in zip(boxes, names, tokens, vel, strict=True):
                if str(name) not in CLASS_MAP:
                    raise DatasetFormatError(path, f"frame {fr['token']}: unknown class "
                                             f"{str(name)!r}; expected one of {sorted(CLASS_MAP)}")
                gx = ego.x[k] + c * b[0] - s * b[1]
                gy = ego.y[k] + s * b[0] + c * b[1]
                vx = c * v[0] - s * v[1] if np.isfinite(v[:2]).all() else 0.0
                vy = s * v[0] + c * v[1] if np.isfinite(v[:2]).all() else 0.0
                rows.setdefault(str(tok), {})[k] = (gx, gy, b[6] + ego.yaw[k], vx, vy, b[3],
                                                    b[4], CLASS_MAP[str(name)])
        if not rows:
            return AgentTracks.empty(t)
        ids = sorted(rows)
        n, n_t = len(ids), len(win)
        arr = np.zeros((5, n, n_t))
        valid = np.zeros((n, n_t), bool)
        length, width, classes = np.zeros(n), np.zeros(n), []
        for i, tok in enumerate(ids):
            first = min(rows[tok])
            length[i], width[i] = rows[tok][first][5], rows[tok][first][6]
            classes.append(rows[tok][first][7])
            for k, r in rows[tok].items():
                arr[:, i, k] = r[:5]
                valid[i, k] = True
        yaw = wrap_angle(arr[2])
        return AgentTracks(arr[0], arr[1], yaw, arr[3], arr[4], valid, t, np.array(ids),
                           np.array(classes), length, width)

    def _map(self, location: str, x: float, y: float, route: tuple[str, ...]) -> MapGeometry:
        paths = sorted((self.maps_root / location).glob("*/map.gpkg"))
        if not paths:
            return MapGeometry()
        from cfpair.sources.nuplan_map import load_map

        return load_map(str(paths[-1])).crop(x, y, self.map_radius, route)
