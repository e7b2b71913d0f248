"""``validate`` against tampering: a naive edit is caught by the digests, a careful one (every
digest recomputed) by the content checks; malformed manifests are findings, never tracebacks;
an unfinished run is "incomplete"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cfpair.config import GenerateConfig
from cfpair.pipeline import generate
from cfpair.records.shards import manifest_digest, parquet_bytes, row_digests, sha256
from cfpair.validate import validate


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    generate(GenerateConfig(out=str(out), source_options={"n_scenes": 10}, n_candidates=32,
                            shard_size=3, workers=1, splits=("train",)))
    return out


@pytest.fixture()
def run(clean: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "out"
    shutil.copytree(clean, dst)
    return dst


def _shard(out: Path) -> Path:
    return sorted((out / "data").glob("*.parquet"))[0]


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _write(out: Path, table: pa.Table, careful: bool) -> None:
    """Replace the first shard; a careful forger also recomputes every digest cfpair keeps."""
    shard = _shard(out)
    data = parquet_bytes(table)
    shard.write_bytes(data)
    man = _manifest(out)
    entry = man["shards"][str(shard.relative_to(out))]
    entry["sha256"] = sha256(data)
    if careful:
        entry["row_sha256"] = row_digests(table)
        man["digest"] = manifest_digest(man)
    (out / "manifest.json").write_text(json.dumps(man))


def _edit(out: Path, careful: bool, change) -> None:  # noqa: ANN001
    table = pq.read_table(_shard(out))
    rows = table.to_pylist()
    change(rows[0])
    _write(out, pa.Table.from_pylist(rows, schema=table.schema), careful)


def _errors(out: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in validate(out, recompute=False).findings:
        if f.severity == "error":
            found.setdefault(f.check, []).append(f.message)
    return found


def test_clean_run_is_valid_and_complete(clean: Path) -> None:
    rep = validate(clean)
    assert rep.ok and not rep.incomplete, rep.findings


def _set(path: str, value: object):  # noqa: ANN202
    def change(row: dict) -> None:
        *head, last = path.split(".")
        for k in head:
            row = row[k]
        row[last] = value
    return change


EDITS = {
    "pair_id": ("pair_id", "0" * 20, "pair_id"),
    "provenance.seed": ("provenance.seed", 99, "provenance"),
    "provenance.source": ("provenance.source", "navsim", "pair_id"),
    "provenance.scenario_id": ("provenance.scenario_id", "synthetic-x-000001", "pair_id"),
    "provenance.labeler": ("provenance.labeler", "openai", "provenance"),
    "provenance.label_model": ("provenance.label_model", "gpt-x", "provenance"),
    "label_status fallback": ("label_status", "fallback", "provenance"),
    "split": ("split", "val", "provenance"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_a_careful_edit_is_caught_by_the_content_checks(run: Path, case: str) -> None:
    path, value, check = EDITS[case]
    _edit(run, True, _set(path, value))
    errs = _errors(run)
    assert check in errs, errs
    assert "row_digest" not in errs and "manifest" not in errs      # the forger was careful


@pytest.mark.parametrize("case", list(EDITS) + ["context.weather"])
def test_a_naive_edit_of_any_field_is_caught_by_the_row_digest(run: Path, case: str) -> None:
    path, value, _ = EDITS.get(case, ("provenance.anchor_time_s", 1.2345, ""))
    _edit(run, False, _set(path, value))
    errs = _errors(run)
    assert "row_digest" in errs and "manifest" in errs, errs


def test_label_status_edit_is_caught_by_the_shard_counts(run: Path) -> None:
    def unlabel(row: dict) -> None:
        row["label_status"], row["label"] = "unlabeled", None
    _edit(run, True, unlabel)
    errs = _errors(run)
    assert any("label_status" in m for m in errs["counts"]), errs


def _retyped(col: pa.ChunkedArray, how: str) -> pa.Array:
    if how == "large_string":
        return col.cast(pa.large_string()).combine_chunks()
    if how == "dictionary":
        return col.combine_chunks().dictionary_encode()
    return pa.array([json.dumps(v) for v in col.to_pylist()])


@pytest.mark.parametrize(("column", "how"), [("split", "large_string"), ("negative", "json"),
                                             ("label_status", "dictionary"),
                                             ("pair_id", "large_string")])
def test_a_changed_column_type_is_named(run: Path, column: str, how: str) -> None:
    table = pq.read_table(_shard(run))
    i = table.schema.get_field_index(column)
    col = _retyped(table.column(column), how)
    _write(run, table.set_column(i, pa.field(column, col.type), col), True)
    errs = _errors(run)
    assert any(f"column {column!r} has type" in m for m in errs["schema"]), errs


@pytest.mark.parametrize("bad", [
    {"shards": []}, {"shards": "x"}, {"shards": {"../../etc/passwd": {}}}, [], 5, "manifest",
    {"shards": {"data/train-00000-of-00001.parquet": {"rows": "1", "sha256": 5}}},
    {"shards": {"data/train-00000-of-00001.parquet": []}}, {"counts": []}, {"planned": []},
    {"status": "running"}, {"digest": "0"}, {"config": "x", "config_hash": 1}])
def test_malformed_manifest_is_a_finding_not_a_traceback(run: Path, bad: object) -> None:
    man = _manifest(run)
    man = {**man, **bad} if isinstance(bad, dict) else bad
    (run / "manifest.json").write_text(json.dumps(man))
    res = subprocess.run([sys.executable, "-m", "cfpair", "validate", str(run), "--json",
                          "--no-recompute"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    rep = json.loads(res.stdout)
    assert not rep["ok"] and (rep["checks"]["manifest"]["errors"] or
                              rep["checks"]["incomplete"]["errors"])


def test_invalid_utf8_and_deep_json_manifest(run: Path) -> None:
    (run / "manifest.json").write_bytes(b"{\"shards\": \xff}")
    assert "manifest" in _errors(run)
    (run / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "manifest" in _errors(run)


def test_a_half_finished_run_is_incomplete(run: Path) -> None:
    man = _manifest(run)
    name = sorted(man["shards"])[-1]
    del man["shards"][name]
    (run / name).unlink()
    man["status"] = "running"
    man["digest"] = manifest_digest(man)
    (run / "manifest.json").write_text(json.dumps(man))
    res = subprocess.run([sys.executable, "-m", "cfpair", "validate", str(run),
                          "--no-recompute"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "incomplete" in res.stdout.lower()
    rep = validate(run, recompute=False)
    assert rep.incomplete and not rep.ok
    assert any(name in f.message for f in rep.findings if f.check == "incomplete")
