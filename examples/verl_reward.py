"""A verl custom reward for exports made by ``cfpair export OUT --format verl --out verl/``.

In the verl config::

    custom_reward_function:
      path: examples/verl_reward.py
      name: compute_score

verl passes ``data_source``, the decoded ``solution_str``, ``reward_model.ground_truth`` (a
JSON string holding the scene and the anchors) and ``extra_info``. The score is cfpair's
(see ``cfpair.export.reward``, NAVSIM's view): 0.5 * PDMS + 0.5 * safety score, -1 without a
well-formed trajectory.
"""

from __future__ import annotations

import json
from typing import Any

from cfpair.export.reward import score_texts
from cfpair.labels.models import PairRecord


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: dict[str, Any] | None = None) -> float:
    """The reward of one decoded answer."""
    if data_source != "cfpair":
        raise ValueError(f"this reward scores cfpair rows, got data_source {data_source!r}")
    scene = json.dumps(json.loads(ground_truth)["scene"])
    rec = PairRecord.model_validate_json(scene)
    return score_texts([solution_str], rec)[0].reward
