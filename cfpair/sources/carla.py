"""CARLA: OpenDRIVE maps offline through ``carla.Map``, a live recorder, and saved recordings.

CARLA's frame is left-handed (x forward, y right, yaw clockwise in degrees); everything is
converted to cfpair's right-handed frame by flipping y and yaw (and vy). ``carla`` is an optional
extra (``pip install cfpair[carla]``) imported only here, only when used.

OpenDRIVE maps are parsed by libcarla in a child interpreter (``python -m cfpair.sources.carla
parse-xodr ...``): libcarla segfaults on some maps (CARLA's own 2019 Town03) and throws C++
exceptions (``IndexError('_Map_base::at')``) on others; both become a DatasetFormatError naming
the file, and the calling process (a pipeline worker) lives on. Lanes are sampled per lane
section from its start to its end, so sections shorter than the step leave no hole.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cfpair.errors import CarlaUnavailable, CfpairError, ConfigError, DatasetFormatError
from cfpair.sources.base import ScenarioRef
from cfpair.sources.scenario_io import load_scenario, save_scenario
from cfpair.types import AgentTracks, MapGeometry, Scenario, Trajectory

START_HINT = (
    "start a CARLA 0.9.16 server first, e.g. "
    "`./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}` in the CARLA folder, or "
    "`docker run --rm --net=host --gpus all carlasim/carla:0.9.16 "
    "bash CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}`, then re-run"
)


def _carla() -> Any:
    try:
        import carla
    except ImportError:
        raise CarlaUnavailable("the CARLA source needs the `carla` package: "
                               "pip install 'cfpair[carla]' (carla==0.9.16)") from None
    return carla


def _lane_points(wps: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, left and right edges (CARLA frame) of a run of waypoints along one lane."""
    c = np.array([[w.transform.location.x, w.transform.location.y] for w in wps])
    r = np.array([[w.transform.get_right_vector().x, w.transform.get_right_vector().y]
                  for w in wps])
    r /= np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
    half = np.array([w.lane_width / 2.0 for w in wps])[:, None]
    return c, c - r * half, c + r * half


def _key(wp: Any) -> tuple[int, int, int]:
    return (wp.road_id, wp.section_id, wp.lane_id)


def _section_end(wp: Any, key: tuple[int, int, int], step: float, forward: bool) -> Any | None:
    """The waypoint ``step`` ahead of ``wp`` (behind, with ``forward=False``) in driving
    direction if it is still in this lane section, else the section's last (first) waypoint,
    found by bisection on the distance; None at the section's end (start)."""
    def same(d: float) -> Any | None:
        hit = [n for n in (wp.next(d) if forward else wp.previous(d)) if _key(n) == key]
        return hit[0] if hit and abs(hit[0].s - wp.s) > 1e-6 else None

    full = same(step)
    if full is not None:
        return full
    lo, hi, best = 0.0, step, None
    for _ in range(16):
        mid = (lo + hi) / 2
        w = same(mid)
        if w is not None:
            lo, best = mid, w
        else:
            hi = mid
    return best


def _walk(wp: Any, step: float, forward: bool) -> list[Any]:
    """Waypoints from ``wp`` (excluded) to its lane section's end (start), ends included."""
    key, out, cur = _key(wp), [], wp
    # previous_until_lane_start segfaults (carla 0.9.16) on a lane without a predecessor
    for w in (wp.next_until_lane_end(step) if forward else ()):
        if _key(w) != key:
            break
        if abs(w.s - cur.s) > 1e-6:
            out.append(w)
            cur = w
    while len(out) < 100_000 and (w := _section_end(cur, key, step, forward)) is not None:
        out.append(w)
        cur = w
    return out


def _lane_runs(cmap: Any, resolution: float) -> dict[tuple[int, int, int], list[Any]]:
    """Waypoints of every driving lane section, in driving order, from the section's start to
    its end (both included) every ``resolution`` metres. Sections are found from the topology,
    a fixed-step sampling and, breadth first, the successors and predecessors of every section
    found: fixed-step sampling alone skips sections shorter than the step (holes across the
    carriageway) and the topology leaves out dead-end lanes."""
    runs: dict[tuple[int, int, int], list[Any]] = {}
    queue = deque([a for a, _ in cmap.get_topology()] + list(cmap.generate_waypoints(
        resolution)))
    while queue:
        wp = queue.popleft()
        key = _key(wp)
        if key in runs or str(wp.lane_type) != "Driving":
            continue
        run = [*_walk(wp, resolution, False)[::-1], wp, *_walk(wp, resolution, True)]
        runs[key] = run
        queue.extend(n for n in run[-1].next(0.05) if _key(n) not in runs)
        queue.extend(n for n in run[0].previous(0.05) if _key(n) not in runs)
    return runs


