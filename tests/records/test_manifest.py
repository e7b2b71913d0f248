"""The typed manifest: it reads what cfpair has always written (same keys, same bytes back),
adds counts up by its declared rules, and turns anything malformed into one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cfpair.config import GenerateConfig
from cfpair.errors import ShardError
from cfpair.export.formats import export
from cfpair.pipeline import generate
from cfpair.records.manifest import LLM_MERGE, Counts, Reject, RunManifest, ShardEntry
from cfpair.records.shards import Manifest, manifest_digest, read_manifest
from cfpair.validate import validate

#: manifest.json of ``cfpair generate`` (the default run) written by cfpair before the typed
#: manifest existed (main at 61f0e3c)
BEFORE = Path(__file__).parent / "data" / "default-run-manifest.json"


def _keys(man: dict) -> dict[str, set[str]]:
    """The key sets of each level of a manifest."""
    entries = list(man["shards"].values())
    rejects = [r for e in entries for r in e["rejects"]]
    return {"top": set(man), "counts": set(man["counts"]),
            "entry": set().union(*map(set, entries)), "reject": set().union(*map(set, rejects))}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifest") / "out"
    generate(GenerateConfig(out=str(out), source_options={"n_scenes": 24}, n_candidates=16,
                            shard_size=8, workers=1, splits=("train",)))
    return out


def test_a_manifest_written_before_the_model_parses_and_writes_back_byte_for_byte() -> None:
    text = BEFORE.read_text()
    raw = json.loads(text)
    man = RunManifest.model_validate(raw)
    data = man.as_json()
    data["digest"] = manifest_digest(data)
    assert json.dumps(data, indent=1, sort_keys=True) + "\n" == text
    assert man.digest == raw["digest"] == manifest_digest(raw)
    assert Counts.of(man.shards.values()) == man.counts       # the old sums, by the new rules
    assert man.counts.rejected == 5 and man.counts.rejects_by_reason == {"no_safe_candidate": 5}


def test_a_new_run_writes_the_same_keys_and_validates(small: Path) -> None:
    new = json.loads((small / "manifest.json").read_text())
    assert _keys(new) == _keys(json.loads(BEFORE.read_text()))
    assert read_manifest(small) == RunManifest.model_validate(new)
    rep = validate(small, recompute=False)
    assert rep.ok, rep.findings


def test_llm_counters_add_up_by_the_declared_rules() -> None:
    def entry(llm: dict) -> ShardEntry:
        return ShardEntry(split="train", rows=1, scenes=1, sha256="x", rejects=[], llm=llm)
    a = {"requests": 3, "cost_usd": 0.1, "latency_s": 1.0, "latency_max_s": 0.9,
         "concurrency_max_s": 4, "server_slots": 4}
    b = {"requests": 2, "cost_usd": 0.2, "latency_s": 2.0, "latency_max_s": 0.4,
         "concurrency_max_s": 2, "server_slots": 4, "retries": 1}
    got = Counts.of([entry(a), entry(b)]).llm
    assert got == {"requests": 5, "cost_usd": 0.3, "latency_s": 3.0, "latency_max_s": 0.9,
                   "concurrency_max_s": 4, "server_slots": 4, "retries": 1}
    assert isinstance(got["requests"], int) and set(LLM_MERGE) <= set(got)


def test_an_entry_of_an_older_cfpair_keeps_its_keys() -> None:
    old = {"split": "train", "rows": 2, "scenes": 2, "sha256": "ab", "rejects": []}
    assert ShardEntry.model_validate(old).model_dump(mode="json", exclude_unset=True) == old


@pytest.mark.parametrize("edit", [
    lambda m: m["shards"][next(iter(m["shards"]))].update(rows="1"),
    lambda m: m["shards"][next(iter(m["shards"]))].update(rows=True),
    lambda m: m["shards"][next(iter(m["shards"]))]["rejects"].append({"reason": "x"}),
    lambda m: m["counts"].update(pairs=-1),
    lambda m: m["planned"].update({"../../etc/passwd": 1}),
    lambda m: m.update(status="done"),
    lambda m: m.update(surprise=1),
    lambda m: m.pop("config_hash"),
], ids=["string-count", "bool-count", "bad-reject", "negative", "path", "status", "extra",
        "missing"])
def test_a_malformed_manifest_is_one_clear_error(small: Path, tmp_path: Path, edit) -> None:  # noqa: ANN001
    run = tmp_path / "run"
    shutil.copytree(small, run)
    man = json.loads((run / "manifest.json").read_text())
    edit(man)
    man["digest"] = manifest_digest(man)
    (run / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ShardError, match="malformed manifest"):
        read_manifest(run)
    with pytest.raises(ShardError, match="malformed manifest"):
        Manifest.open(run, man.get("config", {}), str(man.get("config_hash")), False)
    with pytest.raises(ShardError, match="malformed manifest"):
        export(run, tmp_path / "dpo", "trl-dpo", images="bev")
    found = [f for f in validate(run, recompute=False).findings if f.check == "manifest"]
    assert len(found) == 1 and found[0].message.startswith("malformed manifest: "), found


def test_a_reject_is_typed() -> None:
    r = {"source": "s", "scenario_id": "a", "split": "train", "anchor": None,
         "reason": "load_error", "detail": "d", "file": "f.json", "line": 3}
    assert Reject.model_validate(r).model_dump() == r
    with pytest.raises(ValueError):
        Reject.model_validate({**r, "line": "3"})
