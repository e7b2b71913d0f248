"""End-to-end `cfpair generate` throughput and peak memory on the synthetic source.

Run: ``.venv/bin/python benchmarks/generate.py`` (``--scenes 1000 10000`` by default;
``--quick`` runs 200 and 1000). Each size runs ``cfpair generate`` in a fresh subprocess with
the default 256 candidates per anchor, 2 local workers and the rules labeler, and reports
scenes/s (wall clock, process start included) and the peak resident memory of the largest
process: each size runs under its own wrapper process, whose RUSAGE_CHILDREN ru_maxrss covers
only that run. Flat memory means the 10k peak is close to the 1k peak. The geometry engine's
side-by-side peer comparison is benchmarks/geometry.py; no public tool generates these pairs,
so this script has no end-to-end peer.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def run(scenes: int, workers: int) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB of the largest child process, stdout)."""
    out = Path(tempfile.mkdtemp(prefix=f"cfpair-bench-{scenes}-"))
    cmd = [sys.executable, "-m", "cfpair", "generate", "--out", str(out), "--source-option",
           f"n_scenes={scenes}", "--workers", str(workers), "--shard-size", "64"]
    wrapper = ("import resource, subprocess, sys, time; t0 = time.perf_counter(); "
               f"r = subprocess.run({cmd!r}, capture_output=True, text=True, check=True); "
               "sys.stdout.write(r.stdout); "
               "print('@@', time.perf_counter() - t0, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    res = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                         check=True)
    tag = next(ln for ln in res.stdout.splitlines() if ln.startswith("@@"))
    _, seconds, peak_kib = tag.split()
    return float(seconds), float(peak_kib) / 1024, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [200, 1000] if args.quick else args.scenes
    print(f"{'scenes':>7}{'seconds':>9}{'scenes/s':>10}{'peak MiB':>10}  pairs")
    for n in sizes:
        sec, peak, out = run(n, args.workers)
        pairs = next((ln for ln in out.splitlines() if "pairs written" in ln), "").strip()
        print(f"{n:>7}{sec:>9.1f}{n / sec:>10.1f}{peak:>10.0f}  {pairs}")


if __name__ == "__main__":
    main()
