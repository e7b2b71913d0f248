"""NAVSIM-view scoring speed: cfpair's batched NAVSIM v1.1 simulator vs a per-trajectory peer.

Run: ``.venv/bin/python benchmarks/scoring.py`` (``--quick`` for a short run). One core: the
BLAS/OpenMP thread counts are pinned to 1 before numpy loads. Each scene has K = 256 candidate
trajectories of 8 poses (float32, as NAVSIM stores them) and its own initial ego state in global
coordinates up to 1e5 m; cfpair simulates a scene's K candidates in one batched call
(``cfpair.scoring.navsim_tracker.simulate_poses``), the peer (``scoring_reference.py``) one
candidate and one step at a time. Both must agree to 1e-9 on every state; the script prints
trajectories/s and the ratio, from the best of the repeats by wall clock and by this process's
CPU time (on a shared, oversubscribed machine the CPU-time figure is the one-core figure; the
load average is printed alongside).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core; importing this module (tests do) changes nothing
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scoring_reference import simulate_reference  # noqa: E402

from cfpair.scoring.navsim_tracker import simulate_poses  # noqa: E402

POSE_T = np.arange(1, 9) * 0.5


def make_scene(rng: np.random.Generator, k: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """K candidate pose sequences (float32) and one initial state: a mix of cruising, braking
    to a stop, turning, lane changes, standing still and noisy samples around them."""
    v0 = rng.uniform(0.0, 20.0)
    init = np.zeros(11)
    init[:3] = rng.uniform(-1e5, 1e5), rng.uniform(-1e5, 1e5), rng.uniform(-np.pi, np.pi)
    init[3:7] = v0, rng.normal(0, 0.2), rng.uniform(-3, 2), rng.normal(0, 0.3)
    accel = rng.uniform(-8.0, 3.0, (k, 1))
    speed = np.clip(v0 + rng.normal(0, 2.0, (k, 1)), 0, None)
    dist = speed * POSE_T + 0.5 * accel * POSE_T**2
    stop_t = np.where(accel < 0, -speed / np.minimum(accel, -1e-9), np.inf)
    t_stop = np.minimum(POSE_T, stop_t)
    dist = np.where(POSE_T > stop_t, speed * t_stop + 0.5 * accel * t_stop**2, dist)
    yaw = rng.uniform(-0.35, 0.35, (k, 1)) * (rng.random((k, 1)) < 0.5)
    heading = yaw * POSE_T + rng.normal(0, 0.01, (k, 8))
    step = np.diff(np.concatenate([np.zeros((k, 1)), np.maximum.accumulate(dist, 1)], 1), axis=1)
    x = np.cumsum(step * np.cos(heading), 1)
    y = np.cumsum(step * np.sin(heading), 1)
    lane = rng.uniform(-3.5, 3.5, (k, 1)) * (rng.random((k, 1)) < 0.25)
    y = y + lane * np.clip(POSE_T / 3.0, 0, 1) ** 2
    poses = np.stack([x, y, heading], -1) + rng.normal(0, 0.05, (k, 8, 3)) * [1, 1, 0.2]
    poses[rng.random(k) < 0.05] = 0.0  # standing still
    return poses.astype(np.float32), init


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``repeats`` calls (after one warm-up call)."""
    fn()  # warm caches (cached matrices, imports)
    wall = cpu = np.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def max_state_diff(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    d[..., 2] = np.abs(np.angle(np.exp(1j * (a[..., 2] - b[..., 2]))))
    return float(d.max())


def bench_simulator(scenes: list[tuple[np.ndarray, np.ndarray]], peer_trajectories: int,
                    repeats: int) -> dict[str, tuple[float, float] | float]:
    """Trajectories/s (wall, CPU) of the batched simulator over all scenes and of the peer on
    the first scene's first ``peer_trajectories`` candidates, and their largest difference."""
    n_traj = sum(len(p) for p, _ in scenes)
    wall, cpu = best_time(lambda: [simulate_poses(p, s) for p, s in scenes], repeats)
    poses, init = scenes[0]
    sub = poses[:peer_trajectories]
    peer_out: list[np.ndarray] = []
    p_wall, p_cpu = best_time(lambda: peer_out.append(simulate_reference(sub, init)),
                              max(1, repeats // 3))
    diff = max_state_diff(simulate_poses(sub, init), peer_out[-1])
    return {"batched": (n_traj / wall, n_traj / cpu), "peer": (len(sub) / p_wall, len(sub) / p_cpu),
            "max_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer scenes and peer trajectories")
    ap.add_argument("--k", type=int, default=256, help="candidates per scene")
    ap.add_argument("--scenes", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n_scenes = args.scenes or (4 if args.quick else 20)
    repeats = args.repeats or (3 if args.quick else 7)
    peer_n = min(args.k, 32 if args.quick else 256)
    rng = np.random.default_rng(args.seed)
    scenes = [make_scene(rng, args.k) for _ in range(n_scenes)]
    print(f"# NAVSIM v1.1 tracking simulator, K = {args.k} per scene, {n_scenes} scenes, 1 thread")
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# load average {load:.1f} on {os.cpu_count()} CPUs")
    r = bench_simulator(scenes, peer_n, repeats)
    (b_wall, b_cpu), (p_wall, p_cpu) = r["batched"], r["peer"]
    print(f"{'simulator':40s} {'traj/s (wall)':>14s} {'traj/s (CPU)':>14s}")
    print(f"{'cfpair batched (simulate_poses)':40s} {b_wall:14,.0f} {b_cpu:14,.0f}")
    print(f"{'per-trajectory peer (scoring_reference)':40s} {p_wall:14,.0f} {p_cpu:14,.0f}")
    ratio = "ratio batched / per-trajectory"
    print(f"{ratio:40s} {b_wall / p_wall:13,.0f}x {b_cpu / p_cpu:13,.0f}x")
    print(f"max |state difference| over {peer_n} trajectories x 41 x 11: {r['max_diff']:.2e}")
    if not r["max_diff"] <= 1e-9:
        raise SystemExit(f"batched and per-trajectory simulators disagree: {r['max_diff']:.3e}")


if __name__ == "__main__":
    main()
