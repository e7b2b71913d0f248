"""The tiny VLA: raster (vision) + command and scene tokens (language) -> waypoints (action, a
Gaussian policy) + risk and hazard predictions; checkpoints and device choice."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cfpair.train.data import ACTIONS, AGENT_CLASSES, CHANNELS, COMMANDS, HAZARDS, Batch

#: waypoints are predicted in units of SCALE metres
SCALE = 10.0
#: bounds of the policy's spread (metres)
MIN_STD_M, MAX_STD_M = 0.1, 3.0


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the tiny VLA."""

    width: int = 64
    init_std_m: float = 0.3


class TinyVLA(nn.Module):
    """Vision: 3 strided convolutions over the raster. Language: a command embedding and
    attention-pooled scene tokens (road users + ego). A fused MLP gives the waypoint mean
    (8 x 2), a risk logit and the logits of the structured statement (hazard, critical agent
    class, corrective action); ``log_std`` (16,) is the policy's spread."""

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        w = cfg.width
        self.cfg = cfg
        self.vision = nn.Sequential(
            nn.Conv2d(len(CHANNELS), 16, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(32 * 9, w), nn.GELU())
        self.command = nn.Embedding(len(COMMANDS), w)
        self.agent = nn.Sequential(nn.Linear(7, w), nn.GELU(), nn.Linear(w, w))
        self.ego = nn.Sequential(nn.Linear(2, w), nn.GELU())
        self.query = nn.Parameter(torch.zeros(w))
        self.trunk = nn.Sequential(nn.Linear(4 * w, 2 * w), nn.GELU(), nn.Linear(2 * w, 2 * w),
                                   nn.GELU())
        self.waypoints = nn.Linear(2 * w, 16)
        self.risk = nn.Linear(2 * w, 1)
        self.hazard = nn.Linear(2 * w, len(HAZARDS))
        self.agent_cls = nn.Linear(2 * w, len(AGENT_CLASSES))
        self.action = nn.Linear(2 * w, len(ACTIONS))
        self.log_std = nn.Parameter(torch.full((16,), float(np.log(cfg.init_std_m / SCALE))))

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """x: raster, command, agents, agent_mask, ego -> mean (N, 8, 2) metres, risk (N,),
        hazard (N, H), agent_cls (N, A), action (N, M) logits."""
        v = self.vision(x["raster"])
        tok = self.agent(x["agents"])                                    # (N, A, w)
        score = (tok @ self.query) / tok.shape[-1] ** 0.5
        score = score.masked_fill(~x["agent_mask"], -1e4)
        pooled = (torch.softmax(score, -1).unsqueeze(-1) * tok).sum(1)
        pooled = pooled * x["agent_mask"].any(-1, keepdim=True)
        h = self.trunk(torch.cat([v, self.command(x["command"]), pooled, self.ego(x["ego"])],
                                 -1))
        mean = self.waypoints(h).view(-1, 8, 2) * SCALE
        return {"mean": mean, "risk": self.risk(h).squeeze(-1), "hazard": self.hazard(h),
                "agent_cls": self.agent_cls(h), "action": self.action(h)}

    def std(self) -> torch.Tensor:
        """Policy standard deviation (8, 2) in metres."""
        return (self.log_std.clamp(np.log(MIN_STD_M / SCALE), np.log(MAX_STD_M / SCALE)).exp()
                * SCALE).view(8, 2)

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of waypoints ``actions`` (N, G, 8, 2) under N(mean (N, 8, 2), std)."""
        std = self.std()
        z = (actions - mean.unsqueeze(1)) / std
        return (-0.5 * z ** 2 - torch.log(std) - 0.5 * np.log(2 * np.pi)).sum((-1, -2))


def inputs(b: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """The model inputs of a batch as tensors on ``device``."""
    return {"raster": torch.as_tensor(b.raster, device=device),
            "command": torch.as_tensor(b.command, device=device),
            "agents": torch.as_tensor(b.agents, device=device),
            "agent_mask": torch.as_tensor(b.agent_mask, device=device),
            "ego": torch.as_tensor(b.ego / np.array([10.0, 3.0], np.float32), device=device)}


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; or the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_all(seed: int) -> None:
    """Seed torch and numpy; deterministic kernels where torch has them."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def save_checkpoint(path: Path, model: TinyVLA, opt: torch.optim.Optimizer,
                    config: Any, step: int, **extra: Any) -> Path:
    """Model, optimizer, stage config and step in one file (written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    cfg = asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config)
    torch.save({"model": model.state_dict(), "model_config": asdict(model.cfg),
                "optimizer": opt.state_dict(), "config": cfg, "step": step, **extra}, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: Path, device: torch.device) -> tuple[TinyVLA, dict[str, Any]]:
    """The model of a checkpoint, and the whole checkpoint dict."""
    ck = torch.load(path, map_location=device, weights_only=True)
    model = TinyVLA(ModelConfig(**ck["model_config"])).to(device)
    model.load_state_dict(ck["model"])
    return model, ck
