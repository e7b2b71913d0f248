"""One ScenarioNet ``ScenarioDescription`` dict -> Scenario: time grid, ego, agents, anchors.

The conventions (velocities from positions, ego size checks, rear axle vs box centre) are
described in :mod:`cfpair.sources.scenarionet`; everything guessed lands in ``Scenario.meta``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cfpair.errors import ConfigError, DatasetFormatError, SceneRejected, ShapeError
from cfpair.geometry.transforms import wrap_angle
from cfpair.sources.scenarionet_map import build_map
from cfpair.types import AgentTracks, Scenario, Trajectory

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]
CLASS_OF_TYPE = {"VEHICLE": "vehicle", "PEDESTRIAN": "pedestrian", "CYCLIST": "cyclist",
                 "TRAFFIC_CONE": "static", "TRAFFIC_BARRIER": "static",
                 "TRAFFIC_OBJECT": "static", "OTHER": "unknown", "UNSET": "unknown"}
#: finer classes from the original dataset's label (``metadata.type``), checked in order
_REFINE = (("motorcycle", "motorcycle"), ("bicycle", "cyclist"), ("bus", "bus"),
           ("truck", "truck"), ("trailer", "truck"), ("construction", "truck"))
DEFAULT_SIZE = {"vehicle": (4.5, 1.9), "truck": (8.0, 2.5), "bus": (11.0, 2.9),
                "pedestrian": (0.7, 0.7), "cyclist": (1.8, 0.7), "motorcycle": (2.1, 0.9),
                "static": (0.5, 0.5), "unknown": (1.0, 1.0)}
#: dataset -> (ego length, width, rear axle -> box centre) for unusable logged sizes.
#: nuScenes' Renault Zoe: 4.084 x 1.730 m, wheelbase 2.588 m; rear axle -> centre ~1.37 m.
EGO_BY_DATASET = {"nuscenes": (4.084, 1.730, 1.37), "nuplan": (5.176, 2.297, 0.0),
                  "waymo": (4.8, 2.1, 0.0), "av2": (4.8, 2.0, 0.0), "lyft": (4.8, 2.0, 0.0)}
#: datasets whose ego poses are the rear axle (the ego frame origin), not the box centre
REAR_AXLE_DATASETS = ("nuscenes",)
COORDINATES = ("right-handed", "metadrive", "waymo")


@dataclass(frozen=True)
class LoadOptions:
    """How a ScenarioNet scenario is cut into anchors and what is built for it."""

    anchor_every_s: float = 1.0
    history_s: float = 2.0
    future_s: float = 4.0
    map_radius_m: float = 150.0
    velocity: str = "positions"
    default_lane_width: float = 3.7

    def __post_init__(self) -> None:
        if self.velocity not in ("positions", "stored"):
            raise ConfigError(f"velocity must be 'positions' or 'stored', got {self.velocity!r}")
        for name in ("anchor_every_s", "future_s", "map_radius_m", "default_lane_width"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name} must be a positive number, got {v!r}")
        if not isinstance(self.history_s, int | float) or not 0 <= self.history_s < 60:
            raise ConfigError(f"history_s must be in [0, 60), got {self.history_s!r}")


def time_grid(meta: dict, n_steps: int, path: Path) -> tuple[F64, float, float]:
    """(t, dt, largest deviation of a step from dt): a uniform grid from ``ts`` or
    ``sample_rate``; a log whose steps vary by more than 20 % is refused."""
    ts = meta.get("ts")
    if ts is not None:
        try:
            ts = np.asarray(ts, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DatasetFormatError(path, "metadata.ts is not a list of numbers") from None
        if ts.size != n_steps:
            raise DatasetFormatError(path, f"metadata.ts has {ts.size} entries, the ego track "
                                     f"{n_steps} steps")
        gaps = np.diff(ts)
        if ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(gaps <= 0):
            raise DatasetFormatError(path, "metadata.ts must be finite and increasing")
        dt = float(np.median(gaps))
        jitter = float(np.max(np.abs(gaps - dt)))
        if jitter > 0.2 * dt:
            raise DatasetFormatError(path, f"time steps vary from {gaps.min():.3f} to "
                                     f"{gaps.max():.3f} s; cfpair needs a uniform log")
        return np.arange(n_steps) * dt, dt, jitter
    rate = meta.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(
            rate) or rate <= 0:
        raise DatasetFormatError(path, "metadata has neither ts nor a positive sample_rate")
    return np.arange(n_steps) * float(rate), float(rate), 0.0


def refine_class(md_type: str, original: str) -> str:
    """MetaDrive type (refined by the dataset's own label) -> cfpair class."""
    cls = CLASS_OF_TYPE.get(md_type, "unknown")
    if cls in ("vehicle", "cyclist", "unknown"):
        low = original.lower()
        for needle, fine in _REFINE:
            if needle in low:
                return fine
    return cls


def velocities(x: F64, y: F64, valid: Bool, dt: float) -> tuple[F64, F64]:
    """Central differences where both neighbours are valid, one-sided at ends and gaps."""
    def diff(a: F64) -> F64:
        prev_ok, next_ok = np.zeros_like(valid), np.zeros_like(valid)
        prev_ok[..., 1:] = valid[..., 1:] & valid[..., :-1]
        next_ok[..., :-1] = valid[..., :-1] & valid[..., 1:]
        step = np.zeros_like(a)
        step[..., 1:] = (a[..., 1:] - a[..., :-1]) / dt
        fwd = np.zeros_like(a)
        fwd[..., :-1] = step[..., 1:]
        v = np.where(prev_ok & next_ok, (step + fwd) / 2,
                     np.where(prev_ok, step, np.where(next_ok, fwd, 0.0)))
        return np.where(valid, v, 0.0)

    return diff(x), diff(y)


def anchors_of(valid: Bool, dt: float, o: LoadOptions) -> tuple[int, ...]:
    """Steps with ``history_s`` of logged ego before and ``future_s`` after, spaced
    ``anchor_every_s`` apart."""
    n_h, n_f = int(round(o.history_s / dt)), int(round(o.future_s / dt))
    step = max(1, int(round(o.anchor_every_s / dt)))
    return tuple(a for a in range(n_h, len(valid) - n_f, step)
                 if valid[a - n_h:a + n_f + 1].all())


def ego_size(length: float, width: float, dataset: str) -> tuple[float, float, str]:
    """Sanity-checked (length, width) and what was corrected ('' when nothing was)."""
    note = ""
    if math.isfinite(length) and math.isfinite(width) and 0 < length < width:
        note = f"logged length {length:.3f} < width {width:.3f}: swapped"
        length, width = width, length
    if not (math.isfinite(length) and math.isfinite(width) and 2.5 <= length <= 20.0
            and 1.2 <= width <= 3.5):
        d = EGO_BY_DATASET.get(dataset, (4.8, 2.0, 0.0))
        note = (note + "; " if note else "") + (f"implausible size {length:.3f} x {width:.3f}"
                                                f": used {d[0]} x {d[1]} ({dataset or '?'})")
        length, width = d[0], d[1]
    return float(length), float(width), note


def _column(state: dict, key: str, n: int, dims: int) -> F64:
    """state[key] as float (n,) (dims=0) or (n, >=dims); ShapeError when it is not."""
    a = np.asarray(state[key], dtype=np.float64)
    if dims == 0:
        a = a.reshape(n) if a.size == n else a
        if a.shape != (n,):
            raise ShapeError(f"state.{key} must have {n} values, got shape {a.shape}")
        return a
    if a.ndim != 2 or a.shape[0] != n or a.shape[1] < dims:
        raise ShapeError(f"state.{key} must be ({n}, >={dims}), got {a.shape}")
    return a[:, :dims]


def _track(track: Any, n: int) -> dict[str, Any]:
    """Arrays of one track; ShapeError/KeyError/TypeError/ValueError when malformed."""
    if not isinstance(track, dict) or not isinstance(track.get("state"), dict):
        raise ShapeError("a track must be a dict with a 'state' dict")
    st = track["state"]
    pos = _column(st, "position", n, 2)
    heading = _column(st, "heading", n, 0)
    valid = _column(st, "valid", n, 0) > 0.5
    valid &= np.all(np.isfinite(pos), axis=1) & np.isfinite(heading)
    vel = _column(st, "velocity", n, 2) if "velocity" in st else np.zeros((n, 2))
    vel = np.where(np.isfinite(vel), vel, 0.0)
    size = []
    for key in ("length", "width"):
        col = _column(st, key, n, 0) if key in st else np.full(n, np.nan)
        good = col[valid & np.isfinite(col) & (col > 0)]
        size.append(float(np.median(good)) if good.size else math.nan)
    md = track.get("metadata") if isinstance(track.get("metadata"), dict) else {}
    return {"x": np.where(valid, pos[:, 0], 0.0), "y": np.where(valid, pos[:, 1], 0.0),
            "yaw": np.where(valid, wrap_angle(np.where(valid, heading, 0.0)), 0.0),
            "vx": np.where(valid, vel[:, 0], 0.0), "vy": np.where(valid, vel[:, 1], 0.0),
            "valid": valid, "length": size[0], "width": size[1],
            "type": str(track.get("type", "UNSET")), "original": str(md.get("type", ""))}


def _ego_n_steps(tracks: dict, sdc: Any, path: Path) -> int:
    if not isinstance(sdc, str | int) or sdc not in tracks:
        raise DatasetFormatError(path, f"metadata.sdc_id {sdc!r} is not among the "
                                 f"{len(tracks)} tracks")
    try:
        return int(np.asarray(tracks[sdc]["state"]["position"], dtype=np.float64).shape[0])
    except (KeyError, TypeError, IndexError, ValueError):
        raise DatasetFormatError(path, f"the ego track {sdc!r} has no state.position") from None


def scenario_from_description(sd: Any, path: Path, scenario_id: str, o: LoadOptions
                              ) -> Scenario:
    """The Scenario of one ScenarioDescription; DatasetFormatError / SceneRejected naming
    ``path`` when it cannot be used."""
    if not isinstance(sd, dict) or not isinstance(sd.get("metadata"), dict) or \
            not isinstance(sd.get("tracks"), dict):
        raise DatasetFormatError(path, "not a ScenarioDescription: expected a dict with "
                                 "'metadata' and 'tracks' dicts")
    meta, tracks = sd["metadata"], sd["tracks"]
    dataset = str(meta.get("dataset", "unknown"))
    coordinate = str(meta.get("coordinate", "right-handed"))
    if coordinate not in COORDINATES:
        raise DatasetFormatError(path, f"metadata.coordinate {coordinate!r}: cfpair reads "
                                 f"{COORDINATES} frames only")
    sdc = meta.get("sdc_id")
    n = _ego_n_steps(tracks, sdc, path)
    t, dt, jitter = time_grid(meta, n, path)
    try:
        ego = _track(tracks[sdc], n)
    except (ShapeError, KeyError, TypeError, ValueError) as exc:
        raise DatasetFormatError(path, f"ego track {sdc!r}: {exc}") from None
    if not ego["valid"].any():
        raise DatasetFormatError(path, f"ego track {sdc!r} is never valid")
    dropped: Counter[str] = Counter()
    rows, size_fixed = [], 0
    for tid, tr in tracks.items():
        if tid == sdc:
            continue
        try:
            a = _track(tr, n)
        except (ShapeError, KeyError, TypeError, ValueError) as exc:
            dropped[f"malformed: {str(exc)[:60]}"] += 1
            continue
        if not a["valid"].any():
            dropped["never valid"] += 1
            continue
        a["cls"] = refine_class(a["type"], a["original"])
        if not (math.isfinite(a["length"]) and math.isfinite(a["width"])):
            a["length"], a["width"] = DEFAULT_SIZE[a["cls"]]
            size_fixed += 1
        rows.append((str(tid), a))
    rows.sort(key=lambda r: r[0])
    if o.velocity == "positions":
        ego["vx"], ego["vy"] = velocities(ego["x"], ego["y"], ego["valid"], dt)
    length, width, size_note = ego_size(ego["length"], ego["width"], dataset)
    rear = EGO_BY_DATASET.get(dataset, (0, 0, 0.0))[2] if dataset in REAR_AXLE_DATASETS else 0.0
    ego_traj = Trajectory(ego["x"], ego["y"], ego["yaw"], ego["vx"], ego["vy"], t, ego["valid"])
    agents = _agents(rows, t, dt, o.velocity)
    anchors = anchors_of(ego["valid"], dt, o)
    if not anchors:
        raise SceneRejected("no_anchor", f"{path}: {n} steps at {dt:.3f} s hold no "
                            f"{o.history_s + o.future_s:.1f} s with the ego logged throughout")
    ego_xy = np.stack([ego["x"], ego["y"]], 1)[ego["valid"]]
    built = build_map(sd.get("map_features"), ego_xy, ego["yaw"][ego["valid"]], o.map_radius_m,
                      o.default_lane_width)
    info = {
        "dataset": dataset, "original_id": str(meta.get("scenario_id", meta.get("id", ""))),
        "file": str(path), "version": str(sd.get("version", "")),
        "map_name": str(meta.get("map", meta.get("map_name", ""))), "coordinate": coordinate,
        "sdc_id": str(sdc), "dt": dt, "time_jitter_s": jitter, "n_tracks": len(tracks),
        "agents_dropped": dict(dropped), "agent_sizes_defaulted": size_fixed,
        "ego_size_logged": [ego["length"], ego["width"]], "ego_size_correction": size_note,
        "ego_reference": "rear axle" if rear else "box centre",
        "ego_rear_to_center_source": (f"estimated {rear} m for the {dataset} ego" if rear
                                      else "0: the log stores box centres"),
        "velocity_source": ("central differences of the logged positions" if
                            o.velocity == "positions" else "stored state.velocity"),
        "map": built.notes,
    }
    info["record_notes"] = {k: str(info[k]) for k in (
        "dataset", "original_id", "ego_size_correction", "ego_reference",
        "ego_rear_to_center_source", "velocity_source", "agent_sizes_defaulted", "map")
        if info[k] not in (None, "", [], {}, 0)}
    try:
        return Scenario(scenario_id, f"scenarionet/{dataset}", ego_traj, agents, built.geometry,
                        dt, anchors, ego_length=length, ego_width=width,
                        ego_rear_to_center=rear, meta=info).validate()
    except ShapeError as exc:
        raise DatasetFormatError(path, f"inconsistent scenario: {exc}") from None


def _agents(rows: list[tuple[str, dict]], t: F64, dt: float, velocity: str) -> AgentTracks:
    if not rows:
        return AgentTracks.empty(t)
    arr = {k: np.stack([a[k] for _, a in rows]) for k in ("x", "y", "yaw", "vx", "vy",
                                                           "valid")}
    if velocity == "positions":
        arr["vx"], arr["vy"] = velocities(arr["x"], arr["y"], arr["valid"], dt)
    return AgentTracks(arr["x"], arr["y"], arr["yaw"], arr["vx"], arr["vy"], arr["valid"], t,
                       np.array([i for i, _ in rows], dtype=str),
                       np.array([a["cls"] for _, a in rows], dtype=str),
                       np.array([a["length"] for _, a in rows], dtype=np.float64),
                       np.array([a["width"] for _, a in rows], dtype=np.float64))
