"""Hand-built scenes on a straight two-lane road for exact scoring tests."""

from __future__ import annotations

import numpy as np

from cfpair.types import AgentTracks, MapGeometry, Scenario, Trajectory

T = np.round(np.arange(-20, 51) * 0.1, 10)   # 2 s history, 5 s future (observation), anchor 20
ANCHOR = 20
LANE_W = 3.5


def road_map() -> MapGeometry:
    """x in [-200, 400]; right lane y in [-3.5, 0] (ego), left lane y in [0, 3.5]."""
    right = np.array([[-200, -LANE_W], [400, -LANE_W], [400, 0], [-200, 0]], float)
    left = np.array([[-200, 0], [400, 0], [400, LANE_W], [-200, LANE_W]], float)
    lines = (np.array([[-200, -LANE_W / 2], [400, -LANE_W / 2]]),
             np.array([[400, LANE_W / 2], [-200, LANE_W / 2]]))
    return MapGeometry(drivable=(right, left), lanes=(right, left), centerlines=lines,
                       on_route=np.array([True, False]), lane_ids=("r", "l"))


def track(x0: float, y0: float, vx: float, vy: float = 0.0, accel: float = 0.0,
          yaw: float | None = None) -> dict[str, np.ndarray]:
    """Constant-acceleration straight motion sampled on T (x0 at t = 0); speed floored at 0."""
    t = T
    speed0 = float(np.hypot(vx, vy))
    heading = np.arctan2(vy, vx) if yaw is None else yaw
    sp = np.maximum(speed0 + accel * t, 0.0)
    # distance with the floor at 0 (a stop)
    if accel < 0:
        t_stop = speed0 / -accel
        tt = np.minimum(t, t_stop)
        dist = speed0 * tt + 0.5 * accel * tt**2
    else:
        dist = speed0 * t + 0.5 * accel * t**2
    ux, uy = (np.cos(heading), np.sin(heading))
    return {"x": x0 + dist * ux, "y": y0 + dist * uy, "yaw": np.full(t.size, heading),
            "vx": sp * ux, "vy": sp * uy}


def scene(ego: dict[str, np.ndarray], agents: list[tuple[str, str, dict, float, float]],
          with_map: bool = True, sid: str = "hand") -> Scenario:
    """Scenario from an ego track and (id, class, track, length, width) agents."""
    n = len(agents)
    stack = {k: np.array([a[2][k] for a in agents]).reshape(n, T.size)
             for k in ("x", "y", "yaw", "vx", "vy")}
    ag = AgentTracks(**stack, valid=np.ones((n, T.size), bool), t=T,
                     ids=np.array([a[0] for a in agents], str),
                     classes=np.array([a[1] for a in agents], str),
                     length=np.array([a[3] for a in agents], float),
                     width=np.array([a[4] for a in agents], float))
    return Scenario(scenario_id=sid, source="synthetic", ego=Trajectory(
        **ego, t=T, valid=np.ones(T.size, bool)), agents=ag,
        map=road_map() if with_map else MapGeometry(), dt=0.1, anchors=(ANCHOR,)).validate()
