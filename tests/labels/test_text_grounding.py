"""Free-text grounding: each kind of statement that contradicts the facts is caught; the rules
labeler's own text never is."""

from __future__ import annotations

import pytest

from cfpair.labels import rules
from cfpair.labels.grounding import check_label
from cfpair.labels.rules import agent_name
from cfpair.labels.text_grounding import check_text, quantities
from cfpair.records.label import SafetyLabel
from cfpair.records.schema import PairRecord
from tests.records.synthetic import synthetic_records


@pytest.fixture(scope="module")
def records() -> list[PairRecord]:
    return synthetic_records(30, 3, 128)


def _with(rec: PairRecord, **text: str) -> SafetyLabel:
    return rules.label(rec).model_copy(update=text)


def _kinds(lab: SafetyLabel, rec: PairRecord) -> list[str]:
    return [c.message for c in check_text(lab, rec)]


def test_rules_text_is_grounded_and_deterministic(records) -> None:  # noqa: ANN001
    for rec in records:
        lab = rules.label(rec)
        assert check_label(lab, rec) == [], rec.pair_id
        assert rules.label(rec) == lab
        numbers = {round(q.value, 1) for q in quantities(rec)}
        assert numbers            # every stated number is one of these (checked by check_text)


def test_the_issue_example_a_wrong_safety_score_is_rejected(records) -> None:  # noqa: ANN001
    rec = next(r for r in records if r.negative.facts.safety_score == 0.0)
    lab = _with(rec, failure_description="The negative's measured safety score is 1.0.")
    found = check_label(lab, rec)
    assert [c.kind for c in found] == ["text_contradiction"]
    assert "safety score" in found[0].message
    ok = _with(rec, failure_description="The negative's measured safety score is 0.0.")
    assert check_label(ok, rec) == []


def test_numbers_agents_actions_and_comparisons(records) -> None:  # noqa: ANN001
    rec = next(r for r in records if r.negative.facts.collides
               and r.meta_action.longitudinal in ("decelerate", "stop")
               and r.positive_vs_negative is not None
               and abs(r.positive_vs_negative.lateral_delta_m) > 0.5)
    c = rec.positive_vs_negative
    assert c is not None
    wrong_side = "left" if c.lateral_delta_m < 0 else "right"
    crit = rec.negative.facts.critical_agent_id
    cases = {
        "counterfactual_reasoning": [
            "The positive accelerates hard to get past the danger safely.",
            "The positive changes lanes to the left to get away from it.",
            f"It ends up 1.5 m further {wrong_side} than the risky plan, which is safer.",
            "The positive keeps 97.3 m from every road user at all times, safely.",
        ],
        "failure_description": [
            "The ego hits vehicle ghost42 after a while and is at fault here.",
            f"The ego hits {'pedestrian' if rec.negative.facts.critical_agent_class != 'pedestrian' else 'truck'} {crit} ahead at some point.",  # noqa: E501
            "The ego is travelling at 63.0 m/s when the conflict starts.",
        ],
    }
    if str(rec.meta_action.lateral).startswith("change_lane"):
        cases["counterfactual_reasoning"].pop(1)          # a lane change is true here
    for field, texts in cases.items():
        for text in texts:
            assert _kinds(_with(rec, **{field: text}), rec), (field, text)


def test_a_collision_claim_for_a_near_miss_is_caught(records) -> None:  # noqa: ANN001
    rec = next(r for r in records if not r.negative.facts.collides)
    lab = _with(rec, failure_description="The ego crashes into the car ahead at full speed.")
    assert any("collision" in m for m in _kinds(lab, rec))
    lab = _with(rec, failure_description="The ego comes close, but there is no collision; "
                                         "the time to collision gets short.")
    assert not any("collision" in m for m in _kinds(lab, rec))


def test_negated_and_bounded_statements_are_not_contradictions(records) -> None:  # noqa: ANN001
    rec = next(r for r in records if r.meta_action.longitudinal in ("decelerate", "stop")
               and r.positive.facts.min_ttc_s is not None)
    ttc = rec.positive.facts.min_ttc_s
    assert ttc is not None
    lab = _with(rec, counterfactual_reasoning=(
        "Instead of accelerating, the positive brakes early; its time to collision never "
        f"drops below {max(ttc - 0.5, 0.0):.1f} s."))
    assert _kinds(lab, rec) == []


def test_agent_names_never_repeat_the_class() -> None:
    assert agent_name("pedestrian", "pedestrian") == "the pedestrian"
    assert agent_name("lead", "vehicle") == "the lead vehicle"
    assert agent_name("17", "vehicle") == "vehicle 17"
    assert agent_name("pedestrian_3", "pedestrian") == "pedestrian_3"
    assert agent_name(None, None) == "another road user"