def parse_xodr_here(xodr: str, resolution: float = 2.0, name: str = "xodr") -> MapGeometry:
    """OpenDRIVE text -> MapGeometry (our frame) in this process: one polygon per driving lane
    section from its centre waypoints and widths; centrelines in driving order. libcarla can
    crash the process on some maps: use :func:`xodr_to_map`, which runs this in a child."""
    if resolution <= 0:
        raise ConfigError(f"resolution must be > 0, got {resolution}")
    carla = _carla()
    try:
        cmap = carla.Map(name, xodr)
        runs = _lane_runs(cmap, resolution)
    except Exception as exc:  # noqa: BLE001 - libcarla raises RuntimeError, IndexError, ...
        raise DatasetFormatError(name, f"carla could not parse the OpenDRIVE map "
                                 f"({type(exc).__name__}: {exc})") from None
    lanes, centres, ids = [], [], []
    flip = np.array([1.0, -1.0])
    for key in sorted(runs):
        if len(runs[key]) < 2:
            continue  # a zero-length section covers no ground
        c, left, right = _lane_points(runs[key])
        lanes.append(np.concatenate([left, right[::-1]]) * flip)
        centres.append(c * flip)
        ids.append(f"{key[0]}:{key[1]}:{key[2]}")
    if not lanes:
        raise DatasetFormatError(name, "the OpenDRIVE map has no driving lanes")
    return MapGeometry(drivable=tuple(lanes), lanes=tuple(lanes), centerlines=tuple(centres),
                       on_route=np.zeros(len(centres), bool), lane_ids=tuple(ids)).validate()


def _save_map(gmap: MapGeometry, out: Path) -> None:
    arrays = {f"lane_{i}": p for i, p in enumerate(gmap.lanes)}
    arrays.update({f"centre_{i}": c for i, c in enumerate(gmap.centerlines)})
    arrays["ids"] = np.array(json.dumps(list(gmap.lane_ids)))
    with open(out, "wb") as fh:
        np.savez(fh, **arrays)


def _read_map(out: Path, name: str) -> MapGeometry:
    with np.load(out, allow_pickle=False) as z:
        ids = tuple(json.loads(str(z["ids"])))
        lanes = tuple(z[f"lane_{i}"] for i in range(len(ids)))
        centres = tuple(z[f"centre_{i}"] for i in range(len(ids)))
    return MapGeometry(drivable=lanes, lanes=lanes, centerlines=centres,
                       on_route=np.zeros(len(centres), bool), lane_ids=ids).validate()


def _parse_in_child(path: Path, resolution: float, name: str, timeout_s: float) -> MapGeometry:
    """Run :func:`parse_xodr_here` on the file ``path`` in a fresh interpreter, so that a
    libcarla crash (segfault, abort) or hang becomes a DatasetFormatError naming the file."""
    if importlib.util.find_spec("carla") is None:
        _carla()  # raises CarlaUnavailable with the install hint
    if resolution <= 0:
        raise ConfigError(f"resolution must be > 0, got {resolution}")
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="cfpair-xodr-") as tmp:
        out, err = Path(tmp) / "map.npz", Path(tmp) / "error.json"
        cmd = [sys.executable, "-m", "cfpair.sources.carla", "parse-xodr", str(path), str(out),
               str(err), repr(float(resolution)), name]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env=env, check=False)
        except subprocess.TimeoutExpired:
            raise DatasetFormatError(name, f"libcarla did not finish parsing the OpenDRIVE "
                                     f"map within {timeout_s:.0f} s") from None
        if proc.returncode == 0 and out.is_file():
            return _read_map(out, name)
        if err.is_file():
            info = json.loads(err.read_text())
            if info.get("kind") == "unavailable":
                raise CarlaUnavailable(info["reason"])
            if info.get("kind") == "config":
                raise ConfigError(info["reason"])
            raise DatasetFormatError(name, info["reason"])
        tail = [ln for ln in (proc.stderr or "").strip().splitlines()
                if ln.strip() and not ln.startswith("WARNING")][-3:]
        if proc.returncode < 0:
            try:
                sig = signal.Signals(-proc.returncode).name
            except ValueError:
                sig = f"signal {-proc.returncode}"
            raise DatasetFormatError(name, f"libcarla crashed ({sig}) while parsing this "
                                     "OpenDRIVE map; the map cannot be used with this carla "
                                     f"version{': ' + ' | '.join(tail) if tail else ''}")
        raise DatasetFormatError(name, f"the OpenDRIVE parser exited with status "
                                 f"{proc.returncode}{': ' + ' | '.join(tail) if tail else ''}")


