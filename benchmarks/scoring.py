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
from scoring_reference import pdms_reference, simulate_reference  # noqa: E402

from cfpair.scoring.context import EvalContext  # noqa: E402
from cfpair.scoring.navsim_tracker import simulate_poses  # noqa: E402
from cfpair.scoring.pdms import STATIC_CLASSES, score_states  # noqa: E402
from cfpair.scoring.views import initial_state, navsim_view, poses_of  # noqa: E402

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


def synthetic_scenes(n: int, k: int, seed: int = 0) -> list[tuple[EvalContext, np.ndarray]]:
    """(context, K candidate poses (K, 8, 3)) of the first anchor of n synthetic scenes, the
    candidates as generate builds them."""
    from cfpair.counterfactual.candidates import build_candidates
    from cfpair.errors import SceneRejected
    from cfpair.scoring.context import build_context
    from cfpair.sources.synthetic import SyntheticSource

    src = SyntheticSource(n_scenes=n, seed=seed)
    out = []
    for ref in src.list("all"):
        scn = src.load(ref)
        try:
            ctx = build_context(scn, scn.anchors[0])
        except SceneRejected:
            continue
        c = build_candidates(ctx, k, seed)
        out.append((ctx, poses_of(c.x, c.y, c.yaw)))
    return out


def reference_scene(ctx: EvalContext) -> dict:
    """The scene as the per-trajectory scorer reads it: shapely polygons per track and step
    (None where absent), the first-observation speed, map polygons and the route line."""
    import shapely
    from scoring_reference import agent_polygon

    a, valid = ctx.agents_future(observed=True)
    tracks = []
    for j in range(len(ctx.ids)):
        first = int(np.argmax(valid[j]))
        tracks.append({
            "poly": [agent_polygon(a["x"][j, t], a["y"][j, t], a["yaw"][j, t], ctx.length[j],
                                   ctx.width[j]) if valid[j, t] else None
                     for t in range(valid.shape[1])],
            "static": str(ctx.classes[j]) in STATIC_CLASSES,
            "first_speed": float(np.hypot(a["vx"][j, first], a["vy"][j, first]))})
    drivable = None if ctx.drivable is None else list(
        getattr(ctx.drivable.geometry, "geoms", [ctx.drivable.geometry]))
    return {"tracks": tracks, "drivable": drivable, "lanes": list(ctx.lanes),
            "route": shapely.LineString(ctx.route),
            "ego": (ctx.ego_rear_to_center, ctx.ego_length / 2, ctx.ego_width / 2)}


def score_batched(ctx: EvalContext, poses: np.ndarray) -> dict[str, np.ndarray]:
    """NAVSIM's view of K candidates, batched: one tracker call, one scorer call."""
    s = score_states(ctx, navsim_view(ctx, poses))
    return {"nc": s.nc, "dac": s.dac, "ttc": s.ttc, "comfort": s.comfort, "ep": s.ep,
            "pdms": s.pdms}


def score_per_trajectory(ctx: EvalContext, poses: np.ndarray, scene: dict
                         ) -> dict[str, np.ndarray]:
    """The same, one trajectory at a time: the per-trajectory simulator and scorer."""
    init = initial_state(ctx)
    states = np.stack([simulate_reference(p[None], init)[0] for p in poses])
    rows = pdms_reference(states, scene)
    return {k: np.array([r[k] for r in rows]) for k in ("nc", "dac", "ttc", "comfort", "ep",
                                                         "pdms")}


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of trajectories with identical NC, DAC, TTC, C and PDMS within 1e-6."""
    same = {k: float(np.mean((a[k] == b[k]) | (np.isnan(a[k]) & np.isnan(b[k]))))
            for k in ("nc", "dac", "ttc", "comfort")}
    same["pdms"] = float(np.mean(np.abs(a["pdms"] - b["pdms"]) <= 1e-6))
    return same


def bench_scoring(n_scenes: int, k: int, peer_trajectories: int, repeats: int
                  ) -> dict[str, object]:
    """NAVSIM-view scoring (tracker + scorer) of K candidates per synthetic scene, batched vs
    per trajectory on the first ``peer_trajectories`` of each scene (row 0, the expert, is the
    EP reference of both), and their agreement."""
    scenes = synthetic_scenes(n_scenes, k)
    n_traj = sum(len(p) for _, p in scenes)
    wall, cpu = best_time(lambda: [score_batched(c, p) for c, p in scenes], repeats)
    refs = [reference_scene(c) for c, _ in scenes]
    sub = [(c, p[:peer_trajectories], r) for (c, p), r in zip(scenes, refs, strict=True)]
    peer: list[list[dict[str, np.ndarray]]] = []
    p_wall, p_cpu = best_time(lambda: peer.append([score_per_trajectory(*x) for x in sub]), 1)
    n_sub = sum(len(p) for _, p, _ in sub)
    ours = [score_batched(c, p) for c, p, _ in sub]
    cat = {key: np.concatenate([o[key] for o in ours]) for key in ours[0]}
    ref = {key: np.concatenate([o[key] for o in peer[-1]]) for key in ours[0]}
    return {"batched": (n_traj / wall, n_traj / cpu), "peer": (n_sub / p_wall, n_sub / p_cpu),
            "agreement": agreement(cat, ref), "n": n_sub}


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
    n_real = 3 if args.quick else 12
    peer_s = 16 if args.quick else 64
    print(f"\n# NAVSIM-view scoring (tracker + PDMS scorer), K = {args.k} per synthetic scene, "
          f"{n_real} scenes; peer on {peer_s} per scene")
    sc = bench_scoring(n_real, args.k, peer_s, repeats)
    (b_wall, b_cpu), (p_wall, p_cpu) = sc["batched"], sc["peer"]
    print(f"{'scoring':40s} {'traj/s (wall)':>14s} {'traj/s (CPU)':>14s}")
    print(f"{'cfpair batched (views + pdms)':40s} {b_wall:14,.0f} {b_cpu:14,.0f}")
    print(f"{'per-trajectory peer (scoring_reference)':40s} {p_wall:14,.0f} {p_cpu:14,.0f}")
    print(f"{ratio:40s} {b_wall / p_wall:13,.0f}x {b_cpu / p_cpu:13,.0f}x")
    agree = ", ".join(f"{k} {v:.1%}" for k, v in sc["agreement"].items())
    print(f"agreement with the per-trajectory scorer over {sc['n']} trajectories: {agree}")


if __name__ == "__main__":
    main()
