"""Stage 1, SFT: imitate the safe trajectory (the positive, the counterfactual that avoids the
negative's failure) from the scene. Positive-only baseline: only the waypoints are learned.

Loss: smooth-L1 (Huber, 1 m) on the 8 waypoints in metres. Adam, constant learning rate,
mini-batches drawn with the run's seed. ``train_loop`` is shared by the negative-enhanced stage,
which adds its own terms through ``extra_loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cfpair.progress import track
from cfpair.train.data import Batch
from cfpair.train.model import TinyVLA, inputs


@dataclass(frozen=True)
class SFTConfig:
    """Stage settings (demo size: a few hundred scenes on a CPU in seconds)."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    huber_m: float = 1.0


ExtraLoss = Callable[[dict[str, torch.Tensor], Batch, torch.device], torch.Tensor]


def waypoint_loss(mean: torch.Tensor, target: np.ndarray, delta: float) -> torch.Tensor:
    """Huber loss of predicted waypoints (N, 8, 2) against the target (N, 8, 2) metres."""
    return F.smooth_l1_loss(mean, torch.as_tensor(target, device=mean.device), beta=delta)


def train_loop(model: TinyVLA, data: Batch, cfg: SFTConfig, seed: int, device: torch.device,
               extra_loss: ExtraLoss | None = None, log_every: int = 0
               ) -> tuple[torch.optim.Optimizer, list[float]]:
    """Supervised steps on ``data``; returns the optimizer and the loss of every step."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    losses = []
    model.train()
    for step in track(range(cfg.steps), type(cfg).__name__.removesuffix("Config"), unit="steps"):
        idx = rng.choice(len(data), size=min(cfg.batch_size, len(data)), replace=False)
        b = data.take(idx)
        out = model(inputs(b, device))
        loss = waypoint_loss(out["mean"], b.positive, cfg.huber_m)
        if extra_loss is not None:
            loss = loss + extra_loss(out, b, device)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log_every and step % log_every == 0:
            print(f"  step {step:4d} loss {losses[-1]:.4f}")
    return opt, losses


def train_sft(model: TinyVLA, data: Batch, cfg: SFTConfig, seed: int, device: torch.device
              ) -> tuple[torch.optim.Optimizer, list[float]]:
    """Positive-only SFT."""
    return train_loop(model, data, cfg, seed, device)