def xodr_to_map(xodr: str, resolution: float = 2.0, name: str = "xodr",
                timeout_s: float = 300.0) -> MapGeometry:
    """OpenDRIVE text -> MapGeometry, parsed by libcarla in a child process (see
    :func:`parse_xodr_here` for the geometry)."""
    with tempfile.TemporaryDirectory(prefix="cfpair-xodr-") as tmp:
        path = Path(tmp) / "map.xodr"
        path.write_text(xodr)
        return _parse_in_child(path, resolution, name, timeout_s)


def load_xodr(path: str | Path, resolution: float = 2.0, timeout_s: float = 300.0
              ) -> MapGeometry:
    """Read an ``.xodr`` file into a MapGeometry; any failure, a libcarla crash included, is a
    DatasetFormatError naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise DatasetFormatError(path, f"cannot read the OpenDRIVE file ({exc})") from None
    return _parse_in_child(path, resolution, str(path), timeout_s)


def _child_main(argv: list[str]) -> int:
    """``python -m cfpair.sources.carla parse-xodr IN OUT ERR RESOLUTION NAME``."""
    src, out, err, resolution, name = argv
    try:
        try:
            text = Path(src).read_text(errors="replace")
        except OSError as exc:
            raise DatasetFormatError(name, f"cannot read the OpenDRIVE file ({exc})") from None
        _save_map(parse_xodr_here(text, float(resolution), name), Path(out))
        return 0
    except CarlaUnavailable as exc:
        info = {"kind": "unavailable", "reason": str(exc)}
    except ConfigError as exc:
        info = {"kind": "config", "reason": str(exc)}
    except DatasetFormatError as exc:
        info = {"kind": "format", "reason": exc.reason}
    except Exception as exc:  # noqa: BLE001 - whatever libcarla throws is a format error
        info = {"kind": "format", "reason": f"carla could not parse the OpenDRIVE map "
                f"({type(exc).__name__}: {exc})"}
    Path(err).write_text(json.dumps(info))
    return 3


# --- live recording --------------------------------------------------------------------------

_CLASS_OF_MAKE = (("bicycle", "cyclist"), ("bike", "cyclist"), ("century", "cyclist"),
                  ("omafiets", "cyclist"), ("harley", "motorcycle"), ("yamaha", "motorcycle"),
                  ("vespa", "motorcycle"), ("kawasaki", "motorcycle"), ("truck", "truck"),
                  ("carlacola", "truck"), ("bus", "bus"))


def class_of(type_id: str) -> str:
    """CARLA blueprint id (``vehicle.tesla.model3``, ``walker.pedestrian.0001``) -> our class."""
    kind, _, make = type_id.lower().partition(".")
    if kind == "walker":
        return "pedestrian"
    if kind == "static":
        return "static"
    if kind != "vehicle":
        return "unknown"
    return next((cls for needle, cls in _CLASS_OF_MAKE if needle in make), "vehicle")


@dataclass(frozen=True)
class ActorState:
    """One actor at one tick in CARLA's frame (left-handed; yaw in degrees)."""

    actor_id: int
    type_id: str
    x: float
    y: float
    yaw_deg: float
    vx: float
    vy: float
    length: float
    width: float


def snapshots_to_scenario(scenario_id: str, ego_id: int, ticks: list[list[ActorState]],
                          dt: float, gmap: MapGeometry, anchor_s: float = 2.0,
                          meta: dict[str, Any] | None = None) -> Scenario:
    """Recorded ticks -> Scenario in our frame (the ego is ``ego_id``; CARLA boxes are centred,
    so the ego reference point is its box centre: ``ego_rear_to_center = 0``)."""
    if not ticks:
        raise CfpairError(f"recording {scenario_id} has no ticks")
    n_t = len(ticks)
    t = np.arange(n_t) * dt - anchor_s
    index: dict[int, ActorState] = {}
    for tick in ticks:
        for a in tick:
            index.setdefault(a.actor_id, a)
    if ego_id not in index:
        raise CfpairError(f"recording {scenario_id}: ego actor {ego_id} never seen")
    others = sorted(k for k in index if k != ego_id)
    col = {k: i for i, k in enumerate(others)}
    shape = (len(others), n_t)
    arr = {k: np.zeros(shape) for k in ("x", "y", "yaw", "vx", "vy")}
    valid = np.zeros(shape, bool)
    ego = {k: np.zeros(n_t) for k in ("x", "y", "yaw", "vx", "vy")}
    ego_valid = np.zeros(n_t, bool)
    for j, tick in enumerate(ticks):
        for a in tick:
            vals = {"x": a.x, "y": -a.y, "yaw": -math.radians(a.yaw_deg), "vx": a.vx, "vy": -a.vy}
            if a.actor_id == ego_id:
                for k, v in vals.items():
                    ego[k][j] = v
                ego_valid[j] = True
            else:
                for k, v in vals.items():
                    arr[k][col[a.actor_id], j] = v
                valid[col[a.actor_id], j] = True
    ego_traj = Trajectory(**ego, t=t, valid=ego_valid)
    agents = AgentTracks(**arr, valid=valid, t=t, ids=np.array([str(k) for k in others], str),
                         classes=np.array([class_of(index[k].type_id) for k in others], str),
                         length=np.array([max(index[k].length, 0.1) for k in others]),
                         width=np.array([max(index[k].width, 0.1) for k in others]))
    anchor = int(np.argmin(np.abs(t)))
    e = index[ego_id]
    return Scenario(scenario_id=scenario_id, source="carla", ego=ego_traj, agents=agents,
                    map=gmap, dt=dt, anchors=(anchor,), ego_length=e.length, ego_width=e.width,
                    ego_rear_to_center=0.0, meta=dict(meta or {})).validate()


