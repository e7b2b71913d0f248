"""The LLM labeler: any OpenAI-compatible server, validated, grounded, cached, concurrent.

Per pair: render the prompt (``prompt.py``), ask, parse with Pydantic, check against the facts
(``grounding.py``). A parse, validation or grounding error is fed back and re-asked at most
``max_reasks`` times; the conversation never grows beyond base + last reply + feedback.
Transport errors (429, 5xx, timeouts, refused connections) never reach the model: they are
retried with exponential backoff and jitter, honouring ``Retry-After``. After that the
configured fallback (``rules`` or ``skip``) applies, counted. Every reply is cached under a
hash of the request (``cache.py``), so a re-run pays nothing. Tokens and cost are counted over
every attempt, not only the last.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import openai
from pydantic import ValidationError

from cfpair.errors import ConfigError
from cfpair.labels import prompt, rules
from cfpair.labels.cache import CachedReply, RequestCache, request_key
from cfpair.labels.grounding import check_label
from cfpair.labels.models import SCHEMA_VERSION, PairRecord, SafetyLabel

NAME = "openai"
FORMATS = ("auto", "json_schema", "json_object")
FALLBACKS = ("rules", "skip")
#: server answers to a json_schema request that mean "not supported here" (llama.cpp: 500)
SCHEMA_UNSUPPORTED = (400, 404, 422, 500, 501)
FEEDBACK_CHARS = 2000


@dataclass(frozen=True)
class LLMSettings:
    """How to reach the model and what to do when it fails."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    response_format: str = "auto"
    concurrency: int = 8
    request_timeout: float = 60.0
    max_retries: int = 4
    max_reasks: int = 2
    label_fallback: str = "rules"
    temperature: float = 0.0
    max_tokens: int = 768
    prompt_version: str = "v1"
    price_input: float = 0.0
    price_output: float = 0.0
    llm_cache: str | None = None
    with_images: bool = False
    image_root: str | None = None
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def __post_init__(self) -> None:
        if self.response_format not in FORMATS:
            raise ConfigError(f"response_format must be one of {FORMATS}, "
                              f"got {self.response_format!r}")
        if self.label_fallback not in FALLBACKS:
            raise ConfigError(f"label_fallback must be one of {FALLBACKS}, "
                              f"got {self.label_fallback!r}")
        if self.concurrency < 1 or self.max_retries < 0 or self.max_reasks < 0:
            raise ConfigError("concurrency must be >= 1, max_retries and max_reasks >= 0")
        if self.request_timeout <= 0:
            raise ConfigError(f"request_timeout must be > 0 s, got {self.request_timeout}")
        prompt.templates(self.prompt_version)


@dataclass
class LLMStats:
    """Counters of one labelling batch; ``as_dict`` goes into the manifest (summed per run)."""

    counts: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    latency_max_s: float = 0.0

    def add_usage(self, s: LLMSettings, prompt_tokens: int, completion_tokens: int,
                  latency: float) -> None:
        """Account one answered (paid) request."""
        self.counts["replies"] += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += (prompt_tokens * s.price_input
                          + completion_tokens * s.price_output) / 1e6
        self.latency_s += latency
        self.latency_max_s = max(self.latency_max_s, latency)

    def as_dict(self) -> dict[str, float]:
        """Flat numbers: counts, tokens, cost, latency sum and max."""
        return {**dict(self.counts), "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost_usd": round(self.cost_usd, 8), "latency_s": round(self.latency_s, 4),
                "latency_max_s": round(self.latency_max_s, 4)}


@dataclass(frozen=True)
class Outcome:
    """The result for one record."""

    label: SafetyLabel | None
    status: str                 # ok | fallback | unlabeled
    labeler: str
    attempts: int
    error: str | None = None


