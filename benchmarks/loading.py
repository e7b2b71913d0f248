"""Scene loading speed and peak memory per source on examples/data.

Run: ``.venv/bin/python benchmarks/loading.py`` (``--repeat N`` passes per source).

For every source the script loads every scene of the sample split into a validated Scenario,
from a cold start each pass (per-process log/map caches cleared), and reports scenes/s and the
peak of Python-tracked memory (tracemalloc; numpy buffers included). The side-by-side peer is the
**raw read floor**: reading the same files without building scenes (DeepAccident: the text
label/meta files split into tokens and the calib pickles unpickled; NAVSIM: the log pickles
unpickled and the GPKG layers the loader uses read with pyogrio; CARLA: the .npz arrays read).
The ratio says how much work the conversion adds on top of merely reading the bytes.
"""

from __future__ import annotations

import argparse
import pickle
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cfpair.sources import navsim, nuplan_map
from cfpair.sources.base import Rejected, get_source, load_all

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
CASES = (("deepaccident", DATA / "deepaccident", "train"),
         ("navsim", DATA / "navsim", "mini"),
         ("carla", DATA / "carla", "all"))


def clear_caches() -> None:
    navsim._read_log_cached.cache_clear()
    nuplan_map.load_map.cache_clear()


def load_scenes(name: str, root: Path, split: str) -> int:
    clear_caches()
    out = list(load_all(get_source(name, root), split))
    bad = [o for o in out if isinstance(o, Rejected)]
    if bad:
        raise SystemExit(f"{name}: rejected {bad}")
    return len(out)


def raw_floor(name: str, root: Path, split: str) -> int:
    if name == "deepaccident":
        for p in sorted(root.rglob("*.txt")):
            [line.split() for line in p.read_text().splitlines()]
        for p in sorted(root.rglob("*.pkl")):
            pickle.loads(p.read_bytes())
    elif name == "navsim":
        from pyogrio import raw
        for p in sorted((root / "navsim_logs" / split).glob("*.pkl")):
            pickle.loads(p.read_bytes())
        for p in sorted(root.rglob("map.gpkg")):
            for layer in ("meta", *nuplan_map.DRIVABLE_LAYERS, *nuplan_map.LANE_LAYERS,
                          "baseline_paths"):
                try:
                    raw.read(p, layer=layer)
                except Exception:  # noqa: BLE001 - optional layers may be absent
                    pass
    else:
        for p in sorted((root / split).glob("*.npz")):
            with np.load(p) as z:
                [z[k] for k in z.files]
    return 0


def measure(fn: Callable[[], int], repeat: int) -> tuple[float, int, float]:
    """Best wall time over ``repeat`` passes, its result, and the peak traced memory (MiB)."""
    best, result = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, result, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'source':<13}{'scenes':>7}{'scenes/s':>10}{'peak MiB':>10}"
          f"{'raw-read s':>12}{'load/raw':>10}")
    for name, root, split in CASES:
        t, n, peak = measure(lambda n=name, r=root, s=split: load_scenes(n, r, s), args.repeat)
        raw, _, _ = measure(lambda n=name, r=root, s=split: raw_floor(n, r, s), args.repeat)
        print(f"{name:<13}{n:>7}{n / t:>10.1f}{peak:>10.1f}{raw:>12.4f}{t / raw:>9.1f}x")


if __name__ == "__main__":
    main()
