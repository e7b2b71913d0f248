"""Score a policy's answer against a stored scene the way NAVSIM would: the reward behind the
TRL and verl examples (``examples/``). (The bundled trainer's GRPO uses PDMS minus a collision
penalty instead: ``cfpair.train.grpo``.)

reward = 0.5 * PDMS + 0.5 * safety score of the answer's 8 poses in NAVSIM's view of the
record's scene (NAVSIM's tracker from the anchor's ego state, then NAVSIM v1.1's scorer:
:func:`cfpair.scoring.rescore.score_poses`, the one scoring path): in [0, 1], 0 for an
at-fault collision. An answer with no well-formed trajectory gets FORMAT_FAILURE (-1), below
any trajectory, so a policy learns the format first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from cfpair.export.text import TrajectoryParseError, parse_trajectory
from cfpair.labels.models import Facts, PairRecord
from cfpair.scoring.context import EvalContext
from cfpair.scoring.rescore import context_from_record, score_poses

FORMAT_FAILURE = -1.0
_CACHE: OrderedDict[str, tuple[PairRecord, EvalContext]] = OrderedDict()
_CACHE_SIZE = 256


@dataclass(frozen=True)
class CompletionScore:
    """One answer's reward, and the facts of its trajectory (None when it did not parse)."""

    reward: float
    facts: Facts | None
    error: str | None = None


def reward_of(f: Facts) -> float:
    """The scalar reward of measured facts."""
    return 0.5 * f.pdms + 0.5 * f.safety_score


def completion_text(completion: Any) -> str:
    """The text of a completion in TRL's standard (str) or conversational (messages whose
    content is a str or a list of parts) form: the last assistant turn."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        return str(content or "")
    raise TypeError(f"expected a string or a list of messages, got {type(completion).__name__}")


def scene_of(scene: str | PairRecord) -> tuple[PairRecord, EvalContext]:
    """The record and its scoring context from a ``scene`` JSON column (cached by content)."""
    if isinstance(scene, PairRecord):
        return scene, context_from_record(scene)
    key = hashlib.sha1(scene.encode()).hexdigest()
    hit = _CACHE.get(key)
    if hit is None:
        rec = PairRecord.model_validate_json(scene)
        hit = (rec, context_from_record(rec))
        _CACHE[key] = hit
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return hit


def score_texts(texts: list[str], scene: str | PairRecord) -> list[CompletionScore]:
    """Score several answers in one scene (one batched geometry call)."""
    rec, ctx = scene_of(scene)
    out: list[CompletionScore | None] = [None] * len(texts)
    poses, where = [], []
    for i, text in enumerate(texts):
        try:
            poses.append(parse_trajectory(text))
            where.append(i)
        except TrajectoryParseError as exc:
            out[i] = CompletionScore(FORMAT_FAILURE, None, str(exc))
    if poses:
        for i, f in zip(where, score_poses(rec, np.stack(poses), ctx), strict=True):
            out[i] = CompletionScore(reward_of(f), f)
    return [o for o in out if o is not None]


def score_completions(completions: list[Any], scene: list[str]) -> list[float]:
    """One reward per completion; completions of the same scene are scored together."""
    texts = [completion_text(c) for c in completions]
    rewards = [0.0] * len(texts)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scene):
        groups.setdefault(s, []).append(i)
    for s, idx in groups.items():
        for i, sc in zip(idx, score_texts([texts[i] for i in idx], s), strict=True):
            rewards[i] = sc.reward
    return rewards
