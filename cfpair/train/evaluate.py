"""Evaluation on held-out scenes: the policy's mean waypoints driven in each stored scene and
scored by one swappable scoring view (NAVSIM's view: the 8 poses re-simulated by NAVSIM's
tracker and scored by NAVSIM v1.1's rules, :mod:`cfpair.scoring.views`), the risk head, and the
structured failure / corrective statement scored by exact match, each accuracy beside the
accuracy of a majority-class baseline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from cfpair.errors import ConfigError
from cfpair.train.data import ACTIONS, AGENT_CLASSES, HAZARDS, Batch, statement
from cfpair.train.model import TinyVLA, inputs
from cfpair.train.scoring import Scorer


class DrivingScore(NamedTuple):
    """What a scoring view says about one driven trajectory."""

    collides: bool
    pdms: float


#: a scoring view: (scene index, waypoints (8, 2)) -> DrivingScore
ScoreFn = Callable[[int, np.ndarray], DrivingScore]


def navsim_view(scorer: Scorer) -> ScoreFn:
    """NAVSIM's view of the driven poses: any collision, PDMS (``cfpair.train.scoring``)."""
    def score(i: int, waypoints: np.ndarray) -> DrivingScore:
        f = scorer.facts(i, waypoints[None])[0]
        return DrivingScore(bool(f.collides), float(f.pdms))
    return score


#: scoring views by name (another view registers here with the same signature)
SCORING: dict[str, Callable[[Scorer], ScoreFn]] = {"navsim": navsim_view}


@dataclass(frozen=True)
class Majority:
    """The constant predictions of the majority-class baseline, taken from the training set."""

    risk: float     # 0.0 or 1.0
    statement: str

    @classmethod
    def of(cls, data: Batch) -> Majority:
        """The most frequent risk class and statement of ``data`` (ties: the first seen)."""
        risk = float(np.mean(data.risk) > 0.5) if len(data) else 0.0
        stated = statements_of(data)[data.labeled] if len(data) else np.array([])
        top = Counter(stated.tolist()).most_common(1)
        return cls(risk, top[0][0] if top else statement("none", "none", ACTIONS[0]))


@dataclass(frozen=True)
class Metrics:
    """collision_rate: share of scenes whose driven trajectory collides (any collision);
    pdms: mean PDMS-style score; l2_m: mean waypoint distance to the expert (metres);
    risk_acc: risk head vs "the logged continuation is risky", risk_majority: the same for
    the training set's majority class; lang_acc: exact match of the stated "hazard; critical
    agent; action" line with the label's (labeled scenes), lang_majority: the training set's
    most frequent statement; hazard_acc, agent_acc, action_acc: each part alone; n: scenes,
    n_labeled: scenes with a label."""

    collision_rate: float
    pdms: float
    l2_m: float
    risk_acc: float
    risk_majority: float
    lang_acc: float
    lang_majority: float
    hazard_acc: float
    agent_acc: float
    action_acc: float
    n: int
    n_labeled: int

    def as_dict(self) -> dict[str, float]:
        """Plain dict."""
        return asdict(self)


def statements_of(data: Batch) -> np.ndarray:
    """The label statement of every row (object array of str)."""
    return np.array([statement(HAZARDS[h], AGENT_CLASSES[a], ACTIONS[c]) for h, a, c in
                     zip(data.hazard, data.agent_cls, data.action, strict=True)], object)


def exact_match(predicted: list[str] | np.ndarray, target: list[str] | np.ndarray) -> float:
    """Share of predicted strings equal to their target, character for character (nan when
    there is nothing to score)."""
    p, t = list(predicted), list(target)
    if len(p) != len(t):
        raise ConfigError(f"{len(p)} predictions for {len(t)} targets")
    return float(np.mean([a == b for a, b in zip(p, t, strict=True)])) if t else float("nan")


