"""No data loss: generate and export write, replace and remove only their own files; one writer
per folder; a full disk is a clear error and leaves nothing half-written behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cfpair.config import GenerateConfig
from cfpair.errors import ShardError
from cfpair.export.formats import export
from cfpair.lock import FolderLock
from cfpair.pipeline import generate
from cfpair.validate import validate

ROOT = Path(__file__).resolve().parents[1]
NAVSIM = ROOT / "examples" / "data" / "navsim"


def _cfg(out: Path, **kw: object) -> GenerateConfig:
    base: dict = dict(out=str(out), source_options={"n_scenes": 8}, n_candidates=32,
                      shard_size=2, workers=1, splits=("train",))
    return GenerateConfig(**{**base, **kw})


def _cli(*args: str, pre: str = "", timeout: int = 300) -> subprocess.CompletedProcess:
    code = f"{pre}\nfrom cfpair.cli import app\napp({list(args)!r}, prog_name='cfpair')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


GEN = ("generate", "-o", "n_scenes=8", "--candidates", "32", "--shard-size", "2",
       "--split", "train", "--workers", "1")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    generate(_cfg(out))
    return out


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- generate ---------------------------------------------------------------------------

def test_a_second_writer_fails_fast_and_a_stale_lock_is_no_obstacle(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FolderLock(out):
        started = time.perf_counter()
        res = _cli(*GEN, "--out", str(out))
        assert res.returncode == 2 and time.perf_counter() - started < 60
        assert "being written by another cfpair process" in res.stderr
        assert "Traceback" not in res.stderr
        assert not (out / "manifest.json").exists()
    (out / ".cfpair.lock").write_text("pid 999999 since long ago\n")   # left by a kill -9
    res = _cli(*GEN, "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert not (out / ".cfpair.lock").exists() and validate(out, recompute=False).ok


def test_two_concurrent_runs_with_different_configs_never_mix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "cfpair", *GEN, "--seed", str(seed),
                               "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _ in results)
    assert codes[0] == 0 and codes[1] == 2, results
    loser = next(err for rc, err in results if rc == 2)
    assert "another cfpair process" in loser or "another config" in loser
    assert validate(out, recompute=False).ok


def test_disk_full_is_a_clear_error_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    pre = ("import errno, cfpair.records.shards as s\n_orig = s._write_all\nn = [0]\n"
           "def full(fh, data):\n"
           "    if '.parquet' in fh.name:\n"
           "        n[0] += 1\n"
           "        if n[0] == 2:\n"
           "            fh.write(data[:100])\n"
           "            raise OSError(errno.ENOSPC, 'No space left on device')\n"
           "    _orig(fh, data)\n"
           "s._write_all = full")
    res = _cli(*GEN, "--out", str(out), pre=pre)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "disk is full" in res.stderr and "Traceback" not in res.stderr
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "incomplete" and len(man["shards"]) == 1
    assert validate(out, recompute=False).incomplete
    leftover = out / "data" / ".train-00003-of-00004.parquet.tmp-4242"    # a kill -9 leftover
    leftover.write_bytes(b"half a shard")
    res = _cli(*GEN, "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert not leftover.exists() and validate(out, recompute=False).ok


def test_generate_never_touches_a_foreign_readme_or_shard(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("# my project\nprecious notes\n")
    for extra in ((), ("--overwrite",)):
        res = _cli(*GEN, "--out", str(out), *extra)
        assert res.returncode == 2 and "README.md" in res.stderr and "did not write" in \
            res.stderr, res.stderr[-1500:]
    assert (out / "README.md").read_text() == "# my project\nprecious notes\n"
    assert not (out / "data").exists()
    (out / "README.md").unlink()
    (out / "data").mkdir()
    (out / "data" / "train-00000-of-00001.parquet").write_bytes(b"someone else's")
    with pytest.raises(ShardError, match="did not write"):
        generate(_cfg(out, overwrite=True))
    assert (out / "data" / "train-00000-of-00001.parquet").read_bytes() == b"someone else's"


def test_overwrite_removes_only_the_files_of_the_previous_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(_cfg(out, shard_size=1))
    (out / "notes.txt").write_text("mine")
    (out / "data" / "notes.csv").write_text("mine too")
    with pytest.raises(ShardError, match="another config"):
        generate(_cfg(out, seed=5))
    generate(_cfg(out, seed=5, overwrite=True))
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "data" / "notes.csv").read_text() == "mine too"
    man = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == sorted(
        Path(n).name for n in man["shards"])
    assert man["config"]["seed"] == 5 and validate(out, recompute=False).ok


def test_out_may_not_be_the_dataset_root(tmp_path: Path) -> None:
    for out in (NAVSIM, NAVSIM / "navsim_logs", NAVSIM.parent):
        with pytest.raises(ShardError, match="dataset root"):
            generate(GenerateConfig(source="navsim", root=str(NAVSIM), out=str(out)))


# --- export -----------------------------------------------------------------------------

def test_export_refuses_its_source_folder_and_folders_around_it(run: Path) -> None:
    before = _tree(run)
    for dest in (run, run / "data", run / "sub" / "deeper", run.parent):
        res = _cli("export", str(run), "--format", "trl-dpo", "--out", str(dest),
                   "--overwrite")
        assert res.returncode == 2 and "pairs folder" in res.stderr, res.stderr[-1500:]
    assert _tree(run) == before and validate(run, recompute=False).ok


def test_export_refuses_a_foreign_non_empty_folder_unless_overwrite(run: Path,
                                                                    tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "README.md").write_text("someone's")
    (dest / "keep.txt").write_text("keep")
    res = _cli("export", str(run), "--format", "trl-dpo", "--out", str(dest))
    assert res.returncode == 2 and "not empty" in res.stderr and "Traceback" not in res.stderr
    assert (dest / "README.md").read_text() == "someone's"
    export(run, dest, "trl-dpo", images="bev", overwrite=True)
    assert (dest / "keep.txt").read_text() == "keep"
    assert (dest / "export.json").is_file()


def test_re_export_removes_its_stale_files_and_nothing_else(run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first = export(run, dest, "llamafactory", images="bev")
    images = sorted((dest / "images").iterdir())
    assert images and first.rows
    (dest / "mine.txt").write_text("mine")
    stale = dest / "data" / "old-00000-of-00001.parquet"
    rec = json.loads((dest / "export.json").read_text())
    stale.parent.mkdir()
    stale.write_bytes(b"stale shard of the previous export")
    rec["files"].append("data/old-00000-of-00001.parquet")
    (dest / "export.json").write_text(json.dumps(rec))
    export(run, dest, "trl-dpo", images="bev")            # another format into its own export
    assert not stale.exists() and not list((dest / "images").glob("*"))
    assert not list(dest.glob("cfpair_*.json")) and not (dest / "dataset_info.json").exists()
    assert (dest / "mine.txt").read_text() == "mine"
    files = json.loads((dest / "export.json").read_text())["files"]
    assert sorted(files) == sorted(str(p.relative_to(dest)) for p in dest.rglob("*")
                                   if p.is_file() and p.name != "mine.txt")
