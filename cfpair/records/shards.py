"""Parquet shards: the explicit Arrow schema (derived from the Pydantic record model), shard
bytes, atomic writes, the manifest, the dataset card and the rejects log.

Layout (Hugging Face hub convention)::

    out/README.md                          dataset card, YAML ``configs:`` per split
    out/manifest.json                      config + hash, versions, counts, per-shard checksums
    out/rejects.jsonl                      one line per rejected scene/anchor with its reason
    out/data/<split>-<i>-of-<n>.parquet    zstd, one row per pair

A shard exists only once its entry is in the manifest; files are written under a temporary
name and renamed, and the manifest is replaced atomically after each shard. The manifest also
lists every planned shard, the run's status (running / complete / incomplete), each row's
digest and a digest of itself (see :mod:`cfpair.integrity` for what validate checks with
them); its shape is :class:`cfpair.records.manifest.RunManifest`, and a malformed one is a
ShardError naming the file. A write that fails (disk full) removes its temporary file and
raises a ShardError.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from cfpair import __version__
from cfpair.errors import ShardError
from cfpair.outdir import foreign_in_run, read_record, refuse_foreign, remove_listed
from cfpair.records.label import SCHEMA_VERSION, RiskLevel
from cfpair.records.manifest import FORMAT, Counts, RunManifest, ShardEntry, problems
from cfpair.records.schema import PairRecord

ROW_GROUP = 256
TMP_MARK = ".tmp-"


def _arrow(annotation: Any) -> tuple[pa.DataType, bool]:
    """Arrow type of a Pydantic field annotation and whether it is nullable."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _arrow(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {annotation}")
        return _arrow(args[0])[0], True
    if origin is list:
        inner, _ = _arrow(typing.get_args(annotation)[0])
        return pa.list_(inner), False
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return arrow_struct(annotation), False
        if issubclass(annotation, Enum) or annotation is str:
            return pa.string(), False
        if annotation is bool:
            return pa.bool_(), False
        if annotation is int:
            return pa.int64(), False
        if annotation is float:
            return pa.float64(), False
    raise TypeError(f"no Arrow type for {annotation!r}")


def _fields(model: type[BaseModel]) -> list[pa.Field]:
    out = []
    for name, info in model.model_fields.items():
        typ, nullable = _arrow(info.annotation)
        out.append(pa.field(name, typ, nullable=nullable))
    return out


def arrow_struct(model: type[BaseModel]) -> pa.StructType:
    """Struct type of a nested model."""
    return pa.struct(_fields(model))


#: the explicit schema of every shard
SCHEMA = pa.schema(_fields(PairRecord), metadata={
    b"cfpair_schema_version": SCHEMA_VERSION.encode(), b"cfpair_format": FORMAT.encode()})


