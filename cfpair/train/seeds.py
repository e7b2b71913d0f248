"""The named scene seeds of the trainer benchmark: which synthetic scenes are reported, which
are for tuning, and a note when a folder made from a reported seed is trained on directly."""

from __future__ import annotations

import json
from pathlib import Path

#: scene seeds (``cfpair generate --source-option seed=N``) of the reported ablation
REPORT_SEEDS = (5, 6, 7)
#: scene seed of the NAVSIM-format cross-source set (reported too)
NAVSIM_FORMAT_SEED = 9
#: scene seeds reserved for trying settings (``benchmarks/ablation.py --mode tune``)
TUNE_SEEDS = (100, 101, 102)
#: scene seeds the trainer's settings were tuned on before the tuning seeds were reserved
#: (scene seed 0, the generator's default, in the first ablation): never reported either
TUNED_ON = (0,)


def scene_seed(out: str | Path) -> int | None:
    """The synthetic scene seed an output folder was generated from (None when the folder is
    not synthetic or its manifest does not say)."""
    try:
        cfg = json.loads((Path(out) / "manifest.json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(cfg, dict) or cfg.get("source") != "synthetic":
        return None
    seed = (cfg.get("source_options") or {}).get("seed", 0)
    return seed if isinstance(seed, int) else None


def reported_seed_note(out: str | Path) -> str | None:
    """A note when ``out`` holds scenes of a reported seed: trying settings there would tune on
    the reported result (None otherwise)."""
    seed = scene_seed(out)
    if seed not in (*REPORT_SEEDS, NAVSIM_FORMAT_SEED):
        return None
    return (f"note: scene seed {seed} is a reported seed of benchmarks/ablation.py "
            f"({', '.join(map(str, REPORT_SEEDS))}; {NAVSIM_FORMAT_SEED} for the NAVSIM-format "
            f"set): compare settings on scene seeds {', '.join(map(str, TUNE_SEEDS))} "
            f"(--mode tune), not here")
