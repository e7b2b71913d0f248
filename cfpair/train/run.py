"""``cfpair train``: load shards, split scenario-disjointly, run stages, save checkpoints,
evaluate, and the ablation (SFT / negative-enhanced SFT / + anchor GRPO / GRPO without
anchors over several seeds)."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cfpair.errors import ConfigError
from cfpair.labels.models import PairRecord
from cfpair.progress import track
from cfpair.shards import load_records
from cfpair.train.data import Batch, encode
from cfpair.train.evaluate import Metrics, evaluate
from cfpair.train.grpo import GRPOConfig, train_grpo
from cfpair.train.model import TinyVLA, pick_device, save_checkpoint, seed_all
from cfpair.train.neg_sft import NegSFTConfig, train_neg_sft
from cfpair.train.scoring import Scorer
from cfpair.train.sft import SFTConfig, train_sft

STAGES = ("sft", "neg-sft", "grpo", "all")
ARMS = ("SFT", "neg-SFT", "neg-SFT + anchor GRPO", "neg-SFT + GRPO, no anchors")
HELD_OUT = ("val", "test")


@dataclass
class Split:
    """Train and held-out records with their arrays and scorers."""

    train: list[PairRecord]
    held: list[PairRecord]
    train_b: Batch = field(init=False)
    held_b: Batch = field(init=False)
    train_s: Scorer = field(init=False)
    held_s: Scorer = field(init=False)

    def __post_init__(self) -> None:
        self.train_b, self.held_b = encode(self.train), encode(self.held)
        self.train_s, self.held_s = Scorer(self.train), Scorer(self.held)


def _bucket(scenario_id: str) -> int:
    return int(hashlib.sha256(scenario_id.encode()).hexdigest()[:8], 16) % 5


def split_records(recs: list[PairRecord]) -> tuple[list[PairRecord], list[PairRecord]]:
    """Train = split 'train'; held out = 'val' and 'test'. A folder without them is split by
    a hash of the scenario id (1 in 5 held out). Either way no scenario is on both sides."""
    train = [r for r in recs if r.split == "train"]
    held = [r for r in recs if r.split in HELD_OUT]
    if not train or not held:
        train = [r for r in recs if _bucket(r.provenance.scenario_id) != 0]
        held = [r for r in recs if _bucket(r.provenance.scenario_id) == 0]
    both = ({r.provenance.scenario_id for r in train} &
            {r.provenance.scenario_id for r in held})
    if both:   # a scenario split by the source across splits: keep it in train only
        held = [r for r in held if r.provenance.scenario_id not in both]
    if len(train) < 2 or not held:
        raise ConfigError(f"need at least 2 training and 1 held-out pair, got {len(train)} / "
                          f"{len(held)} of {len(recs)} pairs (held out: the val and test splits, "
                          "or, without them, the scenarios whose id hashes to 1 in 5; a "
                          "scenario is never on both sides): generate more scenes")
    return train, held


def load_split(out: str | Path) -> Split:
    """Records of an output folder, split scenario-disjointly."""
    return Split(*split_records(load_records(out)))


@dataclass(frozen=True)
class TrainConfig:
    """All stage settings of one run."""

    sft: SFTConfig = SFTConfig()
    neg_sft: NegSFTConfig = NegSFTConfig()
    grpo: GRPOConfig = GRPOConfig()

    def scaled(self, factor: float) -> TrainConfig:
        """Steps scaled by ``factor`` (at least 1): for smoke tests."""
        def n(s: int) -> int:
            return max(1, int(s * factor))
        return TrainConfig(replace(self.sft, steps=n(self.sft.steps)),
                           replace(self.neg_sft, steps=n(self.neg_sft.steps)),
                           replace(self.grpo, steps=n(self.grpo.steps)))


def run_stage(data: Split, stage: str, seed: int, device: torch.device, cfg: TrainConfig,
              ckpt_dir: Path | None = None, echo: Callable[[str], None] = print
              ) -> dict[str, Metrics]:
    """Train ``stage`` (grpo starts from negative-enhanced SFT; all = every stage in order),
    save a checkpoint per stage, and return the held-out metrics after each."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    seed_all(seed)
    results: dict[str, Metrics] = {}

    def done(name: str, model: TinyVLA, opt: torch.optim.Optimizer, conf: object, step: int
             ) -> None:
        m = evaluate(model, data.held_b, data.held_s, device)
        results[name] = m
        echo(f"{name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in m.as_dict().items()))
        if ckpt_dir is not None:
            save_checkpoint(ckpt_dir / f"{name}-seed{seed}.pt", model, opt, conf, step,
                            stage=name, seed=seed)

    if stage in ("sft", "all"):
        model = TinyVLA().to(device)
        opt, _ = train_sft(model, data.train_b, cfg.sft, seed, device)
        done("sft", model, opt, cfg.sft, cfg.sft.steps)
    if stage in ("neg-sft", "grpo", "all"):
        seed_all(seed)
        model = TinyVLA().to(device)
        opt, _ = train_neg_sft(model, data.train_b, cfg.neg_sft, seed, device)
        done("neg-sft", model, opt, cfg.neg_sft, cfg.neg_sft.steps)
        if stage in ("grpo", "all"):
            opt, _ = train_grpo(model, data.train_b, data.train_s, cfg.grpo, seed, device)
            done("grpo", model, opt, cfg.grpo, cfg.grpo.steps)
    return results


def ablation_arms(data: Split, seed: int, device: torch.device, cfg: TrainConfig
                  ) -> dict[str, Metrics]:
    """The four arms for one seed; both GRPO arms start from the same neg-SFT model."""
    out: dict[str, Metrics] = {}
    seed_all(seed)
    sft = TinyVLA().to(device)
    train_sft(sft, data.train_b, cfg.sft, seed, device)
    out[ARMS[0]] = evaluate(sft, data.held_b, data.held_s, device)
    seed_all(seed)
    neg = TinyVLA().to(device)
    train_neg_sft(neg, data.train_b, cfg.neg_sft, seed, device)
    out[ARMS[1]] = evaluate(neg, data.held_b, data.held_s, device)
    for arm, anchors in ((ARMS[2], True), (ARMS[3], False)):
        model = copy.deepcopy(neg)
        train_grpo(model, data.train_b, data.train_s, replace(cfg.grpo, anchors=anchors),
                   seed, device)
        out[arm] = evaluate(model, data.held_b, data.held_s, device)
    return out


def ablation(data: Split, seeds: list[int], device: torch.device, cfg: TrainConfig,
             echo: Callable[[str], None] = print) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard deviation over seeds of every metric of every arm."""
    per_seed = []
    for seed in track(seeds, "ablation seeds", unit="seeds"):
        t0 = time.perf_counter()
        per_seed.append(ablation_arms(data, seed, device, cfg))
        echo(f"seed {seed}: {time.perf_counter() - t0:.0f} s")
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for arm in ARMS:
        rows = [s[arm].as_dict() for s in per_seed]
        table[arm] = {k: (float(np.mean([r[k] for r in rows])),
                          float(np.std([r[k] for r in rows]))) for k in rows[0] if k != "n"}
    return table


__all__ = ["ARMS", "STAGES", "TrainConfig", "ablation", "load_split", "pick_device",
           "run_stage", "split_records"]
