"""Collision-check speed: cfpair vs a shapely STRtree loop, vectorised shapely and CommonRoad.

Run: ``.venv/bin/python benchmarks/geometry.py`` (``--quick`` for a short run). Every peer gets
the same random workload (benchmarks/workload.py) and must give the same per-candidate collision
answers; the script prints trajectories/s, box-pair checks/s (K*N*T / time) and ratios.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import shapely

from cfpair.geometry.boxes import box_corners
from cfpair.geometry.collision import collisions
from cfpair.geometry.workload import Workload, make_workload


def polygons(x, y, yaw, length, width) -> np.ndarray:
    """shapely polygons of boxes (the peers need polygons; building them is part of their cost)."""
    return shapely.polygons(box_corners(x, y, yaw, length, width))


def run_cfpair(w: Workload) -> np.ndarray:
    return collisions(w.ego, w.agents).any()


def run_cfpair_swept(w: Workload) -> np.ndarray:
    return collisions(w.ego, w.agents, swept=True).any()


def run_shapely_loop(w: Workload) -> np.ndarray:
    """NAVSIM-style: one STRtree of agent polygons per step; each candidate walks its steps and
    stops at its first hit."""
    k, _, t = w.shape
    ego = polygons(w.ego.x, w.ego.y, w.ego.yaw, w.ego.length, w.ego.width)  # (K, T)
    ag = polygons(w.agents.x, w.agents.y, w.agents.yaw, np.asarray(w.agents.length)[:, None],
                  np.asarray(w.agents.width)[:, None])  # (N, T)
    trees = [shapely.STRtree(ag[:, s]) for s in range(t)]
    out = np.zeros(k, bool)
    for i in range(k):
        for s in range(t):
            if trees[s].query(ego[i, s], predicate="intersects").size:
                out[i] = True
                break
    return out


def run_shapely_vectorised(w: Workload) -> np.ndarray:
    """shapely 2's vectorised intersects over every (K, N, T) box pair."""
    ego = polygons(w.ego.x, w.ego.y, w.ego.yaw, w.ego.length, w.ego.width)[:, None, :]
    ag = polygons(w.agents.x, w.agents.y, w.agents.yaw, np.asarray(w.agents.length)[:, None],
                  np.asarray(w.agents.width)[:, None])[None]
    return shapely.intersects(ego, ag).any(axis=(1, 2))


def run_commonroad(w: Workload) -> np.ndarray:
    """CommonRoad drivability checker (C++): a TimeVariantCollisionObject per candidate and per
    agent, collide() only; building the objects from Python is part of the cost."""
    import commonroad_dc.pycrcc as pycrcc

    k, n, t = w.shape
    ex, ey, eyaw = (np.asarray(a) for a in w.ego[:3])
    ax, ay, ayaw = (np.asarray(a) for a in w.agents[:3])
    alen, awid = np.asarray(w.agents.length), np.asarray(w.agents.width)
    checker = pycrcc.CollisionChecker()
    for j in range(n):
        tv = pycrcc.TimeVariantCollisionObject(0)
        for s in range(t):
            tv.append_obstacle(pycrcc.RectOBB(alen[j] / 2, awid[j] / 2, ayaw[j, s], ax[j, s],
                                              ay[j, s]))
        checker.add_collision_object(tv)
    hl, hw = w.ego.length / 2, w.ego.width / 2
    out = np.zeros(k, bool)
    for i in range(k):
        tv = pycrcc.TimeVariantCollisionObject(0)
        for s in range(t):
            tv.append_obstacle(pycrcc.RectOBB(hl, hw, eyaw[i, s], ex[i, s], ey[i, s]))
        out[i] = checker.collide(tv)
    return out


def best_time(fn: Callable[[Workload], np.ndarray], w: Workload, budget: float
              ) -> tuple[float, np.ndarray]:
    """Least wall time over repeats (at least 3, more while within ``budget`` seconds)."""
    res = fn(w)  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 200):
        t0 = time.perf_counter()
        fn(w)
        times.append(time.perf_counter() - t0)
    return min(times), res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    ap.add_argument("--seed", type=int, default=1, help="workload seed (1: ~half collide)")
    args = ap.parse_args()
    try:
        import commonroad_dc.pycrcc  # noqa: F401
        have_cr = True
    except ImportError:
        have_cr = False
    peers: dict[str, Callable[[Workload], np.ndarray]] = {
        "cfpair": run_cfpair,
        "cfpair swept": run_cfpair_swept,
        "shapely STRtree loop": run_shapely_loop,
        "shapely vectorised": run_shapely_vectorised,
    }
    if have_cr:
        peers["CommonRoad pycrcc"] = run_commonroad
    sizes = [(256, 32, 41), (1000, 12, 20)] if args.quick else [
        (256, 32, 41), (64, 32, 41), (1024, 64, 41), (1000, 12, 20), (4096, 32, 41)]
    budget = 0.5 if args.quick else 2.0
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"shapely {shapely.__version__}, {platform.machine()}")
    for k, n, t in sizes:
        w = make_workload(k, n, t, seed=args.seed)
        pairs = k * n * t
        results = {}
        for name, fn in peers.items():
            if name == "shapely STRtree loop" and k > 1024:
                continue  # minutes per repeat; its rate is flat in K
            secs, ans = best_time(fn, w, budget)
            results[name] = (secs, ans)
        ref = results["cfpair"][1]
        print(f"\nK={k} candidates x N={n} agents x T={t} steps "
              f"({pairs:,} box pairs, {int(ref.sum())} of {k} candidates collide)")
        print(f"{'method':<22}{'ms':>10}{'traj/s':>12}{'pairs/s':>14}{'cfpair is':>12}  agrees")
        base = results["cfpair"][0]
        for name, (secs, ans) in results.items():
            agree = "yes" if name == "cfpair swept" or np.array_equal(ans, ref) else "NO"
            if name == "cfpair swept":
                agree = "superset" if np.all(ans | ~ref) else "NO"
            print(f"{name:<22}{secs * 1e3:>10.2f}{k / secs:>12,.0f}{pairs / secs:>14,.0f}"
                  f"{secs / base:>11.1f}x  {agree}")
            if agree == "NO":
                raise SystemExit(f"{name} disagrees with cfpair")


if __name__ == "__main__":
    main()
