"""Are two ``cfpair generate`` outputs the same records? Compares data/*.parquet byte for byte
and, where bytes differ, row by row (JSON of each row), and prints the first differences.

Run: ``python benchmarks/same_records.py OLD_OUT NEW_OUT`` (exit 0 when every row is equal).
Used to check that a refactor leaves the default run's records unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq


def rows(path: Path) -> list[str]:
    """Every row of one shard as canonical JSON."""
    return [json.dumps(r, sort_keys=True, default=str) for r in pq.read_table(path).to_pylist()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args()
    old = sorted(p.name for p in (args.old / "data").glob("*.parquet"))
    new = sorted(p.name for p in (args.new / "data").glob("*.parquet"))
    if old != new or not old:
        print(f"shard files differ: {old} vs {new}")
        return 1
    bad = 0
    for name in old:
        a, b = args.old / "data" / name, args.new / "data" / name
        if a.read_bytes() == b.read_bytes():
            print(f"{name}: identical bytes")
            continue
        ra, rb = rows(a), rows(b)
        diff = [i for i, (x, y) in enumerate(zip(ra, rb, strict=False)) if x != y]
        if len(ra) != len(rb) or diff:
            bad += 1
            print(f"{name}: {len(ra)} vs {len(rb)} rows, {len(diff)} differ (first {diff[:5]})")
        else:
            print(f"{name}: bytes differ, all {len(ra)} rows equal")
    print("SAME RECORDS" if not bad else f"{bad} shard(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
