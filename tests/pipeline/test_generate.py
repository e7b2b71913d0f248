"""`generate`: real Parquet, determinism, executors, resume after SIGKILL, config guard, CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cfpair.config import GenerateConfig
from cfpair.counterfactual.candidates import DEFAULT_VARIANTS
from cfpair.errors import ShardError
from cfpair.pipeline import generate
from cfpair.records.schema import PairRecord
from cfpair.records.shards import SCHEMA, read_records

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "data"


def cfg(out: Path, **kw) -> GenerateConfig:  # noqa: ANN003
    base = dict(out=str(out), source_options={"n_scenes": 24}, n_candidates=96, shard_size=4,
                workers=1)
    return GenerateConfig(**{**base, **kw})


def rows(out: Path) -> list[dict]:
    return read_records(out).to_pylist()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:  # noqa: ANN001
    out = tmp_path_factory.mktemp("ref")
    generate(cfg(out))
    return out


def test_output_layout_schema_and_records(reference: Path) -> None:
    man = json.loads((reference / "manifest.json").read_text())
    files = sorted(p.name for p in (reference / "data").glob("*.parquet"))
    assert files == sorted(Path(n).name for n in man["shards"])
    assert files and all(re.fullmatch(r"(train|val|test)-\d{5}-of-\d{5}\.parquet", f)
                         for f in files)
    for name, entry in man["shards"].items():
        f = pq.ParquetFile(reference / name)
        assert f.schema_arrow.equals(SCHEMA, check_metadata=False)
        assert f.metadata.row_group(0).column(0).compression == "ZSTD"
        assert entry["rows"] == f.metadata.num_rows
    c = man["counts"]
    # a synthetic scene has one anchor, which becomes exactly one pair or one reject
    assert c["scenes"] == 24 and c["pairs"] + c["rejected"] == 24
    assert c["labels_by_labeler"] == {"rules": c["pairs"]} and c["label_status"] == {
        "ok": c["pairs"]}
    recs = rows(reference)
    assert len(recs) == c["pairs"] > 15
    for r in recs:
        rec = PairRecord.model_validate(r)
        assert rec.label is not None and rec.provenance.config_hash == man["config_hash"]
        assert len(rec.negative.poses) == 8 and len(rec.negative.t) == 41
        assert rec.negative.facts.collides or not rec.negative.facts.ttc_ok or not (
            rec.negative.facts.drivable_ok)
        assert not rec.positive.facts.collides
    rejects = (reference / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == c["rejected"]
    card = (reference / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "path: data/train-*.parquet" in card


def test_huggingface_datasets_reads_the_folder(reference: Path) -> None:
    datasets = pytest.importorskip("datasets")
    # a private cache: the shared one is keyed by file names and may hold another run's rows
    ds = datasets.load_dataset(str(reference), cache_dir=str(reference.parent / "hf-cache"))
    man = json.loads((reference / "manifest.json").read_text())
    assert {k: len(v) for k, v in ds.items()} == man["counts"]["by_split"]
    assert ds["train"][0]["label"]["risk_level"] in ("critical", "high", "medium", "low")


def test_same_seed_same_records_and_workers_do_not_matter(reference: Path,
                                                          tmp_path: Path) -> None:
    generate(cfg(tmp_path / "again"))
    generate(cfg(tmp_path / "pool", workers=2))
    ref = rows(reference)
    assert rows(tmp_path / "again") == ref
    assert rows(tmp_path / "pool") == ref
    # 96 candidates are all default variants (no random draw), so another seed gives the same
    # pairs, only stamped with that seed (and its config hash)
    generate(cfg(tmp_path / "seed", seed=1))
    other = rows(tmp_path / "seed")
    assert [_without_provenance(r) for r in other] == [_without_provenance(r) for r in ref]
    assert {r["provenance"]["seed"] for r in other} == {1}
    assert {r["provenance"]["config_hash"] for r in other}.isdisjoint(
        r["provenance"]["config_hash"] for r in ref)


def _without_provenance(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "provenance"}


def test_the_seed_draws_the_candidates_beyond_the_default_variants(tmp_path: Path) -> None:
    many = dict(source_options={"n_scenes": 8}, n_candidates=len(DEFAULT_VARIANTS) + 48)
    generate(cfg(tmp_path / "a", **many))
    generate(cfg(tmp_path / "b", seed=1, **many))
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert [r["pair_id"] for r in a] == [r["pair_id"] for r in b]      # same scenes, anchors
    changed = [x["pair_id"] for x, y in zip(a, b, strict=True)
               if (x["negative"], x["positive"]) != (y["negative"], y["positive"])]
    assert changed, "seed 1 drew no other random candidate into any pair"


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_records(reference: Path, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    generate(cfg(tmp_path / "dask", executor="dask", workers=2))
    assert rows(tmp_path / "dask") == rows(reference)


def test_a_changed_config_refuses_to_mix_unless_overwrite(reference: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "mix"
    shutil.copytree(reference, out)
    with pytest.raises(ShardError, match="another config"):
        generate(cfg(out, seed=3))
    generate(cfg(out, seed=3, overwrite=True))
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["seed"] == 3
    # the same config resumes: nothing is rewritten
    summary = generate(cfg(out, seed=3))
    assert summary.shards_written == 0 and summary.shards_resumed == summary.shards_total


def test_a_bad_clip_is_rejected_with_its_reason_and_the_rest_is_written(tmp_path: Path) -> None:
    root = tmp_path / "da"
    shutil.copytree(EXAMPLES / "deepaccident", root)
    label_dirs = sorted(root.glob("type1_subtype1_*/ego_vehicle/label/*"))
    victim = sorted(label_dirs[0].glob("*.txt"))[5]
    victim.write_text(victim.read_text().replace(" ", " nan ", 1))
    s = generate(GenerateConfig(source="deepaccident", root=str(root), splits=("train",),
                                out=str(tmp_path / "out"), n_candidates=64, workers=1))
    rej = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text()
           .splitlines()]
    bad = [r for r in rej if r["reason"] == "load_error"]
    assert len(bad) == 1 and victim.name in bad[0]["detail"]
    assert s.counts["pairs"] > 0 and s.counts["scenes"] == 3


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cfpair", "generate", *args]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ["--source-option", "n_scenes=48", "--candidates", "96", "--shard-size", "2",
            "--workers", "1"]
    subprocess.run(_cli(*args, "--out", str(tmp_path / "full")), check=True,
                   capture_output=True, timeout=300)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", str(out)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        man = out / "manifest.json"
        if man.exists() and len(json.loads(man.read_text())["shards"]) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(json.loads((out / "manifest.json").read_text())["shards"])
    assert 3 <= done < 24, "the kill must land mid-run"
    res = subprocess.run(_cli(*args, "--out", str(out)), check=True, capture_output=True,
                         text=True, timeout=300)
    assert "already complete" in res.stdout
    assert rows(out) == rows(tmp_path / "full")
    assert not list((out / "data").glob(".*tmp*"))


def test_cli_default_summary_in_a_subprocess(tmp_path: Path) -> None:
    res = subprocess.run(_cli("--source-option", "n_scenes=12", "--candidates", "64",
                              "--out", str(tmp_path / "o")), capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for text in ("scenes read", "pairs written", "rejected", "labels", "throughput", "output"):
        assert text in res.stdout
    bad = subprocess.run(_cli("--source", "navsim"), capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "--root is required" in bad.stderr


@pytest.mark.slow
def test_dask_existing_scheduler_gives_the_same_records(reference: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        generate(cfg(tmp_path / "sched", executor="dask", scheduler=cluster.scheduler_address))
    assert rows(tmp_path / "sched") == rows(reference)


def test_toml_config_and_its_errors(tmp_path: Path) -> None:
    from cfpair.config import load_toml
    from cfpair.errors import ConfigError

    good = tmp_path / "run.toml"
    good.write_text('seed = 7\nsplits = ["train"]\nn_candidates = 64\n'
                    '[source_options]\nn_scenes = 10\n')
    c = GenerateConfig(**load_toml(good))
    assert (c.seed, c.splits, c.n_candidates, c.source_options) == (7, ("train",), 64,
                                                                   {"n_scenes": 10})
    assert c.hash() != GenerateConfig().hash()
    assert c.hash() == GenerateConfig(**load_toml(good), workers=8, out="elsewhere").hash()
    bad = tmp_path / "bad.toml"
    bad.write_text("sead = 7\n")
    with pytest.raises(ConfigError,
                       match=r"bad\.toml.*unknown setting 'sead'; did you mean 'seed'"):
        load_toml(bad)
    bad.write_text("seed = [\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_toml(bad)