class TransportFailure(Exception):
    """The server could not be made to answer (kind: timeout, rate_limit, http_500, ...)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), if any."""
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def _kind(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limit"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}"
    return type(exc).__name__


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
        return "schema_error", f"Your JSON does not follow the schema: {errs}."
    return "invalid_json", f"Your reply could not be read: {exc}."


def _echoed(lab: SafetyLabel) -> str | None:
    """The text field that only repeats its schema description (small models do), if any."""
    for name in ("failure_description", "counterfactual_reasoning"):
        desc = (SafetyLabel.model_fields[name].description or "").lower().strip(" .")
        if getattr(lab, name).lower().strip(" .") == desc:
            return name
    return None


class LLMLabeler:
    """Labels records concurrently against one OpenAI-compatible endpoint."""

    def __init__(self, settings: LLMSettings) -> None:
        self.s = settings
        self.stats = LLMStats()
        self.contradictions: Counter[str] = Counter()
        self.mode = "json_schema" if settings.response_format == "auto" \
            else settings.response_format
        self.cache = RequestCache(settings.llm_cache) if settings.llm_cache else None
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None

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

    def _cached(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> str | None:
        if self.cache is None:
            return None
        modes = [self.mode] + (["json_object"] if self.s.response_format == "auto"
                               and self.mode == "json_schema" else [])
        for mode in modes:
            hit = self.cache.get(self._key(messages, self._params(schema, mode)))
            if hit is not None:
                self.stats.counts["cache_hits"] += 1
                self.stats.counts["cached_tokens"] += hit.prompt_tokens + hit.completion_tokens
                return hit.content
        return None

    def _backoff(self, attempt: int) -> float:
        cap = min(self.s.backoff_max_s, self.s.backoff_s * 2 ** attempt)
        return cap / 2 + random.uniform(0, cap / 2)

    async def complete(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> str:
        """The reply text for ``messages`` (cache, then server with retries)."""
        hit = self._cached(messages, schema)
        if hit is not None:
            return hit
        assert self._client is not None and self._sem is not None
        attempt = 0
        while True:
            try:
                async with self._sem:
                    mode = self.mode        # read under the semaphore: a switch applies at once
                    params = self._params(schema, mode)
                    started = time.perf_counter()
                    self.stats.counts["requests"] += 1
                    resp = await self._client.chat.completions.create(
                        model=self.s.model, messages=messages, **params)  # type: ignore[arg-type]
            except openai.APIStatusError as exc:
                if (mode == "json_schema" and self.s.response_format == "auto"
                        and exc.status_code in SCHEMA_UNSUPPORTED):
                    self.mode = "json_object"          # sticky for this labeler
                    self.stats.counts["format_fallbacks"] += 1
                    continue
                retryable = exc.status_code == 429 or exc.status_code >= 500 or \
                    exc.status_code == 408
                if not retryable or attempt >= self.s.max_retries:
                    raise TransportFailure(_kind(exc), str(exc)[:300]) from None
                kind = _kind(exc)
                wait = _retry_after(exc)
                wait = (min(wait, self.s.retry_after_max_s) * random.uniform(1.0, 1.1)
                        if wait is not None else self._backoff(attempt))
            except openai.APIConnectionError as exc:   # includes APITimeoutError
                if attempt >= self.s.max_retries:
                    raise TransportFailure(_kind(exc), str(exc)[:300]) from None
                kind = _kind(exc)
                wait = self._backoff(attempt)
            else:
                latency = time.perf_counter() - started
                usage = resp.usage
                pt = usage.prompt_tokens if usage else 0
                ct = usage.completion_tokens if usage else 0
                self.stats.add_usage(self.s, pt, ct, latency)
                content = (resp.choices[0].message.content or "") if resp.choices else ""
                if self.cache is not None:
                    self.cache.put(self._key(messages, params), CachedReply(content, pt, ct,
                                                                            latency))
                return content
            self.stats.counts[f"retry_{kind}"] += 1
            self.stats.counts["retries"] += 1
            attempt += 1
            await asyncio.sleep(wait)

    # -- one record -----------------------------------------------------------------------
    def _fallback(self, rec: PairRecord, attempts: int, error: str) -> Outcome:
        self.stats.counts[f"fallback_{self.s.label_fallback}"] += 1
        if self.s.label_fallback == "rules":
            return Outcome(rules.label(rec), "fallback", rules.NAME, attempts, error)
        return Outcome(None, "unlabeled", NAME, attempts, error)

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
                content = await self.complete(msgs, schema)
            except TransportFailure as exc:
                self.stats.counts[f"failed_{exc.kind}"] += 1
                return self._fallback(rec, attempt + 1, str(exc))
            try:
                lab = parse_label(content)
            except (ValidationError, ValueError) as exc:
                kind, feedback = _feedback(exc)
                self.stats.counts[kind] += 1
            else:
                bad = check_label(lab, rec)
                echo = _echoed(lab)
                if echo and not bad:
                    self.stats.counts["echo"] += 1
                    kind, feedback = "echo", (
                        f"Your {echo} repeats the schema's description instead of describing "
                        "this scene. Write it with the agent, times and numbers given.")
                elif not bad:
                    self.stats.counts["labels_ok"] += 1
                    return Outcome(lab, "ok", NAME, attempt + 1)
                else:
                    self.stats.counts["grounding_errors"] += 1
                    self.contradictions.update(c.kind for c in bad)
                    kind = "grounding"
                    feedback = ("Your label contradicts the measured facts: "
                                + "; ".join(f"{c.kind}: {c.message}" for c in bad)
                                + ". Use the facts exactly.")
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
        """Label every record with at most ``concurrency`` requests in flight."""
        key = os.environ.get(self.s.api_key_env) or "not-needed"
        self._client = openai.AsyncOpenAI(base_url=self.s.base_url, api_key=key,
                                          timeout=self.s.request_timeout, max_retries=0)
        self._sem = asyncio.Semaphore(self.s.concurrency)
        try:
            return list(await asyncio.gather(*(self._guarded(r) for r in records)))
        finally:
            await self._client.close()
            self._client = None

    def run(self, records: list[PairRecord]) -> list[Outcome]:
        """Synchronous wrapper (one event loop per call)."""
        return asyncio.run(self.label_all(records)) if records else []

    def close(self) -> None:
        """Close the cache."""
        if self.cache is not None:
            self.cache.close()
