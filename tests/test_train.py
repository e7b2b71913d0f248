"""The bundled trainer: loss falls, anchor advantages by hand, metrics agree with the geometry
engine, seeded determinism, one-step smoke runs of every stage, checkpoints, the CLI."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import shapely  # noqa: E402

from cfpair.geometry.boxes import box_corners  # noqa: E402
from cfpair.labels.models import anchor_index  # noqa: E402
from cfpair.scoring.navsim_tracker import simulate_poses  # noqa: E402
from cfpair.scoring.rescore import context_from_record  # noqa: E402
from cfpair.scoring.views import initial_state  # noqa: E402
from cfpair.shards import load_records  # noqa: E402
from cfpair.train.data import CHANNELS, GRID, encode, poses_of  # noqa: E402
from cfpair.train.evaluate import evaluate  # noqa: E402
from cfpair.train.grpo import (  # noqa: E402
    GRPOConfig,
    gaussian_kl,
    group_advantages,
    policy_loss,
    train_grpo,
)
from cfpair.train.model import TinyVLA, load_checkpoint, seed_all  # noqa: E402
from cfpair.train.neg_sft import NegSFTConfig, train_neg_sft  # noqa: E402
from cfpair.train.run import STAGES, TrainConfig, load_split, run_stage  # noqa: E402
from cfpair.train.sft import SFTConfig, train_sft  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def split(small_run: Path):
    return load_split(small_run)


def test_split_is_scenario_disjoint_and_encoded(split) -> None:
    assert {r.provenance.scenario_id for r in split.train}.isdisjoint(
        {r.provenance.scenario_id for r in split.held})
    b = split.train_b
    assert b.raster.shape == (len(split.train), len(CHANNELS), GRID, GRID)
    assert b.raster[:, 0].mean() > 0.02 and b.raster[:, 4].sum() > 0   # road and ego drawn
    assert np.allclose(b.positive, np.asarray([r.positive.poses for r in split.train])[..., :2])


def test_poses_of_heads_along_the_motion() -> None:
    wp = np.array([[i * 1.0, i * 1.0] for i in range(1, 9)])
    p = poses_of(wp)
    assert np.allclose(p[:, 2], np.pi / 4)
    stop = np.array([[1.0, 0.0]] * 8)   # stops after the first step: heading carried on
    assert np.allclose(poses_of(stop)[:, 2], 0.0)


def test_sft_loss_falls_on_a_tiny_set(split) -> None:
    seed_all(0)
    model = TinyVLA()
    _, losses = train_sft(model, split.train_b.take(np.arange(8)),
                          SFTConfig(steps=150, batch_size=8), 0, CPU)
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])


def test_neg_sft_loss_falls_and_learns_the_failure(split) -> None:
    seed_all(0)
    model = TinyVLA()
    tiny = split.train_b.take(np.arange(8))
    _, losses = train_neg_sft(model, tiny, NegSFTConfig(steps=150, batch_size=8), 0, CPU)
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    with torch.no_grad():
        from cfpair.train.model import inputs
        out = model(inputs(tiny, CPU))
    assert (out["hazard"].argmax(-1).numpy() == tiny.hazard).mean() == 1.0


def test_group_advantages_with_anchors_by_hand() -> None:
    # 4 samples + positive anchor (0.9) + negative anchor (0.0)
    r = np.array([0.5, 0.6, 0.4, 0.5, 0.9, 0.0])
    mean = 2.9 / 6
    std = np.sqrt(0.428333 / 6)   # squared deviations sum to 0.428333: std 0.26719
    adv = group_advantages(r, eps=0.0)
    assert np.allclose(adv, (r - mean) / std)
    assert np.isclose(adv[4], 0.416667 / 0.267187, atol=1e-4)   # 1.5595
    assert np.isclose(adv[0], 0.016667 / 0.267187, atol=1e-4)   # 0.0624
    # without anchors the same samples are judged against their own mean
    assert np.allclose(group_advantages(r[:4], eps=0.0), [0, 1.41421, -1.41421, 0], atol=1e-5)
    # the anchors move the baseline: sample 0 is above the anchored mean, level without
    assert adv[0] > 0
    assert np.allclose(group_advantages(np.ones(5)), 0.0)   # a flat group: no signal


def test_policy_loss_by_hand() -> None:
    cfg = GRPOConfig(clip_eps=0.2, dual_clip=3.0, anchor_weight=1.0, huber_m=1.0)
    mean = torch.zeros(1, 8, 2)

    def loss(log_ratio: float, a: float, adv_pos: float | None = None,
             positive: float = 0.5, adv_neg: float = -2.0) -> float:
        logp = torch.tensor([[log_ratio]])
        adv = [a] if adv_pos is None else [a, adv_pos, adv_neg]
        pos = None if adv_pos is None else torch.full((1, 8, 2), positive)
        return float(policy_loss(mean, logp, torch.zeros(1, 1), torch.tensor([adv]), pos, cfg))

    assert np.isclose(loss(0.0, 1.0), -1.0)                  # ratio 1: -A
    assert np.isclose(loss(0.5, 1.0), -1.2)                  # ratio 1.65 clipped to 1.2
    assert np.isclose(loss(0.5, -1.0), np.exp(0.5))          # pessimistic side: unclipped
    assert np.isclose(loss(2.0, -1.0), 3.0)                  # ratio 7.39: dual clip at 3|A|
    # the positive anchor: Huber 0.5 * 0.5^2 = 0.125 per coordinate, times A_pos = 2
    assert np.isclose(loss(0.0, 0.0, adv_pos=2.0), 0.25)
    assert np.isclose(loss(0.0, 0.0, adv_pos=-1.0), 0.0)     # worse than the group: no pull
    assert np.isclose(loss(0.0, 0.0, adv_pos=1.0, positive=3.0), 2.5)   # linear beyond 1 m
    # the negative anchor acts only through the group statistics
    assert loss(0.3, 0.7, adv_pos=1.0, adv_neg=-0.5) == loss(0.3, 0.7, adv_pos=1.0, adv_neg=-9)


def test_gaussian_kl_by_hand() -> None:
    m = torch.zeros(1, 8, 2)
    s = torch.ones(8, 2)
    assert float(gaussian_kl(m, s, m, s)) == 0.0
    # KL(N(1, 1) || N(0, 1)) = 0.5 per coordinate
    assert np.isclose(float(gaussian_kl(m + 1, s, m, s)), 8.0)


def _collides_shapely(rec, poses: np.ndarray) -> bool:  # noqa: ANN001
    """Does NAVSIM's simulation of these poses touch any agent box (shapely, 41 steps)?"""
    c = rec.context
    st = simulate_poses(poses, initial_state(context_from_record(rec)))[0]
    off = c.ego_rear_to_center
    ego = box_corners(st[:, 0] + off * np.cos(st[:, 2]), st[:, 1] + off * np.sin(st[:, 2]),
                      st[:, 2], c.ego_length, c.ego_width)
    k0 = anchor_index(c.t)
    for t in range(41):
        e = shapely.Polygon(ego[t])
        for a in c.agents:
            if a.valid[k0 + t] and e.intersects(shapely.Polygon(box_corners(
                    a.x[k0 + t], a.y[k0 + t], a.yaw[k0 + t], a.length, a.width))):
                return True
    return False


