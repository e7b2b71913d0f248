"""Scene loading speed and peak memory per source on examples/data (and real data).

Run: ``.venv/bin/python benchmarks/loading.py`` (``--repeat N`` passes per source; ``--towns``
adds the CARLA OpenDRIVE towns of ``--realdata``).

For every source the script loads every scene of the sample split into a validated Scenario,
from a cold start each pass (per-process log/map caches cleared), and reports scenes/s and the
peak of Python-tracked memory (tracemalloc; numpy buffers included). The side-by-side peer is the
**raw read floor**: reading the same files without building scenes (DeepAccident: the text
label/meta files split into tokens and the calib pickles unpickled; NAVSIM: the log pickles
unpickled and the GPKG layers the loader uses read with pyogrio; CARLA: the .npz arrays read;
ScenarioNet: plain ``pickle.load`` of the same summary/mapping and scenario files). The ratio
says how much work the conversion adds on top of merely reading the bytes. ScenarioNet runs on
writer-made fixtures (nuScenes and Waymo styles, made fresh in a temporary folder) and, when
``--realdata`` holds ``scenarionet/``, on the real nuScenes scenes there.

``--towns``: per OpenDRIVE file, ``load_xodr`` (libcarla in a child interpreter, as cfpair runs
it), the same parse in this process, and ``carla.Map`` alone (the floor); a map that crashes
libcarla is reported with the time until its DatasetFormatError.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def scenarionet_fixtures(folder: Path, n: int = 8) -> Path:
    """``n`` synthetic scenes in ScenarioNet's layout: half nuScenes-style with a summary,
    half Waymo-style with a mapping only."""
    from cfpair.sources.scenarionet_writer import description, write_index, write_scenario
    from cfpair.sources.synthetic import SyntheticSource

    src = SyntheticSource(n_scenes=n, seed=3)
    for i, ref in enumerate(src.list("all")):
        style = "nuscenes" if i % 2 == 0 else "waymo"
        write_scenario(description(src.load(ref), style, f"{style}-{i:03d}"), folder / style)
    write_index(folder / "nuscenes", sorted((folder / "nuscenes").glob("sd_*.pkl")),
                mapping=False)
    write_index(folder / "waymo", sorted((folder / "waymo").glob("sd_*.pkl")), summary=False)
    return folder


def raw_floor(name: str, root: Path, split: str) -> int:
    if name == "scenarionet":
        for p in sorted(root.rglob("*.pkl")):
            with open(p, "rb") as fh:
                pickle.load(fh)
    elif name == "deepaccident":
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


def towns(folder: Path, repeat: int) -> None:
    """Per-town load times (see the module docstring)."""
    from cfpair.errors import DatasetFormatError
    from cfpair.sources.carla import load_xodr, parse_xodr_here

    print(f"\n{'town':<48}{'lanes':>6}{'load_xodr s':>13}{'in-process s':>14}"
          f"{'carla.Map s':>13}")
    for path in sorted(folder.rglob("*.xodr")):
        name = str(path.relative_to(folder))
        try:
            t, gmap = measure_once(lambda p=path: load_xodr(p), repeat)
        except DatasetFormatError as exc:
            t0 = time.perf_counter()
            try:
                load_xodr(path)
            except DatasetFormatError:
                pass
            print(f"{name:<48}{'-':>6}{time.perf_counter() - t0:>13.2f}  "
                  f"-> {exc.reason.split(';')[0]}")
            continue
        text = path.read_text()
        inproc, _ = measure_once(lambda x=text: parse_xodr_here(x), repeat)
        code = ("import carla, sys, time; x = open(sys.argv[1]).read(); t = time.perf_counter();"
                " carla.Map('m', x); print(time.perf_counter() - t)")
        floor = min(float(subprocess.run([sys.executable, "-c", code, str(path)],
                                         capture_output=True, text=True, check=True
                                         ).stdout.split()[-1]) for _ in range(repeat))
        print(f"{name:<48}{len(gmap.lanes):>6}{t:>13.2f}{inproc:>14.2f}{floor:>13.2f}")


def measure_once(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``fn`` over ``repeat`` calls and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--realdata", type=Path, default=next(
        (p for p in (DATA.parents[2] / "shared" / "realdata", DATA.parents[3] / "shared"
                     / "realdata") if p.is_dir()), DATA.parents[2] / "shared" / "realdata"),
                    help="folder with scenarionet/ and carla-towns/ (skipped when absent)")
    ap.add_argument("--towns", action="store_true", help="also time the CARLA towns")
    args = ap.parse_args()
    print(f"{'source':<24}{'scenes':>7}{'scenes/s':>10}{'peak MiB':>10}"
          f"{'raw-read s':>12}{'load/raw':>10}")
    with tempfile.TemporaryDirectory(prefix="cfpair-bench-") as tmp:
        cases = [(name, name, root, split) for name, root, split in CASES]
        cases.append(("scenarionet (fixtures)", "scenarionet",
                      scenarionet_fixtures(Path(tmp)), "all"))
        if (args.realdata / "scenarionet").is_dir():
            cases.append(("scenarionet (nuScenes)", "scenarionet",
                          args.realdata / "scenarionet", "all"))
        for label, name, root, split in cases:
            t, n, peak = measure(lambda n=name, r=root, s=split: load_scenes(n, r, s),
                                 args.repeat)
            raw, _, _ = measure(lambda n=name, r=root, s=split: raw_floor(n, r, s),
                                args.repeat)
            print(f"{label:<24}{n:>7}{n / t:>10.1f}{peak:>10.1f}{raw:>12.4f}{t / raw:>9.1f}x")
    if args.towns and (args.realdata / "carla-towns").is_dir():
        towns(args.realdata / "carla-towns", max(1, min(args.repeat, 3)))


if __name__ == "__main__":
    main()
