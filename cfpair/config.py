"""Run configuration: a frozen object per run, loadable from TOML, hashed for resume checks."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cfpair.errors import ConfigError

if TYPE_CHECKING:
    from cfpair.labels.llm import LLMSettings

DEFAULT_SPLITS = {"synthetic": ("train", "val", "test"), "deepaccident": ("train", "val"),
                  "navsim": ("mini",), "carla": ("all",)}
LABELERS = ("rules", "openai")
#: fields that change how a run executes but never what it writes
EXECUTION_ONLY = ("out", "workers", "executor", "scheduler", "overwrite", "base_url",
                  "api_key_env", "concurrency", "request_timeout", "max_retries", "price_input",
                  "price_output", "llm_cache")
#: fields that only matter to the LLM labeler (left out of the hash for the rules labeler)
LLM_ONLY = ("model", "response_format", "max_reasks", "label_fallback", "temperature",
            "max_tokens", "prompt_version", "with_images")
DEFAULT_LLM_CACHE = "~/.cache/cfpair/llm-requests.sqlite"


@dataclass(frozen=True)
class GenerateConfig:
    """Everything ``cfpair generate`` needs. Fields outside EXECUTION_ONLY go into the hash."""

    source: str = "synthetic"
    root: str | None = None
    splits: tuple[str, ...] = ()
    limit: int | None = None
    seed: int = 0
    n_candidates: int = 256
    max_anchors: int | None = None
    shard_size: int = 32
    labeler: str = "rules"
    source_options: dict[str, Any] = field(default_factory=dict)
    out: str = "cfpair-out"
    workers: int = 2
    executor: str = "local"
    scheduler: str | None = None
    overwrite: bool = False
    # LLM labeler (--labeler openai); the API key is read from the env var named here, only
    base_url: str | None = None
    model: str | None = None
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
    llm_cache: str | None = DEFAULT_LLM_CACHE
    with_images: bool = False

    def __post_init__(self) -> None:
        if not self.splits:
            object.__setattr__(self, "splits", DEFAULT_SPLITS.get(self.source, ("train",)))
        if self.source != "synthetic" and self.root is None:
            raise ConfigError(f"--root is required for source {self.source!r}")
        if self.n_candidates < 8:
            raise ConfigError(f"n_candidates must be >= 8, got {self.n_candidates}")
        if self.shard_size < 1 or self.workers < 1:
            raise ConfigError("shard_size and workers must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.executor not in ("local", "dask"):
            raise ConfigError(f"executor must be 'local' or 'dask', got {self.executor!r}")
        if self.labeler not in LABELERS:
            raise ConfigError(f"labeler must be one of {LABELERS}, got {self.labeler!r}")
        if self.labeler == "openai":
            if not self.model:
                raise ConfigError("--model is required with --labeler openai")
            self.llm_settings()     # validates the LLM options

    def llm_settings(self) -> LLMSettings:
        """The LLM labeler's settings from this config."""
        from cfpair.labels.llm import LLMSettings

        cache = None if self.llm_cache in (None, "", "none") else str(
            Path(self.llm_cache).expanduser())
        return LLMSettings(
            model=self.model or "", base_url=self.base_url, api_key_env=self.api_key_env,
            response_format=self.response_format, concurrency=self.concurrency,
            timeout_s=self.request_timeout, max_retries=self.max_retries,
            max_reasks=self.max_reasks, fallback=self.label_fallback,
            temperature=self.temperature, max_tokens=self.max_tokens,
            prompt_version=self.prompt_version, price_input=self.price_input,
            price_output=self.price_output, cache=cache, with_images=self.with_images,
            image_root=self.root)

    def content(self) -> dict[str, Any]:
        """The part of the config that determines the records."""
        d = asdict(self)
        for k in EXECUTION_ONLY + (LLM_ONLY if self.labeler != "openai" else ()):
            d.pop(k)
        d["splits"] = list(self.splits)
        return d

    def hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`content` (first 16 hex digits)."""
        blob = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_overrides(self, **kw: Any) -> GenerateConfig:
        """A copy with the non-None keyword values applied."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; unknown keys are an error naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read TOML config ({exc})") from None
    known = {f.name for f in fields(GenerateConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; expected some of {sorted(known)}")
    if "splits" in data:
        data["splits"] = tuple(data["splits"])
    return data
