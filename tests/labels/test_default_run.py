"""The labels of the default synthetic run (``cfpair generate --out X``, the real CLI): graded
risk, corrective actions, clean and varied text, and ``validate`` catching a free-text lie."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cfpair.counterfactual.meta_action import window_end
from cfpair.labels import rules
from cfpair.labels.grounding import check_label
from cfpair.labels.models import PairRecord
from cfpair.labels.risk import risk_distribution
from cfpair.shards import load_records, parquet_bytes, sha256


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("default") / "out"
    res = subprocess.run([sys.executable, "-m", "cfpair", "generate", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def recs(run: Path) -> list[PairRecord]:
    return [r for s in ("train", "val", "test") for r in load_records(run, s, None)]


def test_at_least_three_risk_levels_and_the_card_and_manifest_say_so(run, recs) -> None:  # noqa: ANN001
    dist = risk_distribution(recs)
    assert sum(1 for n in dist.values() if n) >= 3, dist
    assert [str(r.label.risk_level) for r in recs if r.label] == [
        str(rules.label(r).risk_level) for r in recs if r.label]
    man = json.loads((run / "manifest.json").read_text())
    assert {k: v for k, v in dist.items() if v} == man["counts"]["risk_levels"]
    card = (run / "README.md").read_text()
    for level, n in dist.items():
        assert f"| {level} | {n} |" in card


def test_the_two_pairs_of_the_issue(recs) -> None:  # noqa: ANN001
    by_id = {r.pair_id: r for r in recs}
    slows = by_id["264309bfefc291a2cbdf"]         # was "accelerate" while slowing 19.9 -> 10
    assert slows.positive.v[-1] < slows.positive.v[0] - 5
    # its positive (NAVSIM's view picks it) slows down or comes to a halt: never "accelerate"
    assert slows.meta_action.longitudinal in ("decelerate", "stop")
    assert slows.meta_action.longitudinal != "stop" or min(slows.positive.v) < 0.3
    stops = by_id["4ed6de2733b09093a3f0"]         # was stop + change_lane_left
    assert stops.meta_action.longitudinal == "stop" and stops.positive.v[-1] < 0.3
    assert not str(stops.meta_action.lateral).startswith("change_lane")
    assert stops.positive_vs_negative is not None
    assert "brak" in stops.positive_vs_negative.summary


def test_longitudinal_actions_follow_the_positives_own_speed(recs) -> None:  # noqa: ANN001
    for r in recs:
        v, t = r.positive.v, r.negative.facts.first_conflict_time_s
        end = window_end(None if t is None else round(t / 0.1), len(v))
        lon = r.meta_action.longitudinal
        if lon == "accelerate":       # 3 of 7 ended slower than they started (issue 18)
            assert v[-1] > v[0] and v[end] > v[0], r.pair_id
        if lon in ("decelerate", "stop"):
            assert v[end] < v[0], r.pair_id
        if lon == "stop":
            assert min(v) < 0.3, r.pair_id


def test_text_is_clean_varied_and_grounded(recs) -> None:  # noqa: ANN001
    texts = []
    for r in recs:
        assert r.label is not None and r.label_status == "ok"
        assert check_label(r.label, r) == []
        for text in (r.label.failure_description, r.label.counterfactual_reasoning):
            texts.append(text)
            assert "(" not in text and "{" not in text and "=" not in text, text
            for op in ("compose", "lattice", "speed_scale", "hard_brake", "lane_change",
                       "swerve", "near-expert", "perturbation"):
                assert op not in text, (op, text)
            words = re.findall(r"[a-z]+", text.lower())
            assert not any(a == b for a, b in zip(words, words[1:], strict=False)), text
    # wording varies: many distinct sentence openings over the run
    openings = Counter(" ".join(t.split()[:3]) for t in texts)
    assert len(openings) >= 12, openings.most_common(5)


def test_validate_catches_a_free_text_lie_in_a_stored_row(run: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run, out)
    shard = sorted((out / "data").glob("*.parquet"))[0]
    rows = pq.read_table(shard).to_pylist()
    rows[0]["label"]["failure_description"] = "The negative's measured safety score is 1.0."
    data = parquet_bytes(pa.Table.from_pylist(rows, schema=pq.read_schema(shard)))
    shard.write_bytes(data)
    man = json.loads((out / "manifest.json").read_text())
    man["shards"][str(shard.relative_to(out))]["sha256"] = sha256(data)
    (out / "manifest.json").write_text(json.dumps(man))
    res = subprocess.run([sys.executable, "-m", "cfpair", "validate", str(out)],
                         capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "COLUMNS": "200"})
    assert res.returncode == 1, res.stdout
    assert "text_contradiction" in res.stdout and "safety score" in res.stdout
