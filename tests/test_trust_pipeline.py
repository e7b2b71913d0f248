"""A bad clip is a reject and the manifest is always written; bugs never hide behind rejects.

Real runs (in-process and the CLI in a subprocess) on the sample data of every source and on a
hostile NAVSIM corpus built here; faults (a bug in the geometry, a dying worker, Ctrl-C) are
injected by patching one function.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cfpair.config import GenerateConfig
from cfpair.errors import ConfigError, ShardError
from cfpair.pipeline import generate, plan
from cfpair.validate import validate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "data"
SAMPLES = [("synthetic", None, ("train",), {"n_scenes": 6}),
           ("navsim", EXAMPLES / "navsim", ("mini",), {}),
           ("deepaccident", EXAMPLES / "deepaccident", ("train", "val"), {}),
           ("carla", EXAMPLES / "carla", ("all",), {})]


def _cfg(out: Path, **kw: object) -> GenerateConfig:
    base: dict = dict(out=str(out), source_options={"n_scenes": 8}, n_candidates=32,
                      shard_size=2, workers=1, splits=("train",))
    return GenerateConfig(**{**base, **kw})


def _cli(*args: str, timeout: int = 300, pre: str = "") -> subprocess.CompletedProcess:
    """The real CLI in a subprocess; ``pre`` is Python run first (fault injection)."""
    code = f"{pre}\nfrom cfpair.cli import app\napp({list(args)!r}, prog_name='cfpair')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize(("source", "root", "splits", "options"), SAMPLES,
                         ids=[s[0] for s in SAMPLES])
def test_no_internal_error_on_any_sample_data(tmp_path: Path, source: str, root: Path | None,
                                              splits: tuple, options: dict) -> None:
    assert root is None or root.exists(), f"sample data {root} is part of the repository"
    out = tmp_path / "out"
    summary = generate(GenerateConfig(source=source, root=str(root) if root else None,
                                      splits=splits, out=str(out), n_candidates=32,
                                      shard_size=4, workers=1, source_options=options))
    reasons = summary.counts["rejects_by_reason"]
    assert reasons.get("internal_error", 0) == 0, (tmp_path / "out" / "rejects.jsonl"
                                                   ).read_text()[:2000]
    assert summary.counts["pairs"] > 0
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def _hostile_navsim(tmp_path: Path) -> Path:
    """The four sample logs plus broken copies: wrong-typed fields and a camera path out."""
    root = tmp_path / "navsim"
    shutil.copytree(EXAMPLES / "navsim", root)
    logs = root / "navsim_logs" / "mini"
    good = pickle.loads(next(logs.glob("*.pkl")).read_bytes())
    edits = {"a_rotation3": ("ego2global_rotation", np.array([1.0, 0.0, 0.0])),
             "b_scalar_translation": ("ego2global_translation", 5.0),
             "c_empty_command": ("driving_command", []),
             "d_cams_list": ("cams", ["CAM_F0"]),
             "e_camera_out": ("cams", {"CAM_F0": {"data_path": "../../../../etc/passwd"}}),
             "f_string_time": ("timestamp", "1600000000000000")}
    for name, (key, value) in edits.items():
        frames = [dict(fr) for fr in good]
        for fr in frames:
            fr[key] = value
        (logs / f"{name}.pkl").write_bytes(pickle.dumps(frames))
    return root


def test_shard_size_1_workers_2_writes_the_manifest_with_every_reject(tmp_path: Path) -> None:
    """Before: the first shard's exception escaped the pool and no manifest was written."""
    root = _hostile_navsim(tmp_path)
    out = tmp_path / "out"
    res = _cli("generate", "--source", "navsim", "--root", str(root), "--out", str(out),
               "--shard-size", "1", "--workers", "2", "--candidates", "32")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and len(man["shards"]) == 10
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    loads = [r for r in rejects if r["reason"] == "load_error"]
    assert len(loads) == 6      # exactly the six hostile logs; their anchors are never scored
    for r in loads:
        assert r["file"].endswith(".pkl") and r["file"] in r["detail"]
    scored = [r for r in rejects if r["reason"] != "load_error"]
    assert all(r["anchor"] is not None and r["reason"] != "internal_error" for r in scored)
    assert man["counts"]["pairs"] + len(scored) == 4   # every anchor of the good logs accounted
    assert validate(out, recompute=False).ok


