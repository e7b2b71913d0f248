"""Evaluation on held-out scenes: the policy's mean waypoints driven in each stored scene and
scored by cfpair's geometry, plus the risk and hazard heads."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from cfpair.train.data import Batch
from cfpair.train.model import TinyVLA, inputs
from cfpair.train.scoring import Scorer


@dataclass(frozen=True)
class Metrics:
    """collision_rate: share of scenes whose driven trajectory collides (any collision);
    pdms: mean PDMS-style score; l2_m: mean waypoint distance to the expert (metres);
    risk_acc: risk head vs "the logged continuation is risky"; label_acc: hazard head vs the
    label's hazard type; n: scenes."""

    collision_rate: float
    pdms: float
    l2_m: float
    risk_acc: float
    label_acc: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """Plain dict."""
        return asdict(self)


@torch.no_grad()
def predict(model: TinyVLA, data: Batch, device: torch.device) -> dict[str, np.ndarray]:
    """Mean waypoints, risk probability and hazard class of every scene."""
    model.eval()
    out = model(inputs(data, device))
    return {"waypoints": out["mean"].cpu().numpy(),
            "risk": torch.sigmoid(out["risk"]).cpu().numpy(),
            "hazard": out["hazard"].argmax(-1).cpu().numpy()}


def evaluate(model: TinyVLA, data: Batch, scorer: Scorer, device: torch.device) -> Metrics:
    """Metrics of the policy on ``data`` (``scorer`` holds the same records in order)."""
    p = predict(model, data, device)
    facts = [scorer.facts(i, p["waypoints"][i:i + 1])[0] for i in range(len(data))]
    return Metrics(
        collision_rate=float(np.mean([f.collides for f in facts])),
        pdms=float(np.mean([f.pdms for f in facts])),
        l2_m=float(np.linalg.norm(p["waypoints"] - data.expert, axis=-1).mean()),
        risk_acc=float(np.mean((p["risk"] > 0.5) == (data.risk > 0.5))),
        label_acc=float(np.mean(p["hazard"] == data.hazard)),
        n=len(data))
