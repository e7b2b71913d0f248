"""The labeler interface: every labeler (rules, LLM, ...) behind one Protocol and a registry.

A labeler takes a batch of unlabelled records and returns one ``Outcome`` per record; the
pipeline counts outcomes the same way for every labeler. ``contradictions`` counts grounding
findings by kind over the batch; ``counters()`` is the flat numbers that go into the manifest
(``counts.llm``; empty for a labeler without a server).
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cfpair.errors import ConfigError
from cfpair.records.label import SafetyLabel
from cfpair.records.schema import PairRecord


@dataclass(frozen=True)
class Outcome:
    """The result for one record."""

    label: SafetyLabel | None
    status: str                 # ok | fallback | unlabeled
    labeler: str
    attempts: int
    error: str | None = None
    prompt_version: str | None = None
    model: str | None = None


@runtime_checkable
class Labeler(Protocol):
    """What the pipeline needs from a labeler."""

    name: str
    contradictions: Counter[str]

    def label_batch(self, records: list[PairRecord]) -> list[Outcome]:
        """One outcome per record, in order."""
        ...

    def counters(self) -> dict[str, float]:
        """Flat counters for the manifest (empty when there is nothing to report)."""
        ...

    def close(self) -> None:
        """Release what the labeler holds (connections, caches)."""
        ...


#: name -> factory from the run's config (``cfpair.config.GenerateConfig``)
Factory = Callable[[Any], Labeler]
REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make a labeler factory available under ``name``."""
    def deco(factory: Factory) -> Factory:
        REGISTRY[name] = factory
        return factory
    return deco


#: built-in labelers: name -> the module that registers it (imported on first use, so the
#: rules labeler never needs the ``llm`` extra)
BUILTIN = {"rules": "cfpair.labels.rules", "openai": "cfpair.labels.llm"}


def make_labeler(name: str, cfg: Any) -> Labeler:
    """The labeler registered under ``name``, built from ``cfg``."""
    if name not in REGISTRY and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in REGISTRY:
        known = sorted(set(REGISTRY) | set(BUILTIN))
        raise ConfigError(f"unknown labeler {name!r}; known: {', '.join(known)}")
    return REGISTRY[name](cfg)
