"""Stage 2, negative-enhanced SFT: for each risky scene the target first states the failure
of the negative, then gives the corrected trajectory.

For a waypoint policy "stating the failure" is a structured statement rather than free text:
the risk head learns whether the logged continuation is risky, and three classification heads
the label's hazard type (rear-end, crossing, vulnerable road user, ...), critical agent class
and corrective meta-action -- together the one-line statement ``data.statement`` that the
evaluation scores by exact match. The corrected trajectory is the positive
(as in SFT), plus a repulsion term that uses the negative: wherever the positive is more than
``min_gap_m`` away from the negative, the prediction must not come closer to the negative than
the positive is (a hinge, zero at the positive itself, so it never fights the imitation term).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cfpair.train.data import Batch
from cfpair.train.model import TinyVLA
from cfpair.train.sft import SFTConfig, train_loop


@dataclass(frozen=True)
class NegSFTConfig(SFTConfig):
    """SFT settings plus the weights of the failure statement and the repulsion."""

    risk_weight: float = 0.5
    hazard_weight: float = 0.5
    agent_weight: float = 0.5
    action_weight: float = 0.5
    repel_weight: float = 1.0
    min_gap_m: float = 1.0


def failure_loss(out: dict[str, torch.Tensor], b: Batch, device: torch.device,
                 cfg: NegSFTConfig) -> torch.Tensor:
    """Risk cross-entropy, the statement's three cross-entropies (labeled rows only) and the
    repulsion hinge from the negative."""
    risk = F.binary_cross_entropy_with_logits(out["risk"], torch.as_tensor(b.risk,
                                                                           device=device))
    lab = torch.as_tensor(b.labeled, device=device).float()
    n_lab = lab.sum().clamp(min=1.0)

    def ce(key: str, target: object) -> torch.Tensor:
        t = torch.as_tensor(target, device=device)
        return (F.cross_entropy(out[key], t, reduction="none") * lab).sum() / n_lab
    stated = (cfg.hazard_weight * ce("hazard", b.hazard)
              + cfg.agent_weight * ce("agent_cls", b.agent_cls)
              + cfg.action_weight * ce("action", b.action))
    pos = torch.as_tensor(b.positive, device=device)
    neg = torch.as_tensor(b.negative, device=device)
    gap_pos = (pos - neg).norm(dim=-1)                       # (N, 8)
    gap_pred = (out["mean"] - neg).norm(dim=-1)
    apart = (gap_pos > cfg.min_gap_m).float()
    repel = (F.relu(gap_pos - gap_pred) * apart).sum() / apart.sum().clamp(min=1.0)
    return cfg.risk_weight * risk + stated + cfg.repel_weight * repel


def train_neg_sft(model: TinyVLA, data: Batch, cfg: NegSFTConfig, seed: int,
                  device: torch.device) -> tuple[torch.optim.Optimizer, list[float]]:
    """Negative-enhanced SFT."""
    return train_loop(model, data, cfg, seed, device,
                      extra_loss=lambda out, b, dev: failure_loss(out, b, dev, cfg))
