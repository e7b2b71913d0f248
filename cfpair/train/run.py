"""``cfpair train``: load shards, split scenario-disjointly, run stages, save checkpoints,
evaluate, and the ablation arms (SFT, negative-enhanced SFT, each + GRPO with or without
anchors, the Lagrangian variant) over training seeds, optionally under GRPO conditions
(group size, sampling spread).

Seeds: ``seed`` here is the *training* seed (initialisation, mini-batches, GRPO samples). It
does not change the scenes; the synthetic scene generator has its own seed
(``cfpair generate --source-option seed=N``), and ``cfpair generate --seed`` is the candidate
seed. ``benchmarks/ablation.py`` names all three."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cfpair.errors import ConfigError
from cfpair.progress import track
from cfpair.records.schema import PairRecord
from cfpair.records.shards import load_records
from cfpair.train.data import Batch, encode, validation_split
from cfpair.train.evaluate import Majority, Metrics, evaluate
from cfpair.train.grpo import GRPOConfig, GRPOLog, train_grpo
from cfpair.train.model import TinyVLA, pick_device, save_checkpoint, seed_all
from cfpair.train.neg_sft import NegSFTConfig, train_neg_sft
from cfpair.train.scoring import Scorer
from cfpair.train.sft import SFTConfig, train_sft

STAGES = ("sft", "neg-sft", "grpo", "all")
HELD_OUT = ("val", "test")


@dataclass(frozen=True)
class Arm:
    """One ablation arm: the supervised base ('sft' or 'neg-sft') and, when ``grpo`` is not
    None, a GRPO stage on top with these overrides of the run's GRPOConfig."""

    base: str
    grpo: tuple[tuple[str, object], ...] | None = None


ARM_SPECS: dict[str, Arm] = {
    "SFT": Arm("sft"),
    "neg-SFT": Arm("neg-sft"),
    "neg-SFT + anchor GRPO": Arm("neg-sft", (("anchors", True),)),
    "neg-SFT + GRPO, no anchors": Arm("neg-sft", (("anchors", False),)),
    "SFT + anchor GRPO": Arm("sft", (("anchors", True),)),
    "neg-SFT + anchor GRPO, Lagrangian": Arm("neg-sft", (("anchors", True),
                                                          ("lagrangian", True))),
}
ARMS = tuple(ARM_SPECS)
#: the metrics of the ablation table, in order
TABLE_KEYS = ("collision_rate", "pdms", "l2_m", "risk_acc", "risk_majority", "lang_acc",
              "lang_majority")
#: GRPO conditions: overrides of GRPOConfig applied to every GRPO arm ('' = as configured);
#: G<n> = n samples per scene, "-low" = sampling spread reset to 0.1 m (groups that lack
#: variance, where the anchors should matter), "sparse" = the success-indicator reward
#: (``GRPOConfig.reward``), where most groups are all-success or all-failure
CONDITIONS: dict[str, tuple[tuple[str, object], ...]] = {
    "": (),
    "G4": (("group_size", 4),),
    "G2": (("group_size", 2),),
    "G4-low": (("group_size", 4), ("init_spread_m", 0.1)),
    "G2-low": (("group_size", 2), ("init_spread_m", 0.1)),
    "sparse": (("reward", "sparse"),),
    "G4-sparse": (("group_size", 4), ("reward", "sparse")),
    "G2-sparse": (("group_size", 2), ("reward", "sparse")),
}


def arm_label(arm: str, condition: str = "") -> str:
    """The table row of an arm under a GRPO condition ('SFT' has no condition)."""
    return f"{arm} [{condition}]" if condition and ARM_SPECS[arm].grpo is not None else arm


@dataclass
class Split:
    """Train and held-out records with their arrays and scorers."""

    train: list[PairRecord]
    held: list[PairRecord]
    train_b: Batch = field(init=False)
    held_b: Batch = field(init=False)
    train_s: Scorer = field(init=False)
    held_s: Scorer = field(init=False)
    majority: Majority = field(init=False)

    def __post_init__(self) -> None:
        self.train_b, self.held_b = encode(self.train), encode(self.held)
        self.train_s, self.held_s = Scorer(self.train), Scorer(self.held)
        self.majority = Majority.of(self.train_b)


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