def test_evaluation_metrics_agree_with_the_geometry_engine(split) -> None:
    seed_all(0)
    model = TinyVLA()
    m = evaluate(model, split.held_b, split.held_s, CPU)
    with torch.no_grad():
        from cfpair.train.model import inputs
        wp = model(inputs(split.held_b, CPU))["mean"].numpy()
    # an independent oracle for the collisions: NAVSIM's tracker on the same poses, then
    # shapely polygons of the ego and of every agent at each of the 41 steps
    hits = [_collides_shapely(r, poses_of(wp[i:i + 1])) for i, r in enumerate(split.held)]
    assert m.collision_rate == pytest.approx(np.mean(hits))
    assert 0.0 <= m.pdms <= 1.0
    assert np.isclose(m.l2_m, np.linalg.norm(wp - split.held_b.expert, axis=-1).mean(),
                      atol=1e-5)
    # the positives driven by the same path score as safe as generate said
    pos = [split.held_s.facts(i, split.held_b.positive[i:i + 1])[0]
           for i in range(len(split.held))]
    stored = [r.positive.facts.collides for r in split.held]
    assert [f.collides for f in pos] == stored == [False] * len(split.held)


def _tiny_cfg() -> TrainConfig:
    return TrainConfig(SFTConfig(steps=1, batch_size=4), NegSFTConfig(steps=1, batch_size=4),
                       GRPOConfig(steps=1, scenes_per_step=2, group_size=3))


