"""Self-timing of the collision engine on the shared random workload (``cfpair bench-geometry``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from cfpair.geometry.collision import collisions
from cfpair.geometry.workload import make_workload


def run_self_benchmark(k: int, n: int, t: int, seed: int, repeats: int = 50) -> Iterator[str]:
    """Yield report lines: best-of-``repeats`` time of discrete and swept checks."""
    w = make_workload(k, n, t, seed=seed)
    pairs = k * n * t
    yield (f"workload: K={k} candidates x N={n} agents x T={t} steps at {w.dt} s "
           f"({pairs:,} box pairs), seed {seed}")
    for swept in (False, True):
        result = collisions(w.ego, w.agents, swept=swept)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            collisions(w.ego, w.agents, swept=swept)
            best = min(best, time.perf_counter() - t0)
        mode = "swept   " if swept else "discrete"
        yield (f"{mode}: {best * 1e3:8.2f} ms  {k / best:12,.0f} trajectories/s  "
               f"{pairs / best:14,.0f} box pairs/s  ({int(result.any().sum())} of {k} collide)")
