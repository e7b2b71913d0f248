"""End-to-end `cfpair generate` throughput and peak memory on the synthetic source.

Run: ``.venv/bin/python benchmarks/generate.py`` (``--scenes 1000 10000`` by default;
``--quick`` runs 200 and 1000). Each size runs ``cfpair generate`` in a fresh subprocess with
the default 256 candidates per anchor, 2 local workers and the rules labeler, and reports
scenes/s (wall clock, process start included) and the peak resident memory of the largest
process: each size runs under its own wrapper process, whose RUSAGE_CHILDREN ru_maxrss covers
only that run. Flat memory means the 10k peak is close to the 1k peak. The geometry engine's
side-by-side peer comparison is benchmarks/geometry.py; no public tool generates these pairs,
so this script has no end-to-end peer.

A/B against another source tree (e.g. main) in the same run: ``--against TREE`` runs every size
with that tree's ``cfpair`` too (alternating, ``--repeat`` times each, best wall time kept), and
``--cpu N`` measures CPU milliseconds per anchor of ``pipeline.pairs_of`` by stage on N
synthetic scenes, one process per tree, alternating (``time.process_time``: the figure to read
on a shared, loaded machine). Example:
``python benchmarks/generate.py --against ../main --cpu 48 --repeat 3 --scenes 1000``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

#: stage -> (module, names): the function pairs_of calls (the first of the names the tree has,
#: older trees named some differently), timed by wrapping it
STAGES = {"context": ("cfpair.pipeline", "build_context"),
          "candidates": ("cfpair.pipeline", "build_candidates"),
          "scoring": ("cfpair.pipeline", "score_trajectories score_candidates"),
          "  of which tracker": ("cfpair.scoring.views", "navsim_view"),
          "pairing": ("cfpair.pipeline", "make_pair"),
          "record": ("cfpair.pipeline", "build_record")}


def cpu_worker(n_scenes: int, repeat: int) -> None:
    """Print JSON {stage: ms per anchor} (best of ``repeat`` passes) for the cfpair on
    sys.path: ``pairs_of`` over the first anchor of n synthetic scenes, loaded beforehand."""
    import importlib
    import json
    import time
    from collections import defaultdict

    import cfpair.pipeline as P
    from cfpair.config import GenerateConfig

    cfg = GenerateConfig(source_options={"n_scenes": n_scenes})
    src = P._source(cfg)
    refs = [r for spec in P.plan(cfg) for r in spec.refs][:n_scenes]
    scenes = [(src.load(r), r) for r in refs]
    acc: dict[str, float] = defaultdict(float)

    def timed(fn, key):  # noqa: ANN202
        def inner(*a, **k):  # noqa: ANN202
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                acc[key] += time.process_time() - t
        return inner

    for key, (mod, name) in STAGES.items():
        try:
            m = importlib.import_module(mod)
        except ImportError:               # an older tree without that module
            continue
        for alt in name.split():          # a tree with none of the names: stage left out
            if hasattr(m, alt):
                setattr(m, alt, timed(getattr(m, alt), key))
                break
    best: dict[str, float] = {}
    for _ in range(repeat + 1):           # the first pass warms caches
        acc.clear()
        anchors = 0
        t0 = time.process_time()
        for scn, ref in scenes:
            anchors += sum(1 for _ in P.pairs_of(scn, ref, cfg, "h"))
        acc["total"] = time.process_time() - t0
        ms = {k: 1000 * v / anchors for k, v in acc.items()}
        if not best or ms["total"] < best["total"]:
            best = ms
    print(json.dumps(best))


def cpu_ab(trees: dict[str, Path], n_scenes: int, repeat: int) -> None:
    """CPU ms per anchor by stage for each tree, alternating trees ``repeat`` times."""
    import json

    best: dict[str, dict[str, float]] = {}
    for _ in range(repeat):
        for label, tree in trees.items():
            res = subprocess.run([sys.executable, __file__, "--cpu-worker", str(n_scenes)],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(tree),
                                      "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
            ms = json.loads(res.stdout.strip().splitlines()[-1])
            if label not in best or ms["total"] < best[label]["total"]:
                best[label] = ms
    labels = list(trees)
    print(f"CPU ms per anchor, pairs_of, {n_scenes} synthetic scenes (best of {repeat}):")
    print(f"{'stage':<20}" + "".join(f"{lb:>12}" for lb in labels))
    for key in [*STAGES, "total"]:
        print(f"{key:<20}" + "".join(f"{best[lb].get(key, 0.0):>12.2f}" for lb in labels))
    if len(labels) == 2:
        a, b = (best[lb]["total"] for lb in labels)
        print(f"{labels[0]} / {labels[1]} CPU per anchor: {a / b:.3f} "
              f"({labels[0]} is {b / a:.2f}x as fast)")


def run(scenes: int, workers: int, tree: Path = ROOT) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB of the largest child process, stdout) of one generate with the
    cfpair of ``tree``."""
    out = Path(tempfile.mkdtemp(prefix=f"cfpair-bench-{scenes}-"))
    cmd = [sys.executable, "-m", "cfpair", "generate", "--out", str(out), "--source-option",
           f"n_scenes={scenes}", "--workers", str(workers), "--shard-size", "64"]
    wrapper = ("import resource, subprocess, sys, time; t0 = time.perf_counter(); "
               f"r = subprocess.run({cmd!r}, capture_output=True, text=True, check=True); "
               "sys.stdout.write(r.stdout); "
               "print('@@', time.perf_counter() - t0, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    res = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(tree)})
    tag = next(ln for ln in res.stdout.splitlines() if ln.startswith("@@"))
    _, seconds, peak_kib = tag.split()
    return float(seconds), float(peak_kib) / 1024, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--against", type=Path, default=None,
                    help="another source tree (e.g. main's checkout) to run side by side")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tree, alternating")
    ap.add_argument("--cpu", type=int, default=0, metavar="N",
                    help="also CPU ms per anchor by stage on N scenes (one core)")
    ap.add_argument("--cpu-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cpu_worker:
        cpu_worker(args.cpu_worker, 2)
        return
    trees = {"this": ROOT}
    if args.against is not None:
        trees["against"] = args.against.resolve()
    if args.cpu:
        cpu_ab(trees, args.cpu, args.repeat)
    sizes = [200, 1000] if args.quick else args.scenes
    if not sizes:
        return
    print(f"{'tree':>8}{'scenes':>7}{'seconds':>9}{'scenes/s':>10}{'peak MiB':>10}  pairs")
    for n in sizes:
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for label, tree in trees.items():
                sec, peak, out = run(n, args.workers, tree)
                pairs = next((ln for ln in out.splitlines() if "pairs written" in ln), "")
                print(f"{label:>8}{n:>7}{sec:>9.1f}{n / sec:>10.1f}{peak:>10.0f}  "
                      f"{pairs.strip()}", flush=True)
                best[label] = min(best.get(label, np.inf), sec)
        if len(best) == 2:
            print(f"{n} scenes, best wall time: this / against = "
                  f"{best['this'] / best['against']:.3f} "
                  f"(scenes/s ratio {best['against'] / best['this']:.2f})")


if __name__ == "__main__":
    main()
