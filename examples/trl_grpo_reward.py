"""A TRL GRPO reward function that scores completions with cfpair's metrics.

Use with an export made by ``cfpair export OUT --format trl-grpo --out grpo/``::

    from datasets import load_dataset
    from trl import GRPOConfig, GRPOTrainer
    from trl_grpo_reward import cfpair_reward

    ds = load_dataset("parquet", data_dir="grpo/data", split="train")
    trainer = GRPOTrainer(model="Qwen/Qwen2.5-VL-3B-Instruct", reward_funcs=cfpair_reward,
                          args=GRPOConfig(output_dir="out"), train_dataset=ds)

TRL calls reward functions with ``prompts``, ``completions`` and every dataset column except
``prompt`` as keyword arguments; this one reads ``scene`` (the stored record as JSON). Each
completion's last ``<trajectory>[(x, y, yaw), ...]</trajectory>`` block is scored in NAVSIM's
view of the scene (NAVSIM's tracker, then its scorer): 0.5 * PDMS + 0.5 * safety score in [0, 1],
-1 when no trajectory parses. Run this file to score the anchors of an export:
``python examples/trl_grpo_reward.py grpo/``.
"""

from __future__ import annotations

import sys
from typing import Any

from cfpair.export.reward import score_completions


def cfpair_reward(completions: list[Any], scene: list[str], **kwargs: Any) -> list[float]:
    """One reward per completion (standard or conversational form)."""
    return score_completions(completions, scene)


def main(export_dir: str) -> None:
    """Score each row's positive and negative anchor as if a policy had written them."""
    from datasets import load_dataset

    from cfpair.export.text import format_trajectory

    ds = load_dataset("parquet", data_dir=f"{export_dir}/data", split="train")
    rows = ds.select(range(min(8, len(ds))))
    for role in ("positive", "negative"):
        comps = [[{"role": "assistant", "content": format_trajectory(p)}]
                 for p in rows[f"{role}_poses"]]
        rewards = cfpair_reward(comps, scene=rows["scene"], prompts=rows["prompt"])
        print(f"{role:8s} anchors: " + " ".join(f"{r:.2f}" for r in rewards))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "grpo")
