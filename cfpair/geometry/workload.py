"""Random K x N x T collision workload shared by the benchmark, the tests and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfpair.geometry.collision import BoxSeq

EGO_LENGTH, EGO_WIDTH = 4.508, 1.61  # the car of the CommonRoad tutorial


@dataclass(frozen=True)
class Workload:
    """K ego candidates x N agents x T steps at dt seconds."""

    ego: BoxSeq
    agents: BoxSeq
    dt: float

    @property
    def shape(self) -> tuple[int, int, int]:
        k, t = np.shape(self.ego.x)
        return k, int(np.shape(self.agents.x)[0]), t


def make_workload(k: int = 256, n: int = 32, t: int = 41, dt: float = 0.1, seed: int = 0
                  ) -> Workload:
    """Ego candidates fan out from the origin (speeds 5-25 m/s, curvature +-0.01 1/m); agents
    start 15-90 m ahead at 3-25 m lateral offset and drive at 0-15 m/s mostly with the ego's
    flow (a quarter in random directions), so a realistic share (roughly 40-60 %) of
    candidates collide."""
    rng = np.random.default_rng(seed)
    time = np.arange(t) * dt
    speed = rng.uniform(5.0, 25.0, k)[:, None]
    curv = rng.uniform(-0.01, 0.01, k)[:, None]
    yaw = curv * speed * time[None, :]
    s = speed * time[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ex = np.where(np.abs(curv) > 1e-9, np.sin(yaw) / curv, s)
        ey = np.where(np.abs(curv) > 1e-9, (1 - np.cos(yaw)) / curv, 0.0)
    ax0 = rng.uniform(15.0, 90.0, n)
    ay0 = rng.uniform(3.0, 25.0, n) * rng.choice([-1.0, 1.0], n)
    # most agents drive with the ego's flow, a quarter in random directions
    heading = rng.normal(0.0, 0.1, n)
    crossing = rng.random(n) < 0.25
    heading[crossing] = rng.uniform(-np.pi, np.pi, int(crossing.sum()))
    aspeed = rng.uniform(0.0, 15.0, n)
    ax = ax0[:, None] + aspeed[:, None] * np.cos(heading)[:, None] * time[None, :]
    ay = ay0[:, None] + aspeed[:, None] * np.sin(heading)[:, None] * time[None, :]
    ayaw = np.broadcast_to(heading[:, None], ax.shape).copy()
    alen = rng.uniform(3.8, 5.2, n)
    awid = rng.uniform(1.6, 2.1, n)
    ego = BoxSeq(ex, ey, yaw, EGO_LENGTH, EGO_WIDTH)
    return Workload(ego, BoxSeq(ax, ay, ayaw, alen, awid), dt)
