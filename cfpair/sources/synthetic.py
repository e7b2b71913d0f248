"""Built-in synthetic source: seeded procedural risky scenes, the embedded default.

Families (the situations that produce accidents, as in DeepAccident and NHTSA pre-crash types):
``lead_brake`` (lead vehicle brakes hard), ``cut_in``, ``unprotected_left`` (left turn against
oncoming traffic), ``junction_crossing``, ``pedestrian_dart`` (pedestrian steps out from behind a
parked vehicle) and ``merge``. Right-hand traffic; 0.1 s steps; 2 s of history and 5 s of
future (NAVSIM's observation horizon) around one anchor. ``risky_share`` of the scenes get a
logged ego future that collides or nearly collides (the driver reacts late or not at all); the
rest react in time. Every scene is a pure
function of (seed, index), so any worker regenerates it identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cfpair.errors import ConfigError, DatasetFormatError
from cfpair.geometry.boxes import box_distance
from cfpair.sources.base import ScenarioRef
from cfpair.types import AgentTracks, MapGeometry, Scenario, Trajectory

F64 = NDArray[np.float64]

FAMILIES = ("lead_brake", "cut_in", "unprotected_left", "junction_crossing", "pedestrian_dart",
            "merge")
DT = 0.1
HISTORY_S = 2.0
FUTURE_S = 5.0
LANE_W = 3.5
EGO_LEN, EGO_WID, EGO_REAR_TO_CENTER = 5.176, 2.297, 1.461
SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


def _times() -> F64:
    n = int(round((HISTORY_S + FUTURE_S) / DT)) + 1
    return np.arange(n) * DT - HISTORY_S


def _speed_profile(v0: float, t: F64, events: list[tuple[float, float]]) -> F64:
    """Speed over t (starting at t[0] with v0); events = (start time, acceleration) pairs, each
    acting until the next; speed never drops below 0."""
    acc = np.zeros_like(t)
    for start, a in sorted(events):
        acc[t >= start] = a
    v = v0 + np.concatenate([[0.0], np.cumsum(acc[:-1] * DT)])
    return np.maximum(v, 0.0)


def _distance(v: F64) -> F64:
    return np.concatenate([[0.0], np.cumsum((v[:-1] + v[1:]) / 2 * DT)])


@dataclass(frozen=True)
class _Path:
    """A dense polyline path with cumulative arc length, sampled along by distance."""

    xy: F64

    @property
    def s(self) -> F64:
        d = np.hypot(*np.diff(self.xy, axis=0).T)
        return np.concatenate([[0.0], np.cumsum(d)])

    def at(self, dist: F64) -> tuple[F64, F64, F64]:
        """Position and heading at arc lengths ``dist``. The heading is interpolated between
        vertex tangents (the mean of the adjacent segments' directions), so it turns smoothly
        along a curve instead of in steps at the vertices."""
        s = self.s
        x = np.interp(dist, s, self.xy[:, 0])
        y = np.interp(dist, s, self.xy[:, 1])
        d = np.diff(self.xy, axis=0)
        seg = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        vertex = np.concatenate([seg[:1], (seg[1:] + seg[:-1]) / 2, seg[-1:]])
        return x, y, np.interp(dist, s, vertex)


def _line(p0: tuple[float, float], p1: tuple[float, float], step: float = 0.5) -> F64:
    n = max(int(np.hypot(p1[0] - p0[0], p1[1] - p0[1]) / step), 1) + 1
    return np.linspace(p0, p1, n)


def _arc(centre: tuple[float, float], radius: float, a0: float, a1: float) -> F64:
    n = max(int(abs(a1 - a0) * radius / 0.25), 2)
    a = np.linspace(a0, a1, n)
    return np.stack([centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)], axis=1)


def _join(*parts: F64) -> _Path:
    xy = np.concatenate([p if i == 0 else p[1:] for i, p in enumerate(parts)])
    keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-9])
    return _Path(xy[keep])


def _box(x0: float, y0: float, x1: float, y1: float) -> F64:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


class _Builder:
    """Collects agents for one scene."""

    def __init__(self, t: F64) -> None:
        self.t = t
        self.rows: list[tuple[str, str, float, float, F64, F64, F64]] = []

    def add(self, agent_id: str, cls: str, length: float, width: float, path: _Path,
            s0: float, v: F64) -> None:
        x, y, yaw = path.at(s0 + _distance(v))
        self.rows.append((agent_id, cls, length, width, x, y, yaw))

    def tracks(self) -> AgentTracks:
        if not self.rows:
            return AgentTracks.empty(self.t)
        ids, cls, ln, wd, x, y, yaw = zip(*self.rows, strict=True)
        x, y, yaw = np.stack(x), np.stack(y), np.stack(yaw)
        vx = np.gradient(x, DT, axis=1)
        vy = np.gradient(y, DT, axis=1)
        return AgentTracks(x, y, yaw, vx, vy, np.ones(x.shape, bool), self.t,
                           np.array(ids), np.array(cls), np.array(ln, float), np.array(wd, float))


def _ego(path: _Path, s0: float, v: F64, t: F64) -> Trajectory:
    """Ego rear-axle trajectory that obeys the kinematic bicycle: the rear axle drives along
    the path and the heading is the path's tangent there, so it moves along its heading (no
    side-slip). ``s0`` places the box centre: the rear axle runs ``EGO_REAR_TO_CENTER`` behind
    it along the path, so on straight roads the centre is at arc length s0 + distance; in a
    curve the centre sits on the tangent, a few centimetres outside the path (1.461^2 / 2R:
    0.12 m at the tightest turn's ~9 m radius). Placing the centre on the path instead and
    deriving the rear axle from it made the rear axle slide 11-18 degrees off its heading
    in the left turn."""
    x, y, yaw = path.at(s0 - EGO_REAR_TO_CENTER + _distance(v))
    return Trajectory.from_poses(x, y, yaw, t)


# ---- maps ---------------------------------------------------------------------------------

def _straight_map(lanes_y: list[float], x0: float = -150.0, x1: float = 350.0,
                  extra: list[F64] | None = None) -> MapGeometry:
    half = LANE_W / 2
    lo, hi = min(lanes_y) - half, max(lanes_y) + half
    lanes = tuple(_box(x0, y - half, x1, y + half) for y in lanes_y)
    centre = tuple(np.array([[x0, y], [x1, y]]) for y in lanes_y)
    drivable = (_box(x0, lo, x1, hi), *(extra or []))
    return MapGeometry(drivable=drivable, lanes=lanes, centerlines=centre,
                       on_route=np.array([i == 0 for i in range(len(lanes_y))]),
                       lane_ids=tuple(f"lane_{i}" for i in range(len(lanes_y))))


def _junction_map(jx: float, route: F64) -> MapGeometry:
    """Two-lane road along x crossing a two-lane road along y at x = jx; route = ego centreline."""
    w = LANE_W
    horiz = _box(-150, -w, 350, w)
    vert = _box(jx - w, -150, jx + w, 150)
    lanes = (_box(-150, -w, 350, 0), _box(-150, 0, 350, w), _box(jx, -150, jx + w, 150),
             _box(jx - w, -150, jx, 150))
    cl = (np.array([[-150, -w / 2], [350, -w / 2]]), np.array([[350, w / 2], [-150, w / 2]]),
          np.array([[jx + w / 2, -150], [jx + w / 2, 150]]),
          np.array([[jx - w / 2, 150], [jx - w / 2, -150]]), route)
    return MapGeometry(drivable=(horiz, vert), lanes=lanes, centerlines=cl,
                       on_route=np.array([False, False, False, False, True]),
                       lane_ids=("east", "west", "north", "south", "ego_route"))


# ---- families -----------------------------------------------------------------------------

Family = Callable[[np.random.Generator, bool, F64], tuple[Trajectory, _Builder, MapGeometry,
                                                          dict]]


def _lead_brake(rng: np.random.Generator, risky: bool, t: F64):
    v0 = rng.uniform(10, 20)
    gap = rng.uniform(12, 25)  # centre-to-centre distance at t = 0
    t_brake = rng.uniform(0.0, 1.0)
    decel = rng.uniform(6.0, 8.0)
    lane = _Path(_line((-150, 0), (350, 0)))
    b = _Builder(t)
    b.add("lead", "vehicle", 4.7, 1.9, lane, 150 + gap - v0 * HISTORY_S,
          _speed_profile(v0, t, [(t_brake, -decel)]))
    # logged ego: reacts after a delay with some braking
    react = t_brake + (rng.uniform(1.2, 2.0) if risky else rng.uniform(0.3, 0.6))
    ego_dec = rng.uniform(2.0, 4.0) if risky else rng.uniform(6.5, 8.0)
    ego_v = _speed_profile(v0, t, [(react, -ego_dec)])
    ego = _ego(lane, 150 - v0 * HISTORY_S, ego_v, t)
    _background(rng, b, t, lanes_y=[LANE_W], avoid_x=(100, 250))
    m = _straight_map([0.0, LANE_W, -LANE_W])
    return ego, b, m, {"lead_decel": decel, "brake_time": t_brake}


def _cut_in(rng: np.random.Generator, risky: bool, t: F64):
    v0 = rng.uniform(12, 20)
    side = rng.choice([-1.0, 1.0])
    t_cut = rng.uniform(-0.5, 0.5)
    dur = rng.uniform(1.5, 2.5)
    ahead = rng.uniform(4, 10)
    # cutter: adjacent lane at 92 % of the ego speed, `ahead` metres in front at t = 0, then
    # an S-curve into the ego lane starting at t_cut (x: path starts at x = -150, s = x + 150)
    v_cut = 0.92 * v0
    x_cut = ahead + v_cut * t_cut
    cutter_path = _join(_line((-150, side * LANE_W), (x_cut, side * LANE_W)),
                        _s_curve(x_cut, side * LANE_W, 0.0, v_cut * dur))
    b = _Builder(t)
    b.add("cutter", "vehicle", 4.6, 1.9, cutter_path, 150 + ahead - v_cut * HISTORY_S,
          _speed_profile(v_cut, t, []))
    lane = _Path(_line((-150, 0), (350, 0)))
    react = t_cut + dur * 0.5 + (rng.uniform(0.8, 1.5) if risky else 0.0)
    ego_v = _speed_profile(v0, t, [(react, -(rng.uniform(1.0, 2.0) if risky else 5.0))])
    ego = _ego(lane, 150 - v0 * HISTORY_S, ego_v, t)
    _background(rng, b, t, lanes_y=[-side * LANE_W], avoid_x=(110, 240))
    m = _straight_map([0.0, LANE_W, -LANE_W])
    return ego, b, m, {"side": "left" if side > 0 else "right"}


def _s_curve(x0: float, y0: float, y1: float, length: float) -> F64:
    x = np.linspace(x0, x0 + length, 40)
    u = (x - x0) / length
    y = y0 + (y1 - y0) * (3 * u**2 - 2 * u**3)
    tail = _line((x0 + length, y1), (x0 + length + 300, y1))
    return np.concatenate([np.stack([x, y], 1), tail[1:]])


def _left_turn(start: tuple[float, float], length: float, n: int = 400) -> F64:
    """A 90-degree left turn from ``start`` heading +x, with curvature rising and falling as
    sin^2 over ``length`` metres (zero at both ends, so no steering jump; peak pi / length)."""
    s = np.linspace(0.0, length, n)
    kappa = (np.pi / length) * np.sin(np.pi * s / length) ** 2
    heading = np.concatenate([[0.0], np.cumsum((kappa[1:] + kappa[:-1]) / 2 * np.diff(s))])
    ds = np.diff(s)
    mid = (heading[1:] + heading[:-1]) / 2
    x = start[0] + np.concatenate([[0.0], np.cumsum(np.cos(mid) * ds)])
    y = start[1] + np.concatenate([[0.0], np.cumsum(np.sin(mid) * ds)])
    return np.stack([x, y], 1)


def _unprotected_left(rng: np.random.Generator, risky: bool, t: F64):
    jx = 40.0
    length = rng.uniform(24.0, 30.0)   # turn arc length; peak curvature pi / length
    extent = float(_left_turn((0.0, 0.0), length)[-1, 0])   # = its lateral extent (symmetric)
    x_turn = jx + LANE_W / 2 - extent   # the turn ends heading north in the north-bound lane
    turn = _left_turn((x_turn, -LANE_W / 2), length)
    ego_path = _join(_line((-150, -LANE_W / 2), (x_turn, -LANE_W / 2)), turn,
                     _line(tuple(turn[-1]), (turn[-1, 0], 150)))
    v_turn = rng.uniform(4.5, 6.5)  # lateral acceleration stays below ~4 m/s^2
    # the conflict: where the ego path crosses the centre of the oncoming (west-bound) lane
    cross = int(np.argmax(ego_path.xy[:, 1] >= LANE_W / 2))
    s_conflict, conflict_x = float(ego_path.s[cross]), float(ego_path.xy[cross, 0])
    t_c = rng.uniform(1.2, 2.2) if risky else rng.uniform(2.4, 3.2)
    v_on = rng.uniform(10, 15)
    oncoming = _Path(_line((350, LANE_W / 2), (-150, LANE_W / 2)))
    s_on = (350 - conflict_x) - v_on * (t_c + HISTORY_S)
    b = _Builder(t)
    b.add("oncoming", "vehicle", 4.8, 1.9, oncoming, s_on, _speed_profile(v_on, t, []))
    s0 = s_conflict - v_turn * (t_c + HISTORY_S)
    if risky:
        ego_v = _speed_profile(v_turn, t, [])
    else:  # yields: stops before the oncoming lane, then goes after it passed
        stop_t = rng.uniform(0.0, 0.3)
        ego_v = _speed_profile(v_turn, t, [(stop_t, -v_turn / 1.2), (stop_t + 1.2, 0.0),
                                           (t_c + 0.8, 2.0)])
    ego = _ego(ego_path, s0, ego_v, t)
    m = _junction_map(jx, ego_path.xy)
    return ego, b, m, {"turn_length": length, "conflict_time": t_c}


def _junction_crossing(rng: np.random.Generator, risky: bool, t: F64):
    jx = 40.0
    v = rng.uniform(8, 14)
    t_c = rng.uniform(1.0, 2.5)
    from_south = rng.random() < 0.5
    ego_path = _Path(_line((-150, -LANE_W / 2), (350, -LANE_W / 2)))
    cx = jx + (LANE_W / 2 if from_south else -LANE_W / 2)
    s_conf = cx + 150
    v_cross = rng.uniform(7, 13)
    if from_south:
        cross = _Path(_line((cx, -150), (cx, 150)))
        s_cross = (-LANE_W / 2 + 150) - v_cross * (t_c + HISTORY_S)
    else:
        cross = _Path(_line((cx, 150), (cx, -150)))
        s_cross = (150 + LANE_W / 2) - v_cross * (t_c + HISTORY_S)
    b = _Builder(t)
    b.add("crossing", "vehicle", 4.6, 1.9, cross, s_cross, _speed_profile(v_cross, t, []))
    if risky:
        ego_v = _speed_profile(v, t, [])
    else:
        ego_v = _speed_profile(v, t, [(rng.uniform(-0.5, 0.0), -rng.uniform(4.5, 6.0))])
    ego = _ego(ego_path, s_conf - v * (t_c + HISTORY_S), ego_v, t)
    m = _junction_map(jx, ego_path.xy)
    return ego, b, m, {"crossing_from": "south" if from_south else "north"}


def _pedestrian_dart(rng: np.random.Generator, risky: bool, t: F64):
    v = rng.uniform(8, 13)
    park_x = rng.uniform(15, 30)  # metres ahead of the ego centre at t = 0
    b = _Builder(t)
    parked = _Path(_line((park_x, -LANE_W / 2 - 2.6), (park_x + 1, -LANE_W / 2 - 2.6)))
    b.add("parked", "vehicle", 4.6, 1.9, parked, 0.0, np.zeros_like(t))
    t_step = rng.uniform(-0.5, 0.8)
    ped_x = park_x + 3.2
    walk = _Path(_line((ped_x, -LANE_W / 2 - 4.2), (ped_x, LANE_W * 2)))
    v_ped = rng.uniform(1.3, 2.2)
    ped_v = np.where(t >= t_step, v_ped, 0.0)
    b.add("pedestrian", "pedestrian", 0.6, 0.6, walk, 0.0, ped_v)
    lane = _Path(_line((-150, -LANE_W / 2), (350, -LANE_W / 2)))
    react = t_step + (rng.uniform(1.0, 1.6) if risky else 0.2)
    ego_v = _speed_profile(v, t, [(react, -(rng.uniform(2.0, 3.5) if risky else 7.0))])
    ego = _ego(lane, 150 - v * HISTORY_S, ego_v, t)
    shoulder = _box(-150, -LANE_W - 3.5, 350, -LANE_W)
    m = _straight_map([-LANE_W / 2, LANE_W / 2])
    m = MapGeometry(drivable=m.drivable, lanes=m.lanes + (shoulder,), centerlines=m.centerlines,
                    on_route=m.on_route, lane_ids=m.lane_ids)
    return ego, b, m, {"pedestrian_speed": v_ped}


def _merge(rng: np.random.Generator, risky: bool, t: F64):
    v = rng.uniform(14, 22)
    t_merge = rng.uniform(0.5, 1.5)
    merge_len = v * 2.0
    x_m = v * t_merge  # the ego centre is at x = 0 at t = 0
    ego_path = _join(_line((-150, -LANE_W), (x_m, -LANE_W)), _s_curve(x_m, -LANE_W, 0.0,
                                                                       merge_len))
    b = _Builder(t)
    # main-lane vehicle at the ego's speed, `rel` metres ahead of it: alongside during the merge
    rel = rng.uniform(-2.0, 3.0)
    main = _Path(_line((-150, 0.0), (350, 0.0)))
    b.add("mainline", "vehicle", 4.8, 1.9, main, 150 + rel - v * HISTORY_S,
          _speed_profile(v, t, []))
    if risky:
        ego_v = _speed_profile(v, t, [])
    else:
        ego_v = _speed_profile(v, t, [(t_merge - 1.0, -3.0), (t_merge + 0.5, 0.0)])
    ego = _ego(ego_path, 150 - v * HISTORY_S, ego_v, t)
    ramp = _box(-150, -LANE_W * 1.5, x_m + merge_len, -LANE_W / 2)
    m = _straight_map([0.0, LANE_W], extra=[ramp])
    cl = m.centerlines + (ego_path.xy,)
    m = MapGeometry(drivable=m.drivable, lanes=m.lanes + (ramp,), centerlines=cl,
                    on_route=np.array([False, False, True]),
                    lane_ids=m.lane_ids + ("ramp_route",))
    return ego, b, m, {"merge_time": t_merge}


def _background(rng: np.random.Generator, b: _Builder, t: F64, lanes_y: list[float],
                avoid_x: tuple[float, float]) -> None:
    """A few vehicles in other lanes, away from the conflict, for a realistic agent table."""
    for i in range(int(rng.integers(1, 4))):
        y = float(rng.choice(lanes_y))
        x = float(rng.uniform(-100, 300))
        if avoid_x[0] < x < avoid_x[1]:
            x = avoid_x[1] + 20 + 10 * i
        path = _Path(_line((-150, y), (400, y)))
        b.add(f"bg{i}", "vehicle", rng.uniform(4.2, 5.2), rng.uniform(1.8, 2.0), path, x + 150,
              _speed_profile(rng.uniform(8, 18), t, []))


_FAMILY_FN: dict[str, Family] = {
    "lead_brake": _lead_brake, "cut_in": _cut_in, "unprotected_left": _unprotected_left,
    "junction_crossing": _junction_crossing, "pedestrian_dart": _pedestrian_dart,
    "merge": _merge,
}


class SyntheticSource:
    """Seeded procedural risky scenes. ``n_scenes`` scenes cycle through ``families``; a fixed
    hash of the index assigns each to a split (80/10/10)."""

    name = "synthetic"
    default_splits = ("train", "val", "test")
    needs_root = False

    def splits(self) -> list[str]:
        """The splits every synthetic run has."""
        return [*SPLITS, "all"]

    def __init__(self, n_scenes: int = 120, seed: int = 0, risky_share: float = 0.7,
                 families: tuple[str, ...] = FAMILIES, root: object = None) -> None:
        bad = sorted(set(families) - set(FAMILIES))
        if bad:
            raise ConfigError(f"unknown synthetic families {bad}; expected some of {FAMILIES}")
        if not 0.0 <= risky_share <= 1.0:
            raise ConfigError(f"risky_share must be in [0, 1], got {risky_share}")
        if isinstance(n_scenes, float) and n_scenes.is_integer():
            n_scenes = int(n_scenes)        # -o n_scenes=1e12 reads as a float
        if isinstance(n_scenes, bool) or not isinstance(n_scenes, int) or n_scenes < 1:
            raise ConfigError(f"n_scenes must be a whole number >= 1, got {n_scenes!r}")
        self.n_scenes = n_scenes
        self.seed = seed
        self.risky_share = risky_share
        self.families = tuple(families)
        del root

    def _split_of(self, index: int) -> str:
        u = np.random.default_rng([self.seed, index, 7]).random()
        return next(name for name, (lo, hi) in SPLITS.items() if lo <= u < hi)

    def list(self, split: str) -> list[ScenarioRef]:
        """Refs of the scenes in ``split`` ('train', 'val', 'test' or 'all')."""
        return list(self.iter_refs(split))

    def iter_refs(self, split: str) -> Iterator[ScenarioRef]:
        """The refs of :meth:`list`, one at a time (a huge ``n_scenes`` costs nothing)."""
        if split != "all" and split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected all, {', '.join(SPLITS)}")
        for i in range(self.n_scenes):
            s = self._split_of(i)
            if split in ("all", s):
                fam = self.families[i % len(self.families)]
                yield ScenarioRef("synthetic", f"synthetic-{fam}-{i:06d}", s, "",
                                  (("index", i),))

    def load(self, ref: ScenarioRef) -> Scenario:
        """Generate the scene named by ``ref`` (a pure function of seed and index)."""
        index = ref.hint("index")
        if index is None:
            try:
                index = int(ref.scenario_id.rsplit("-", 1)[1])
            except (IndexError, ValueError):
                raise DatasetFormatError(ref.scenario_id, "not a synthetic scenario id") from None
        return self.generate(int(index))

    def generate(self, index: int) -> Scenario:
        """Scene number ``index``. Parameters are redrawn (deterministically, at most
        ``MAX_DRAWS`` times) until the logged future does what was intended: risky scenes come
        within ``NEAR_MISS_M`` of an agent (or collide), safe ones keep ``SAFE_CLEARANCE_M``."""
        fam = self.families[index % len(self.families)]
        risky = bool(np.random.default_rng([self.seed, index]).random() < self.risky_share)
        t = _times()
        anchor = int(round(HISTORY_S / DT))
        for draw in range(MAX_DRAWS):
            rng = np.random.default_rng([self.seed, index, draw])
            ego, builder, m, params = _FAMILY_FN[fam](rng, risky, t)
            agents = builder.tracks()
            gap = _min_future_gap(ego, agents, anchor)
            met = gap <= NEAR_MISS_M if risky else gap >= SAFE_CLEARANCE_M
            if met:
                break
        meta = {"family": fam, "logged_future_risky": risky, "intent_met": bool(met),
                "min_future_gap_m": round(float(gap), 3), "seed": self.seed, "index": index,
                "draws": draw + 1, "split": self._split_of(index),
                **{k: _plain(v) for k, v in params.items()}}
        return Scenario(f"synthetic-{fam}-{index:06d}", "synthetic", ego, agents, m, DT,
                        anchors=(anchor,), ego_length=EGO_LEN, ego_width=EGO_WID,
                        ego_rear_to_center=EGO_REAR_TO_CENTER, meta=meta).validate()


MAX_DRAWS = 40
NEAR_MISS_M = 0.3
SAFE_CLEARANCE_M = 1.0


def _min_future_gap(ego: Trajectory, agents: AgentTracks, anchor: int) -> float:
    """Least box-to-box distance between the ego and any agent from the anchor on (m)."""
    if agents.n == 0:
        return float("inf")
    yaw = ego.yaw[anchor:]
    cx = ego.x[anchor:] + EGO_REAR_TO_CENTER * np.cos(yaw)
    cy = ego.y[anchor:] + EGO_REAR_TO_CENTER * np.sin(yaw)
    d = box_distance((cx, cy, yaw, EGO_LEN, EGO_WID),
                     (agents.x[:, anchor:], agents.y[:, anchor:], agents.yaw[:, anchor:],
                      agents.length[:, None], agents.width[:, None]))
    return float(np.min(np.where(agents.valid[:, anchor:], d, np.inf)))


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v
