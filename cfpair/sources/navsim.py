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
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cfpair.errors import DatasetFormatError, ShapeError
from cfpair.geometry.transforms import wrap_angle
from cfpair.sources import paths
from cfpair.sources.base import ScenarioRef
from cfpair.sources.safe_pickle import safe_loads
from cfpair.types import (
    COORD_MAX_M,
    SIZE_MAX_M,
    SPEED_MAX_MPS,
    YAW_MAX_RAD,
    AgentTracks,
    MapGeometry,
    Scenario,
    Trajectory,
)

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


def _read_log(path: str, root: str | None = None) -> list[dict]:
    """The frames of a log; cached per (path, size, mtime) so an edited file is re-read. The
    log must resolve inside ``root`` (default: its own folder)."""
    real = paths.inside(root or Path(path).parent, path, "log")
    try:
        st = real.stat()
    except OSError as exc:
        raise DatasetFormatError(path, f"cannot read log: {exc.strerror or exc}") from exc
    return _read_log_cached(path, str(root or Path(path).parent), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4)
def _read_log_cached(path: str, root: str, size: int, mtime_ns: int) -> list[dict]:
    del size, mtime_ns  # cache key only
    frames = safe_loads(paths.read_bytes(root, path, "log"), path)
    if not isinstance(frames, list) or not frames:
        raise DatasetFormatError(path, "log pickle must be a non-empty list of frame dicts, "
                                 f"got {type(frames).__name__} of length "
                                 f"{len(frames) if hasattr(frames, '__len__') else '?'}")
    tokens: dict[str, int] = {}
    last = None
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict):
            raise DatasetFormatError(path, f"frame {i} is a {type(fr).__name__}, not a dict")
        missing = [k for k in REQUIRED if k not in fr]
        if missing:
            raise DatasetFormatError(path, f"frame {i} lacks keys {missing}")
        tok = fr["token"]
        if not isinstance(tok, str) or not 0 < len(tok) <= 256:
            raise DatasetFormatError(path, f"frame {i}: token must be a string of 1-256 "
                                     f"characters, got {type(tok).__name__}")
        if tok in tokens:
            raise DatasetFormatError(path, f"frame {i} repeats the token of frame {tokens[tok]}"
                                     ": duplicate frames are refused")
        tokens[tok] = i
        ts = fr["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, int | np.integer):
            raise DatasetFormatError(path, f"frame {i}: timestamp must be an integer (us), got "
                                     f"{type(ts).__name__} {str(ts)[:40]!r}")
        if last is not None and int(ts) <= last:
            raise DatasetFormatError(path, f"frame {i}: timestamp {int(ts)} is not after the "
                                     f"previous frame's {last}: duplicate or out-of-order frames "
                                     "are refused (sort the log)")
        last = int(ts)
        for key in ("log_name", "map_location"):
            if not isinstance(fr[key], str) or len(fr[key]) > 256:
                raise DatasetFormatError(path, f"frame {i}: {key} must be a string of at most "
                                         f"256 characters, got {type(fr[key]).__name__}")
    return frames


def _vec(fr: dict, key: str, n: int, path: str, exact: bool = True,
         default: Any = None) -> np.ndarray:
    """A finite float vector of length ``n`` (at least ``n`` unless ``exact``) from a frame."""
    value = fr.get(key, default)
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        v = np.zeros((0,))
    if v.ndim != 1 or (len(v) != n if exact else len(v) < n):
        raise DatasetFormatError(path, f"frame {fr['token']}: {key} must be {n} numbers"
                                 f"{'' if exact else ' or more'}, got {type(value).__name__} of "
                                 f"shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise DatasetFormatError(path, f"frame {fr['token']}: {key} has NaN/inf")
    return v


def _route(fr: dict, path: str) -> tuple[str, ...]:
    """Roadblock ids of a frame (a list, tuple or 1-D array of strings or integers)."""
    ids = fr.get("roadblock_ids")
    if ids is None:
        return ()
    if isinstance(ids, np.ndarray):
        ok = ids.ndim == 1 and ids.dtype.kind in "iuUS"
        ids = ids.tolist() if ok else None
    if not isinstance(ids, list | tuple) or len(ids) > 100_000 or not all(
            isinstance(r, str | int) and not isinstance(r, bool) and len(str(r)) <= 64
            for r in ids):
        raise DatasetFormatError(path, f"frame {fr['token']}: roadblock_ids must be a list of "
                                 "ids (strings or integers)")
    return tuple(str(r) for r in ids)


def _command(fr: dict, path: str) -> str:
    """The NAVSIM driving command (one-hot of left, forward, right, unknown)."""
    cmd = _vec(fr, "driving_command", 4, path, default=[0, 0, 0, 1])
    return ["left", "forward", "right", "unknown"][int(np.argmax(cmd))]


class NavsimSource:
    """OpenScene logs under ``root/navsim_logs/<split>/*.pkl`` (or ``root/<split>``), maps under
    ``maps_root`` (default ``root/maps``). Every file read and every camera path stored must
    resolve inside ``root`` (maps: inside ``maps_root``). A scene whose map location has no
    readable map, or whose map has no drivable area near the ego, is rejected unless
    ``require_map=False`` (then its map is empty and ``map.available`` false)."""

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
                 require_route: bool = True, map_radius: float = 100.0,
                 require_map: bool = True) -> None:
        self.root = Path(root)
        self.maps_root = Path(maps_root) if maps_root else self.root / "maps"
        self.num_history, self.num_future = num_history, num_future
        self.frame_interval = frame_interval or (num_history + num_future)
        self.require_route = require_route
        self.map_radius = map_radius
        self.require_map = require_map

    def _log_dir(self, split: str) -> Path:
        paths.safe_name(split, self.root, "split")
        for cand in (self.root / "navsim_logs" / split, self.root / split):
            if cand.is_dir():
                paths.inside(self.root, cand, "log folder")
                return cand
        raise DatasetFormatError(self.root / "navsim_logs" / split, "no log folder for split "
                                 f"{split!r}")

    def list(self, split: str) -> list[ScenarioRef]:
        """Scene windows of every log in the split, NAVSIM-style."""
        return list(self.iter_refs(split))

    def iter_refs(self, split: str) -> Iterator[ScenarioRef]:
        """The refs of :meth:`list`, one log at a time. A log that cannot be read (or that
        leaves the root) becomes one ref carrying the error, which its load raises."""
        n = self.num_history + self.num_future
        folder = self._log_dir(split)
        for log in sorted(folder.glob("*.pkl")):
            try:
                frames = _read_log(str(log), str(self.root))
                starts = []
                for start in range(0, len(frames) - n + 1, self.frame_interval):
                    cur = frames[start + self.num_history - 1]
                    if self.require_route and not _route(cur, str(log)):
                        continue
                    starts.append((start, cur["token"]))
            except DatasetFormatError as exc:
                yield ScenarioRef(self.name, f"{log.stem}/<unreadable>", split, str(log),
                                  (("error", str(exc)),))
                continue
            except RecursionError:
                yield ScenarioRef(self.name, f"{log.stem}/<unreadable>", split, str(log),
                                  (("error", f"{log}: nested too deeply"),))
                continue
            for start, token in starts:
                yield ScenarioRef(self.name, f"{log.stem}/{token}", split, str(log),
                                  (("start", start),))

    def load(self, ref: ScenarioRef) -> Scenario:
        """One scene window as a Scenario in the map's projected (UTM) frame, dt = 0.5 s."""
        if ref.hint("error"):
            raise DatasetFormatError(ref.path, ref.hint("error"))
        frames = _read_log(ref.path, str(self.root))
        start = int(ref.hint("start", 0))
        n = self.num_history + self.num_future
        win = frames[start:start + n]
        if len(win) < n:
            raise DatasetFormatError(ref.path, f"scene at frame {start} needs {n} frames, "
                                     f"the log has {len(frames) - start}")
        ts = np.array([int(fr["timestamp"]) for fr in win], dtype=np.float64) * 1e-6
        gaps = np.diff(ts)
        if np.any(np.abs(gaps - DT) > 0.05):
            bad = int(np.argmax(np.abs(gaps - DT) > 0.05))
            raise DatasetFormatError(ref.path, f"time gap of {gaps[bad]:.2f} s between frames "
                                     f"{start + bad} and {start + bad + 1} (expected {DT} s)")
        t = ts - ts[self.num_history - 1]
        ego = self._ego(win, t, ref.path)
        agents = self._agents(win, ego, t, ref.path)
        cur = win[self.num_history - 1]
        route = _route(cur, ref.path)
        location = paths.safe_name(cur["map_location"], ref.path, "map_location")
        m = self._map(location, float(ego.x[self.num_history - 1]),
                      float(ego.y[self.num_history - 1]), route)
        sensors = self._sensors(win, ref)
        meta = {"log_name": cur["log_name"], "token": cur["token"],
                "map_location": location, "roadblock_ids": list(route),
                "driving_command": _command(cur, ref.path),
                "scene_token": str(cur.get("scene_token", ""))[:256],
                "num_history": self.num_history}
        try:
            return Scenario(f"{cur['log_name']}/{cur['token']}", self.name, ego, agents, m, DT,
                            anchors=(self.num_history - 1,), ego_length=PACIFICA[0],
                            ego_width=PACIFICA[1], ego_rear_to_center=PACIFICA[2],
                            sensors=sensors, meta=meta).validate()
        except ShapeError as exc:
            raise DatasetFormatError(ref.path, f"scene at frame {start}: {exc}") from None

    def _sensors(self, win: list[dict], ref: ScenarioRef) -> dict[str, tuple[str, ...]]:
        """Camera paths per frame, relative to the dataset root and checked to stay inside it
        (NAVSIM's data_path is relative to sensor_blobs/<split>)."""
        blobs = f"sensor_blobs/{ref.split}/"
        cams: list[dict] = []
        for fr in win:
            c = fr.get("cams", {})
            if not isinstance(c, dict) or not all(isinstance(v, dict) for v in c.values()):
                raise DatasetFormatError(ref.path, f"frame {fr['token']}: cams must map camera "
                                         f"names to dicts, got {type(c).__name__}")
            cams.append(c)
        out = {}
        for cam in CAMERAS:
            if not any(cam in c for c in cams):
                continue
            row = []
            for c in cams:
                p = c.get(cam, {}).get("data_path") or ""
                if p != "":
                    p = blobs + paths.check_relative(p, ref.path, f"{cam} data_path")
                row.append(paths.relative_inside(self.root, p, ref.path, f"{cam} data_path")
                           if p else "")
            out[cam] = tuple(row)
        return out

    def _ego(self, win: list[dict], t: np.ndarray, path: str) -> Trajectory:
        xy = np.array([_vec(fr, "ego2global_translation", 3, path)[:2] for fr in win])
        quats = [_vec(fr, "ego2global_rotation", 4, path) for fr in win]
        if any(np.any(np.abs(q) > 1.01) or abs(float(np.linalg.norm(q)) - 1.0) > 0.01
               for q in quats):
            raise DatasetFormatError(path, "ego2global_rotation must be unit quaternions")
        yaw = np.array([quaternion_yaw(q) for q in quats])
        dyn = np.array([_vec(fr, "ego_dynamic_state", 2, path, exact=False)[:2] for fr in win])
        if np.any(np.abs(xy) > COORD_MAX_M) or np.any(np.hypot(dyn[:, 0], dyn[:, 1])
                                                      > SPEED_MAX_MPS):
            raise DatasetFormatError(path, f"ego position beyond {COORD_MAX_M:g} m or speed "
                                     f"beyond {SPEED_MAX_MPS:g} m/s: not plausible")
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
            c, s = math.cos(ego.yaw[k]), math.sin(ego.yaw[k])
            for b, name, tok, v in _annotations(anns, fr["token"], path):
                gx = ego.x[k] + c * b[0] - s * b[1]
                gy = ego.y[k] + s * b[0] + c * b[1]
                vx = c * v[0] - s * v[1] if np.isfinite(v[:2]).all() else 0.0
                vy = s * v[0] + c * v[1] if np.isfinite(v[:2]).all() else 0.0
                if k in rows.get(tok, {}):
                    raise DatasetFormatError(path, f"frame {fr['token']}: track token {tok!r} "
                                             "appears twice")
                rows.setdefault(tok, {})[k] = (gx, gy, b[6] + ego.yaw[k], vx, vy, b[3], b[4],
                                               CLASS_MAP[name])
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
        folder = self.maps_root / location
        found = paths.files(self.maps_root, folder, "*/map.gpkg", "map") \
            if folder.is_dir() else []
        if not found:
            if self.require_map:
                raise DatasetFormatError(folder, f"no <version>/map.gpkg for map_location "
                                         f"{location!r} (maps_root {self.maps_root}); pass "
                                         "-o require_map=false to run without maps")
            return MapGeometry()
        from cfpair.sources.nuplan_map import load_map

        m = load_map(str(found[-1])).crop(x, y, self.map_radius, route)
        if m.empty and self.require_map:
            raise DatasetFormatError(found[-1], f"the map has no drivable area within "
                                     f"{self.map_radius:g} m of the ego (wrong map or wrong "
                                     "coordinates)")
        return m


def _annotations(anns: Any, token: str, path: str) -> Iterator[tuple[np.ndarray, str, str,
                                                                    np.ndarray]]:
    """(box, class, track token, velocity) of each annotated object, checked."""
    if not isinstance(anns, dict):
        raise DatasetFormatError(path, f"frame {token}: anns must be a dict, got "
                                 f"{type(anns).__name__}")
    try:
        boxes = np.asarray(anns.get("gt_boxes", np.zeros((0, 7))), dtype=np.float64)
        vel = np.asarray(anns.get("gt_velocity_3d", np.zeros((len(boxes), 3))), np.float64)
        names = [n.item() if isinstance(n, np.generic) else n for n in anns.get("gt_names", [])]
        tokens = [n.item() if isinstance(n, np.generic) else n
                  for n in anns.get("track_tokens", [])]
    except (TypeError, ValueError) as exc:
        raise DatasetFormatError(path, f"frame {token}: anns arrays are not numeric or not "
                                 f"sequences ({exc})") from None
    if boxes.ndim != 2 or boxes.shape[1] != 7 or vel.ndim != 2 or vel.shape[1:] != (3,) or \
            not (len(names) == len(tokens) == len(boxes) == len(vel)):
        raise DatasetFormatError(path, f"frame {token}: anns need gt_boxes (N, 7) and "
                                 f"equally long gt_names / track_tokens / gt_velocity_3d (N, 3), "
                                 f"got {boxes.shape}, {len(names)}, {len(tokens)}, {vel.shape}")
    if not np.all(np.isfinite(boxes)):
        raise DatasetFormatError(path, f"frame {token}: gt_boxes has NaN/inf")
    for i, (b, name, tok) in enumerate(zip(boxes, names, tokens, strict=True)):
        if not isinstance(name, str) or name not in CLASS_MAP:
            raise DatasetFormatError(path, f"frame {token}: object {i} has unknown class "
                                     f"{str(name)[:40]!r}; expected one of {sorted(CLASS_MAP)}")
        if not isinstance(tok, str) or not 0 < len(tok) <= 256:
            raise DatasetFormatError(path, f"frame {token}: object {i}: track token must be a "
                                     f"string of 1-256 characters, got {type(tok).__name__}")
        if np.any(np.abs(b[:3]) > 1e4) or not np.all((b[3:6] > 0) & (b[3:6] <= SIZE_MAX_M)) \
                or abs(b[6]) > YAW_MAX_RAD:
            raise DatasetFormatError(path, f"frame {token}: object {i} box {b.tolist()} is not "
                                     f"plausible (position within 1e4 m of the ego, sizes in "
                                     f"(0, {SIZE_MAX_M:g}] m, |yaw| <= {YAW_MAX_RAD:.3g} rad)")
        yield b, name, tok, vel[i]