def table_of(records: list[PairRecord]) -> pa.Table:
    """Records -> Arrow table with the explicit schema (never inferred)."""
    rows = [r.model_dump(mode="json") for r in records]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def parquet_bytes(table: pa.Table) -> bytes:
    """The Parquet file of a table (zstd, streaming-sized row groups)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP,
                   write_statistics=True)
    return sink.getvalue().to_pybytes()


def sha256(data: bytes) -> str:
    """Hex digest."""
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name in the same folder, fsync, then rename over ``path``.

    Any OS error (disk full, permissions, read-only file system) removes the temporary file and
    is raised as a ShardError naming the file; nothing half-written is left under ``path``.
    """
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            _write_all(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        full = " - the disk is full; free space and run again (finished shards are kept)" \
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise ShardError(f"{path}: cannot write ({exc.strerror or exc}){full}") from None


def _write_all(fh: Any, data: bytes) -> None:
    """The one place bytes reach the disk (tests inject faults here)."""
    fh.write(data)


def clean_tmp(out: Path) -> list[Path]:
    """Remove the temporary files a killed or failed run left in ``out`` and ``out/data``."""
    removed = []
    for folder in (out, out / "data"):
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
            for p in entries:
                if p.name.startswith(".") and TMP_MARK in p.name and p.is_file() \
                        and not p.is_symlink():
                    p.unlink(missing_ok=True)
                    removed.append(p)
        except OSError as exc:
            raise ShardError(f"{folder}: cannot remove temporary files ({exc.strerror or exc})"
                             ) from None
    return removed


def row_digests(table: pa.Table) -> list[str]:
    """sha256 (first 16 hex digits) of each row's canonical JSON: an edit of any field of a
    row, or a change of a column's type, changes its digest."""
    return [hashlib.sha256(json.dumps(r, sort_keys=True, separators=(",", ":"),
                                      default=str).encode()).hexdigest()[:16]
            for r in table.to_pylist()]


def manifest_digest(data: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON without its own ``digest`` field."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def shard_name(split: str, index: int, total: int) -> str:
    """HF-style shard path relative to the output folder."""
    return f"data/{split}-{index:05d}-of-{total:05d}.parquet"


def parse_manifest(data: Any, where: str | Path) -> RunManifest:
    """A manifest's JSON as the typed model; anything malformed is one ShardError naming the
    file and what is wrong."""
    try:
        return RunManifest.model_validate(data)
    except ValidationError as exc:
        raise ShardError(f"{where}: malformed manifest ({problems(exc)}); move the folder away "
                         "or choose another --out") from None


def read_manifest(out: str | Path) -> RunManifest | None:
    """The manifest of an output folder, None when it has none; unreadable, foreign or
    malformed is one ShardError naming the file."""
    path = Path(out) / "manifest.json"
    try:
        data = read_record(path, "format", FORMAT)
    except RecursionError:
        raise ShardError(f"{path}: malformed manifest (nested too deeply)") from None
    return None if data is None else parse_manifest(data, path)


class Manifest:
    """manifest.json as the run writes it: a :class:`RunManifest` (what has been written, under
    which config, and whether the run finished), saved atomically after every change with its
    counts added up (:meth:`Counts.of`) and its digest."""

    def __init__(self, out: Path, config: dict[str, Any], config_hash: str) -> None:
        self.out = out
        self.path = out / "manifest.json"
        self.record = RunManifest(format=FORMAT, cfpair_version=__version__,
                                  schema_version=SCHEMA_VERSION, config=config,
                                  config_hash=config_hash, status="running", planned={},
                                  failed={}, shards={}, counts=Counts.of([]))

    @classmethod
    def open(cls, out: Path, config: dict[str, Any], config_hash: str, overwrite: bool
             ) -> Manifest:
        """Resume a matching run, refuse a different config unless ``overwrite`` (which removes
        only the files the previous run recorded); refuse files cfpair did not write."""
        man = cls(out, config, config_hash)
        old = read_manifest(out)
        owned = set(old.shards) | set(old.planned) if old else set()
        refuse_foreign(out, foreign_in_run(out, owned, old is not None))
        if old is not None:
            if old.config_hash != config_hash and not overwrite:
                raise ShardError(
                    f"{out} holds a run with another config (hash {old.config_hash}, "
                    f"this run {config_hash}); refusing to mix them. Use another --out or "
                    "--overwrite to replace it.")
            if old.config_hash == config_hash and not overwrite:
                man.record.shards = dict(old.shards)
            if overwrite:
                remove_listed(out, sorted(owned) + ["rejects.jsonl", "README.md",
                                                    "manifest.json"])
        elif overwrite:
            remove_listed(out, ["rejects.jsonl", "README.md"])
        return man

    def plan(self, planned: dict[str, int]) -> None:
        """Record every shard of the run before the first one is written."""
        self.record.planned = dict(sorted(planned.items()))
        self.record.status = "running"
        self.record.failed = {}
        self.save()

    def finish(self, failed: dict[str, str]) -> str:
        """Record how the run ended: ``complete`` or ``incomplete``; returns the status."""
        missing = set(self.record.planned) - set(self.record.shards)
        self.record.failed = dict(sorted(failed.items()))
        self.record.status = "incomplete" if missing or failed else "complete"
        self.save()
        return self.record.status

    def done(self, name: str) -> bool:
        """Is this shard complete (entry present, file there with the recorded checksum)?"""
        entry = self.record.shards.get(name)
        if entry is None:
            return False
        path = self.out / name
        return path.is_file() and not path.is_symlink() and \
            sha256(path.read_bytes()) == entry.sha256

    def add(self, name: str, entry: ShardEntry) -> None:
        """Record a finished shard and rewrite manifest.json atomically."""
        self.record.shards[name] = entry
        self.save()

    def save(self) -> None:
        """Recompute counts and write."""
        rec = self.record
        rec.shards = dict(sorted(rec.shards.items()))
        rec.counts = Counts.of(rec.shards.values())
        data = rec.as_json()
        data["digest"] = manifest_digest(data)
        atomic_write(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def write_rejects(out: Path, manifest: Manifest) -> Path:
    """rejects.jsonl from the manifest, in shard order."""
    shards = manifest.record.shards
    lines = [json.dumps(r.model_dump(mode="json"), sort_keys=True) for name in sorted(shards)
             for r in shards[name].rejects]
    path = out / "rejects.jsonl"
    atomic_write(path, ("\n".join(lines) + "\n" if lines else "").encode())
    return path


def _rows_of(path: Path) -> int:
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return len(json.loads(path.read_bytes()))


def dataset_info_yaml(configs: dict[str, dict[str, str]], root: Path) -> list[str]:
    """``dataset_info``: rows and bytes of every split of every config, measured from the files
    under ``root``. ``datasets`` hashes it into its cache key, so a folder written again with
    other content loads the new rows (its file-based key alone can miss that)."""
    yaml = ["dataset_info:"]
    for name, files in configs.items():
        yaml += [f"- config_name: {name}", "  splits:"]
        total = 0
        for split, pattern in files.items():
            found = sorted(root.glob(pattern))
            size = sum(p.stat().st_size for p in found)
            total += size
            yaml += [f"  - name: {split}", f"    num_bytes: {size}",
                     f"    num_examples: {sum(_rows_of(p) for p in found)}"]
        yaml += [f"  download_size: {total}", f"  dataset_size: {total}"]
    return yaml


def card_yaml(configs: dict[str, dict[str, str]], root: Path | None = None) -> list[str]:
    """The YAML header of a dataset card: ``configs`` (name -> split -> file glob) so that
    ``load_dataset(folder[, name])`` finds every split under its own name, and with ``root``
    (the folder the globs are relative to) the ``dataset_info`` of the files there."""
    yaml = ["---", "configs:"]
    for name, files in configs.items():
        yaml += [f"- config_name: {name}", "  data_files:"]
        for split, path in files.items():
            yaml += [f"  - split: {split}", f"    path: {path}"]
    if root is not None:
        yaml += dataset_info_yaml(configs, root)
    return yaml + ["tags:", "- autonomous-driving", "- safety", "- counterfactual", "---", ""]


def risk_block(levels: dict[str, int]) -> list[str]:
    """The card's risk-distribution table (graded from the facts, ``cfpair.labels.risk``), every
    level listed in order none .. critical."""
    return ["Risk of the negatives (graded from the facts; table in cfpair's README):", "",
            "| risk_level | pairs |", "|---|---|",
            *[f"| {k} | {levels.get(str(k), 0)} |" for k in RiskLevel], ""]


def write_card(out: Path, manifest: Manifest) -> Path:
    """README.md dataset card with YAML ``configs:`` so ``load_dataset(out)`` finds the splits."""
    d = manifest.record
    splits = sorted({e.split for e in d.shards.values()})
    cfg = d.config
    yaml = card_yaml({"default": {s: f"data/{s}-*.parquet" for s in splits}}, out)
    c = d.counts
    synthetic_note = (" (synthetic scenes, not real driving)" if cfg["source"] == "synthetic"
                      else "")
    body = [
        "# cfpair counterfactual safety pairs", "",
        f"Generated by cfpair {d.cfpair_version} (record schema {d.schema_version}) from "
        f"the `{cfg['source']}` source{synthetic_note}, "
        f"seed {cfg['seed']}, {cfg['n_candidates']} candidates per anchor, labeler "
        f"`{cfg['labeler']}`. Config hash `{d.config_hash}`.", "",
        "| split | pairs |", "|---|---|",
        *[f"| {s} | {c.by_split.get(s, 0)} |" for s in splits], "",
        f"Scenes read: {c.scenes}; rejected scene/anchors: {c.rejected} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(c.rejects_by_reason.items())) or 'none'}"
        "); see `rejects.jsonl`.", "",
        "Label status: " + (", ".join(f"{k}: {v}" for k, v in sorted(c.label_status.items()))
                            or "none") + "; labels by labeler: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(c.labels_by_labeler.items())) or "none")
        + "; contradictions with the facts (rejected labels): "
        + (", ".join(f"{k}: {v}" for k, v in sorted(c.contradictions.items())) or "none")
        + "." + (f" LLM `{cfg.get('model')}` (prompt {cfg.get('prompt_version')}): "
                 f"{int(c.llm.get('requests', 0))} requests, "
                 f"{int(c.llm.get('prompt_tokens', 0))} prompt + "
                 f"{int(c.llm.get('completion_tokens', 0))} completion tokens, "
                 f"{int(c.llm.get('cache_hits', 0))} cache hits."
                 if c.llm else ""), "",
        *risk_block(c.risk_levels),
        "Each row holds the scene context at the anchor (ego history, agents, map summary, "
        "camera paths), the expert, risky negative and counterfactual positive trajectories "
        "(ego rear axle, ego frame at the anchor, 0.1 s states and 8 NAVSIM poses at 0.5 s) "
        "with their measured facts and per-step costs, the corrective meta-action, the safety "
        "label and provenance. The JSON Schema is in cfpair's `schemas/pair_record.json`.", "",
        "```python", "from datasets import load_dataset",
        "ds = load_dataset(\"path/to/this/folder\")", "```", ""]
    path = out / "README.md"
    atomic_write(path, "\n".join(yaml + body).encode())
    return path


def read_records(out: str | Path, split: str | None = None) -> pa.Table:
    """All rows of a finished output folder (optionally one split), in shard order."""
    out = Path(out)
    files = sorted((out / "data").glob(f"{split or '*'}-*.parquet"))
    if not files:
        raise ShardError(f"{out}/data has no shards{f' for split {split!r}' if split else ''}")
    return pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])


def load_records(out: str | Path, split: str | None = None, limit: int | None = None,
                 ids: list[str] | None = None) -> list[PairRecord]:
    """Rows of an output folder as validated records: optionally one split, only the given
    pair ids (in the order given), at most ``limit``. Unknown ids are an error naming them."""
    want = set(ids or ())
    recs: list[PairRecord] = []
    for batch in read_records(out, split).to_batches():
        for row in batch.to_pylist():
            if want and row["pair_id"] not in want:
                continue
            recs.append(PairRecord.model_validate(row))
            if limit is not None and not want and len(recs) >= limit:
                return recs
    if want:
        found = {r.pair_id: r for r in recs}
        missing = [i for i in ids or () if i not in found]
        if missing:
            raise ShardError(f"{out}: no pair with id {', '.join(missing[:5])}")
        recs = [found[i] for i in ids or ()][:limit]
    return recs
