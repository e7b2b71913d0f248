"""The typed ``manifest.json`` of a generate run: config, status, per-shard entries and counts.

The JSON keys are the ones cfpair has always written (a folder written before this model
validates and resumes unchanged). How a shard's numbers add up into the run's ``counts`` is
declared once, here: :meth:`Counts.of` sums every count (per key for the maps) except the LLM
counters listed in :data:`LLM_MERGE`, which take the largest shard's value. Parsing is strict
(no ``"1"`` for 1, no ``true`` for 1, no unknown key); :func:`problems` turns a failed parse
into one line. This module imports nothing of cfpair's.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT = "cfpair-pairs/1"
#: a shard's path relative to the output folder (Hugging Face hub layout)
SHARD_NAME = r"^data/(?P<split>[A-Za-z0-9_.]+)-\d{5}-of-\d{5}\.parquet$"
ShardName = Annotated[str, Field(pattern=SHARD_NAME)]
Count = Annotated[int, Field(ge=0)]
Status = Literal["running", "complete", "incomplete"]

#: how one LLM counter adds up across shards (``counts.llm``); every other counter sums
LLM_MERGE: dict[str, Callable[[float, float], float]] = {
    "latency_max_s": max, "concurrency_max_s": max, "server_slots": max}
#: decimals of the run's LLM cost
COST_DECIMALS = 8


class Typed(BaseModel):
    """Base: strict types, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Reject(Typed):
    """One rejected scene or anchor (also a line of ``rejects.jsonl``)."""

    source: str
    scenario_id: str
    split: str
    anchor: int | None
    reason: str
    detail: str
    file: str | None
    line: int | None


class ShardEntry(Typed):
    """What the manifest records of one written shard. ``row_sha256`` is absent in folders
    of older cfpair versions (validate then warns)."""

    split: str
    rows: Count
    scenes: Count
    sha256: str
    bytes: Count | None = None
    rejects: list[Reject]
    row_sha256: list[str] | None = None
    labels_by_labeler: dict[str, Count] = Field(default_factory=dict)
    label_status: dict[str, Count] = Field(default_factory=dict)
    contradictions: dict[str, Count] = Field(default_factory=dict)
    llm: dict[str, int | float] = Field(default_factory=dict)
    risk_levels: dict[str, Count] = Field(default_factory=dict)


#: the per-key maps of an entry that add up key by key into the run's counts
GROUPS = ("labels_by_labeler", "label_status", "contradictions", "risk_levels")


def _add(into: dict[str, Any], key: str, value: Any,
         rule: Callable[[Any, Any], Any] = operator.add) -> None:
    into[key] = rule(into[key], value) if key in into else value


class Counts(Typed):
    """The run's totals over its shards (:meth:`of` is the one place they are added up)."""

    pairs: Count = 0
    scenes: Count = 0
    rejected: Count = 0
    by_split: dict[str, Count] = Field(default_factory=dict)
    rejects_by_reason: dict[str, Count] = Field(default_factory=dict)
    labels_by_labeler: dict[str, Count] = Field(default_factory=dict)
    label_status: dict[str, Count] = Field(default_factory=dict)
    contradictions: dict[str, Count] = Field(default_factory=dict)
    llm: dict[str, int | float] = Field(default_factory=dict)
    risk_levels: dict[str, Count] = Field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[ShardEntry]) -> Counts:
        """Add up the entries (in the order given): counts and per-key maps sum, the LLM
        counters merge by :data:`LLM_MERGE`."""
        entries = list(entries)
        by_split: dict[str, int] = {}
        reasons: dict[str, int] = {}
        groups: dict[str, dict[str, int]] = {g: {} for g in GROUPS}
        llm: dict[str, int | float] = {}
        for e in entries:
            _add(by_split, e.split, e.rows)
            for r in e.rejects:
                _add(reasons, r.reason, 1)
            for g in GROUPS:
                for k, v in getattr(e, g).items():
                    _add(groups[g], k, v)
            for k, v in e.llm.items():
                _add(llm, k, v, LLM_MERGE.get(k, operator.add))
        if "cost_usd" in llm:
            llm["cost_usd"] = round(llm["cost_usd"], COST_DECIMALS)
        return cls(pairs=sum(e.rows for e in entries), scenes=sum(e.scenes for e in entries),
                   rejected=sum(len(e.rejects) for e in entries), by_split=by_split,
                   rejects_by_reason=reasons, llm=llm, **groups)


class RunManifest(Typed):
    """``manifest.json``: ``planned`` lists every shard of the run (name -> scenes) before the
    first is written; ``status`` is ``running`` until the run ends, then ``complete`` or
    ``incomplete``; ``failed`` names shards whose worker failed; ``digest`` is the sha256 of
    the rest (``shards.manifest_digest``), so a hand edit is detected."""

    format: Literal["cfpair-pairs/1"]
    cfpair_version: str
    schema_version: str
    config: dict[str, Any]
    config_hash: str
    status: Status
    planned: dict[ShardName, Count] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    shards: dict[ShardName, ShardEntry]
    counts: Counts = Field(default_factory=Counts)
    digest: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object written to disk, without ``digest`` (the keys an older manifest did
        not have stay absent)."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"digest"})


def problems(exc: ValidationError, limit: int = 4) -> str:
    """A failed parse in one line: where and what, for the first ``limit`` errors."""
    errs = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
             for e in errs[:limit]]
    more = f" (+{len(errs) - limit} more)" if len(errs) > limit else ""
    return "; ".join(parts)[:600] + more
