"""Honest trainer metrics: the structured statement and its exact-match language accuracy,
majority-class baselines, the validation split carved from train, and the ablation harness
end to end (real generate, real training, real Parquet, the script in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cfpair.errors import ConfigError  # noqa: E402
from cfpair.records.shards import load_records  # noqa: E402
from cfpair.train.data import label_statement, statement, validation_split  # noqa: E402
from cfpair.train.evaluate import Majority, evaluate, exact_match, predict  # noqa: E402
from cfpair.train.model import TinyVLA, seed_all  # noqa: E402
from cfpair.train.run import load_split, split_records  # noqa: E402

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


def test_exact_match_on_hand_cases() -> None:
    gold = "hazard: rear_end; critical agent: vehicle; action: decelerate, keep_lane"
    assert statement("rear_end", "vehicle", "decelerate, keep_lane") == gold
    assert exact_match([gold], [gold]) == 1.0
    near = [gold.replace("rear_end", "Rear_end"), gold + " ", gold.replace("vehicle", "truck"),
            gold.replace("decelerate", "stop"), gold]
    assert exact_match(near, [gold] * 5) == pytest.approx(1 / 5)   # only the last one counts
    assert np.isnan(exact_match([], []))
    with pytest.raises(ConfigError, match="2 predictions for 1 targets"):
        exact_match([gold, gold], [gold])


def test_label_statement_is_the_labels_three_fields(small_run: Path) -> None:
    recs = [r for r in load_records(small_run) if r.label is not None]
    assert recs
    for r in recs:
        lab = r.label
        cls = lab.critical_agent.cls if lab.critical_agent else "none"
        act = lab.corrective_action
        assert label_statement(lab) == (f"hazard: {lab.hazard_type}; critical agent: {cls}; "
                                        f"action: {act.longitudinal}, {act.lateral}")


@pytest.fixture(scope="module")
def split(small_run: Path):
    return load_split(small_run)


def test_language_and_risk_accuracy_are_what_they_say(split) -> None:
    seed_all(0)
    model = TinyVLA()
    m = evaluate(model, split.held_b, split.held_s, CPU, split.majority)
    p = predict(model, split.held_b, CPU)
    gold = [label_statement(r.label) for r in split.held if r.label is not None]
    said = [s for s, r in zip(p["statement"], split.held, strict=True) if r.label is not None]
    assert m.n_labeled == len(gold) > 0
    assert m.lang_acc == pytest.approx(np.mean([a == b for a, b in zip(said, gold,
                                                                         strict=True)]))
    assert m.lang_acc <= min(m.hazard_acc, m.agent_acc, m.action_acc)
    # the majority baselines come from the *training* records
    train_gold = Counter(label_statement(r.label) for r in split.train if r.label is not None)
    assert split.majority.statement == train_gold.most_common(1)[0][0]
    assert m.lang_majority == pytest.approx(np.mean([g == split.majority.statement
                                                     for g in gold]))
    risky = np.array([r.expert.facts.collides or not r.expert.facts.ttc_ok
                      or not r.expert.facts.drivable_ok for r in split.held])
    assert m.risk_majority == pytest.approx(np.mean(risky == (split.majority.risk > 0.5)))
    assert Majority.of(split.held_b).risk in (0.0, 1.0)


def test_validation_split_is_carved_from_train_only(small_run: Path) -> None:
    recs = load_records(small_run)
    train, held = split_records(recs)
    fit, val = validation_split(train, 0.3)
    assert len(fit) + len(val) == len(train) and val and fit
    assert {r.provenance.scenario_id for r in fit}.isdisjoint(
        {r.provenance.scenario_id for r in val})
    assert validation_split(train, 0.3) == (fit, val)   # deterministic
    tuned = load_split(small_run, tuning=True, val_share=0.3)
    held_ids = {r.pair_id for r in held}
    assert not held_ids & {r.pair_id for r in tuned.train + tuned.held}
    assert [r.pair_id for r in tuned.held] == [r.pair_id for r in val]
    with pytest.raises(ConfigError, match="validation share"):
        validation_split(train, 1.0)


def _harness(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ablation.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.slow
def test_ablation_harness_end_to_end(tmp_path: Path) -> None:
    arms = "SFT;neg-SFT;neg-SFT + anchor GRPO;neg-SFT + GRPO, no anchors"
    argv = ("--mode", "report", "--data-seeds", "5", "--train-seeds", "0,1",
            "--n-scenes", "24", "--candidates", "16", "--scale", "0.005", "--arms", arms,
            "--conditions", "G2-low", "--cross", "navsim-samples", "--out", str(tmp_path))
    p = _harness(*argv)
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "ablation.json").read_text())
    assert res["config"]["data_seeds"] == [5] and res["evaluated_on"].startswith("held-out")
    assert [(r["scene_seed"], r["train_seed"]) for r in res["runs"]] == [(5, 0), (5, 1)]
    rows = set(res["summary"])
    assert rows == {"SFT", "neg-SFT", "neg-SFT + anchor GRPO", "neg-SFT + GRPO, no anchors",
                    "neg-SFT + anchor GRPO [G2-low]", "neg-SFT + GRPO, no anchors [G2-low]"}
    d = res["data"][0]
    assert d["train_pairs"] > 0 and d["eval_pairs"] > 0
    for r in res["runs"]:
        assert r["metrics"]["SFT"]["n"] == d["eval_pairs"]
    anchors = [t for t in res["tests"] if t["a"] == "neg-SFT + GRPO, no anchors [G2-low]"
               and t["b"] == "neg-SFT + anchor GRPO [G2-low]" and t["metric"] == "pdms"]
    assert len(anchors) == 1 and anchors[0]["n"] == 2
    xa = [r["metrics"]["neg-SFT + GRPO, no anchors [G2-low]"]["pdms"] for r in res["runs"]]
    xb = [r["metrics"]["neg-SFT + anchor GRPO [G2-low]"]["pdms"] for r in res["runs"]]
    assert anchors[0]["mean_diff"] == pytest.approx(np.mean(np.subtract(xb, xa)))
    md = (tmp_path / "ablation.md").read_text()
    assert "| SFT | neg-SFT + anchor GRPO | collision_rate |" in md and "lang_majority" in md
    assert (tmp_path / "data" / "scene-seed-5" / "manifest.json").is_file()
    # every policy is also scored on the cross-source set, and the references are there
    (cs,) = res["cross"]
    assert cs["name"] == "navsim-samples" and cs["pairs"] > 0
    assert set(cs["summary"]) == rows
    for r in res["runs"]:
        assert set(r["cross"]["navsim-samples"]) == rows
        assert r["cross"]["navsim-samples"]["SFT"]["n"] == cs["pairs"]
        assert set(r["grpo_flat"]) == rows - {"SFT", "neg-SFT"}
    assert set(d["references"]) == {"positive (SFT target)", "logged expert",
                                    "constant velocity"}
    assert cs["references"]["logged expert"]["l2_m"] == 0.0
    assert "### Cross-source: navsim-samples" in md and "Target check" in md
    assert "| logged expert | evaluated pairs |" in md
    # the report is re-made from the JSON alone, and the references recomputed identically
    before = md
    r2 = _harness("--references-only", "--out", str(tmp_path))
    assert r2.returncode == 0, r2.stderr
    assert (tmp_path / "ablation.md").read_text() == before
    # the same command again resumes every run from the partial file, same numbers
    again = _harness(*argv)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("re-used from ablation.partial.json") == 2
    assert json.loads((tmp_path / "ablation.json").read_text())["runs"] == res["runs"]
    # tuning reads a validation split carved from train, and no cross-source set
    t = _harness("--mode", "tune", "--data-seeds", "100", "--train-seeds", "0,1",
                 "--n-scenes", "24", "--candidates", "16", "--scale", "0.005", "--arms",
                 "SFT;neg-SFT", "--val-share", "0.3", "--out", str(tmp_path / "t"))
    assert t.returncode == 0, t.stderr
    tres = json.loads((tmp_path / "t" / "ablation.json").read_text())
    assert tres["evaluated_on"].startswith("validation") and tres["cross"] == []
    # a reported run on a tuning seed is refused before anything is generated
    q = _harness("--mode", "report", "--data-seeds", "5,100", "--out", str(tmp_path / "r"))
    assert q.returncode != 0 and "tuning seeds" in q.stderr
    assert not (tmp_path / "r").exists()
    q = _harness("--mode", "report", "--data-seeds", "5", "--navsim-seed", "5",
                 "--out", str(tmp_path / "r"))
    assert q.returncode != 0 and "scenes of its own" in q.stderr
    assert not (tmp_path / "r").exists()


def test_arms_share_their_base_and_unknown_arms_are_refused(split) -> None:
    from cfpair.train.grpo import GRPOConfig
    from cfpair.train.neg_sft import NegSFTConfig
    from cfpair.train.run import TrainConfig, ablation_arms
    from cfpair.train.sft import SFTConfig

    # zero GRPO steps: "SFT + anchor GRPO" must be exactly the "SFT" row's model
    cfg = TrainConfig(SFTConfig(steps=3, batch_size=4), NegSFTConfig(steps=3, batch_size=4),
                      GRPOConfig(steps=0))
    res = ablation_arms(split, 0, CPU, cfg, ("SFT", "SFT + anchor GRPO"), ("", "G2-low"))
    assert list(res) == ["SFT", "SFT + anchor GRPO", "SFT + anchor GRPO [G2-low]"]
    assert res["SFT"] == res["SFT + anchor GRPO"]
    with pytest.raises(ConfigError, match="unknown arms / conditions"):
        ablation_arms(split, 0, CPU, cfg, ("SFT", "PPO"))
    with pytest.raises(ConfigError, match="unknown arms / conditions"):
        ablation_arms(split, 0, CPU, cfg, ("SFT",), ("G3",))
