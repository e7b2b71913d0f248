"""What the ablation adds to the trainer: the sparse-reward condition and the flat-group
diagnostic, the arms as trained models, the non-learned references (logged expert, constant
velocity) by hand, the cross-source sets, and the report's target check and anchors' answer
on hand-built results."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cfpair.errors import ConfigError  # noqa: E402
from cfpair.records.shards import load_records  # noqa: E402
from cfpair.train.data import encode  # noqa: E402
from cfpair.train.evaluate import constant_velocity, drive, evaluate, references  # noqa: E402
from cfpair.train.grpo import GRPOConfig, train_grpo  # noqa: E402
from cfpair.train.model import TinyVLA, seed_all  # noqa: E402
from cfpair.train.neg_sft import NegSFTConfig  # noqa: E402
from cfpair.train.run import (  # noqa: E402
    CONDITIONS,
    TrainConfig,
    ablation_arms,
    arm_models,
    load_split,
)
from cfpair.train.scoring import Scorer  # noqa: E402
from cfpair.train.sft import SFTConfig  # noqa: E402

CPU = torch.device("cpu")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def split(small_run: Path):
    return load_split(small_run)


@pytest.fixture(scope="module")
def report():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("ablation_report")
    finally:
        sys.path.remove(str(BENCH))


def test_sparse_reward_is_the_success_indicator_of_the_facts(split) -> None:
    rng = np.random.default_rng(0)
    for i in range(min(6, len(split.train))):
        wp = split.train_b.expert[i][None] + rng.normal(0, 2.0, (8, 8, 2))
        facts = split.train_s.facts(i, wp)
        sparse, cost = split.train_s.rewards(i, wp, sparse=True)
        dense, cost2 = split.train_s.rewards(i, wp, 0.5)
        want = [float(not f.collides and f.pdms > 0) for f in facts]
        assert sparse.tolist() == want and set(sparse.tolist()) <= {0.0, 1.0}
        assert cost.tolist() == cost2.tolist() == [float(f.collides) for f in facts]
        assert dense == pytest.approx([f.pdms - 0.5 * f.collides for f in facts])


def test_flat_groups_are_counted_and_unknown_rewards_refused(split) -> None:
    seed_all(0)
    model = TinyVLA()
    cfg = GRPOConfig(steps=3, scenes_per_step=4, group_size=3, reward="sparse",
                     init_spread_m=0.1)
    _, log = train_grpo(model, split.train_b, split.train_s, cfg, 0, CPU)
    assert len(log.flat) == 3 and all(0.0 <= f <= 1.0 for f in log.flat)
    # with one sample per group every group is flat by definition
    _, one = train_grpo(TinyVLA(), split.train_b, split.train_s,
                        GRPOConfig(steps=2, scenes_per_step=4, group_size=1), 0, CPU)
    assert one.flat == [1.0, 1.0]
    with pytest.raises(ConfigError, match="unknown reward"):
        train_grpo(model, split.train_b, split.train_s, GRPOConfig(reward="binary"), 0, CPU)
    assert dict(CONDITIONS["sparse"]) == {"reward": "sparse"}


def test_arm_models_are_what_ablation_arms_scores(split) -> None:
    cfg = TrainConfig(SFTConfig(steps=3, batch_size=4), NegSFTConfig(steps=3, batch_size=4),
                      GRPOConfig(steps=1, scenes_per_step=3, group_size=2))
    arms, conds = ("neg-SFT", "neg-SFT + anchor GRPO"), ("", "sparse")
    scored = {row: evaluate(m, split.held_b, split.held_s, CPU, split.majority)
              for row, m, _ in arm_models(split, 0, CPU, cfg, arms, conds)}
    assert scored == ablation_arms(split, 0, CPU, cfg, arms, conds)
    logs = {row: log for row, _, log in arm_models(split, 0, CPU, cfg, arms, conds)}
    assert logs["neg-SFT"] is None and len(logs["neg-SFT + anchor GRPO [sparse]"].flat) == 1


def test_references_by_hand(split) -> None:
    b, s = split.held_b, split.held_s
    cv = constant_velocity(b)
    t = 0.5 * np.arange(1, 9)
    for i in range(len(b)):
        assert cv[i, :, 0] == pytest.approx(b.ego[i, 0] * t) and not cv[i, :, 1].any()
    refs = references(b, s)
    assert list(refs) == ["positive (SFT target)", "logged expert", "constant velocity"]
    assert refs["logged expert"]["l2_m"] == 0.0
    facts = [s.facts(i, b.expert[i][None].astype(np.float64))[0] for i in range(len(b))]
    assert refs["logged expert"]["collision_rate"] == pytest.approx(
        np.mean([f.collides for f in facts]))
    assert refs["logged expert"]["pdms"] == pytest.approx(np.mean([f.pdms for f in facts]))
    c, p, l2 = drive(cv, b, s)
    assert refs["constant velocity"] == {"collision_rate": c, "pdms": p, "l2_m": l2}
    assert l2 == pytest.approx(np.linalg.norm(cv - b.expert, axis=-1).mean())
    with pytest.raises(ConfigError, match="unknown scoring view"):
        drive(cv, b, s, "carla")


def test_cross_source_sample_set_is_scored(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        cross = importlib.import_module("cross_sources")
        sets, notes = cross.prepare(tmp_path, ["navsim-samples", "navsim-format"], 9, 4, 0, 16)
    finally:
        sys.path.remove(str(BENCH))
    assert [c.name for c in sets] == ["navsim-samples", "navsim-format"] and not notes
    for c in sets:
        recs = load_records(c.folder)
        assert recs and all(r.provenance.source == "navsim" for r in recs)
        refs = references(encode(recs), Scorer(recs))
        assert refs["logged expert"]["l2_m"] == 0.0
    fmt = load_records(sets[1].folder)
    assert {r.provenance.scenario_id.split("/")[0] for r in fmt} <= {
        p.stem for p in (tmp_path / "navsim-format-logs" / "navsim_logs" / "all").glob("*.pkl")}
    with pytest.raises(SystemExit, match="unknown cross-source set"):
        cross.prepare(tmp_path, ["waymo"], 9, 4, 0, 16)


def _test(a: str, b: str, metric: str, diff: float, p: float) -> dict:
    return {"a": a, "b": b, "metric": metric, "n": 9, "mean_diff": diff, "sd_diff": 0.01,
            "t": -5.0, "p_t": p, "p_sign_flip": p, "p_wilcoxon": p, "ci_low": diff - 0.01,
            "ci_high": diff + 0.01}


def _summary(c_sft: float, c_arm: float, p_sft: float, p_arm: float) -> dict:
    return {"SFT": {"collision_rate": (c_sft, 0.0), "pdms": (p_sft, 0.0)},
            "neg-SFT + anchor GRPO": {"collision_rate": (c_arm, 0.0), "pdms": (p_arm, 0.0)}}


def test_target_check_verdicts(report) -> None:
    a, b = "SFT", "neg-SFT + anchor GRPO"
    met = report.target_check(_summary(0.40, 0.20, 0.50, 0.55),
                              [_test(a, b, "collision_rate", -0.2, 0.004),
                               _test(a, b, "pdms", 0.05, 0.01)])
    assert "-50 % relative" in met[0] and "**Met**." in met[0]
    small = report.target_check(_summary(0.40, 0.32, 0.50, 0.55),
                                [_test(a, b, "collision_rate", -0.08, 0.004),
                                 _test(a, b, "pdms", 0.05, 0.01)])
    assert "**Not met**: the reduction is under 30 %." in small[0]
    worse = report.target_check(_summary(0.40, 0.20, 0.50, 0.40),
                                [_test(a, b, "collision_rate", -0.2, 0.2),
                                 _test(a, b, "pdms", -0.1, 0.01)])
    assert "not significant" in worse[0] and "PDMS is significantly lower" in worse[0]
    # a lower PDMS that is not significant does not fail the "not lower" part
    noisy = report.target_check(_summary(0.40, 0.20, 0.50, 0.49),
                                [_test(a, b, "collision_rate", -0.2, 0.004),
                                 _test(a, b, "pdms", -0.01, 0.4)])
    assert "**Met**." in noisy[0]
    assert "not run" in report.target_check({"SFT": {}}, [])[0]


def test_anchors_answer_rows(report) -> None:
    none, anc = "neg-SFT + GRPO, no anchors", "neg-SFT + anchor GRPO"
    result = {"summary": {none: {}, anc: {}, f"{none} [G2]": {}, f"{anc} [G2]": {}},
              "tests": [_test(none, anc, "collision_rate", -0.01, 0.5),
                        _test(none, anc, "pdms", 0.02, 0.3),
                        _test(f"{none} [G2]", f"{anc} [G2]", "collision_rate", -0.05, 0.02),
                        _test(f"{none} [G2]", f"{anc} [G2]", "pdms", 0.04, 0.01)],
              "grpo_flat": {anc: 0.1, none: 0.2, f"{anc} [G2]": 0.5, f"{none} [G2]": 0.6}}
    rows = [line for line in report.anchors_answer(result) if line.startswith("| ")][1:]
    # Holm over the 4 p values 0.5, 0.3, 0.02, 0.01: 0.01 -> 0.04, 0.02 -> 0.06, 0.3 -> 0.6,
    # 0.5 -> max(0.6, 0.5) = 0.6
    assert rows == ["| as configured (G8) | -0.010 | 0.500 / 0.500 | 0.020 | 0.300 / 0.300 | "
                    "0.600 / 0.600 | 0.10 / 0.20 |",
                    "| G2 | -0.050 | 0.020 / 0.020 | 0.040 | 0.010 / 0.010 | 0.060 / 0.040 | "
                    "0.50 / 0.60 |"]
    assert report.anchors_answer({"summary": {"SFT": {}}, "tests": []}) == []


def test_results_merge_only_on_the_same_seeds(report) -> None:
    none, anc = "neg-SFT + GRPO, no anchors", "neg-SFT + anchor GRPO"
    runs = [{"scene_seed": 5, "train_seed": t} for t in (0, 1)]
    one = {"runs": runs, "summary": {none: {"pdms": (0.5, 0.1)}, anc: {"pdms": (0.6, 0.1)}},
           "tests": [_test(none, anc, "pdms", 0.1, 0.3)], "grpo_flat": {anc: 0.3}}
    two = {"runs": runs, "summary": {none: {"pdms": (0.5, 0.1)}, f"{anc} [G2]": {}},
           "tests": [_test(none, anc, "pdms", 0.1, 0.3),
                     _test(f"{none} [G2]", f"{anc} [G2]", "pdms", 0.2, 0.1)],
           "grpo_flat": {f"{anc} [G2]": 0.6}}
    m = report.merged([one, two])
    assert list(m["summary"]) == [none, anc, f"{anc} [G2]"] and len(m["tests"]) == 2
    assert m["grpo_flat"] == {anc: 0.3, f"{anc} [G2]": 0.6}
    with pytest.raises(SystemExit, match="same scene and training seeds"):
        report.merged([one, {**two, "runs": runs[:1]}])
    with pytest.raises(SystemExit, match="differs"):
        report.merged([one, {**two, "summary": {none: {"pdms": (0.4, 0.1)}}}])


def test_committed_results_are_what_the_reports_and_docs_say(report) -> None:
    import json

    res = BENCH / "results"
    for folder in sorted(res.iterdir()):
        result = json.loads((folder / "ablation.json").read_text())
        assert report.markdown(result) == (folder / "ablation.md").read_text(), folder.name
        assert result["config"]["mode"] == "report"
        assert not set(result["config"]["data_seeds"]) & {0, 100, 101, 102}
        assert len(result["runs"]) == 9
    head = json.loads((res / "ablation-report" / "ablation.json").read_text())
    verdict = report.target_check(head["summary"], head["tests"])[0]
    assert "-49 % relative" in verdict and "**Met**." in verdict
    bench = (BENCH.parent / "BENCHMARKS.md").read_text()
    merged = report.anchors_answer(report.merged([
        json.loads((res / n / "ablation.json").read_text())
        for n in ("ablation-report", "ablation-cond", "ablation-cond-g4", "ablation-cond-sparse")]))
    for line in merged:
        if line.startswith("| "):
            assert line in bench
