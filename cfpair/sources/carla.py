"""CARLA: OpenDRIVE maps offline through ``carla.Map``, a live recorder, and saved recordings.

CARLA's frame is left-handed (x forward, y right, yaw clockwise in degrees); everything is
converted to cfpair's right-handed frame by flipping y and yaw (and vy). ``carla`` is an optional
extra (``pip install cfpair[carla]``) imported only here, only when used.
"""

from __future__ import annotations

import math
import time
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


def _lane_end(wp: Any, forward: bool, key: tuple[int, int, int], step: float) -> Any | None:
    """The last waypoint of this lane within ``step`` ahead (``forward``) or behind, in driving
    direction; bisection on the distance because ``next`` crosses into the successor road."""
    def same(d: float) -> Any | None:
        nxt = wp.next(d) if forward else wp.previous(d)
        hit = [n for n in nxt if (n.road_id, n.section_id, n.lane_id) == key]
        return hit[0] if hit else None

    lo, hi, best = 0.0, step, None
    for _ in range(12):
        mid = (lo + hi) / 2
        w = same(mid)
        if w is not None and abs(w.s - wp.s) > 1e-6:
            lo, best = mid, w
        else:
            hi = mid
    full = same(step)
    return full if full is not None and abs(full.s - wp.s) > 1e-6 else best


def xodr_to_map(xodr: str, resolution: float = 2.0, name: str = "xodr") -> MapGeometry:
    """OpenDRIVE text -> MapGeometry (our frame): one polygon per driving lane, built from lane
    waypoints every ``resolution`` metres and their widths; centrelines in driving order."""
    if resolution <= 0:
        raise ConfigError(f"resolution must be > 0, got {resolution}")
    carla = _carla()
    try:
        cmap = carla.Map(name, xodr)
        wps = cmap.generate_waypoints(resolution)
    except RuntimeError as exc:
        raise DatasetFormatError(name, f"carla could not parse the OpenDRIVE map: {exc}") from None
    groups: dict[tuple[int, int, int], list[Any]] = {}
    for w in wps:
        groups.setdefault((w.road_id, w.section_id, w.lane_id), []).append(w)
    lanes, centres, ids = [], [], []
    for key in sorted(groups):
        run = sorted(groups[key], key=lambda w: w.s)
        forward = key[2] < 0   # right-hand lanes drive along increasing s
        ordered = run if forward else run[::-1]
        start = _lane_end(ordered[0], False, key, resolution)
        end = _lane_end(ordered[-1], True, key, resolution)
        ordered = [*([start] if start is not None else []), *ordered,
                   *([end] if end is not None else [])]
        if len(ordered) < 2:
            continue
        c, left, right = _lane_points(ordered)
        flip = np.array([1.0, -1.0])
        lanes.append(np.concatenate([left, right[::-1]]) * flip)
        centres.append(c * flip)
        ids.append(f"{key[0]}:{key[1]}:{key[2]}")
    if not lanes:
        raise DatasetFormatError(name, "the OpenDRIVE map has no driving lanes")
    return MapGeometry(drivable=tuple(lanes), lanes=tuple(lanes), centerlines=tuple(centres),
                       on_route=np.zeros(len(centres), bool), lane_ids=tuple(ids)).validate()


def load_xodr(path: str | Path, resolution: float = 2.0) -> MapGeometry:
    """Read an ``.xodr`` file into a MapGeometry."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetFormatError(path, f"cannot read the OpenDRIVE file ({exc})") from None
    try:
        return xodr_to_map(text, resolution, name=str(path))
    except DatasetFormatError as exc:
        raise DatasetFormatError(path, exc.reason) from None


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
        """Load one saved recording."""
        return load_scenario(ref.path)
