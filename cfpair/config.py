"""Run configuration: a frozen object per run, loadable from TOML, hashed for resume checks."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cfpair.errors import ConfigError

DEFAULT_SPLITS = {"synthetic": ("train", "val", "test"), "deepaccident": ("train", "val"),
                  "navsim": ("mini",), "carla": ("all",)}
LABELERS = ("rules",)
#: fields that change how a run executes but never what it writes
EXECUTION_ONLY = ("out", "workers", "executor", "scheduler", "overwrite")


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

    def content(self) -> dict[str, Any]:
        """The part of the config that determines the records."""
        d = asdict(self)
        for k in EXECUTION_ONLY:
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
