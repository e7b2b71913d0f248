"""The LLM labeler's transport against a misbehaving server (stub): adaptive concurrency,
cancellation, size cap, truncated bodies, secrets, and a cache that never replays failures."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from cfpair.labels.llm import LLMLabeler, LLMSettings, timeout_hint
from cfpair.records.schema import PairRecord
from tests.labels.stub_llm import Reply, StubLLM, valid_content
from tests.records.synthetic import synthetic_records

KEY = "sk-canary-faults-7f3a9c"


@pytest.fixture(scope="module")
def records() -> list[PairRecord]:
    out = synthetic_records(14, 5, 96, limit=8)
    assert len(out) == 8
    return out


def settings(stub: StubLLM, **kw: object) -> LLMSettings:
    base = dict(model="stub", base_url=stub.base_url, response_format="json_object",
                llm_cache=None, request_timeout=3.0, max_retries=2, backoff_s=0.01,
                backoff_max_s=0.05)
    return LLMSettings(**{**base, **kw})  # type: ignore[arg-type]


def run(s: LLMSettings, recs: list[PairRecord]) -> tuple[LLMLabeler, list]:
    lab = LLMLabeler(s)
    try:
        return lab, lab.run(recs)
    finally:
        lab.close()


def test_single_slot_server_settles_at_one_request_without_timeouts(records) -> None:  # noqa: ANN001
    slow = lambda _n, b: Reply(delay_s=0.15, content=valid_content(b))  # noqa: E731
    with StubLLM(slow, slots=1) as stub:
        lab, out = run(settings(stub, concurrency=8, request_timeout=2.0), records)
    assert [o.status for o in out] == ["ok"] * len(records)
    st = lab.stats.as_dict()
    assert st.get("failed_timeout", 0) == 0 and st.get("retries", 0) == 0
    # it tried 2 in flight once, saw no gain, and went back to 1: never 8 queued requests
    assert stub.peak_open <= 2
    assert st["concurrency_max_s"] <= 2


def test_parallel_server_lets_concurrency_climb(records) -> None:  # noqa: ANN001
    slow = lambda _n, b: Reply(delay_s=0.15, content=valid_content(b))  # noqa: E731
    with StubLLM(slow) as stub:
        lab, out = run(settings(stub, concurrency=4), records * 3)
    assert all(o.status == "ok" for o in out)
    assert stub.peak >= 3 and lab.stats.as_dict()["concurrency_max_s"] >= 3


def test_slot_probe_caps_requests_in_flight(records) -> None:  # noqa: ANN001
    slow = lambda _n, b: Reply(delay_s=0.05, content=valid_content(b))  # noqa: E731
    with StubLLM(slow, props={"total_slots": 1}) as stub:
        lab, out = run(settings(stub, concurrency=8, adaptive=False), records)
    assert all(o.status == "ok" for o in out)
    assert stub.peak_open == 1 and lab.stats.counts["server_slots"] == 1


def test_a_timed_out_request_is_abandoned_and_the_server_sees_it_go(records) -> None:  # noqa: ANN001
    with StubLLM(lambda _n, b: Reply(delay_s=5.0, content=valid_content(b))) as stub:
        t0 = time.monotonic()
        lab, out = run(settings(stub, request_timeout=0.3, max_retries=0, label_fallback="skip"),
                       records[:1])
        deadline = time.monotonic() + 2.0
        while stub.disconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert time.monotonic() - t0 < 2.5
        assert stub.disconnects == 1                  # the server stopped that work
    assert out[0].status == "unlabeled" and lab.stats.counts["failed_timeout"] == 1
    assert timeout_hint(lab.stats.as_dict()) and "--concurrency 1" in str(
        timeout_hint(lab.stats.as_dict()))


def test_cancelling_the_batch_closes_every_open_request(records) -> None:  # noqa: ANN001
    with StubLLM(lambda _n, b: Reply(delay_s=5.0, content=valid_content(b))) as stub:
        lab = LLMLabeler(settings(stub, concurrency=3, adaptive=False, request_timeout=30.0))

        async def main() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(lab.label_all(records[:3]), 0.5)
        asyncio.run(main())
        deadline = time.monotonic() + 2.0
        while stub.disconnects < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stub.disconnects == 3 and lab._client is None


def test_oversize_reply_is_cut_off_counted_and_re_asked(records) -> None:  # noqa: ANN001
    huge = json.dumps({"pad": "x" * 3_000_000})

    def script(n: int, body: dict) -> Reply:
        return Reply(content=huge) if n == 0 else Reply(content=valid_content(body))

    with StubLLM(script) as stub:
        lab, out = run(settings(stub, concurrency=1), records[:1])
        feedback = stub.requests[1]["messages"][-1]["content"]
    assert out[0].status == "ok" and out[0].attempts == 2
    assert lab.stats.counts["failed_oversize"] == 1 and "too long" in feedback
    assert len(stub.requests[1]["messages"][2]["content"]) == 0      # nothing of it echoed


def test_truncated_body_is_its_own_kind_and_retried(records) -> None:  # noqa: ANN001
    def script(n: int, body: dict) -> Reply:
        return Reply(content=valid_content(body), truncate=n == 0)

    with StubLLM(script) as stub:
        lab, out = run(settings(stub, concurrency=1), records[:1])
    assert out[0].status == "ok"
    assert lab.stats.counts["failed_truncated_body"] == 1
    assert lab.stats.counts["retry_truncated_body"] == 1


def test_invalid_replies_are_never_cached_and_a_fixed_server_is_asked_again(
        records, tmp_path: Path) -> None:  # noqa: ANN001
    cache = tmp_path / "c.sqlite"
    with StubLLM(lambda _n, _b: Reply(content='{"risk_level": ')) as stub:
        lab, out = run(settings(stub, llm_cache=str(cache), max_reasks=1), records[:2])
    assert [o.status for o in out] == ["fallback"] * 2
    assert lab.stats.counts["failed_invalid_json"] == 4
    assert sqlite3.connect(cache).execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 0
    with StubLLM() as fixed:
        lab, out = run(settings(fixed, llm_cache=str(cache)), records[:2])
        assert len(fixed.requests) == 2                   # asked again, not replayed
    assert [o.status for o in out] == ["ok"] * 2
    with StubLLM() as third:
        lab, out = run(settings(third, llm_cache=str(cache)), records[:2])
        assert len(third.requests) == 0 and lab.stats.counts["cache_hits"] == 2


def test_a_cached_reply_that_no_longer_validates_is_dropped(records, tmp_path: Path) -> None:  # noqa: ANN001
    cache = tmp_path / "c.sqlite"
    with StubLLM() as stub:
        run(settings(stub, llm_cache=str(cache)), records[:1])
    db = sqlite3.connect(cache, isolation_level=None)
    db.execute("UPDATE replies SET content = '{\"broken\": '")
    db.close()
    with StubLLM() as stub:
        lab, out = run(settings(stub, llm_cache=str(cache)), records[:1])
        assert len(stub.requests) == 1
    assert out[0].status == "ok" and lab.stats.counts["cache_invalid"] == 1


def test_an_echoed_api_key_is_scrubbed_from_labels_cache_and_errors(
        records, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cache = tmp_path / "c.sqlite"

    def echo(n: int, body: dict) -> Reply:
        if n == 0:
            return Reply(status=400, raw=json.dumps({"error": {
                "message": f"bad key {KEY} (Authorization: Bearer {KEY})"}}).encode())
        lab = json.loads(valid_content(body))
        lab["failure_description"] = f"The server says Authorization: Bearer {KEY} and {KEY}."
        return Reply(content=json.dumps(lab))

    with StubLLM(echo) as stub:
        lab, out = run(settings(stub, llm_cache=str(cache), concurrency=1), records[:2])
        assert stub.auth[0] == f"Bearer {KEY}"            # the key did reach the server
    assert out[0].status == "fallback" and KEY not in (out[0].error or "")
    assert out[1].status == "ok" and out[1].label is not None
    assert KEY not in out[1].label.failure_description
    assert "[redacted]" in out[1].label.failure_description
    assert KEY.encode() not in cache.read_bytes()
    for p in tmp_path.glob("c.sqlite*"):
        assert KEY.encode() not in p.read_bytes()


def test_a_text_contradiction_is_rejected_counted_and_re_asked(records) -> None:  # noqa: ANN001
    rec = next(r for r in records if r.negative.facts.safety_score == 0.0)

    def lie(n: int, body: dict) -> Reply:
        lab = json.loads(valid_content(body))
        if n == 0:
            lab["failure_description"] = "The negative's measured safety score is 1.0."
        return Reply(content=json.dumps(lab))

    with StubLLM(lie) as stub:
        lab, out = run(settings(stub, concurrency=1), [rec])
        feedback = stub.requests[1]["messages"][-1]["content"]
    assert out[0].status == "ok" and out[0].attempts == 2
    assert lab.stats.counts["failed_text_contradiction"] == 1
    assert lab.contradictions == {"text_contradiction": 1}
    assert "safety score" in feedback