def test_an_exception_that_is_not_a_cfpair_error_is_an_internal_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    pre = ("import cfpair.pipeline as p\n_orig = p.build_context\n"
           "def boom(scn, anchor):\n"
           "    if scn.scenario_id.endswith('1'):\n        raise ZeroDivisionError('a bug')\n"
           "    return _orig(scn, anchor)\n"
           "p.build_context = boom")
    res = _cli("generate", "--out", str(out), "-o", "n_scenes=12", "--candidates", "32",
               "--split", "train", "--workers", "1", pre=pre)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "internal error" in res.stderr and "cfpair bug" in res.stderr
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    internal = [r for r in rejects if r["reason"] == "internal_error"]
    assert internal and all("ZeroDivisionError: a bug" in r["detail"] for r in internal)
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["counts"]["pairs"] > 0


@pytest.mark.parametrize("value", [True, 1.0])
def test_limit_must_be_a_whole_number(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="limit: expected an integer"):
        plan(_cfg(tmp_path, limit=value))


def test_a_huge_source_with_limit_1_lists_one_scene(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import cfpair.pipeline as p

    for n in (10**12, 1e12):
        started = time.perf_counter()
        specs = plan(_cfg(tmp_path, source_options={"n_scenes": n}, limit=1))
        assert sum(len(s.refs) for s in specs) == 1 and time.perf_counter() - started < 5
    with pytest.raises(ConfigError, match="n_scenes"):
        plan(_cfg(tmp_path, source_options={"n_scenes": 1.5}, limit=1))
    monkeypatch.setattr(p, "MAX_SCENES_PER_SPLIT", 100)    # the real cap is 5M: too slow here
    with pytest.raises(ConfigError, match="more than 100 scenes"):
        plan(_cfg(tmp_path, source_options={"n_scenes": 10**12}))
    res = _cli("generate", "-o", "n_scenes=1e12", "--limit", "1", "--split", "train",
               "--candidates", "32", "--workers", "1", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["scenes"] == 1


def test_limit_true_in_a_toml_config_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("limit = true\n")
    res = _cli("generate", "--config", str(toml), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "limit: expected an integer, got true" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_a_dying_worker_is_a_failed_shard_the_others_are_written(tmp_path: Path,
                                                                 monkeypatch) -> None:  # noqa: ANN001
    import cfpair.pipeline as p

    orig = p.process_shard

    def flaky(spec, cfg):  # noqa: ANN001, ANN202
        if spec.index == 1:
            raise MemoryError("worker ran out of memory")
        return orig(spec, cfg)

    monkeypatch.setattr(p, "process_shard", flaky)
    out = tmp_path / "out"
    with pytest.raises(ShardError, match="1 of .* shards failed.*incomplete"):
        generate(_cfg(out))
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "incomplete" and len(man["failed"]) == 1
    assert "MemoryError: worker ran out of memory" in next(iter(man["failed"].values()))
    assert len(man["shards"]) == len(man["planned"]) - 1
    rep = validate(out, recompute=False)
    assert rep.incomplete and not rep.ok
    monkeypatch.setattr(p, "process_shard", orig)
    generate(_cfg(out))
    assert validate(out, recompute=False).ok


def test_ctrl_c_mid_run_leaves_a_manifest_that_says_incomplete(tmp_path: Path,
                                                               monkeypatch) -> None:  # noqa: ANN001
    import cfpair.pipeline as p

    orig = p.safe_process_shard

    def interrupted(spec, cfg):  # noqa: ANN001, ANN202
        if spec.index == 2:
            raise KeyboardInterrupt
        return orig(spec, cfg)

    monkeypatch.setattr(p, "safe_process_shard", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        generate(_cfg(out))
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "incomplete" and len(man["shards"]) == 2
    assert not (out / ".cfpair.lock").exists()
    res = _cli("validate", str(out), "--no-recompute")
    assert res.returncode == 1 and "incomplete" in res.stdout
    monkeypatch.setattr(p, "safe_process_shard", orig)
    summary = generate(_cfg(out))
    assert summary.shards_resumed == 2 and validate(out, recompute=False).ok


def test_every_source_is_held_inside_its_root_by_the_run(tmp_path: Path) -> None:
    """Whatever a source does, the run refuses a clip file or camera path outside the root
    (here CARLA recordings: one symlinked out, one naming /etc/passwd as its camera)."""
    from dataclasses import replace

    from cfpair.sources.scenario_io import load_scenario, save_scenario

    root = tmp_path / "carla"
    shutil.copytree(EXAMPLES / "carla", root)
    recs = sorted((root / "all").glob("*.npz"))
    outside = tmp_path / "elsewhere.npz"
    shutil.move(recs[0], outside)
    recs[0].symlink_to(outside)
    scn = load_scenario(recs[1])
    save_scenario(replace(scn, sensors={"front": ("/etc/passwd",) * scn.n_steps}), recs[1])
    out = tmp_path / "out"
    summary = generate(GenerateConfig(source="carla", root=str(root), splits=("all",),
                                      out=str(out), n_candidates=32, workers=1))
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    by_file = {Path(r["file"]).name: r for r in rejects if r["anchor"] is None}
    assert "outside the dataset root" in by_file[recs[0].name]["detail"]
    assert "/etc/passwd" in by_file[recs[1].name]["detail"]
    assert summary.counts["rejects_by_reason"].get("internal_error", 0) == 0
    assert summary.counts["pairs"] > 0


def test_no_internal_error_on_fresh_writer_samples_of_every_family(tmp_path: Path) -> None:
    """The writers' output for 12 new synthetic scenes (every family) in both real layouts."""
    from cfpair.sources.deepaccident_writer import write_deepaccident, write_split
    from cfpair.sources.navsim_writer import write_gpkg, write_log
    from cfpair.sources.synthetic import SyntheticSource

    src = SyntheticSource(n_scenes=12, seed=77)
    scenes = [src.load(ref) for ref in src.list("all")]
    rows = []
    for i, s in enumerate(scenes):
        typ, name = "type1_subtype1_accident", f"Town04_type001_subtype0001_scenario{i:05d}"
        write_deepaccident(s, tmp_path / "da", typ, name)
        rows.append((typ, name))
        loc = f"loc-{i}"
        write_log(s, tmp_path / "nv" / "navsim_logs" / "mini" / f"{s.scenario_id}.pkl",
                  location=loc)
        write_gpkg(s, tmp_path / "nv" / "maps" / loc / "1.0" / "map.gpkg")
    write_split(tmp_path / "da", "train", rows)
    for source, root, split in (("deepaccident", "da", "train"), ("navsim", "nv", "mini")):
        summary = generate(GenerateConfig(source=source, root=str(tmp_path / root),
                                          splits=(split,), out=str(tmp_path / f"out-{root}"),
                                          n_candidates=32, shard_size=6, workers=1,
                                          max_anchors=2))
        reasons = summary.counts["rejects_by_reason"]
        assert reasons.get("internal_error", 0) == 0 and reasons.get("load_error", 0) == 0, (
            (tmp_path / f"out-{root}" / "rejects.jsonl").read_text()[:2000])
        assert summary.counts["scenes"] == 12 and summary.counts["pairs"] > 0


@pytest.mark.parametrize("value", ["false", "no", 0, 1])
def test_overwrite_must_be_a_boolean(tmp_path: Path, value: object) -> None:
    out = tmp_path / "out"
    generate(_cfg(out))
    before = sorted(p.name for p in (out / "data").iterdir())
    with pytest.raises(ConfigError, match="overwrite: expected true or false"):
        generate(_cfg(out, seed=3, overwrite=value))
    assert sorted(p.name for p in (out / "data").iterdir()) == before
