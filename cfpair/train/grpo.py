"""Stage 3, anchor-based GRPO: sample a group of trajectories per scene, score them with
cfpair's metrics, add the positive and negative anchors to the group, and push the policy
toward the better-than-group ones, clipped, with a KL term to the SFT reference.

Choices and simplifications (all of them):
- Policy: the tiny VLA's waypoint mean with a learned, state-independent diagonal Gaussian
  spread (8 x 2, metres, starting at ``ModelConfig.init_std_m`` = 0.3 m and bounded to
  [0.1, 3] m; ``init_spread_m`` resets it at the start of the stage, e.g. 0.1 m for the
  low-variance groups where anchors should matter). Actions are the 8 waypoints (x, y); yaw
  follows the direction of travel (``data.poses_of``). No text is generated.
- Group: ``group_size`` samples per scene from the policy at the start of the step (the "old"
  policy), plus, with anchors, the record's positive and negative waypoints. Group of
  ``group_size + 2``.
- Reward: the waypoints are driven in the stored scene in NAVSIM's view (NAVSIM's tracker,
  NAVSIM v1.1's scorer) and scored: PDMS minus ``collision_penalty`` for any collision (PDMS
  is already 0 for an at-fault one; the penalty also covers the others and separates
  "collides" from "slow but safe"). Not the export reward (0.5 PDMS + 0.5 safety score): its
  safety half pays for slowing down, and with it GRPO traded progress for safety (PDMS fell,
  BENCHMARKS.md). The anchors are scored the same way, not given fixed rewards.
  ``reward="sparse"`` replaces it by a success indicator, 1 when the trajectory neither
  collides nor scores PDMS 0 (off the road, wrong way, no progress), else 0: most groups are
  then all-1 or all-0 and carry no signal without the anchors (the sparse-reward condition).
- Advantages: (r - mean(group)) / (std(group) + eps), over the whole group including the
  anchors, so the anchors set the baseline and the scale: the positive raises the bar, the
  negative guarantees a spread when every sample is alike.
- Objective: PPO-style clipped ratio pi/pi_old per sampled trajectory (log-density summed over
  the 16 waypoint coordinates), ``epochs`` optimisation passes per group, clip ``clip_eps``,
  dual clipping (a negative advantage's loss is bounded by ``dual_clip`` * A), log-ratio
  clamped to +-10. Only the on-policy samples enter this term.
- Anchors in the loss: the anchors are off-policy points, often many spreads from the policy
  mean, where the ratio's gradient grows as (distance / spread^2) and drowned the samples'
  signal (the first version did this and lowered the PDMS it optimised). So the positive
  anchor enters as an advantage-weighted imitation term instead: Huber (1 m) distance of the
  mean to the positive, times max(A_positive, 0), weight ``anchor_weight`` -- a bounded pull
  toward the safe trajectory when it beats the group. The negative anchor acts through the
  group statistics only (an unbounded push away from it would diverge).
- Gradients clipped to norm ``grad_clip``.
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
import torch.nn.functional as F

from cfpair.errors import ConfigError
from cfpair.progress import track
from cfpair.train.data import Batch
from cfpair.train.model import MAX_STD_M, MIN_STD_M, SCALE, TinyVLA, inputs
from cfpair.train.scoring import Scorer


@dataclass(frozen=True)
class GRPOConfig:
    """Stage settings."""

    steps: int = 90
    scenes_per_step: int = 24
    group_size: int = 8
    anchors: bool = True
    lr: float = 3e-4
    epochs: int = 2
    clip_eps: float = 0.2
    dual_clip: float = 3.0
    anchor_weight: float = 1.0
    huber_m: float = 1.0
    collision_penalty: float = 0.5
    grad_clip: float = 1.0
    beta: float = 0.02
    eps: float = 1e-4
    lagrangian: bool = False
    cost_budget: float = 0.02
    lr_lambda: float = 0.5
    init_spread_m: float | None = None
    reward: str = "dense"


#: reward shapes: "dense" = PDMS - penalty x collision, "sparse" = success indicator
REWARDS = ("dense", "sparse")


@dataclass
class GRPOLog:
    """Per-step means: reward of the samples, collision rate of the samples, lambda, loss, and
    ``flat``: the share of groups whose on-policy samples all got the same reward (no signal
    from the samples alone; with anchors the group still has a spread when the anchors differ
    from the samples)."""

    reward: list[float] = field(default_factory=list)
    flat: list[float] = field(default_factory=list)
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


def policy_loss(mean: torch.Tensor, logp: torch.Tensor, old_logp: torch.Tensor,
                adv: torch.Tensor, positive: torch.Tensor | None, cfg: GRPOConfig
                ) -> torch.Tensor:
    """The clipped surrogate over the samples plus, with anchors, the positive's weighted pull.
    mean (N, 8, 2); logp, old_logp (N, G) of the G samples; adv (N, G) or, with anchors,
    (N, G + 2) with the positive then the negative last; positive (N, 8, 2) or None. The
    negative anchor's advantage is not used here: it acted through the group statistics."""
    g = logp.shape[1]
    a = adv[:, :g]
    ratio = torch.exp(torch.clamp(logp - old_logp, -10.0, 10.0))
    clipped = torch.clamp(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
    surr = torch.minimum(ratio * a, clipped * a)
    surr = torch.where(a < 0, torch.maximum(surr, cfg.dual_clip * a), surr)
    loss = -surr.mean()
    if positive is not None:
        a_pos = adv[:, g].clamp(min=0.0)
        pull = F.smooth_l1_loss(mean, positive, reduction="none", beta=cfg.huber_m)
        loss = loss + cfg.anchor_weight * (a_pos * pull.mean((-1, -2))).mean()
    return loss


def train_grpo(model: TinyVLA, data: Batch, scorer: Scorer, cfg: GRPOConfig, seed: int,
               device: torch.device) -> tuple[torch.optim.Optimizer, GRPOLog]:
    """Anchor-based (or, with ``anchors=False``, plain) GRPO on ``data``; ``scorer`` holds
    the same records in the same order."""
    if cfg.reward not in REWARDS:
        raise ConfigError(f"unknown reward {cfg.reward!r}; expected one of {', '.join(REWARDS)}")
    if cfg.group_size < 1 or cfg.steps < 0:
        raise ConfigError(f"group_size must be >= 1 and steps >= 0, got {cfg.group_size}, "
                          f"{cfg.steps}")
    if cfg.init_spread_m is not None:
        if not MIN_STD_M <= cfg.init_spread_m <= MAX_STD_M:
            raise ConfigError(f"init_spread_m must be in [{MIN_STD_M}, {MAX_STD_M}] m, got "
                              f"{cfg.init_spread_m}")
        with torch.no_grad():
            model.log_std.fill_(float(np.log(cfg.init_spread_m / SCALE)))
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    lam = 0.0
    log = GRPOLog()
    for _ in track(range(cfg.steps), "grpo", unit="steps"):
        idx = rng.choice(len(data), size=min(cfg.scenes_per_step, len(data)), replace=False)
        b = data.take(idx)
        x = inputs(b, device)
        with torch.no_grad():
            out = model(x)
            noise = torch.randn((len(idx), cfg.group_size, 8, 2), generator=gen).to(device)
            samples = out["mean"].unsqueeze(1) + noise * model.std()
            positive = torch.as_tensor(b.positive, device=device) if cfg.anchors else None
            group = samples
            if positive is not None:
                negative = torch.as_tensor(b.negative, device=device)
                group = torch.cat([samples, positive.unsqueeze(1), negative.unsqueeze(1)], 1)
            old_logp = model.log_prob(out["mean"], samples)
            ref_out = ref(x)
        rewards, costs = np.zeros(group.shape[:2]), np.zeros(group.shape[:2])
        wp = group.cpu().numpy()
        for j, i in enumerate(idx):
            rewards[j], costs[j] = scorer.rewards(int(i), wp[j], cfg.collision_penalty,
                                                  cfg.reward == "sparse")
        shaped = rewards - lam * costs if cfg.lagrangian else rewards
        adv = torch.as_tensor(np.stack([group_advantages(r, cfg.eps) for r in shaped]),
                              dtype=torch.float32, device=device)
        for _ in range(cfg.epochs):
            out = model(x)
            logp = model.log_prob(out["mean"], samples)
            loss = policy_loss(out["mean"], logp, old_logp, adv, positive, cfg)
            kl = gaussian_kl(out["mean"], model.std(), ref_out["mean"], ref.std()).mean()
            loss = loss + cfg.beta * kl
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
        g = cfg.group_size
        log.reward.append(float(rewards[:, :g].mean()))
        log.collision.append(float(costs[:, :g].mean()))
        log.flat.append(float(np.mean(np.ptp(rewards[:, :g], axis=1) < 1e-9)))
        log.loss.append(float(loss.detach()))
        if cfg.lagrangian:
            lam = max(0.0, lam + cfg.lr_lambda * (log.collision[-1] - cfg.cost_budget))
        log.lam.append(lam)
    return opt, log
