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
from cfpair.train.seeds import TUNE_SEEDS  # noqa: E402
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


def _check(report, summary: dict, tests: list, runs: list | None = None) -> str:
    return report.target_check({"summary": summary, "tests": tests, "runs": runs or []})[0]


def test_target_check_verdicts(report) -> None:
    a, b = "SFT", "neg-SFT + anchor GRPO"
    # runs: 2 scene seeds x 2 training seeds, the arm at about half of SFT's collisions
    def run(ds: int, ts: int, c_sft: float, c_arm: float) -> dict:
        return {"scene_seed": ds, "train_seed": ts, "metrics": {
            r: {"collision_rate": c, "pdms": 0.5, "risk_acc": 0.5, "lang_acc": 0.5}
            for r, c in ((a, c_sft), (b, c_arm))}}
    runs = [run(5, 0, 0.40, 0.20), run(5, 1, 0.42, 0.19), run(6, 0, 0.38, 0.21),
            run(6, 1, 0.41, 0.18)]
    good = [_test(a, b, "collision_rate", -0.2, 0.004), _test(a, b, "pdms", 0.05, 0.01)]
    met = _check(report, _summary(0.40, 0.20, 0.50, 0.55), good, runs)
    assert "-50 % relative" in met and "**Met**." in met
    assert "Over the 4 runs" in met and "Over the 2 scene-seed means" in met
    assert "the smallest sign-flip p of 2 is 0.500" in met
    # the margin is tested, not only the point estimate: runs barely past 30 % fail it
    close = [run(5, 0, 0.40, 0.30), run(5, 1, 0.40, 0.25), run(6, 0, 0.40, 0.29),
             run(6, 1, 0.40, 0.26)]
    near = _check(report, _summary(0.40, 0.275, 0.50, 0.55), good, close)
    assert "-31 % relative" in near and "**Not met**: not significant" in near
    small = _check(report, _summary(0.40, 0.32, 0.50, 0.55),
                   [_test(a, b, "collision_rate", -0.08, 0.004), good[1]], runs)
    assert "**Not met**: the reduction is under 30 %." in small
    worse = _check(report, _summary(0.40, 0.20, 0.50, 0.40),
                   [_test(a, b, "collision_rate", -0.2, 0.2), _test(a, b, "pdms", -0.1, 0.01)],
                   runs)
    assert "not significant" in worse and "PDMS is significantly lower" in worse
    # a lower PDMS that is not significant does not fail the "not lower" part
    noisy = _check(report, _summary(0.40, 0.20, 0.50, 0.49),
                   [good[0], _test(a, b, "pdms", -0.01, 0.4)], runs)
    assert "**Met**." in noisy
    # SFT without collisions (or a metric lost to JSON null): no reduction to speak of
    none = _check(report, _summary(0.0, 0.0, 0.5, 0.5), good, runs)
    assert "n/a relative" in none and "the reduction is under 30 %" in none
    nulls = _check(report, {a: {"collision_rate": (None, None), "pdms": (0.5, 0.0)},
                            b: {"collision_rate": (0.1, 0.0), "pdms": (0.5, 0.0)}}, good)
    assert "**Not met**" in nulls
    assert "not run" in report.target_check({"summary": {"SFT": {}}, "tests": []})[0]


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
    assert rows == ["| as configured (G8) | -0.010 [-0.020, 0.000] | 0.500 / 0.500 | "
                    "0.020 [0.010, 0.030] | 0.300 / 0.300 | 0.600 / 0.600 | 0.10 / 0.20 |",
                    "| G2 | -0.050 [-0.060, -0.040] | 0.020 / 0.020 | 0.040 [0.030, 0.050] | "
                    "0.010 / 0.010 | 0.060 / 0.040 | 0.50 / 0.60 |"]
    # the exact tests' floor over 9 runs, times the family size, is stated in the legend
    assert "smallest p over 9 runs is 0.004, and 4 x that is 0.016" in " ".join(
        report.anchors_answer(result))
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
        seeds = set(result["config"]["data_seeds"])
        if folder.name.startswith("tune-"):   # tuning: validation split, tuning seeds only
            assert result["config"]["mode"] == "tune" and seeds <= set(TUNE_SEEDS)
            assert result["cross"] == []
        else:
            assert result["config"]["mode"] == "report" and not seeds & {0, *TUNE_SEEDS}
        assert len(result["runs"]) == 9
    head = json.loads((res / "ablation-report" / "ablation.json").read_text())
    verdict = report.target_check(head)[0]
    assert "-49 % relative" in verdict and "**Met**." in verdict
    bench = (BENCH.parent / "BENCHMARKS.md").read_text()
    assert f"> {verdict}" in bench
    for row, m in head["summary"].items():   # the main table's collision and PDMS cells
        cells = [f"{m[k][0]:.3f} ± {m[k][1]:.3f}" for k in ("collision_rate", "pdms")]
        line = next(x for x in bench.splitlines() if x.startswith("| ") and cells[0] in x
                    and cells[1] in x)
        assert line.split(" | ")[0].lstrip("| ").startswith(row.split(",")[0][:3])
    for cs in head["cross"]:                  # the cross-source rows
        s = cs["summary"]
        want = [f"{s[a]['collision_rate'][0]:.3f}" for a in report.HEADLINE]
        line = next(x for x in bench.splitlines() if x.startswith("| ")
                    and f"| {cs['pairs']} | {want[0]} | {want[1]} |" in x)
        assert f"{s['SFT']['pdms'][0]:.3f}" in line
    merged = report.anchors_answer(report.merged([
        json.loads((res / n / "ablation.json").read_text())
        for n in ("ablation-report", "ablation-cond", "ablation-cond-g4", "ablation-cond-sparse")]))
    for line in merged:
        if line.startswith("| "):
            assert line in bench


