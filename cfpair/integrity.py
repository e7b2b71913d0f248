"""Integrity checks of an output folder that need no geometry: is the manifest well formed and
unedited, did the run finish, does every shard keep the exact schema, is every row the row
cfpair wrote, and do ids, provenance and label status agree with the manifest.

What covers what (so an edit of any field is caught):

- ``digest`` in manifest.json: sha256 of the rest of the manifest -> any hand edit of it;
- per-shard ``sha256``: every byte of the shard file;
- per-row ``row_sha256``: the canonical JSON of each row -> names the edited row even when the
  shard checksum was updated too;
- the schema of each file against the explicit Arrow schema -> a column whose type changed;
- ``pair_id`` = hash(source, scenario_id, anchor) of the row's provenance -> an edited id or
  edited provenance;
- provenance against the manifest's config (source, seed, candidates, split, labeler, model)
  and the label status / labeler counts of each shard against its manifest entry.

Each check reports into a :class:`cfpair.validate.Report`-like object through ``add``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol

import pyarrow as pa
from pydantic import ValidationError

from cfpair.labels import rules
from cfpair.records.manifest import SHARD_NAME as _SHARD_NAME
from cfpair.records.manifest import RunManifest, ShardEntry, problems
from cfpair.records.schema import PairRecord, pair_id
from cfpair.records.shards import SCHEMA, manifest_digest, row_digests

SHARD_NAME = re.compile(_SHARD_NAME)
CHECKS = ("incomplete", "row_digest", "pair_id", "provenance")


class Sink(Protocol):
    """Where findings go (validate's Report)."""

    def add(self, check: str, where: str, message: str, severity: str = "error") -> None:
        """Record one finding."""


def check_manifest(rep: Sink, man: Any, where: str) -> RunManifest | None:
    """The manifest as the typed model, or None with one finding saying what is malformed;
    a finding when its digest does not match (never raises, whatever the JSON holds)."""
    try:
        typed = RunManifest.model_validate(man)
    except ValidationError as exc:
        rep.add("manifest", where, f"malformed manifest: {problems(exc)}")
        return None
    if typed.digest is None:
        rep.add("manifest", where, "no digest: not written by this cfpair, or edited")
    elif typed.digest != manifest_digest(man):
        rep.add("manifest", where, "digest does not match the content: the manifest was "
                "edited after cfpair wrote it")
    return typed


def check_complete(rep: Sink, man: RunManifest, where: str) -> None:
    """An ``incomplete`` finding unless the run recorded that it finished every planned
    shard."""
    if not man.planned:
        rep.add("incomplete", where, "incomplete: the manifest lists no planned shards, so "
                "whether the run finished is unknown")
        return
    missing = sorted(set(man.planned) - set(man.shards))
    if man.status != "complete" or missing:
        planned, failed = man.planned, man.failed
        rep.add("incomplete", where, f"incomplete run (status {man.status!r}): "
                f"{len(planned) - len(missing)} of {len(planned)} planned shards written"
                + (f", missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
                   if missing else "")
                + (f", {len(failed)} failed" if failed else "")
                + "; run the same generate command again to finish it")


def check_schema(rep: Sink, schema: pa.Schema, name: str) -> bool:
    """Findings for every column whose name or type differs from SCHEMA; True when equal."""
    ok = True
    have = {f.name: f for f in schema}
    for want in SCHEMA:
        got = have.get(want.name)
        if got is None:
            rep.add("schema", name, f"column {want.name!r} is missing")
            ok = False
        elif not got.type.equals(want.type):
            rep.add("schema", name, f"column {want.name!r} has type {str(got.type)[:120]}, "
                    f"expected {str(want.type)[:120]}")
            ok = False
    for extra in sorted(set(have) - set(SCHEMA.names)):
        rep.add("schema", name, f"unexpected column {extra!r}")
        ok = False
    return ok


def check_rows(rep: Sink, table: pa.Table, entry: ShardEntry, name: str) -> None:
    """Each row's digest against the manifest's ``row_sha256`` (when recorded)."""
    want = entry.row_sha256
    if want is None:
        rep.add("row_digest", name, "the manifest records no row digests (older cfpair)",
                "warning")
        return
    if len(want) != table.num_rows:
        rep.add("row_digest", name, f"{len(want)} row digests for {table.num_rows} rows")
        return
    for i, (got, exp) in enumerate(zip(row_digests(table), want, strict=True)):
        if got != exp:
            rep.add("row_digest", f"{name}:{i}", "the row differs from the one cfpair wrote "
                    "(a field was edited)")


def check_provenance(rep: Sink, rec: PairRecord, where: str, man: RunManifest | None,
                     split: str) -> None:
    """The row's id, split and provenance against its content and the manifest's config."""
    prov = rec.provenance
    want = pair_id(prov.source, prov.scenario_id, prov.anchor_index)
    if rec.pair_id != want:
        rep.add("pair_id", where, f"pair_id {rec.pair_id[:40]!r} is not the hash of its "
                f"(source, scenario, anchor) {want!r}: the id or the provenance was edited")
    cfg = man.config if man is not None else {}
    if rec.split != split:
        rep.add("provenance", where, f"split {rec.split!r} in a shard of split {split!r}")
    for key, got in (("source", prov.source), ("seed", prov.seed),
                     ("n_candidates", prov.n_candidates)):
        if key in cfg and cfg[key] != got and not (  # a source may name its sub-dataset
                key == "source" and isinstance(got, str) and got.startswith(f"{cfg[key]}/")):
            rep.add("provenance", where, f"provenance {key} {got!r}, the run's config says "
                    f"{cfg[key]!r}")
    if man is not None and man.schema_version != prov.schema_version:
        rep.add("provenance", where, f"schema_version {prov.schema_version!r}, the manifest "
                f"says {man.schema_version!r}")
    run_labeler = cfg.get("labeler", rules.NAME)
    status, labeler = rec.label_status, prov.labeler
    if run_labeler == rules.NAME:
        if labeler != rules.NAME or status == "fallback" or prov.label_model is not None:
            rep.add("provenance", where, f"labeler {labeler!r} / status {status!r} / model "
                    f"{prov.label_model!r} in a run labelled by the rules")
    elif status == "fallback" and labeler != rules.NAME:
        rep.add("provenance", where, f"status 'fallback' but labeler {labeler!r}")
    elif status == "ok" and labeler == rules.NAME:
        rep.add("provenance", where, "status 'ok' from the rules labeler in an LLM run "
                "(that would be a 'fallback')")
    elif labeler != rules.NAME and cfg.get("model") not in (None, prov.label_model):
        rep.add("provenance", where, f"label model {prov.label_model!r}, the run's config "
                f"says {cfg.get('model')!r}")


def check_counts(rep: Sink, recs: list[PairRecord], entry: ShardEntry, name: str) -> None:
    """The shard's label status and labels-by-labeler counts against its manifest entry."""
    status = Counter(r.label_status for r in recs)
    by_labeler = Counter(r.provenance.labeler for r in recs if r.label is not None)
    for key, got in (("label_status", status), ("labels_by_labeler", by_labeler)):
        want = getattr(entry, key)
        if {k: v for k, v in want.items() if v} != dict(got):
            rep.add("counts", name, f"rows say {key} {dict(got)}, the manifest entry says "
                    f"{want}")
