"""Label models, schema files, the rules labeler and grounding."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cfpair.labels import rules
from cfpair.labels.grounding import KINDS, check_label
from cfpair.labels.risk import risk_level
from cfpair.records.json_schema import SCHEMAS, render
from cfpair.records.label import SafetyLabel
from tests.records.synthetic import synthetic_records

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture(scope="module")
def records():  # noqa: ANN201
    out = synthetic_records(36, 11, 192)
    assert len(out) >= 30
    return out


def test_schema_files_are_current() -> None:
    for name, model in SCHEMAS.items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{path} missing: run python -m cfpair.records.json_schema"
        assert path.read_text() == render(model), (
            f"{path} is stale: run python -m cfpair.records.json_schema")


def test_rules_labels_are_complete_and_grounded(records) -> None:  # noqa: ANN001
    for rec in records:
        lab = rules.label(rec)
        assert check_label(lab, rec) == []
        assert len(lab.failure_description) > 40 and len(lab.counterfactual_reasoning) > 40
        f = rec.negative.facts
        assert lab.risk_level == risk_level(rec)
        if f.collides:
            assert lab.risk_level in ("high", "critical") and (
                f"{f.first_conflict_time_s:.1f} s" in lab.failure_description)
        if f.critical_agent_id:
            assert f.critical_agent_id in lab.failure_description
        # a label survives a JSON round trip through the strict model
        assert SafetyLabel.model_validate_json(lab.model_dump_json()) == lab


def test_models_forbid_extra_fields_and_bound_numbers(records) -> None:  # noqa: ANN001
    data = rules.label(records[0]).model_dump()
    with pytest.raises(ValidationError):
        SafetyLabel.model_validate({**data, "confidence": 0.9})
    with pytest.raises(ValidationError):
        SafetyLabel.model_validate({**data, "safety_score": 1.5})
    with pytest.raises(ValidationError):
        SafetyLabel.model_validate({**data, "risk_level": "catastrophic"})


def test_every_kind_of_contradiction_is_caught(records) -> None:  # noqa: ANN001
    rec = next(r for r in records if r.negative.facts.collides
               and r.negative.facts.critical_agent_class == "vehicle")
    good = rules.label(rec)
    other = next(a for a in rec.context.agents if a.id != rec.negative.facts.critical_agent_id) \
        if len(rec.context.agents) > 1 else None
    bad = {
        "critical_agent": {"critical_agent": {"id": other.id if other else "ghost",
                                              "cls": "vehicle"}},
        "risk_level": {"risk_level": "none"},
        "hazard_type": {"hazard_type": "vulnerable_road_user"},
        "time_to_conflict": {"time_to_conflict_s": good.time_to_conflict_s + 1.0},
        "corrective_action": {"corrective_action": {
            "longitudinal": "accelerate" if rec.meta_action.longitudinal != "accelerate"
            else "stop", "lateral": rec.meta_action.lateral}},
        "safety_score": {"safety_score": 0.9},
        "text_contradiction": {"failure_description": "The negative's measured safety score "
                                                      "is 1.0."},
    }
    assert set(bad) == set(KINDS)
    for kind, change in bad.items():
        lab = SafetyLabel.model_validate({**good.model_dump(), **change})
        kinds = [c.kind for c in check_label(lab, rec)]
        assert kinds == [kind], (kind, kinds)


def test_labelers_share_one_protocol_and_registry(records) -> None:  # noqa: ANN001
    import subprocess
    import sys

    from cfpair.config import GenerateConfig
    from cfpair.errors import ConfigError
    from cfpair.labels.base import Labeler, make_labeler

    lab = make_labeler("rules", GenerateConfig())
    assert isinstance(lab, Labeler)
    out = lab.label_batch(records[:3])
    assert [o.status for o in out] == ["ok"] * 3 and lab.counters() == {}
    assert all(o.label == rules.label(r) for o, r in zip(out, records[:3], strict=True))
    with pytest.raises(ConfigError, match="known: openai, rules"):
        make_labeler("gpt", GenerateConfig())
    # the rules labeler never imports the LLM client
    code = ("import sys; from cfpair.config import GenerateConfig; "
            "from cfpair.labels.base import make_labeler; make_labeler('rules', "
            "GenerateConfig()); print('openai' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.stdout.strip() == "False", res.stderr