@pytest.fixture(scope="module")
def harness():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("ablation")
    finally:
        sys.path.remove(str(BENCH))


def test_seeds_and_sets_that_would_leak_are_refused(harness) -> None:
    def seeds(*argv: str) -> list[int]:
        return harness.check_seeds(harness.parse_args([*argv, "--out", "x"]))

    assert seeds() == [5, 6, 7] and seeds("--mode", "tune") == [100, 101, 102]
    assert harness.cross_sets(harness.parse_args(["--out", "x"])) == list(
        harness.CROSS_DEFAULT)
    assert harness.cross_sets(harness.parse_args(["--mode", "tune", "--out", "x"])) == []
    for argv, msg in ((["--data-seeds", "0", "--tune-seeds", "100"], "tuning seeds"),
                      (["--data-seeds", "101"], "tuning seeds"),
                      (["--mode", "tune", "--data-seeds", "6"], "tuning must not see"),
                      (["--mode", "tune", "--data-seeds", "9"], "tuning must not see"),
                      (["--mode", "tune", "--cross", "nuscenes"], "--cross in a tuning run"),
                      (["--navsim-seed", "6"], "scenes of its own"),
                      (["--data-seeds", "5", "--train-seeds", "0"], "at least 2"),
                      (["--data-seeds", "5,5"], "repeated seeds")):
        with pytest.raises(SystemExit, match=msg):
            seeds(*argv)
    assert seeds("--navsim-seed", "6", "--cross", "nuscenes") == [5, 6, 7]


def test_partial_runs_resume_only_for_the_same_code_and_options(harness, tmp_path) -> None:
    path = tmp_path / "ablation.partial.json"
    runs = [{"scene_seed": 5, "train_seed": 0, "metrics": {"SFT": {"pdms": 0.5}}}]
    key = harness.plain({"commit": "abc", "argv": {"n_scenes": 10}, "arms": ("SFT",)})
    harness.write_atomic(path, {"key": key, "runs": runs})
    assert not path.with_suffix(".tmp").exists()
    assert harness.load_partial(path, key) == {(5, 0): runs[0]}
    assert harness.load_partial(path, {**key, "commit": "def"}) == {}
    assert harness.load_partial(tmp_path / "missing.json", key) == {}
    path.write_text("{not json")
    assert harness.load_partial(path, key) == {}
    a = harness.resume_argv(harness.parse_args(["--out", "a", "--title", "x", "--threads", "2"]))
    b = harness.resume_argv(harness.parse_args(["--out", "b"]))
    assert a == b and "out" not in a
    assert a != harness.resume_argv(harness.parse_args(["--out", "a", "--scale", "0.5"]))


def test_input_stats_by_hand(split, harness) -> None:
    from cross_sources import input_stats

    b = split.train_b
    s = input_stats(b)
    assert s["n"] == len(b) and sum(s["commands"].values()) == len(b)
    assert s["speed_mps"] == pytest.approx(float(b.ego[:, 0].mean()))
    assert s["road_users_in_view"] == pytest.approx(float(b.agent_mask.sum(1).mean()))
    assert 0.0 < s["drivable_share"] < 1.0
    assert input_stats(b.take(np.array([], int))) == {"n": 0}


def test_training_on_a_reported_seed_says_so(tmp_path: Path, small_run: Path) -> None:
    import json

    from cfpair.train.seeds import reported_seed_note, scene_seed

    def folder(name: str, config: object) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"config": config}))
        return d

    five = folder("five", {"source": "synthetic", "source_options": {"seed": 5}})
    assert scene_seed(five) == 5 and "scene seed 5 is a reported seed" in reported_seed_note(five)
    assert "scene seed 9" in reported_seed_note(
        folder("nine", {"source": "synthetic", "source_options": {"seed": 9}}))
    assert reported_seed_note(
        folder("tune", {"source": "synthetic", "source_options": {"seed": 100}})) is None
    assert scene_seed(folder("real", {"source": "navsim", "source_options": {"seed": 5}})) is None
    assert scene_seed(folder("odd", ["not", "a", "dict"])) is None
    assert scene_seed(tmp_path / "missing") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{")
    assert scene_seed(tmp_path / "bad") is None
    assert scene_seed(small_run) == 0 and reported_seed_note(small_run) is None
