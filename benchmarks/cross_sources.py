"""Evaluation sets from other sources for the ablation: the same policies scored on pairs they
never saw, from other loaders and other data.

- ``navsim-format``: synthetic scenes of their own scene seed (disjoint from the tuning and
  reporting seeds) written as OpenScene log pickles at 2 Hz with nuPlan-style GPKG maps
  (``cfpair.sources.navsim_writer``) and read back by the NAVSIM source: new scenes, a 2 Hz
  log resampled to 0.1 s, maps through the GPKG path. Same scene families as training.
- ``navsim-samples``: the NAVSIM-format sample logs shipped in ``examples/data/navsim`` (a
  handful of pairs: a smoke check, not a measurement).
- ``nuscenes``: the eight real nuScenes-mini scenes in ScenarioNet's layout under
  ``../shared/realdata/scenarionet`` (skipped, and said so, when that folder is absent): real
  logs, real maps, real road users -- the transfer that matters.

Every set is evaluated whole (every split it has; the sample logs have one, ``mini``): no
policy trained on any of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "examples" / "data" / "navsim"
SETS = ("navsim-format", "navsim-samples", "nuscenes")


def realdata_root() -> Path | None:
    """The ScenarioNet folder of ``../shared/realdata`` (None when absent)."""
    for base in (REPO.parent / "shared", REPO.parents[1] / "shared", Path("/work/shared")):
        p = base / "realdata" / "scenarionet"
        if p.is_dir():
            return p
    return None


@dataclass(frozen=True)
class CrossSet:
    """An evaluation set: its name, its pairs folder and what it is."""

    name: str
    folder: Path
    what: str


def write_navsim_format(root: Path, scene_seed: int, n_scenes: int) -> Path:
    """Synthetic scenes of ``scene_seed`` as OpenScene logs + GPKG maps under ``root`` (kept
    when already written)."""
    from cfpair.sources.navsim_writer import write_gpkg, write_log
    from cfpair.sources.synthetic import SyntheticSource

    done = root / "WRITTEN"
    if done.is_file() and done.read_text().strip() == f"{scene_seed} {n_scenes}":
        return root
    src = SyntheticSource(n_scenes=n_scenes, seed=scene_seed)
    for ref in src.list("all"):
        s = src.load(ref)
        loc = f"synthetic-{s.meta['family'].replace('_', '-')}-{s.meta['index']}"
        write_log(s, root / "navsim_logs" / "all" / f"{s.scenario_id}.pkl", location=loc)
        write_gpkg(s, root / "maps" / loc / "1.0" / "map.gpkg")
    done.write_text(f"{scene_seed} {n_scenes}\n")
    return root


def n_scenarios(folder: Path) -> int:
    """Distinct scenarios among the pairs of ``folder``."""
    from cfpair.records.shards import load_records

    return len({r.provenance.scenario_id for r in load_records(folder)})


def input_stats(batch: Any) -> dict[str, Any]:
    """What the policy sees, summarised (to explain a transfer, or its absence): the anchor
    speed, road users in view (of the 8 encoded), the drivable share of the raster, the
    driving commands."""
    from cfpair.train.data import COMMANDS

    n = len(batch)
    if not n:
        return {"n": 0}
    cmd = np.bincount(batch.command, minlength=len(COMMANDS))
    return {"n": n, "speed_mps": float(batch.ego[:, 0].mean()),
            "speed_sd_mps": float(batch.ego[:, 0].std()),
            "road_users_in_view": float(batch.agent_mask.sum(1).mean()),
            "drivable_share": float(batch.raster[:, 0].mean()),
            "commands": {c: int(k) for c, k in zip(COMMANDS, cmd, strict=True)}}


def _generate(out: Path, source: str, root: Path, candidate_seed: int, candidates: int,
              splits: tuple[str, ...] = ()) -> Path:
    from cfpair.config import GenerateConfig
    from cfpair.pipeline import generate

    generate(GenerateConfig(out=str(out), source=source, root=str(root), splits=splits,
                            seed=candidate_seed, n_candidates=candidates, workers=1,
                            shard_size=64))
    return out


def prepare(out: Path, names: list[str], navsim_seed: int, navsim_scenes: int,
            candidate_seed: int, candidates: int) -> tuple[list[CrossSet], list[str]]:
    """The pairs of every requested set under ``out`` (re-used when complete), and a note for
    every set that could not be made here."""
    sets, notes = [], []
    for name in names:
        if name == "navsim-format":
            logs = write_navsim_format(out / "navsim-format-logs", navsim_seed, navsim_scenes)
            folder = _generate(out / name, "navsim", logs, candidate_seed, candidates, ("all",))
            what = (f"{navsim_scenes} synthetic scenes of scene seed {navsim_seed} written as "
                    "2 Hz OpenScene logs + GPKG maps, read by the NAVSIM source")
        elif name == "navsim-samples":
            folder = _generate(out / name, "navsim", SAMPLES, candidate_seed, candidates)
            what = "the NAVSIM-format sample logs of examples/data/navsim"
        elif name == "nuscenes":
            root = realdata_root()
            if root is None:
                notes.append("nuscenes: ../shared/realdata/scenarionet is absent here; not "
                             "evaluated")
                continue
            folder = _generate(out / name, "scenarionet", root, candidate_seed, candidates)
            what = (f"{n_scenarios(folder)} real scenes in ScenarioNet's layout "
                    f"({root.parent.name}/{root.name})")
        else:
            raise SystemExit(f"error: unknown cross-source set {name!r}; expected one of "
                             f"{', '.join(SETS)}")
        sets.append(CrossSet(name, folder, what))
    return sets, notes