def load_split(out: str | Path, tuning: bool = False, val_share: float = 0.2) -> Split:
    """Records of an output folder, split scenario-disjointly. ``tuning``: train on the
    training records less a validation split carved from them and evaluate on that
    validation split (``data.validation_split``); the held-out records are not read."""
    train, held = split_records(load_records(out))
    if tuning:
        train, held = validation_split(train, val_share)
        if len(train) < 2 or not held:
            raise ConfigError(f"validation split too small: {len(train)} fit / {len(held)} "
                              f"validation pairs")
    return Split(train, held)


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
        m = evaluate(model, data.held_b, data.held_s, device, data.majority)
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


def arm_models(data: Split, seed: int, device: torch.device, cfg: TrainConfig,
               arms: tuple[str, ...] = ARMS, conditions: tuple[str, ...] = ("",)
               ) -> Iterator[tuple[str, TinyVLA, GRPOLog | None]]:
    """(row, trained model, GRPO log or None) of every arm for one training seed, rows named
    by ``arm_label``. Each base is trained once (from ``seed``) and every GRPO arm and
    condition starts from a copy of it, so the arms of one seed differ only in what they add.
    A yielded model is only valid until the next one is asked for (bases are shared)."""
    bad = [a for a in arms if a not in ARM_SPECS] + [c for c in conditions
                                                      if c not in CONDITIONS]
    if bad:
        raise ConfigError(f"unknown arms / conditions {bad}; arms: {', '.join(ARMS)}; "
                          f"conditions: {', '.join(repr(c) for c in CONDITIONS)}")
    bases: dict[str, TinyVLA] = {}

    def base(name: str) -> TinyVLA:
        if name not in bases:
            seed_all(seed)
            model = TinyVLA().to(device)
            if name == "sft":
                train_sft(model, data.train_b, cfg.sft, seed, device)
            else:
                train_neg_sft(model, data.train_b, cfg.neg_sft, seed, device)
            bases[name] = model
        return bases[name]

    for arm in arms:
        spec = ARM_SPECS[arm]
        if spec.grpo is None:
            yield arm, base(spec.base), None
            continue
        for cond in conditions:
            model = copy.deepcopy(base(spec.base))
            seed_all(seed)
            gcfg = replace(cfg.grpo, **dict(spec.grpo), **dict(CONDITIONS[cond]))
            _, log = train_grpo(model, data.train_b, data.train_s, gcfg, seed, device)
            yield arm_label(arm, cond), model, log


def ablation_arms(data: Split, seed: int, device: torch.device, cfg: TrainConfig,
                  arms: tuple[str, ...] = ARMS, conditions: tuple[str, ...] = ("",),
                  scoring: str = "navsim") -> dict[str, Metrics]:
    """Held-out metrics of every arm for one training seed (``arm_models``)."""
    return {row: evaluate(model, data.held_b, data.held_s, device, data.majority, scoring)
            for row, model, _ in arm_models(data, seed, device, cfg, arms, conditions)}


def summarise(per_seed: list[dict[str, Metrics]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and (population) standard deviation over runs of every metric of every row."""
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for row in per_seed[0]:
        vals = [s[row].as_dict() for s in per_seed]
        table[row] = {k: (float(np.mean([r[k] for r in vals])),
                          float(np.std([r[k] for r in vals]))) for k in vals[0]
                      if k not in ("n", "n_labeled")}
    return table


def ablation(data: Split, seeds: list[int], device: torch.device, cfg: TrainConfig,
             echo: Callable[[str], None] = print, arms: tuple[str, ...] = ARMS
             ) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard deviation over training seeds of every metric of every arm (one
    data set; ``benchmarks/ablation.py`` adds data seeds and the significance tests)."""
    per_seed = []
    for seed in track(seeds, "ablation seeds", unit="seeds"):
        t0 = time.perf_counter()
        per_seed.append(ablation_arms(data, seed, device, cfg, arms))
        echo(f"seed {seed}: {time.perf_counter() - t0:.0f} s")
    return summarise(per_seed)


__all__ = ["ARMS", "ARM_SPECS", "CONDITIONS", "STAGES", "TABLE_KEYS", "TrainConfig",
           "ablation", "ablation_arms", "arm_label", "arm_models", "load_split", "pick_device",
           "run_stage", "split_records", "summarise"]