@pytest.mark.parametrize("stage", STAGES)
def test_one_step_of_every_stage_writes_a_checkpoint(split, stage: str, tmp_path: Path) -> None:
    res = run_stage(split, stage, 0, CPU, _tiny_cfg(), tmp_path, echo=lambda _: None)
    expect = {"sft": ["sft"], "neg-sft": ["neg-sft"], "grpo": ["neg-sft", "grpo"],
              "all": ["sft", "neg-sft", "grpo"]}[stage]
    assert list(res) == expect
    for name in expect:
        model, ck = load_checkpoint(tmp_path / f"{name}-seed0.pt", CPU)
        assert ck["step"] == 1 and ck["stage"] == name and "optimizer" in ck
        assert "lr" in ck["config"] and isinstance(model, TinyVLA)


def test_lagrangian_multiplier_rises_with_collisions(split) -> None:
    seed_all(0)
    model = TinyVLA()   # untrained: many samples collide
    cfg = GRPOConfig(steps=3, scenes_per_step=4, group_size=4, lagrangian=True,
                     cost_budget=0.0)
    _, log = train_grpo(model, split.train_b, split.train_s, cfg, 0, CPU)
    assert log.lam == sorted(log.lam) and (log.lam[-1] > 0) == (sum(log.collision) > 0)


def _mean_reward(model: TinyVLA, split) -> float:
    from cfpair.train.evaluate import predict
    wp = predict(model, split.train_b, CPU)["waypoints"]
    return float(np.mean([split.train_s.rewards(i, wp[i:i + 1])[0][0]
                          for i in range(len(split.train))]))


@pytest.mark.parametrize("anchors", [True, False])
def test_grpo_raises_its_own_reward(split, anchors: bool) -> None:
    # regression: anchors in the likelihood-ratio term once drowned the samples' signal and
    # GRPO lowered the very reward it optimised
    seed_all(0)
    model = TinyVLA()
    train_neg_sft(model, split.train_b, NegSFTConfig(steps=200, batch_size=8), 0, CPU)
    before = _mean_reward(model, split)
    cfg = GRPOConfig(steps=40, scenes_per_step=8, group_size=8, anchors=anchors, lr=1e-3)
    _, log = train_grpo(model, split.train_b, split.train_s, cfg, 0, CPU)
    assert _mean_reward(model, split) > before + 0.02
    assert np.mean(log.reward[-10:]) > np.mean(log.reward[:10])


def test_same_seed_same_result(split) -> None:
    cfg = replace(_tiny_cfg(), grpo=GRPOConfig(steps=2, scenes_per_step=3, group_size=3))
    a = run_stage(split, "all", 3, CPU, cfg, None, echo=lambda _: None)
    b = run_stage(split, "all", 3, CPU, cfg, None, echo=lambda _: None)
    assert a == b


@pytest.mark.slow
def test_cli_train_stage_and_ablation(small_run: Path, tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "cfpair", "train", str(small_run), "--stage",
                        "sft", "--checkpoints", str(tmp_path), "--device", "cpu", "--scale",
                        "0.01"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "held-out pairs (scenario-disjoint)" in p.stdout and "sft: collision_rate" in p.stdout
    assert (tmp_path / "sft-seed0.pt").is_file()
    q = subprocess.run([sys.executable, "-m", "cfpair", "train", str(small_run), "--ablation",
                        "--seeds", "0,1", "--scale", "0.005", "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr
    assert "mean ± std over seeds [0, 1]" in q.stdout
    for arm in ("| SFT |", "| neg-SFT |", "| neg-SFT + anchor GRPO |",
                "| neg-SFT + GRPO, no anchors |"):
        assert arm in q.stdout
    bad = subprocess.run([sys.executable, "-m", "cfpair", "train", str(small_run), "--stage",
                          "ppo"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown stage 'ppo'" in bad.stderr


def test_records_the_trainer_reads_are_the_shards(small_run: Path, split) -> None:
    assert len(split.train) + len(split.held) == len(load_records(small_run))
    assert encode([]).raster.shape[0] == 0