@torch.no_grad()
def predict(model: TinyVLA, data: Batch, device: torch.device) -> dict[str, np.ndarray]:
    """Mean waypoints, risk probability and the stated line (with its parts) of every scene."""
    model.eval()
    out = model(inputs(data, device))
    h, a, c = (out[k].argmax(-1).cpu().numpy() for k in ("hazard", "agent_cls", "action"))
    return {"waypoints": out["mean"].cpu().numpy(),
            "risk": torch.sigmoid(out["risk"]).cpu().numpy(),
            "hazard": h, "agent_cls": a, "action": c,
            "statement": np.array([statement(HAZARDS[i], AGENT_CLASSES[j], ACTIONS[k])
                                   for i, j, k in zip(h, a, c, strict=True)], object)}


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def drive(waypoints: np.ndarray, data: Batch, scorer: Scorer, scoring: str = "navsim"
          ) -> tuple[float, float, float]:
    """Collision rate, mean PDMS and mean L2 to the expert (m) of waypoints (N, 8, 2) driven
    in the N scenes of ``data`` by the view ``scoring``."""
    if scoring not in SCORING:
        raise ConfigError(f"unknown scoring view {scoring!r}; expected one of "
                          f"{', '.join(SCORING)}")
    score = SCORING[scoring](scorer)
    driven = [score(i, waypoints[i]) for i in range(len(data))]
    return (_mean(np.array([d.collides for d in driven])),
            _mean(np.array([d.pdms for d in driven])),
            float(np.linalg.norm(waypoints - data.expert, axis=-1).mean()) if len(data)
            else float("nan"))


def constant_velocity(data: Batch) -> np.ndarray:
    """The constant-velocity baseline's waypoints (N, 8, 2): straight ahead at the anchor
    speed, at 0.5 s .. 4 s."""
    t = 0.5 * np.arange(1, 9)
    wp = np.zeros((len(data), 8, 2))
    wp[..., 0] = data.ego[:, :1] * t
    return wp


def references(data: Batch, scorer: Scorer, scoring: str = "navsim"
               ) -> dict[str, dict[str, float]]:
    """Driving metrics of three non-learned references on ``data``: the positives (what SFT
    imitates: the ceiling of imitation), the logged expert (L2 0 by definition; how risky the
    logged futures are) and the constant-velocity baseline."""
    out = {}
    for name, wp in (("positive (SFT target)", data.positive.astype(np.float64)),
                     ("logged expert", data.expert.astype(np.float64)),
                     ("constant velocity", constant_velocity(data))):
        c, p, l2 = drive(wp, data, scorer, scoring)
        out[name] = {"collision_rate": c, "pdms": p, "l2_m": l2}
    return out


def evaluate(model: TinyVLA, data: Batch, scorer: Scorer, device: torch.device,
             majority: Majority | None = None, scoring: str = "navsim") -> Metrics:
    """Metrics of the policy on ``data`` (``scorer`` holds the same records in order), driven
    and scored by the view ``scoring``; ``majority`` is the training set's baseline (default:
    the evaluated set's own majority, an optimistic baseline)."""
    p = predict(model, data, device)
    collision, pdms, l2 = drive(p["waypoints"], data, scorer, scoring)
    maj = majority or Majority.of(data)
    lab = data.labeled
    target = statements_of(data)[lab]
    truth = data.risk > 0.5
    return Metrics(
        collision_rate=collision, pdms=pdms, l2_m=l2,
        risk_acc=_mean((p["risk"] > 0.5) == truth),
        risk_majority=_mean(truth == (maj.risk > 0.5)),
        lang_acc=exact_match(p["statement"][lab], target),
        lang_majority=exact_match([maj.statement] * len(target), target),
        hazard_acc=_mean(p["hazard"][lab] == data.hazard[lab]),
        agent_acc=_mean(p["agent_cls"][lab] == data.agent_cls[lab]),
        action_acc=_mean(p["action"][lab] == data.action[lab]),
        n=len(data), n_labeled=int(lab.sum()))
