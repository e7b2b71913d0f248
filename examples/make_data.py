"""Regenerate examples/data: small synthetic datasets in the real on-disk formats.

    python examples/make_data.py            # writes examples/data (deterministic)

DeepAccident layout (label/calib/meta/split files), OpenScene log pickles with nuPlan-style GPKG
maps, and CARLA recordings (.npz) plus a hand-written OpenDRIVE map. Every scene comes from
cfpair's synthetic source, so these files exercise the real loaders, not real driving.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from cfpair.sources.deepaccident_writer import write_deepaccident, write_split
from cfpair.sources.navsim_writer import write_gpkg, write_log
from cfpair.sources.scenario_io import save_scenario
from cfpair.sources.synthetic import SyntheticSource

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SEED = 2026


def main(out: Path = DATA) -> None:
    """Write the three sample datasets under ``out``."""
    for sub in ("deepaccident", "navsim", "carla"):
        shutil.rmtree(out / sub, ignore_errors=True)
    src = SyntheticSource(n_scenes=12, seed=SEED)
    scenes = [src.load(ref) for ref in src.list("all")]

    entries: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
    for i, s in enumerate(scenes[:4]):
        kind = "accident" if s.meta["logged_future_risky"] else "normal"
        typ = f"type1_subtype1_{kind}"
        name = f"Town04_type001_subtype0001_scenario{i:05d}"
        write_deepaccident(s, out / "deepaccident", typ, name)
        entries["train" if i < 3 else "val"].append((typ, name))
    for split, rows in entries.items():
        write_split(out / "deepaccident", split, rows)

    for s in scenes[:4]:
        loc = f"synthetic-{s.meta['family'].replace('_', '-')}-{s.meta['index']}"
        write_log(s, out / "navsim" / "navsim_logs" / "mini" / f"{s.scenario_id}.pkl",
                  location=loc)
        write_gpkg(s, out / "navsim" / "maps" / loc / "1.0" / "map.gpkg")

    for s in scenes[8:12]:
        rec = replace(s, source="carla", scenario_id=s.scenario_id.replace("synthetic", "carla"))
        save_scenario(rec, out / "carla" / "all" / f"{rec.scenario_id}.npz")
    shutil.copy(HERE.parent / "tests" / "sources" / "data" / "two_roads.xodr",
                out / "carla" / "two_roads.xodr")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
