"""DeepAccident loader (CARLA V2X accident clips), per shared/specs/deepaccident-format.md.

Frames: 10 Hz label files per recording agent (``ego_vehicle``, ``ego_vehicle_behind``,
``other_vehicle``, ``other_vehicle_behind``, ``infrastructure``). Each view's boxes are moved
lidar -> ego -> world with its calib pickle, then CARLA's left-handed world is flipped to
cfpair's right-handed frame (y, yaw and vy change sign). All views are merged into one scene
keyed by CARLA actor id; the recording vehicles' own ``-100`` rows are mapped to their ids via
the meta file's ``agents id`` line (order: ego, ego_behind, other, other_behind).

Velocities in label files are in a disputed frame (spec section 4.4), so cfpair ignores them
and differentiates world positions over time instead. Collision ground truth comes from meta
line 1 (tokens 1-7), never from the folder name. The ego reference point is the **box centre**
(CARLA's vehicle origin), so ``ego_rear_to_center`` is 0 for this source.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cfpair.errors import DatasetFormatError, ShapeError
from cfpair.geometry.transforms import wrap_angle
from cfpair.sources import paths
from cfpair.sources.base import ScenarioRef
from cfpair.sources.safe_pickle import safe_loads
from cfpair.types import (
    COORD_MAX_M,
    SIZE_MAX_M,
    YAW_MAX_RAD,
    AgentTracks,
    MapGeometry,
    Scenario,
    Trajectory,
)

F64 = NDArray[np.float64]

AGENT_VIEWS = ("ego_vehicle", "ego_vehicle_behind", "other_vehicle", "other_vehicle_behind",
               "infrastructure")
#: position of each vehicle view in the meta ``agents id`` line
AGENT_ID_SLOT = {"ego_vehicle": 0, "ego_vehicle_behind": 1, "other_vehicle": 2,
                 "other_vehicle_behind": 3}
CLASS_MAP = {"car": "vehicle", "van": "vehicle", "truck": "truck", "bus": "bus",
             "cyclist": "cyclist", "motorcycle": "motorcycle", "pedestrian": "pedestrian"}
CAMERAS = ("Camera_Front", "Camera_FrontLeft", "Camera_FrontRight", "Camera_Back",
           "Camera_BackLeft", "Camera_BackRight")
DT = 0.1
STATIC_ID_MIN = 20000
DEFAULT_EGO_SIZE = (3.99, 1.85)
_STEM = re.compile(r"^(?P<scenario>.+)_(?P<frame>\d{1,9})$")
MAX_FRAMES = 100_000
MAX_TEXT_BYTES = 64 * 1024 * 1024
LIDAR_RANGE_M = 1e4     # label positions are sensor-frame: anything farther is a broken file


@dataclass(frozen=True)
class LabelRow:
    """One object line of a label file, as written (lidar frame, left-handed)."""

    cls: str
    x: float
    y: float
    z: float
    length: float
    width: float
    height: float
    yaw: float
    vx: float
    vy: float
    actor_id: int
    num_points: int
    visible: bool


def parse_label_file(path: Path, root: Path | None = None
                     ) -> tuple[tuple[float, float], list[LabelRow]]:
    """Header speeds and object rows of one label file (which must resolve inside ``root``,
    default its folder); errors name the file and line."""
    lines = paths.read_text(root or path.parent, path, "label file",
                            MAX_TEXT_BYTES).splitlines()
    if not lines:
        raise DatasetFormatError(path, "empty label file: expected a header line with two "
                                 "speeds")
    head = lines[0].split()
    if len(head) != 2:
        raise DatasetFormatError(path, f"header must hold 2 speeds, got {len(head)} tokens", 1)
    speeds = (_float(head[0], path, 1, "speed x"), _float(head[1], path, 1, "speed y"))
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        tok = line.split()
        if len(tok) <= 1:
            continue  # the official converter skips such lines too
        if len(tok) != 13:
            raise DatasetFormatError(path, f"expected 13 tokens (class x y z l w h yaw vx vy id "
                                     f"points visible), got {len(tok)}", i)
        cls = tok[0]
        if cls not in CLASS_MAP:
            raise DatasetFormatError(path, f"unknown class {cls!r}; expected one of "
                                     f"{sorted(CLASS_MAP)}", i)
        vals = [_float(v, path, i, name) for v, name in zip(
            tok[1:10], ("x", "y", "z", "length", "width", "height", "yaw", "vx", "vy"),
            strict=True)]
        if not (0 < vals[3] <= SIZE_MAX_M and 0 < vals[4] <= SIZE_MAX_M
                and 0 <= vals[5] <= SIZE_MAX_M):
            raise DatasetFormatError(path, f"box size must be in (0, {SIZE_MAX_M:g}] m (height "
                                     f"may be 0), got {vals[3]} x {vals[4]} x {vals[5]}", i)
        if max(abs(v) for v in vals[:3]) > LIDAR_RANGE_M or abs(vals[6]) > YAW_MAX_RAD:
            raise DatasetFormatError(path, f"position {vals[:3]} beyond {LIDAR_RANGE_M:g} m of "
                                     f"the sensor or yaw {vals[6]} beyond "
                                     f"{YAW_MAX_RAD:.3g} rad: not plausible", i)
        try:
            actor = int(tok[10])
            pts = int(tok[11])
        except ValueError:
            raise DatasetFormatError(path, f"id and point count must be integers, got "
                                     f"{tok[10]!r} {tok[11]!r}", i) from None
        rows.append(LabelRow(cls, *vals, actor, pts, tok[12] == "True"))
    return speeds, rows


def _float(text: str, path: Path, line: int, name: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DatasetFormatError(path, f"{name} must be a number, got {text!r}", line) from None
    if not math.isfinite(v):
        raise DatasetFormatError(path, f"{name} must be finite, got {text}", line)
    return v


@dataclass(frozen=True)
class Meta:
    """A parsed meta file (spec section 7)."""

    weather: str
    colliding_ids: tuple[int, int] | None
    colliding_classes: tuple[str, str] | None
    intensity: float | None
    spawn_relation: str
    collision_position: str
    length_frames: int
    fields: dict[str, list[str]]

    @property
    def collision(self) -> bool:
        return self.colliding_ids is not None

    @property
    def agents_id(self) -> list[int]:
        return [int(v) for v in self.fields.get("agents id", [])]


def parse_meta(path: Path, root: Path | None = None) -> Meta:
    """Parse ``meta/<scenario>.txt``; line 1 has 9 tokens, later lines are ``key: value``."""
    lines = paths.read_text(root or path.parent, path, "meta file",
                            MAX_TEXT_BYTES).splitlines()
    if not lines:
        raise DatasetFormatError(path, "empty meta file")
    tok = lines[0].split()
    if len(tok) != 9:
        raise DatasetFormatError(path, f"line 1 must hold 9 tokens (weather id1 class1 id2 "
                                 f"class2 value relation position length), got {len(tok)}", 1)
    try:
        length = int(tok[8])
    except ValueError:
        raise DatasetFormatError(path, f"scenario length must be an integer, got {tok[8]!r}",
                                 1) from None
    fields: dict[str, list[str]] = {}
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if ":" not in line:
            raise DatasetFormatError(path, f"expected 'key: value', got {line.strip()!r}", i)
        key, value = line.split(":", 1)
        fields[key.strip()] = value.split()
    for key, want in (("agents id", 4), ("colliding agents", 2)):
        if key in fields and len(fields[key]) != want:
            raise DatasetFormatError(path, f"{key!r} must list {want} values, got "
                                     f"{fields[key]}")
    if "agents id" in fields and not all(re.fullmatch(r"-?\d+", v) for v in fields["agents id"]):
        raise DatasetFormatError(path, f"'agents id' must be integers, got {fields['agents id']}")
    none = tok[1:8] == ["-1"] * 7
    try:
        ids = None if none else (int(tok[1]), int(tok[3]))
        intensity = None if none else float(tok[5])
    except ValueError:
        raise DatasetFormatError(path, f"colliding ids must be integers and token 6 a number, "
                                 f"got {tok[1:6]}", 1) from None
    return Meta(tok[0], ids, None if none else (tok[2], tok[4]), intensity,
                tok[6], tok[7], length, fields)


def _calib(path: Path, root: Path) -> tuple[F64, F64]:
    data = safe_loads(paths.read_bytes(root, path, "calib pickle", MAX_TEXT_BYTES), path)
    if not isinstance(data, dict):
        raise DatasetFormatError(path, f"calib must be a dict, got {type(data).__name__}")
    out = []
    for key in ("lidar_to_ego", "ego_to_world"):
        if key not in data:
            raise DatasetFormatError(path, f"calib lacks {key!r}; keys: {sorted(data)}")
        try:
            m = np.asarray(data[key], dtype=np.float64)
        except (TypeError, ValueError):
            m = np.full((0,), np.nan)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)) or np.any(
                np.abs(m[:3, :3]) > 1.5) or np.any(np.abs(m[:3, 3]) > COORD_MAX_M):
            raise DatasetFormatError(path, f"calib {key!r} must be a finite 4x4 matrix, a rigid "
                                     f"transform (rotation entries within 1, translation within "
                                     f"{COORD_MAX_M:g} m), got shape {m.shape}")
        out.append(m)
    return out[0], out[1]


def read_split(root: Path, split: str) -> list[tuple[str, str]]:
    """(scenario_type, scenario_name) lines of a split file at the root or in split_txt_files/."""
    candidates = [root / "split_txt_files" / f"{split}.txt", root / f"{split}.txt"]
    for p in candidates:
        if p.is_file():
            out = []
            text = paths.read_text(root, p, "split file", MAX_TEXT_BYTES)
            for i, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                tok = line.split()
                if len(tok) != 2:
                    raise DatasetFormatError(p, f"expected '<scenario_type> <scenario_name>', "
                                             f"got {line.strip()[:200]!r}", i)
                out.append((tok[0], tok[1]))
            return out
    raise DatasetFormatError(candidates[0], f"no split file for {split!r} (also looked for "
                             f"{candidates[1]})")


class DeepAccidentSource:
    """DeepAccident on disk. ``split``: a split-file name (train, val, test, train_mini ...)
    or ``all`` (every scenario with a meta file)."""

    name = "deepaccident"
    default_splits = ("train", "val")
    needs_root = True

    def splits(self) -> list[str]:
        """Split files found at the root or in split_txt_files/, and ``all``."""
        files = [*self.root.glob("*.txt"), *self.root.glob("split_txt_files/*.txt")]
        return sorted({p.stem for p in files}) + ["all"]

    def __init__(self, root: str | Path, anchor_seconds: tuple[float, ...] = (0.5, 1.0, 1.5,
                                                                              2.0, 2.5, 3.0),
                 min_history_s: float = 1.0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetFormatError(self.root, "DeepAccident root is not a directory")
        self.anchor_seconds = anchor_seconds
        self.min_history_s = min_history_s

    def list(self, split: str) -> list[ScenarioRef]:
        """Refs for a split file, or every scenario with a meta file for ``all``."""
        return list(self.iter_refs(split))

    def iter_refs(self, split: str) -> Iterator[ScenarioRef]:
        """The refs of :meth:`list`. A split-file line whose names are not plain file names
        (``..``, ``/``) becomes a ref carrying the error, which its load raises."""
        if split == "all":
            pairs = sorted((m.parent.parent.name, m.stem)
                           for m in self.root.glob("*/meta/*.txt"))
            origin = self.root
        else:
            pairs = read_split(self.root, split)
            origin = self.root / "split_txt_files" / f"{split}.txt"
        for typ, name in pairs:
            try:
                paths.safe_name(typ, origin, "scenario type")
                paths.safe_name(name, origin, "scenario name")
            except DatasetFormatError as exc:
                yield ScenarioRef(self.name, f"{typ[:80]}/{name[:80]}", split, str(origin),
                                  (("error", str(exc)),))
                continue
            yield ScenarioRef(self.name, f"{typ}/{name}", split, str(self.root / typ))

    def load(self, ref: ScenarioRef) -> Scenario:
        """Load and merge all views of one scenario."""
        if ref.hint("error"):
            raise DatasetFormatError(ref.path, ref.hint("error"))
        typ, name = ref.scenario_id.split("/", 1)
        base = self.root / typ
        meta = parse_meta(base / "meta" / f"{name}.txt", self.root)
        label_dir = base / "ego_vehicle" / "label" / name
        frames = sorted(_frame_index(p) for p in paths.files(self.root, label_dir, "*.txt",
                                                             "label file"))
        if not frames:
            raise DatasetFormatError(label_dir, "no ego_vehicle label files for this scenario")
        dup = next((a for a, b in zip(frames, frames[1:], strict=False) if a == b), None)
        if dup is not None:
            raise DatasetFormatError(label_dir, f"two label files for frame {dup} (e.g. _01 and "
                                     "_001): duplicate frames are refused")
        f0, f1 = frames[0], frames[-1]
        n_t = f1 - f0 + 1
        if n_t > MAX_FRAMES:
            raise DatasetFormatError(label_dir, f"frames {f0}..{f1} span {n_t} steps, more than "
                                     f"{MAX_FRAMES}")
        t = np.arange(n_t) * DT
        width = max(3, len(str(f1)))  # zero-padded to 3 digits, wider if needed
        obs: dict[int, dict[int, tuple[float, float, float, float, float, str]]] = {}
        ego_obs: dict[int, tuple[float, float, float, float, float]] = {}
        views = [v for v in AGENT_VIEWS if (base / v / "label" / name).is_dir()]
        for view in views:
            own_id = None
            if view in AGENT_ID_SLOT and len(meta.agents_id) == 4:
                own_id = meta.agents_id[AGENT_ID_SLOT[view]]
            for fr in frames:
                stem = f"{name}_{fr:0{width}d}"
                lpath = base / view / "label" / name / f"{stem}.txt"
                if not lpath.is_file():
                    if view == "ego_vehicle":
                        raise DatasetFormatError(lpath, "label file missing")
                    continue
                cpath = base / view / "calib" / name / f"{stem}.pkl"
                if not cpath.is_file():
                    raise DatasetFormatError(cpath, "calib file missing for an existing label")
                _, rows = parse_label_file(lpath, self.root)
                lidar_to_ego, ego_to_world = _calib(cpath, self.root)
                to_world = ego_to_world @ lidar_to_ego
                sensor_yaw = math.atan2(to_world[1, 0], to_world[0, 0])
                k = fr - f0
                for row in rows:
                    pw = to_world @ np.array([row.x, row.y, row.z, 1.0])
                    # left-handed CARLA world -> right-handed cfpair world: flip y and yaw
                    x, y, yaw = pw[0], -pw[1], -(row.yaw + sensor_yaw)
                    if row.actor_id == -100:
                        if view == "ego_vehicle":
                            ego_obs[k] = (x, y, yaw, row.length, row.width)
                        if own_id is None:
                            continue
                        actor = own_id
                    elif row.actor_id == -1:
                        continue  # untracked: cannot be followed over time
                    else:
                        actor = row.actor_id
                    cls = "static" if actor > STATIC_ID_MIN else CLASS_MAP[row.cls]
                    obs.setdefault(actor, {}).setdefault(k, (x, y, yaw, row.length,
                                                             row.width, cls))
                if view == "ego_vehicle" and k not in ego_obs:
                    # no -100 row: CARLA's vehicle origin (ego_to_world) is the box centre
                    ego_obs[k] = (ego_to_world[0, 3], -ego_to_world[1, 3],
                                  -math.atan2(ego_to_world[1, 0], ego_to_world[0, 0]),
                                  *DEFAULT_EGO_SIZE)
        ego_id = meta.agents_id[0] if len(meta.agents_id) == 4 else None
        obs.pop(ego_id, None)
        ego, ego_len, ego_wid = _ego_track(ego_obs, t)
        agents = _agent_tracks(obs, t)
        anchors = self._anchors(n_t)
        sensors = {cam: tuple(f"{typ}/ego_vehicle/{cam}/{name}/{name}_{f0 + k:0{width}d}.jpg"
                              for k in range(n_t))
                   for cam in CAMERAS if (base / "ego_vehicle" / cam / name).is_dir()
                   and paths.inside(self.root, base / "ego_vehicle" / cam / name, "camera folder")}
        info: dict[str, Any] = {
            "scenario_type": typ, "weather": meta.weather, "collision": meta.collision,
            "colliding_ids": list(meta.colliding_ids or []),
            "colliding_classes": list(meta.colliding_classes or []),
            "colliding_agents": meta.fields.get("colliding agents", []),
            "agents_id": meta.agents_id, "ego_actor_id": ego_id,
            "road_type": " ".join(meta.fields.get("road_type", [])),
            "scenario_length_frames": meta.length_frames, "first_frame": f0,
            "views": views, "collision_position": meta.collision_position,
        }
        try:
            return Scenario(ref.scenario_id, self.name, ego, agents, MapGeometry(), DT, anchors,
                            ego_length=ego_len, ego_width=ego_wid, ego_rear_to_center=0.0,
                            sensors=sensors, meta=info).validate()
        except ShapeError as exc:
            raise DatasetFormatError(label_dir, str(exc)) from None

    def _anchors(self, n_t: int) -> tuple[int, ...]:
        """Steps 0.5-3 s before the last frame, keeping at least min_history_s of history."""
        last = n_t - 1
        lo = int(round(self.min_history_s / DT))
        steps = {last - int(round(s / DT)) for s in self.anchor_seconds}
        return tuple(sorted(k for k in steps if lo <= k < last))


def _frame_index(path: Path) -> int:
    m = _STEM.match(path.stem)
    if not m:
        raise DatasetFormatError(path, "label file name must end in _<frame number>")
    return int(m.group("frame"))


def _ego_track(ego_obs: dict[int, tuple], t: F64) -> tuple[Trajectory, float, float]:
    n_t = t.size
    x, y, yaw = np.zeros(n_t), np.zeros(n_t), np.zeros(n_t)
    valid = np.zeros(n_t, bool)
    sizes = []
    for k, (ox, oy, oyaw, ln, wd) in ego_obs.items():
        x[k], y[k], yaw[k], valid[k] = ox, oy, oyaw, True
        sizes.append((ln, wd))
    vx, vy = _velocity(x, y, valid)
    ln, wd = np.median(np.array(sizes), axis=0) if sizes else DEFAULT_EGO_SIZE
    return Trajectory(x, y, wrap_angle(yaw), vx, vy, t, valid), float(ln), float(wd)


def _agent_tracks(obs: dict[int, dict[int, tuple]], t: F64) -> AgentTracks:
    if not obs:
        return AgentTracks.empty(t)
    ids = sorted(obs)
    n, n_t = len(ids), t.size
    x, y, yaw = np.zeros((n, n_t)), np.zeros((n, n_t)), np.zeros((n, n_t))
    valid = np.zeros((n, n_t), bool)
    length, width, classes = np.zeros(n), np.zeros(n), []
    for i, actor in enumerate(ids):
        rows = obs[actor]
        ks = np.array(sorted(rows))
        arr = np.array([rows[k][:5] for k in ks])
        x[i, ks], y[i, ks], yaw[i, ks] = arr[:, 0], arr[:, 1], arr[:, 2]
        valid[i, ks] = True
        length[i], width[i] = np.median(arr[:, 3]), np.median(arr[:, 4])
        classes.append(rows[int(ks[0])][5])
    vx, vy = _velocity(x, y, valid)
    return AgentTracks(x, y, wrap_angle(yaw), vx, vy, valid, t, np.array([str(i) for i in ids]),
                       np.array(classes), length, width)


def _velocity(x: F64, y: F64, valid: NDArray[np.bool_]) -> tuple[F64, F64]:
    """World velocity from positions: central differences where both neighbours are valid,
    one-sided at track ends and gaps, 0 for isolated samples."""
    def diff(a: F64) -> F64:
        prev_ok = np.zeros_like(valid)
        next_ok = np.zeros_like(valid)
        prev_ok[..., 1:] = valid[..., 1:] & valid[..., :-1]
        next_ok[..., :-1] = valid[..., :-1] & valid[..., 1:]
        back = np.zeros_like(a)
        fwd = np.zeros_like(a)
        back[..., 1:] = (a[..., 1:] - a[..., :-1]) / DT
        fwd[..., :-1] = (a[..., 1:] - a[..., :-1]) / DT
        both = prev_ok & next_ok
        v = np.where(both, (back + fwd) / 2, np.where(prev_ok, back, np.where(next_ok, fwd, 0)))
        return np.where(valid, v, 0.0)

    return diff(x), diff(y)

