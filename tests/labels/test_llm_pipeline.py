"""``cfpair generate --labeler openai`` end to end (CLI subprocess) against the stub server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.labels.stub_llm import Reply, StubLLM, valid_content

KEY = "sk-canary-pipeline-42"


def generate(out: Path, stub: StubLLM, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cfpair", "generate", "--split", "train", "--limit", "6",
           "--candidates", "64", "--shard-size", "3", "--workers", "2", "--out", str(out),
           "--labeler", "openai", "--base-url", stub.base_url, "--model", "stub",
           "--llm-cache", str(cache), "--request-timeout", "5", "--price-input", "1",
           "--price-output", "4", *extra]
    env = {**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def rows(out: Path) -> list[dict]:
    return [r for p in sorted((out / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]


def test_generate_with_the_llm_labeler_re_asks_counts_and_caches(tmp_path: Path) -> None:
    seen: set[str] = set()

    def script(_n: int, body: dict) -> Reply:
        """Order-independent faults: per pair, by a hash of its prompt."""
        key = hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest()
        h = int(hashlib.sha256(body["messages"][1]["content"].encode()).hexdigest(), 16)
        if h % 3 == 0 and key not in seen:
            seen.add(key)
            return Reply(status=429, headers={"Retry-After": "0"})
        if h % 2 == 0 and len(body["messages"]) == 2:
            return Reply(content='{"risk_level": ')        # malformed: re-asked
        return Reply(content=valid_content(body))

    cache = tmp_path / "llm.sqlite"
    with StubLLM(script) as stub:
        res = generate(tmp_path / "a", stub, cache)
        assert res.returncode == 0, res.stderr
        paid = len(stub.requests)
        res2 = generate(tmp_path / "b", stub, cache)
        assert res2.returncode == 0, res2.stderr
        repaid = len(stub.requests) - paid
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    c, llm = man["counts"], man["counts"]["llm"]
    assert c["pairs"] >= 4 and c["label_status"] == {"ok": c["pairs"]}
    assert c["labels_by_labeler"] == {"openai": c["pairs"]}
    assert llm["requests"] == paid and llm["invalid_json"] >= 1 and llm["reasks"] >= 1
    assert llm["retry_rate_limit"] >= 1
    assert llm["replies"] == paid - llm["retry_rate_limit"]
    assert llm["prompt_tokens"] == 100 * llm["replies"]
    assert llm["cost_usd"] > 0 and llm["latency_s"] > 0
    assert "llm" in res.stdout and "re-ask" in res.stdout     # "1 re-ask" or "3 re-asks"
    assert man["config"]["model"] == "stub" and "base_url" not in man["config"]
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())["counts"]["llm"]
    # accepted labels are replayed from the cache; the malformed first replies were never
    # stored, so the re-run asks for them again (and its re-ask is then a cache hit)
    assert b["cache_hits"] == llm["labels_ok"] and repaid == llm["invalid_json"] >= 1
    assert b["requests"] == repaid
    recs = rows(tmp_path / "a")
    assert [r["label"] for r in recs] == [r["label"] for r in rows(tmp_path / "b")]
    for r in recs:
        p = r["provenance"]
        assert (p["labeler"], p["prompt_version"], p["label_model"]) == ("openai", "v1", "stub")
    for p in [*tmp_path.rglob("*"), cache]:
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p
    assert KEY not in res.stdout + res.stderr


def test_a_dead_server_never_crashes_the_run(tmp_path: Path) -> None:
    with StubLLM(lambda n, b: Reply(status=500)) as stub:
        res = generate(tmp_path / "out", stub, tmp_path / "c.sqlite", "--label-fallback",
                       "skip", "--max-retries", "1", "--response-format", "json_object")
    assert res.returncode == 0, res.stderr
    c = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]
    assert c["label_status"] == {"unlabeled": c["pairs"]} and c["pairs"] >= 4
    assert c["llm"]["failed_http_500"] == 2 * c["pairs"]        # a try and a retry each
    assert c["llm"]["fallback_skip"] == c["pairs"]
    assert all(r["label"] is None for r in rows(tmp_path / "out"))


def test_openai_labeler_needs_a_model(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "cfpair", "generate", "--labeler", "openai",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "--model is required" in res.stderr
