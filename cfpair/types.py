"""The data model: Trajectory, AgentTracks, MapGeometry and Scenario as frozen dataclasses of
numpy arrays.

Frame: right-handed everywhere inside cfpair: x forward/east, y left/north, yaw counter-clockwise
from +x in radians; metres, seconds, m/s. Scenario geometry lives in a world frame; records store
trajectories in the ego frame at the anchor time, whose origin is the ego **rear axle** (NAVSIM's
convention). Missing samples are marked by ``valid == False``, never by NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cfpair.errors import ShapeError
from cfpair.geometry.transforms import rotate_vectors, to_local, to_world, wrap_angle
from cfpair.records.label import AgentClass

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]

#: Object classes cfpair knows (the record schema's AgentClass); sources map their own labels
#: onto these.
AGENT_CLASSES = tuple(str(c) for c in AgentClass)


#: Plausibility bounds: a value outside them is not a measurement, it is a broken file.
#: Coordinates (m, any world frame: UTM northings reach 1e7), speeds (m/s, 432 km/h),
#: box sizes (m; long barriers and articulated trucks included), raw yaw (rad, before any
#: wrapping: a yaw of 1e308 must never be wrapped into a plausible angle).
COORD_MAX_M = 2.0e7
SPEED_MAX_MPS = 120.0
SIZE_MAX_M = 100.0
EGO_SIZE_MAX_M = 30.0
YAW_MAX_RAD = 4 * np.pi
#: time step bounds (s) and the most steps one scenario may have
DT_RANGE_S = (1e-3, 10.0)
MAX_STEPS = 100_000


def check_bounds(name: str, arr: Any, limit: float, valid: Any = None) -> None:
    """ShapeError unless every (valid) value is finite and ``abs(value) <= limit``."""
    a = np.asarray(arr, dtype=np.float64)
    if valid is not None:
        a = a[np.asarray(valid, bool)]
    if a.size and not (np.all(np.isfinite(a)) and float(np.max(np.abs(a))) <= limit):
        worst = a[~np.isfinite(a)][:1] if not np.all(np.isfinite(a)) else a[
            np.argmax(np.abs(a))]
        raise ShapeError(f"{name} = {float(np.ravel(worst)[0]):.6g} is not plausible (expected "
                         f"finite and within +-{limit:g})")


def _f64(a: Any) -> F64:
    return np.asarray(a, dtype=np.float64)


def _check_finite_where_valid(name: str, arr: F64, valid: Bool) -> None:
    if not np.all(np.isfinite(arr[valid])):
        raise ShapeError(f"{name} has NaN/inf at valid samples; mark missing data invalid")


def _check_plausible(owner: str, x: F64, y: F64, yaw: F64, speed: F64, valid: Bool) -> None:
    check_bounds(f"{owner}.x", x, COORD_MAX_M, valid)
    check_bounds(f"{owner}.y", y, COORD_MAX_M, valid)
    check_bounds(f"{owner}.yaw", yaw, YAW_MAX_RAD, valid)
    check_bounds(f"{owner} speed", speed, SPEED_MAX_MPS, valid)


@dataclass(frozen=True)
class Trajectory:
    """Poses over time; arrays of shape (T,) or (K, T).

    x, y: metres; yaw: radians (CCW); vx, vy: m/s in the same frame as x, y; t: (T,) seconds
    from the anchor time (shared by all K rows); valid: bool mask like x.
    """

    x: F64
    y: F64
    yaw: F64
    vx: F64
    vy: F64
    t: F64
    valid: Bool

    @classmethod
    def from_poses(cls, x: Any, y: Any, yaw: Any, t: Any, valid: Any = None) -> Trajectory:
        """Build from poses; velocities from central differences of the positions."""
        x, y, yaw, t = _f64(x), _f64(y), _f64(yaw), _f64(t)
        if t.shape[-1] >= 2:
            vx = np.gradient(x, t, axis=-1)
            vy = np.gradient(y, t, axis=-1)
        else:
            vx = np.zeros_like(x)
            vy = np.zeros_like(y)
        v = np.ones(x.shape, bool) if valid is None else np.asarray(valid, bool)
        return cls(x, y, yaw, vx, vy, t, v)

    @property
    def shape(self) -> tuple[int, ...]:
        """(T,) or (K, T)."""
        return tuple(self.x.shape)

    @property
    def speed(self) -> F64:
        """|v| in m/s, shape like x."""
        return np.hypot(self.vx, self.vy)

    @property
    def xy(self) -> F64:
        """Positions (..., T, 2) metres."""
        return np.stack([self.x, self.y], axis=-1)

    @property
    def dt(self) -> float:
        """The (uniform) step in seconds; 0 for a single sample."""
        return float(np.median(np.diff(self.t))) if self.t.size > 1 else 0.0

    def validate(self) -> Trajectory:
        """Check shapes, dtypes, finiteness at valid samples and time monotonicity."""
        shape = self.x.shape
        for name in ("y", "yaw", "vx", "vy", "valid"):
            if getattr(self, name).shape != shape:
                raise ShapeError(f"Trajectory.{name} shape {getattr(self, name).shape} "
                                 f"!= x shape {shape}")
        if self.valid.dtype != np.bool_:
            raise ShapeError("Trajectory.valid must be bool")
        if self.t.ndim != 1 or self.t.shape[0] != shape[-1]:
            raise ShapeError(f"Trajectory.t must be (T,)={shape[-1:]}, got {self.t.shape}")
        if self.t.size > 1 and not np.all(np.diff(self.t) > 0):
            raise ShapeError("Trajectory.t must be strictly increasing")
        for name in ("x", "y", "yaw", "vx", "vy"):
            _check_finite_where_valid(f"Trajectory.{name}", getattr(self, name), self.valid)
        _check_plausible("Trajectory", self.x, self.y, self.yaw, self.speed, self.valid)
        return self

    def to_frame(self, origin_x: float, origin_y: float, origin_yaw: float) -> Trajectory:
        """Express in the frame whose origin pose (in this trajectory's frame) is given."""
        xy, yaw = to_local(self.xy, self.yaw, np.array([origin_x, origin_y]), origin_yaw)
        vx, vy = rotate_vectors(self.vx, self.vy, -origin_yaw)
        return replace(self, x=xy[..., 0], y=xy[..., 1], yaw=yaw, vx=vx, vy=vy)

    def from_frame(self, origin_x: float, origin_y: float, origin_yaw: float) -> Trajectory:
        """Inverse of :meth:`to_frame`: back to the frame in which the origin pose was given."""
        xy, yaw = to_world(self.xy, self.yaw, np.array([origin_x, origin_y]), origin_yaw)
        vx, vy = rotate_vectors(self.vx, self.vy, origin_yaw)
        return replace(self, x=xy[..., 0], y=xy[..., 1], yaw=yaw, vx=vx, vy=vy)

    def at(self, index: Any) -> Trajectory:
        """Select along the time axis (an index array or slice), keeping the layout."""
        return replace(self, x=self.x[..., index], y=self.y[..., index],
                       yaw=self.yaw[..., index], vx=self.vx[..., index],
                       vy=self.vy[..., index], t=self.t[index], valid=self.valid[..., index])


@dataclass(frozen=True)
class AgentTracks:
    """N other road users over T steps: x, y, yaw, vx, vy, valid of shape (N, T); t (T,) s.

    ids: (N,) str (source track ids/tokens); classes: (N,) str from AGENT_CLASSES;
    length, width: (N,) metres (constant per agent).
    """

    x: F64
    y: F64
    yaw: F64
    vx: F64
    vy: F64
    valid: Bool
    t: F64
    ids: NDArray[np.str_]
    classes: NDArray[np.str_]
    length: F64
    width: F64

    @property
    def n(self) -> int:
        """Number of agents."""
        return int(self.x.shape[0])

    @classmethod
    def empty(cls, t: Any) -> AgentTracks:
        """No agents on the time grid t."""
        t = _f64(t)
        z = np.zeros((0, t.size))
        return cls(z, z.copy(), z.copy(), z.copy(), z.copy(), np.zeros((0, t.size), bool), t,
                   np.array([], dtype=str), np.array([], dtype=str), np.zeros(0), np.zeros(0))

    def validate(self) -> AgentTracks:
        """Check shapes, classes, sizes and finiteness at valid samples."""
        if self.x.ndim != 2:
            raise ShapeError(f"AgentTracks.x must be (N, T), got {self.x.shape}")
        shape = self.x.shape
        for name in ("y", "yaw", "vx", "vy", "valid"):
            if getattr(self, name).shape != shape:
                raise ShapeError(f"AgentTracks.{name} shape != {shape}")
        if self.t.shape != (shape[1],):
            raise ShapeError(f"AgentTracks.t must be ({shape[1]},), got {self.t.shape}")
        for name in ("ids", "classes", "length", "width"):
            if getattr(self, name).shape != (shape[0],):
                raise ShapeError(f"AgentTracks.{name} must be ({shape[0]},)")
        if len(set(self.ids.tolist())) != shape[0]:
            raise ShapeError("AgentTracks.ids must be unique")
        bad = sorted(set(self.classes.tolist()) - set(AGENT_CLASSES))
        if bad:
            raise ShapeError(f"AgentTracks.classes has unknown classes {bad}; "
                             f"expected one of {AGENT_CLASSES}")
        if np.any(~np.isfinite(self.length)) or np.any(self.length <= 0) or np.any(
                ~np.isfinite(self.width)) or np.any(self.width <= 0):
            raise ShapeError("AgentTracks.length/width must be finite and > 0")
        for name in ("x", "y", "yaw", "vx", "vy"):
            _check_finite_where_valid(f"AgentTracks.{name}", getattr(self, name), self.valid)
        check_bounds("AgentTracks.length", self.length, SIZE_MAX_M)
        check_bounds("AgentTracks.width", self.width, SIZE_MAX_M)
        _check_plausible("AgentTracks", self.x, self.y, self.yaw,
                         np.hypot(self.vx, self.vy), self.valid)
        return self

    def to_frame(self, origin_x: float, origin_y: float, origin_yaw: float) -> AgentTracks:
        """Express in the frame whose origin pose is given (see Trajectory.to_frame)."""
        xy, yaw = to_local(np.stack([self.x, self.y], -1), self.yaw,
                           np.array([origin_x, origin_y]), origin_yaw)
        vx, vy = rotate_vectors(self.vx, self.vy, -origin_yaw)
        return replace(self, x=xy[..., 0], y=xy[..., 1], yaw=yaw, vx=vx, vy=vy)

    def at(self, index: Any) -> AgentTracks:
        """Select along the time axis."""
        return replace(self, x=self.x[:, index], y=self.y[:, index], yaw=self.yaw[:, index],
                       vx=self.vx[:, index], vy=self.vy[:, index],
                       valid=self.valid[:, index], t=self.t[index])


@dataclass(frozen=True)
class MapGeometry:
    """Optional map. drivable: list of (M_i, 2) polygon exteriors (metres, world frame);
    lanes: list of (M_i, 2) lane polygons; centerlines: list of (M_i, 2) polylines;
    on_route: (len(centerlines),) bool; lane_ids: ids of the centerlines/lanes."""

    drivable: tuple[F64, ...] = ()
    lanes: tuple[F64, ...] = ()
    centerlines: tuple[F64, ...] = ()
    on_route: Bool = field(default_factory=lambda: np.zeros(0, bool))
    lane_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the map has no drivable polygon."""
        return len(self.drivable) == 0

    def validate(self) -> MapGeometry:
        """Polygons need >= 3 finite vertices, polylines >= 2; flags match centerlines."""
        for kind, polys, least in (("drivable", self.drivable, 3), ("lanes", self.lanes, 3),
                                   ("centerlines", self.centerlines, 2)):
            for i, p in enumerate(polys):
                p = np.asarray(p)
                if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < least:
                    raise ShapeError(f"MapGeometry.{kind}[{i}] must be (M>={least}, 2), "
                                     f"got {p.shape}")
                if not np.all(np.isfinite(p)):
                    raise ShapeError(f"MapGeometry.{kind}[{i}] has NaN/inf vertices")
                check_bounds(f"MapGeometry.{kind}[{i}] vertex", p, COORD_MAX_M)
        if self.on_route.shape != (len(self.centerlines),):
            raise ShapeError("MapGeometry.on_route must have one flag per centerline")
        if self.lane_ids and len(self.lane_ids) != len(self.centerlines):
            raise ShapeError("MapGeometry.lane_ids must have one id per centerline")
        return self

    def transformed(self, origin_x: float, origin_y: float, origin_yaw: float) -> MapGeometry:
        """Express in the frame whose origin pose is given."""
        org = np.array([origin_x, origin_y])

        def tf(polys: tuple[F64, ...]) -> tuple[F64, ...]:
            return tuple(to_local(p, np.zeros(len(p)), org, origin_yaw)[0] for p in polys)

        return replace(self, drivable=tf(self.drivable), lanes=tf(self.lanes),
                       centerlines=tf(self.centerlines))


@dataclass(frozen=True)
class Scenario:
    """One clip: the ego track, other agents and the map on one time grid, in a world frame.

    ego: Trajectory (T,) of the ego rear axle (x, y, yaw, vx, vy); ego_length/ego_width in m and
    ego_rear_to_center (m from rear axle to box centre along the heading); agents on the same
    ``t``; dt: step (s); anchors: indices into t where a pair may be anchored; sensors:
    camera name -> (T,) paths relative to the dataset root ('' where missing); meta: source
    metadata (weather, accident info, route ...).
    """

    scenario_id: str
    source: str
    ego: Trajectory
    agents: AgentTracks
    map: MapGeometry
    dt: float
    anchors: tuple[int, ...]
    ego_length: float = 5.176
    ego_width: float = 2.297
    ego_rear_to_center: float = 1.461
    sensors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        """Number of time steps T."""
        return int(self.ego.t.size)

    def ego_box_centre(self) -> tuple[F64, F64]:
        """Centre of the ego box over time: the rear axle moved ego_rear_to_center forward."""
        off = self.ego_rear_to_center
        return (self.ego.x + off * np.cos(self.ego.yaw), self.ego.y + off * np.sin(self.ego.yaw))

    def validate(self) -> Scenario:
        """Check every part and that they share one time grid."""
        self.ego.validate()
        self.agents.validate()
        self.map.validate()
        if self.ego.x.ndim != 1:
            raise ShapeError("Scenario.ego must be a single (T,) trajectory")
        if not np.allclose(self.ego.t, self.agents.t):
            raise ShapeError("Scenario.ego and agents must share the time grid")
        if self.dt <= 0 or (self.n_steps > 1 and not np.allclose(np.diff(self.ego.t), self.dt,
                                                                atol=1e-6)):
            raise ShapeError(f"Scenario.dt={self.dt} does not match the time grid")
        if any(a < 0 or a >= self.n_steps for a in self.anchors):
            raise ShapeError(f"Scenario.anchors {self.anchors} outside 0..{self.n_steps - 1}")
        if self.n_steps > MAX_STEPS:
            raise ShapeError(f"Scenario has {self.n_steps} steps, more than {MAX_STEPS}")
        if not DT_RANGE_S[0] <= self.dt <= DT_RANGE_S[1]:
            raise ShapeError(f"Scenario.dt={self.dt} s outside {DT_RANGE_S}")
        sizes = (self.ego_length, self.ego_width, self.ego_rear_to_center)
        if not all(np.isfinite(sizes)) or min(self.ego_length, self.ego_width) <= 0:
            raise ShapeError("Scenario ego size must be finite and > 0")
        check_bounds("Scenario.ego_length/width/rear_to_center", sizes, EGO_SIZE_MAX_M)
        for cam, paths in self.sensors.items():
            if len(paths) != self.n_steps:
                raise ShapeError(f"Scenario.sensors[{cam!r}] must have one path per step")
        return self

    def in_ego_frame(self, anchor: int) -> Scenario:
        """The whole scenario in the ego rear-axle frame at step ``anchor``, time re-based so
        that t = 0 at the anchor."""
        ox, oy, oyaw = (float(self.ego.x[anchor]), float(self.ego.y[anchor]),
                        float(self.ego.yaw[anchor]))
        t0 = float(self.ego.t[anchor])
        ego = replace(self.ego.to_frame(ox, oy, oyaw), t=self.ego.t - t0)
        agents = replace(self.agents.to_frame(ox, oy, oyaw), t=self.agents.t - t0)
        meta = dict(self.meta, frame_origin=(ox, oy, oyaw), frame_time=t0)
        return replace(self, ego=ego, agents=agents, map=self.map.transformed(ox, oy, oyaw),
                       meta=meta)


__all__ = ["AGENT_CLASSES", "AgentTracks", "MapGeometry", "Scenario", "Trajectory",
           "wrap_angle"]
