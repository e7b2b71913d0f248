"""Stage 3, anchor-based GRPO: sample a group of trajectories per scene, score them with
cfpair's metrics, add the positive and negative anchors to the group, and push the policy
toward the better-than-group ones, clipped, with a KL term to the SFT reference.

Choices and simplifications (all of them):
- Policy: the tiny VLA's waypoint mean with a learned, state-independent diagonal Gaussian
  spread (8 x 2, metres). Actions are the 8 waypoints (x, y); yaw follows the direction of
  travel (``data.poses_of``). No text is generated.
- Group: ``group_size`` samples per scene from the policy at the start of the step (the "old"
  policy), plus, with anchors, the record's positive and negative waypoints. Group of
  ``group_size + 2``.
- Reward: the waypoints are driven in the stored scene by cfpair's tracker and scored
  (``export.reward.reward_of``: 0.5 PDMS-style score + 0.5 safety score, in [0, 1]). The
  anchors are scored the same way, not given fixed rewards.
- Advantages: (r - mean(group)) / (std(group) + eps), over the whole group including the
  anchors (so the anchors move the baseline and the scale, and also get advantages of their
  own: the positive is usually pulled toward, the negative pushed away).
- Objective: PPO-style clipped ratio pi/pi_old per trajectory (log-density summed over the 16
  waypoint coordinates), ``epochs`` optimisation passes per group, clip ``clip_eps``, with
  dual clipping (a negative advantage's loss is bounded by ``dual_clip`` * A) and the log-ratio
  clamped to +-10, because the anchors are off-policy points whose density under the policy
  can be far in the tail. Every group member, anchors included, enters this term.
- Anchors in the loss: in addition, the positive anchor, when its advantage is positive,
  enters as an advantage-weighted log-likelihood (per coordinate, weight ``anchor_weight``):
  a sample-free pull toward the safe trajectory that the ratio alone would not give (its
  ratio gradient vanishes when the anchor is far from the policy). The negative anchor acts
  through the group statistics and the clipped term only (an unbounded unlikelihood would
  diverge).
- Gradients clipped to norm ``grad_clip``; the policy spread is bounded to [0.1, 3] m.
- KL: closed form between the diagonal Gaussians of the policy and the frozen SFT reference,
  per scene, weight ``beta``.
- Optional Lagrangian cost constraint (SafeVLA style): cost = 1 for a collision; the reward
  used for the advantages is r - lambda * c, and lambda <- max(0, lambda + lr_lambda *
  (mean cost - cost_budget)) after each step (dual ascent).
- Not done: no value function, no entropy bonus, no reward normalisation across steps, no
  learning-rate schedule; the risk / hazard heads are not trained in this stage.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from cfpair.train.data import Batch
from cfpair.train.model import TinyVLA, inputs
from cfpair.train.scoring import Scorer


@dataclass(frozen=True)
class GRPOConfig:
    """Stage settings."""

    steps: int = 60
    scenes_per_step: int = 16
    group_size: int = 8
    anchors: bool = True
    lr: float = 1e-3
    epochs: int = 2
    clip_eps: float = 0.2
    dual_clip: float = 3.0
    anchor_weight: float = 1.0
    grad_clip: float = 1.0
    beta: float = 0.02
    eps: float = 1e-4
    lagrangian: bool = False
    cost_budget: float = 0.02
    lr_lambda: float = 0.5


@dataclass
class GRPOLog:
    """Per-step means: reward of the samples, collision rate of the samples, lambda, loss."""

    reward: list[float] = field(default_factory=list)
    collision: list[float] = field(default_factory=list)
    lam: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


def group_advantages(rewards: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Group-relative advantages of one group's rewards (G,): (r - mean) / (std + eps)."""
    r = np.asarray(rewards, np.float64)
    return (r - r.mean()) / (r.std() + eps)


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor, ref_mean: torch.Tensor,
                ref_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std) || N(ref_mean, ref_std)) per scene, summed over coordinates."""
    return (torch.log(ref_std / std) + (std ** 2 + (mean - ref_mean) ** 2) / (2 * ref_std ** 2)
            - 0.5).sum((-1, -2))


def train_grpo(model: TinyVLA, data: Batch, scorer: Scorer, cfg: GRPOConfig, seed: int,
               device: torch.device) -> tuple[torch.optim.Optimizer, GRPOLog]:
    """Anchor-based (or, with ``anchors=False``, plain) GRPO on ``data``; ``scorer`` holds
    the same records in the same order."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    lam = 0.0
    log = GRPOLog()
    for _ in range(cfg.steps):
        idx = rng.choice(len(data), size=min(cfg.scenes_per_step, len(data)), replace=False)
        b = data.take(idx)
        x = inputs(b, device)
        with torch.no_grad():
            out = model(x)
            noise = torch.randn((len(idx), cfg.group_size, 8, 2), generator=gen).to(device)
            samples = out["mean"].unsqueeze(1) + noise * model.std()
            if cfg.anchors:
                anchors = torch.as_tensor(np.stack([b.positive, b.negative], 1), device=device)
                group = torch.cat([samples, anchors], 1)
            else:
                group = samples
            old_logp = model.log_prob(out["mean"], group)
            ref_out = ref(x)
        rewards, costs = np.zeros(group.shape[:2]), np.zeros(group.shape[:2])
        wp = group.cpu().numpy()
        for j, i in enumerate(idx):
            rewards[j], costs[j] = scorer.rewards(int(i), wp[j])
        shaped = rewards - lam * costs if cfg.lagrangian else rewards
        adv = torch.as_tensor(np.stack([group_advantages(r, cfg.eps) for r in shaped]),
                              dtype=torch.float32, device=device)
        for _ in range(cfg.epochs):
            out = model(x)
            logp = model.log_prob(out["mean"], group)
            ratio = torch.exp(torch.clamp(logp - old_logp, -10.0, 10.0))
            clipped = torch.clamp(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
            surr = torch.minimum(ratio * adv, clipped * adv)
            surr = torch.where(adv < 0, torch.maximum(surr, cfg.dual_clip * adv), surr)
            loss = -surr.mean()
            if cfg.anchors:   # the positive anchor (index group_size) as weighted likelihood
                a_pos = adv[:, cfg.group_size].clamp(min=0.0)
                loss = loss - cfg.anchor_weight * (a_pos * logp[:, cfg.group_size]).mean() / 16
            kl = gaussian_kl(out["mean"], model.std(), ref_out["mean"], ref.std()).mean()
            loss = loss + cfg.beta * kl
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
        g = cfg.group_size
        log.reward.append(float(rewards[:, :g].mean()))
        log.collision.append(float(costs[:, :g].mean()))
        log.loss.append(float(loss.detach()))
        if cfg.lagrangian:
            lam = max(0.0, lam + cfg.lr_lambda * (log.collision[-1] - cfg.cost_budget))
        log.lam.append(lam)
    return opt, log