def connect(host: str = "127.0.0.1", port: int = 2000, timeout: float = 5.0) -> Any:
    """A connected ``carla.Client``; without a server, fails within ``timeout`` saying how to
    start one."""
    carla = _carla()
    started = time.monotonic()
    try:
        client = carla.Client(host, port)
        client.set_timeout(timeout)
        client.get_server_version()
    except RuntimeError as exc:
        waited = time.monotonic() - started
        raise CarlaUnavailable(
            f"no CARLA server answered at {host}:{port} within {waited:.1f} s ({exc}); "
            + START_HINT.format(port=port)) from None
    return client


def _states(actors: Iterable[Any]) -> list[ActorState]:
    out = []
    for a in actors:
        tf, vel, ext = a.get_transform(), a.get_velocity(), a.bounding_box.extent
        out.append(ActorState(a.id, a.type_id, tf.location.x, tf.location.y, tf.rotation.yaw,
                              vel.x, vel.y, 2 * ext.x, 2 * ext.y))
    return out


def record(out: str | Path, host: str = "127.0.0.1", port: int = 2000, timeout: float = 5.0,
           seconds: float = 7.0, dt: float = 0.1, ego_role: str = "hero",
           scenario_id: str | None = None) -> Path:
    """Record ego (the vehicle whose ``role_name`` is ``ego_role``) and every vehicle/walker at a
    fixed step in synchronous mode, then save the Scenario to ``out`` (.npz)."""
    client = connect(host, port, timeout)
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, dt
    world.apply_settings(settings)
    try:
        actors = world.get_actors()
        egos = [a for a in actors.filter("vehicle.*")
                if a.attributes.get("role_name") == ego_role]
        if not egos:
            raise CfpairError(f"no vehicle with role_name={ego_role!r} in the CARLA world; "
                              "spawn the ego with that role first")
        ego_id = egos[0].id
        ticks = []
        for _ in range(int(round(seconds / dt))):
            world.tick()
            live = world.get_actors()
            ticks.append(_states([*live.filter("vehicle.*"), *live.filter("walker.*")]))
        gmap = xodr_to_map(world.get_map().to_opendrive(), name=world.get_map().name)
    finally:
        world.apply_settings(original)
    sid = scenario_id or f"carla-{world.get_map().name.split('/')[-1]}-{int(time.time())}"
    scn = snapshots_to_scenario(sid, ego_id, ticks, dt, gmap, meta={"host": host, "port": port})
    return save_scenario(scn, out)


class CarlaRecordingSource:
    """Recordings saved by :func:`record`: ``root/<split>/*.npz`` (or ``root/*.npz`` for 'all')."""

    name = "carla"
    default_splits = ("all",)
    needs_root = True

    def splits(self) -> list[str]:
        """Sub-folders holding recordings, and ``all`` when the root itself holds some."""
        found = sorted({p.parent.name for p in self.root.glob("*/*.npz")})
        return found + (["all"] if any(self.root.glob("*.npz")) else [])

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(f"CARLA recordings folder {self.root} does not exist")

    def list(self, split: str) -> list[ScenarioRef]:
        """Recordings of ``split`` sorted by file name."""
        folder = self.root / split if (self.root / split).is_dir() else self.root
        return [ScenarioRef("carla", p.stem, split, str(p)) for p in sorted(folder.glob("*.npz"))]

    def load(self, ref: ScenarioRef) -> Scenario:
        """Load one saved recording; a malformed one (a header of the wrong type, say) is a
        DatasetFormatError naming the file."""
        try:
            return load_scenario(ref.path)
        except CfpairError:
            raise
        except Exception as exc:  # noqa: BLE001 - hostile files: any failure is a reject
            raise DatasetFormatError(ref.path, f"not a valid cfpair recording "
                                     f"({type(exc).__name__}: {exc})") from None


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "parse-xodr":
    sys.exit(_child_main(sys.argv[2:]))
