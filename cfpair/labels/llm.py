"""The LLM labeler: any OpenAI-compatible server, validated, grounded, cached, concurrent.

Per pair: render the prompt (``prompt.py``), ask, parse with Pydantic, check against the facts
and the free text against them too (``grounding.py``). A parse, validation or grounding error is
fed back and re-asked at most ``max_reasks`` times; the conversation never grows beyond base +
last reply + feedback. Transport errors (429, 5xx, timeouts, refused connections, truncated
bodies) never reach the model: they are retried with exponential backoff and jitter, honouring
``Retry-After``. After that the configured fallback (``rules`` or ``skip``) applies, counted.

Suits a local server: requests in flight adapt (``concurrency.py``: start at 1, climb while
throughput grows, halve on a timeout; ``concurrency`` is the ceiling, and a llama.cpp server's
``/props`` slot count caps it); a request past ``request_timeout`` and every request still open
when the batch ends is cancelled and its connection closed, so the server can stop. Reply
bodies are read up to ``max_reply_bytes`` (``oversize`` beyond). Only replies that became an
accepted label are cached (``cache.py``), so after a fixed server a re-run asks again; secrets
are scrubbed from everything stored (``secrets.py``). Every failed attempt is counted by kind
as ``failed_<kind>``: timeout, connection, rate_limit, http_<code>, truncated_body, bad_body,
oversize, invalid_json, schema, grounding, text_contradiction, echo.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import ValidationError

from cfpair.labels import prompt, rules
from cfpair.labels.base import Outcome, register
from cfpair.labels.cache import CachedReply, RequestCache, request_key
from cfpair.labels.concurrency import AdaptiveLimit, timeout_hint
from cfpair.labels.grounding import check_label
from cfpair.labels.llm_settings import FALLBACKS, FORMATS, LLMSettings, LLMStats
from cfpair.labels.secrets import scrub
from cfpair.labels.transport import (
    BadReply,
    HTTPError,
    TransportFailure,
    _kind,
    _retry_after,
    server_slots,
)
from cfpair.records.label import SCHEMA_VERSION, SafetyLabel
from cfpair.records.schema import PairRecord

NAME = "openai"
#: server answers to a json_schema request that mean "not supported here" (llama.cpp: 500)
SCHEMA_UNSUPPORTED = (400, 404, 422, 500, 501)
FEEDBACK_CHARS = 2000
#: reply failures also counted under their own name (besides ``failed_<kind>``)
LEGACY_COUNTS = {"invalid_json": "invalid_json", "schema": "schema_error", "echo": "echo",
                 "oversize": "oversize"}

__all__ = ["FALLBACKS", "FORMATS", "LLMLabeler", "LLMSettings", "LLMStats", "Outcome",
           "timeout_hint"]


def parse_label(content: str) -> SafetyLabel:
    """A SafetyLabel from a reply; tolerates a ```json fence around the object."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[4:] if text.lower().startswith("json") else text
    return SafetyLabel.model_validate_json(text)


def _feedback(exc: Exception) -> tuple[str, str]:
    """(error kind, message for the model) of a reply that failed to parse or validate."""
    if isinstance(exc, ValidationError):
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return "invalid_json", f"Your reply is not valid JSON: {exc.errors()[0]['msg']}."
        errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'root'}: {e['msg']}"
                         for e in exc.errors()[:8])
        return "schema", f"Your JSON does not follow the schema: {errs}."
    return "invalid_json", f"Your reply could not be read: {exc}."


def _echoed(lab: SafetyLabel) -> str | None:
    """The text field that only repeats its schema description (small models do), if any."""
    for name in ("failure_description", "counterfactual_reasoning"):
        desc = (SafetyLabel.model_fields[name].description or "").lower().strip(" .")
        if getattr(lab, name).lower().strip(" .") == desc:
            return name
    return None


@dataclass(frozen=True)
class _Reply:
    content: str
    key: str
    cached: bool
    usage: tuple[int, int, float] = (0, 0, 0.0)   # prompt tokens, completion tokens, latency


#: (base URL, model) pairs that refused a json_schema request in this process
_SCHEMA_REFUSED: set[tuple[str | None, str]] = set()


class LLMLabeler:
    """Labels records concurrently against one OpenAI-compatible endpoint."""

    name = NAME

    @property
    def _server(self) -> tuple[str | None, str]:
        return (self.s.base_url, self.s.model)

    def __init__(self, settings: LLMSettings) -> None:
        self.s = settings
        self.stats = LLMStats()
        self.contradictions: Counter[str] = Counter()
        self.mode = "json_schema" if settings.response_format == "auto" \
            else settings.response_format
        if self.mode == "json_schema" and self._server in _SCHEMA_REFUSED:
            self.mode = "json_object"       # this process already learned it (another shard)
        self.cache = RequestCache(settings.llm_cache) if settings.llm_cache else None
        self._client: openai.AsyncOpenAI | None = None
        self._limit: AdaptiveLimit | None = None
        key = os.environ.get(settings.api_key_env) or ""
        self._secrets = (key,) if key else ()

    # -- transport ------------------------------------------------------------------------
    def _params(self, rec_schema: dict[str, Any], mode: str) -> dict[str, Any]:
        if mode == "json_schema":
            fmt: dict[str, Any] = {"type": "json_schema", "json_schema": {
                "name": "safety_label", "schema": rec_schema, "strict": True}}
        else:   # json_object; "schema" is the llama.cpp / vLLM extension for constrained output
            fmt = {"type": "json_object", "schema": rec_schema}
        return {"temperature": self.s.temperature, "max_tokens": self.s.max_tokens,
                "response_format": fmt}

    def _key(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return request_key(self.s.model, self.s.prompt_version, SCHEMA_VERSION, messages, params)

    def _cached(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> _Reply | None:
        if self.cache is None:
            return None
        modes = [self.mode] + (["json_object"] if self.s.response_format == "auto"
                               and self.mode == "json_schema" else [])
        for mode in modes:
            key = self._key(messages, self._params(schema, mode))
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.counts["cache_hits"] += 1
                self.stats.counts["cached_tokens"] += hit.prompt_tokens + hit.completion_tokens
                return _Reply(hit.content, key, True)
        return None

    def _backoff(self, attempt: int) -> float:
        cap = min(self.s.backoff_max_s, self.s.backoff_s * 2 ** attempt)
        return cap / 2 + random.uniform(0, cap / 2)

    async def _post(self, messages: list[dict[str, Any]], params: dict[str, Any]
                    ) -> tuple[dict[str, Any], float]:
        """One request; the body read up to ``max_reply_bytes``; the whole of it bounded by
        ``request_timeout`` (cancelled, and its connection closed, past that)."""
        assert self._client is not None
        started = time.perf_counter()
        async with asyncio.timeout(self.s.request_timeout):
            async with self._client.chat.completions.with_streaming_response.create(
                    model=self.s.model, messages=messages, **params) as raw:  # type: ignore
                body = bytearray()
                async for chunk in raw.iter_bytes():
                    body += chunk
                    if len(body) > self.s.max_reply_bytes:
                        raise BadReply("oversize", "Your reply was far too long. Answer with "
                                       "one short JSON object.")
        try:
            data = json.loads(bytes(body))
            assert isinstance(data, dict)
        except (ValueError, AssertionError):
            raise TransportFailure("bad_body", f"not a chat.completion JSON body "
                                   f"({len(body)} bytes)") from None
        return data, time.perf_counter() - started

    async def complete(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> _Reply:
        """The reply for ``messages`` (cache, then server with retries)."""
        hit = self._cached(messages, schema)
        if hit is not None:
            return hit
        assert self._limit is not None
        attempt = 0
        while True:
            mode = self.mode
            try:
                async with self._limit:
                    mode = self.mode        # read under the limit: a switch applies at once
                    params = self._params(schema, mode)
                    self.stats.counts["requests"] += 1
                    data, latency = await self._post(messages, params)
            except openai.APIStatusError as exc:
                if (mode == "json_schema" and self.s.response_format == "auto"
                        and exc.status_code in SCHEMA_UNSUPPORTED):
                    if self.mode == "json_schema":
                        self.mode = "json_object"          # sticky for this process
                        _SCHEMA_REFUSED.add(self._server)
                        self.stats.counts["format_fallbacks"] += 1
                    continue
                kind = _kind(exc)
                self.stats.fail(kind)
                retryable = exc.status_code in (408, 429) or exc.status_code >= 500
                if not retryable or attempt >= self.s.max_retries:
                    raise TransportFailure(kind, self._clean(str(exc))[:300]) from None
                wait = _retry_after(exc)
                wait = (min(wait, self.s.retry_after_max_s) * random.uniform(1.0, 1.1)
                        if wait is not None else self._backoff(attempt))
            except (openai.APIConnectionError, HTTPError, TimeoutError) as exc:
                kind = _kind(exc)
                self.stats.fail(kind)
                if kind == "timeout":
                    await self._limit.timeout()
                if attempt >= self.s.max_retries:
                    raise TransportFailure(kind, self._clean(str(exc))[:300]) from None
                wait = self._backoff(attempt)
            except TransportFailure as exc:
                self.stats.fail(exc.kind)
                if attempt >= self.s.max_retries:
                    raise
                kind, wait = exc.kind, self._backoff(attempt)
            else:
                await self._limit.success(latency)
                self.stats.concurrency_max = max(self.stats.concurrency_max,
                                                  self._limit.peak)
                usage = data.get("usage") or {}
                pt, ct = int(usage.get("prompt_tokens") or 0), int(
                    usage.get("completion_tokens") or 0)
                self.stats.add_usage(self.s, pt, ct, latency)
                choices = data.get("choices") or [{}]
                msg = (choices[0] or {}).get("message") or {}
                content = self._clean(str(msg.get("content") or ""))
                return _Reply(content, self._key(messages, params), False, (pt, ct, latency))
            self.stats.counts[f"retry_{kind}"] += 1
            self.stats.counts["retries"] += 1
            attempt += 1
            await asyncio.sleep(wait)

    def _clean(self, text: str) -> str:
        return scrub(text, self._secrets)

    # -- one record -----------------------------------------------------------------------
    def _fallback(self, rec: PairRecord, attempts: int, error: str) -> Outcome:
        self.stats.counts[f"fallback_{self.s.label_fallback}"] += 1
        error = self._clean(error)
        if self.s.label_fallback == "rules":
            return Outcome(rules.label(rec), "fallback", rules.NAME, attempts, error)
        return Outcome(None, "unlabeled", NAME, attempts, error)

    def _judge(self, content: str, rec: PairRecord) -> tuple[SafetyLabel | None, str, str]:
        """(label, kind, feedback): the label when it is accepted, else why not."""
        try:
            lab = parse_label(content)
        except (ValidationError, ValueError) as exc:
            kind, feedback = _feedback(exc)
            return None, kind, feedback
        bad = check_label(lab, rec)
        echo = _echoed(lab)
        if bad:
            self.contradictions.update(c.kind for c in bad)
            self.stats.counts["grounding_errors"] += 1
            kind = "text_contradiction" if all(c.kind == "text_contradiction" for c in bad) \
                else "grounding"
            return None, kind, ("Your label contradicts the measured facts: "
                                + "; ".join(f"{c.kind}: {c.message}" for c in bad)
                                + ". Use the facts exactly.")
        if echo:
            return None, "echo", (f"Your {echo} repeats the schema's description instead of "
                                  "describing this scene. Write it with the agent, times and "
                                  "numbers given.")
        return lab, "ok", ""

    async def label(self, rec: PairRecord) -> Outcome:
        """Ask, validate, ground; re-ask with the error; then fall back."""
        base, missing = prompt.messages(rec, self.s.prompt_version, self.s.with_images,
                                        self.s.image_root)
        self.stats.counts["images_missing"] += missing
        schema = prompt.label_schema(rec)
        msgs = base
        error = ""
        for attempt in range(self.s.max_reasks + 1):
            if attempt:
                self.stats.counts["reasks"] += 1
            try:
                reply = await self.complete(msgs, schema)
                lab, kind, feedback = self._judge(reply.content, rec)
                content = reply.content
            except TransportFailure as exc:
                return self._fallback(rec, attempt + 1, str(exc))
            except BadReply as exc:
                reply, lab, kind, feedback, content = None, None, exc.kind, exc.feedback, ""
            if lab is not None and reply is not None:
                self.stats.counts["labels_ok"] += 1
                if self.cache is not None and not reply.cached:
                    self.cache.put(reply.key, CachedReply(reply.content, *reply.usage))
                return Outcome(lab, "ok", NAME, attempt + 1, None, self.s.prompt_version,
                               self.s.model)
            if reply is not None and reply.cached and self.cache is not None:
                self.cache.delete(reply.key)            # never replay a reply that failed
                self.stats.counts["cache_invalid"] += 1
            self.stats.fail(kind)
            if kind in LEGACY_COUNTS:
                self.stats.counts[LEGACY_COUNTS[kind]] += 1
            error = f"{kind}: {feedback}"
            msgs = [*base, {"role": "assistant", "content": content[:FEEDBACK_CHARS]},
                    {"role": "user", "content": feedback + " Answer again with one JSON "
                     "object that follows the schema."}]
        self.stats.counts["gave_up"] += 1
        return self._fallback(rec, self.s.max_reasks + 1, error)

    async def _guarded(self, rec: PairRecord) -> Outcome:
        """``label`` that turns any unexpected error into a counted fallback."""
        try:
            return await self.label(rec)
        except Exception as exc:  # noqa: BLE001 - one bad reply never stops the run; counted
            self.stats.counts["failed_internal"] += 1
            return self._fallback(rec, 1, f"internal: {type(exc).__name__}: {exc}"[:300])

    # -- a batch --------------------------------------------------------------------------
    async def label_all(self, records: list[PairRecord]) -> list[Outcome]:
        """Label every record; requests in flight follow ``AdaptiveLimit``. On any exit
        (including cancellation) every open request is cancelled and the client closed."""
        key = os.environ.get(self.s.api_key_env) or "not-needed"
        self._client = openai.AsyncOpenAI(base_url=self.s.base_url, api_key=key,
                                          timeout=self.s.request_timeout, max_retries=0)
        self._limit = AdaptiveLimit(self.s.concurrency, self.s.adaptive)
        if self.s.probe_slots:
            slots = await asyncio.to_thread(server_slots, self.s.base_url)
            if slots is not None:
                self._limit.cap_at(slots)
                self.stats.counts["server_slots"] = slots
        tasks = [asyncio.ensure_future(self._guarded(r)) for r in records]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._client.close()
            self._client = None

    def run(self, records: list[PairRecord]) -> list[Outcome]:
        """Synchronous wrapper (one event loop per call)."""
        return asyncio.run(self.label_all(records)) if records else []

    def label_batch(self, records: list[PairRecord]) -> list[Outcome]:
        """The ``Labeler`` protocol: label a batch."""
        return self.run(records)

    def counters(self) -> dict[str, float]:
        """The ``Labeler`` protocol: the flat counters for the manifest."""
        return self.stats.as_dict()

    def close(self) -> None:
        """Close the cache."""
        if self.cache is not None:
            self.cache.close()


@register(NAME)
def _factory(cfg: Any) -> LLMLabeler:
    return LLMLabeler(cfg.llm_settings())
