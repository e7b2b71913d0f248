"""Save and load a Scenario as one ``.npz`` file (arrays + a JSON header; never pickled)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cfpair.errors import DatasetFormatError, ShapeError
from cfpair.types import AgentTracks, MapGeometry, Scenario, Trajectory

FORMAT = "cfpair-scenario/1"
_TRAJ = ("x", "y", "yaw", "vx", "vy", "t", "valid")
_AGENT = ("x", "y", "yaw", "vx", "vy", "valid", "t", "length", "width")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def save_scenario(scn: Scenario, path: str | Path) -> Path:
    """Write ``scn`` to ``path`` (.npz) atomically: a temporary name, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {f"ego_{k}": getattr(scn.ego, k) for k in _TRAJ}
    arrays.update({f"agents_{k}": getattr(scn.agents, k) for k in _AGENT})
    arrays["agents_ids"] = scn.agents.ids.astype(str)
    arrays["agents_classes"] = scn.agents.classes.astype(str)
    for kind in ("drivable", "lanes", "centerlines"):
        for i, poly in enumerate(getattr(scn.map, kind)):
            arrays[f"map_{kind}_{i}"] = np.asarray(poly, np.float64)
    arrays["map_on_route"] = scn.map.on_route
    header = {
        "format": FORMAT, "scenario_id": scn.scenario_id, "source": scn.source, "dt": scn.dt,
        "anchors": list(scn.anchors), "ego_length": scn.ego_length, "ego_width": scn.ego_width,
        "ego_rear_to_center": scn.ego_rear_to_center,
        "map_counts": {k: len(getattr(scn.map, k)) for k in ("drivable", "lanes", "centerlines")},
        "lane_ids": list(scn.map.lane_ids), "sensors": {k: list(v) for k, v in scn.sensors.items()},
        "meta": scn.meta,
    }
    arrays["header"] = np.array(json.dumps(header, default=_json_default))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)
    return path


def load_scenario(path: str | Path) -> Scenario:
    """Read a file written by :func:`save_scenario`; errors name the file and what was expected."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetFormatError(path, f"not a readable cfpair scenario .npz ({exc})") from None
    try:
        header = json.loads(str(data["header"]))
        if not isinstance(header, dict):
            raise DatasetFormatError(path, f"header must be a JSON object, got "
                                     f"{type(header).__name__}")
        if not isinstance(header.get("meta", {}), dict) or not isinstance(
                header.get("sensors", {}), dict) or not all(
                isinstance(v, list) and all(isinstance(p, str) for p in v)
                for v in header.get("sensors", {}).values()):
            raise DatasetFormatError(path, "header meta must be an object and sensors map "
                                     "camera names to lists of paths")
        if header.get("format") != FORMAT:
            raise DatasetFormatError(path, f"format {header.get('format')!r}, expected {FORMAT!r}")
        ego = Trajectory(**{k: data[f"ego_{k}"] for k in _TRAJ})
        agents = AgentTracks(**{k: data[f"agents_{k}"] for k in _AGENT},
                             ids=data["agents_ids"].astype(str),
                             classes=data["agents_classes"].astype(str))
        counts = header["map_counts"]
        polys = {k: tuple(data[f"map_{k}_{i}"] for i in range(counts[k])) for k in counts}
        gmap = MapGeometry(**polys, on_route=data["map_on_route"].astype(bool),
                           lane_ids=tuple(header["lane_ids"]))
        return Scenario(
            scenario_id=header["scenario_id"], source=header["source"], ego=ego, agents=agents,
            map=gmap, dt=float(header["dt"]), anchors=tuple(int(a) for a in header["anchors"]),
            ego_length=float(header["ego_length"]), ego_width=float(header["ego_width"]),
            ego_rear_to_center=float(header["ego_rear_to_center"]),
            sensors={k: tuple(v) for k, v in header["sensors"].items()}, meta=header["meta"],
        ).validate()
    except KeyError as exc:
        raise DatasetFormatError(path, f"missing entry {exc.args[0]!r}") from None
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError, IndexError,
            RecursionError, ShapeError) as exc:
        raise DatasetFormatError(path, f"inconsistent scenario data: {exc}") from None
