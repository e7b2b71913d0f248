"""``cfpair validate``: a clean run passes; each kind of corruption is caught and named."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cfpair.config import GenerateConfig
from cfpair.pipeline import generate
from cfpair.shards import manifest_digest, parquet_bytes, row_digests, sha256
from cfpair.validate import validate


def _cfg(out: Path, seed: int = 0) -> GenerateConfig:
    return GenerateConfig(out=str(out), source_options={"n_scenes": 16}, n_candidates=64,
                          shard_size=4, workers=1, seed=seed, splits=("train",))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    generate(_cfg(out))
    return out


@pytest.fixture()
def run_copy(clean: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "out"
    shutil.copytree(clean, dst)
    return dst


def first_shard(out: Path) -> Path:
    return sorted((out / "data").glob("*.parquet"))[0]


def forge_manifest(out: Path, man: dict) -> None:
    """Write an edited manifest with its digest recomputed (a careful forger)."""
    man["digest"] = manifest_digest(man)
    (out / "manifest.json").write_text(json.dumps(man))


def rewrite(out: Path, shard: Path, rows: list[dict]) -> None:
    """Write rows back with the same schema and update the manifest's shard checksum, row
    digests and digest (a careful forger: only the checks of the content itself remain)."""
    schema = pq.read_schema(shard)
    table = pa.Table.from_pylist(rows, schema=schema)
    data = parquet_bytes(table)
    shard.write_bytes(data)
    man = json.loads((out / "manifest.json").read_text())
    entry = man["shards"][str(shard.relative_to(out))]
    entry["sha256"], entry["row_sha256"] = sha256(data), row_digests(table)
    forge_manifest(out, man)


def errors(out: Path) -> dict[str, int]:
    return {k: v["errors"] for k, v in validate(out).by_check().items() if v["errors"]}


def test_a_clean_run_is_valid(clean: Path) -> None:
    rep = validate(clean)
    assert rep.ok, [f for f in rep.findings if f.severity == "error"]
    assert rep.rows > 8 and rep.shards == 4


def test_flipped_byte(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    rep = validate(run_copy)
    found = {f.check for f in rep.findings}
    assert not rep.ok and "checksum" in found
    assert any(f.check == "checksum" and f.where == str(shard.relative_to(run_copy))
               for f in rep.findings)


def test_edited_label(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    rows = pq.read_table(shard).to_pylist()
    rows[0]["label"]["risk_level"] = "none"
    rows[0]["label"]["critical_agent"] = {"id": "nobody", "cls": "vehicle"}
    rewrite(run_copy, shard, rows)
    errs = errors(run_copy)
    assert set(errs) == {"label"} and errs["label"] == 2
    msgs = [f.message for f in validate(run_copy).findings]
    assert any(m.startswith("critical_agent") for m in msgs)
    assert any(m.startswith("risk_level") for m in msgs)


def test_removed_shard(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    shard.unlink()
    rep = validate(run_copy)
    assert errors(run_copy) == {"shard_missing": 1}
    assert rep.findings[0].where == str(shard.relative_to(run_copy))


def test_tampered_trajectory(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    rows = pq.read_table(shard).to_pylist()
    neg = rows[1]["negative"]
    neg["y"] = [y + (0.0 if i < 20 else 2.5) for i, y in enumerate(neg["y"])]   # swerve edit
    rewrite(run_copy, shard, rows)
    errs = errors(run_copy)
    assert errs.get("kinematics", 0) >= 1
    assert all(k in ("kinematics", "facts", "label", "pair") for k in errs)
    rep = validate(run_copy)
    assert all(f":1 ({rows[1]['pair_id']})" in f.where for f in rep.findings
               if f.severity == "error")


def test_tampered_facts_are_caught_by_the_geometry(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    rows = pq.read_table(shard).to_pylist()
    rows[2]["positive"]["facts"]["min_distance_m"] += 3.0
    # a wrong PDMS that still keeps the pair ordered (negative below positive)
    rows[2]["positive"]["facts"]["pdms"] = (
        0.5 if rows[2]["negative"]["facts"]["pdms"] < 0.5 else 0.999)
    rewrite(run_copy, shard, rows)
    msgs = [f.message for f in validate(run_copy).findings if f.severity == "error"]
    # the label's text still cites the true gap, so it contradicts the tampered fact too
    assert errors(run_copy) in ({"facts": 2}, {"facts": 2, "label": 1})
    assert any("positive: min_distance_m stored" in m for m in msgs)


def test_a_negative_scoring_as_high_as_its_positive_is_a_pair_error(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    rows = pq.read_table(shard).to_pylist()
    rows[0]["negative"]["facts"]["pdms"] = rows[0]["positive"]["facts"]["pdms"]
    rewrite(run_copy, shard, rows)
    rep = validate(run_copy, recompute=False)
    pair = [f for f in rep.findings if f.check == "pair"]
    assert len(pair) == 1 and "not below the positive" in pair[0].message
    assert pair[0].where.endswith(f":0 ({rows[0]['pair_id']})")


def test_shard_from_another_config(run_copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(_cfg(other, seed=7))
    src = first_shard(other)
    dst = first_shard(run_copy)
    shutil.copy(src, dst)
    man = json.loads((run_copy / "manifest.json").read_text())
    man["shards"][str(dst.relative_to(run_copy))]["sha256"] = sha256(dst.read_bytes())
    forge_manifest(run_copy, man)
    errs = errors(run_copy)
    assert errs.get("foreign_config", 0) == pq.read_metadata(dst).num_rows


def test_duplicate_ids_unlisted_shards_and_counts(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    shutil.copy(shard, run_copy / "data" / "train-00009-of-00009.parquet")
    man = json.loads((run_copy / "manifest.json").read_text())
    man["counts"]["pairs"] += 5
    forge_manifest(run_copy, man)
    errs = errors(run_copy)
    assert errs == {"unlisted_shard": 1, "counts": 1}
    rows = pq.read_table(shard).to_pylist()
    rewrite(run_copy, shard, rows + rows[:1])
    assert errors(run_copy)["duplicate_id"] == 1


def test_schema_violation_is_named(run_copy: Path) -> None:
    shard = first_shard(run_copy)
    rows = pq.read_table(shard).to_pylist()
    rows[0]["label_status"] = "maybe"
    rewrite(run_copy, shard, rows)
    rep = validate(run_copy)
    f = next(f for f in rep.findings if f.check == "schema")
    assert f.where.endswith(":0") and "label_status" in f.message


def test_cli_table_json_and_exit_codes(clean: Path, run_copy: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "cfpair", "validate", str(clean)],
                        capture_output=True, text=True, timeout=300)
    # the verdict is the last line (the title also contains "validate"); every check is ok
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1].strip() == "valid"
    assert re.search(r"facts\s*\S\s*ok\b", ok.stdout) and "INVALID" not in ok.stdout
    first_shard(run_copy).unlink()
    bad = subprocess.run([sys.executable, "-m", "cfpair", "validate", str(run_copy), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    rep = json.loads(bad.stdout)
    assert rep["ok"] is False and rep["checks"]["shard_missing"]["errors"] == 1
    missing = subprocess.run([sys.executable, "-m", "cfpair", "validate",
                              str(run_copy / "nowhere")], capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 1 and "manifest" in missing.stdout
