"""Settings and counters of the LLM labeler (``llm.py``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cfpair.errors import ConfigError
from cfpair.labels import prompt

FORMATS = ("auto", "json_schema", "json_object")
FALLBACKS = ("rules", "skip")


@dataclass(frozen=True)
class LLMSettings:
    """How to reach the model and what to do when it fails. ``concurrency`` is the most
    requests in flight; with ``adaptive`` (default) the labeler starts at one and climbs only
    while throughput grows."""

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
    adaptive: bool = True
    probe_slots: bool = True
    max_reply_bytes: int = 262_144

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
        if self.max_reply_bytes < 1024:
            raise ConfigError(f"max_reply_bytes must be >= 1024, got {self.max_reply_bytes}")
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
    concurrency_max: int = 0

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

    def fail(self, kind: str) -> None:
        """Count one failed attempt by kind."""
        self.counts[f"failed_{kind}"] += 1

    def as_dict(self) -> dict[str, float]:
        """Flat numbers: counts, tokens, cost, latency sum and max, peak requests in flight."""
        out: dict[str, float] = {**dict(self.counts), "prompt_tokens": self.prompt_tokens,
                                 "completion_tokens": self.completion_tokens,
                                 "cost_usd": round(self.cost_usd, 8),
                                 "latency_s": round(self.latency_s, 4),
                                 "latency_max_s": round(self.latency_max_s, 4)}
        if self.concurrency_max:
            out["concurrency_max_s"] = self.concurrency_max   # merged by max in the manifest
        return out
