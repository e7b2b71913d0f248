"""The LLM labeler against a local stub server: prompts, schemas, faults, re-asks, cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest

from cfpair.labels import prompt, rules
from cfpair.labels.llm import LLMLabeler, LLMSettings
from cfpair.labels.risk import risk_level
from cfpair.records.schema import PairRecord
from tests.labels.stub_llm import Reply, StubLLM, request_schema, valid_content
from tests.records.synthetic import synthetic_records


@pytest.fixture(scope="module")
def records() -> list[PairRecord]:
    out = synthetic_records(12, 5, 96)
    assert len(out) >= 8
    return out


def settings(stub: StubLLM, tmp_path: Path, **kw: object) -> LLMSettings:
    base = dict(model="stub", base_url=stub.base_url, response_format="json_object",
                llm_cache=None, request_timeout=2.0, max_retries=3,
                backoff_s=0.01, backoff_max_s=0.05, concurrency=4)
    return LLMSettings(**{**base, **kw})  # type: ignore[arg-type]


def run(s: LLMSettings, recs: list[PairRecord]) -> LLMLabeler:
    lab = LLMLabeler(s)
    lab.outcomes = lab.run(recs)  # type: ignore[attr-defined]
    lab.close()
    return lab


# -- prompt and schema -------------------------------------------------------------------------
def test_prompt_is_rendered_from_facts_not_arrays(records: list[PairRecord]) -> None:
    rec = next(r for r in records if r.negative.facts.collides)
    msgs, missing = prompt.messages(rec, "v1")
    user = msgs[1]["content"]
    assert msgs[0]["role"] == "system" and "Never change them" in msgs[0]["content"]
    f = rec.negative.facts
    assert f"{f.critical_agent_id} (critical)" in user
    assert f"{f.first_conflict_time_s:.2f} s" in user and f"PDMS {f.pdms:.3f}" in user
    assert "longitudinal " + str(rec.meta_action.longitudinal) in user
    assert "[" + ", ".join(map(str, rec.negative.x[:3])) not in user   # no raw arrays
    assert len(user) < 6000 and missing == 0
    for tr in (rec.negative, rec.positive):                 # no operator names or parameters
        assert tr.perturbation.split(" ")[0] not in user or tr.perturbation == "expert"
        assert "{" + '"' not in user.split("Return a JSON object")[0]
    assert rec.positive_vs_negative is not None and rec.positive_vs_negative.summary in user
    assert f"Risk, graded from the facts: {risk_level(rec)} (" in user


def test_pinned_schema_accepts_the_rules_label_and_rejects_a_wrong_agent(
        records: list[PairRecord]) -> None:
    for rec in records:
        schema = prompt.label_schema(rec)
        good = rules.label(rec).model_dump(mode="json", exclude={"schema_version"})
        good["safety_score"] = round(good["safety_score"], 3)
        if good["time_to_conflict_s"] is not None:
            good["time_to_conflict_s"] = round(good["time_to_conflict_s"], 2)
        jsonschema.validate(good, schema)
        if rec.negative.facts.critical_agent_id is not None:
            bad = {**good, "critical_agent": {**good["critical_agent"], "id": "someone_else"}}
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(bad, schema)
    assert "$ref" not in json.dumps(prompt.label_schema())


def test_with_images_attaches_camera_files(records: list[PairRecord], tmp_path: Path) -> None:
    from cfpair.records.schema import Camera

    (tmp_path / "cam").mkdir()
    (tmp_path / "cam" / "front.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    ctx = records[0].context.model_copy(update={"cameras": [
        Camera(name="front", path="cam/front.png"), Camera(name="back", path="cam/gone.jpg")]})
    rec = records[0].model_copy(update={"context": ctx})
    msgs, missing = prompt.messages(rec, "v1", with_images=True, image_root=str(tmp_path))
    parts = msgs[1]["content"]
    assert parts[0]["type"] == "text" and missing == 1
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGg")


# -- the happy path, cache and secrets ---------------------------------------------------------
def test_valid_labels_then_cache_pays_nothing(records: list[PairRecord], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-0123456789")
    recs = records[:6]
    with StubLLM() as stub:
        cache = str(tmp_path / "cache.sqlite")
        first = run(settings(stub, tmp_path, price_input=2.0, price_output=8.0, llm_cache=cache),
                    recs)
        assert [o.status for o in first.outcomes] == ["ok"] * 6
        assert all(o.labeler == "openai" and o.label is not None for o in first.outcomes)
        st = first.stats.as_dict()
        assert st["requests"] == st["replies"] == st["labels_ok"] == 6
        assert "cache_hits" not in st
        assert st["prompt_tokens"] == 600 and st["completion_tokens"] == 300
        assert st["cost_usd"] == pytest.approx((600 * 2 + 300 * 8) / 1e6)
        assert st["latency_s"] > 0 and st["latency_max_s"] > 0
        assert stub.auth == ["Bearer sk-canary-0123456789"] * 6
        assert all(r["response_format"]["type"] == "json_object" for r in stub.requests)
        assert all(r["temperature"] == 0.0 for r in stub.requests)
        second = run(settings(stub, tmp_path, llm_cache=cache), recs)
        assert len(stub.requests) == 6                   # nothing new reached the server
    assert [o.label for o in second.outcomes] == [o.label for o in first.outcomes]
    assert second.stats.as_dict()["cache_hits"] == 6
    assert "requests" not in second.stats.as_dict()
    for p in tmp_path.iterdir():
        assert b"sk-canary" not in p.read_bytes(), p


def test_auto_falls_back_from_json_schema_to_json_object(records: list[PairRecord],
                                                         tmp_path: Path) -> None:
    def script(_n: int, body: dict) -> Reply:
        if body["response_format"]["type"] == "json_schema":
            return Reply(status=500)                      # what llama.cpp's server answers
        return Reply(content=valid_content(body))

    with StubLLM(script) as stub:
        lab = run(settings(stub, tmp_path, response_format="auto", concurrency=1,
                           llm_cache=str(tmp_path / "c.sqlite")), records[:3])
        kinds = [r["response_format"]["type"] for r in stub.requests]
    assert [o.status for o in lab.outcomes] == ["ok"] * 3
    assert kinds == ["json_schema", "json_object", "json_object", "json_object"]
    assert lab.stats.counts["format_fallbacks"] == 1 and lab.stats.counts["retries"] == 0
    with StubLLM(script) as stub:                         # a re-run finds the json_object replies
        again = run(settings(stub, tmp_path, response_format="auto",
                             llm_cache=str(tmp_path / "c.sqlite")), records[:3])
        assert stub.requests == []
    assert again.stats.counts["cache_hits"] == 3
    with StubLLM(script) as stub:     # the next shard's labeler in this process: no 500 again
        first = run(settings(stub, tmp_path, response_format="auto", concurrency=1),
                    records[:1])
        second = run(settings(stub, tmp_path, response_format="auto", concurrency=1),
                     records[1:3])
        kinds = [r["response_format"]["type"] for r in stub.requests]
    assert first.stats.counts["format_fallbacks"] == 1
    assert second.stats.counts["format_fallbacks"] == 0
    assert kinds == ["json_schema", "json_object", "json_object", "json_object"]


# -- transport faults --------------------------------------------------------------------------
def test_429_honours_retry_after(records: list[PairRecord], tmp_path: Path) -> None:
    def script(n: int, body: dict) -> Reply:
        if n == 0:
            return Reply(status=429, headers={"Retry-After": "1"})
        return Reply(content=valid_content(body))

    with StubLLM(script) as stub:
        lab = run(settings(stub, tmp_path, concurrency=1), records[:1])
        gap = stub.times[1] - stub.times[0]
    assert lab.outcomes[0].status == "ok"
    assert lab.stats.counts["retry_rate_limit"] == 1
    assert 1.0 <= gap < 1.6                               # waited Retry-After, not 0.01 s backoff


def test_500_is_retried_then_counted_as_a_failure(records: list[PairRecord],
                                                  tmp_path: Path) -> None:
    def flaky(n: int, body: dict) -> Reply:
        return Reply(status=500) if n < 2 else Reply(content=valid_content(body))

    with StubLLM(flaky) as stub:
        lab = run(settings(stub, tmp_path), records[:1])
    assert lab.outcomes[0].status == "ok" and lab.stats.counts["retry_http_500"] == 2

    with StubLLM(lambda n, b: Reply(status=503)) as stub:
        lab = run(settings(stub, tmp_path, max_retries=2), records[:2])
        assert len(stub.requests) == 2 * 3                # 1 try + 2 retries each
    assert [o.status for o in lab.outcomes] == ["fallback"] * 2
    assert all(o.labeler == "rules" and o.label == rules.label(r)
               for o, r in zip(lab.outcomes, records[:2], strict=True))
    # every failed attempt is counted by kind: 2 records x 3 attempts
    assert lab.stats.counts["failed_http_503"] == 6 and lab.stats.counts["fallback_rules"] == 2


def test_a_hang_past_the_timeout_is_retried_and_then_given_up(records: list[PairRecord],
                                                              tmp_path: Path) -> None:
    def hang_once(n: int, body: dict) -> Reply:
        return Reply(delay_s=1.5, content=valid_content(body)) if n == 0 else \
            Reply(content=valid_content(body))

    with StubLLM(hang_once) as stub:
        t0 = time.monotonic()
        lab = run(settings(stub, tmp_path, request_timeout=0.3, concurrency=1), records[:1])
        assert time.monotonic() - t0 < 1.4
    assert lab.outcomes[0].status == "ok" and lab.stats.counts["retry_timeout"] == 1

    with StubLLM(lambda n, b: Reply(delay_s=1.0, content="{}")) as stub:
        lab = run(settings(stub, tmp_path, request_timeout=0.2, max_retries=1,
                           label_fallback="skip"), records[:1])
    assert lab.outcomes[0].status == "unlabeled" and lab.outcomes[0].label is None
    assert lab.stats.counts["failed_timeout"] == 2 and lab.stats.counts["fallback_skip"] == 1


def test_connection_refused_and_4xx_are_failures_not_crashes(records: list[PairRecord],
                                                             tmp_path: Path) -> None:
    with StubLLM() as stub:
        url = stub.base_url
    s = LLMSettings(model="m", base_url=url, response_format="json_object", max_retries=1,
                    backoff_s=0.01, llm_cache=None)
    lab = run(s, records[:2])
    assert lab.stats.counts["failed_connection"] == 4               # 2 records x 2 attempts
    with StubLLM(lambda n, b: Reply(status=401)) as stub:
        lab = run(settings(stub, tmp_path), records[:1])
        assert len(stub.requests) == 1                    # not retried
    assert lab.stats.counts["failed_http_401"] == 1 and lab.outcomes[0].status == "fallback"
    with StubLLM(lambda n, b: Reply(raw=b"<html>proxy error</html>")) as stub:
        lab = run(settings(stub, tmp_path), records[:1])
    assert lab.outcomes[0].status == "fallback" and lab.stats.counts["failed_bad_body"] == 4


# -- bad replies: re-ask with the error fed back -----------------------------------------------
@pytest.mark.parametrize(("bad", "kind"), [
    ('{"risk_level": "critical", "hazard', "invalid_json"),
    ("Sure! Here is the label you asked for.", "invalid_json"),
    ('{"risk_level": "extreme", "hazard_type": "rear_end"}', "schema"),
])
def test_malformed_or_schema_violating_json_is_re_asked(records: list[PairRecord],
                                                        tmp_path: Path, bad: str,
                                                        kind: str) -> None:
    def script(n: int, body: dict) -> Reply:
        return Reply(content=bad) if n == 0 else Reply(content=valid_content(body))

    with StubLLM(script) as stub:
        lab = run(settings(stub, tmp_path, concurrency=1), records[:1])
        second = stub.requests[1]["messages"]
    assert lab.outcomes[0].status == "ok" and lab.outcomes[0].attempts == 2
    assert lab.stats.counts[f"failed_{kind}"] == 1 and lab.stats.counts["reasks"] == 1
    assert len(second) == 4 and second[2] == {"role": "assistant", "content": bad}
    assert "schema" in second[3]["content"] or "JSON" in second[3]["content"]


def test_contradicting_label_is_rejected_counted_and_re_asked(records: list[PairRecord],
                                                              tmp_path: Path) -> None:
    rec = next(r for r in records if r.negative.facts.collides)

    def contradict(body: dict) -> str:
        lab = json.loads(valid_content(body))
        lab["critical_agent"] = {"id": "ghost", "cls": "vehicle"}
        lab["risk_level"] = "none"
        return json.dumps(lab)

    with StubLLM(lambda n, b: Reply(content=contradict(b) if n == 0 else valid_content(b))
                 ) as stub:
        lab = run(settings(stub, tmp_path), [rec])
        feedback = stub.requests[1]["messages"][3]["content"]
    assert lab.outcomes[0].status == "ok"
    assert lab.contradictions == {"critical_agent": 1, "risk_level": 1}
    assert "critical_agent" in feedback and rec.negative.facts.critical_agent_id in feedback

    with StubLLM(lambda n, b: Reply(content=contradict(b))) as stub:
        lab = run(settings(stub, tmp_path, max_reasks=2, label_fallback="rules"), [rec])
        assert len(stub.requests) == 3                    # 1 + 2 re-asks, then give up
        assert all(len(r["messages"]) <= 4 for r in stub.requests)  # prompt growth is capped
    assert lab.outcomes[0].status == "fallback" and lab.stats.counts["gave_up"] == 1
    assert lab.contradictions["critical_agent"] == 3


def test_settings_are_validated() -> None:
    from cfpair.errors import ConfigError

    with pytest.raises(ConfigError, match="response_format"):
        LLMSettings(model="m", response_format="xml")
    with pytest.raises(ConfigError, match="label_fallback"):
        LLMSettings(model="m", label_fallback="guess")
    with pytest.raises(ConfigError, match="prompt version 'v9'"):
        LLMSettings(model="m", prompt_version="v9")


def test_request_schema_helper_reads_both_formats() -> None:
    s = {"type": "object"}
    assert request_schema({"response_format": {"type": "json_object", "schema": s}}) == s
    assert request_schema({"response_format": {"type": "json_schema",
                                               "json_schema": {"schema": s}}}) == s
