"""The real CLI in a subprocess: one vocabulary, defaults in --help, plain states, show, stats."""

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

import pytest

COMMANDS = ("generate", "validate", "render", "export", "train", "show", "stats",
            "bench-geometry")


def cli(*args: str, cwd: Path | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "TERMINAL_WIDTH": "250"}   # no wrapped lines
    return subprocess.run([sys.executable, "-m", "cfpair", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "━" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_defaults_and_no_type_noise(command: str):
    r = cli(command, "--help")
    assert r.returncode == 0, r.stderr
    for noise in ("<str>", "<int", "<float", "<bool>", "<list", "{out}", "{DIR}", "(256)"):
        assert noise not in r.stdout, (command, noise)
    if command in ("render", "export", "train"):
        assert "--out" in r.stdout and "--dest" not in r.stdout


def test_generate_help_lists_every_setting_with_its_default():
    from dataclasses import fields

    from cfpair.config import PARTS

    text = " ".join(cli("generate", "--help").stdout.split())   # undo the wrapping
    for cls in PARTS.values():
        for f in fields(cls):
            assert "--" + f.name.replace("_", "-") in text or f.name == "source_options", f.name
    for default in ("[default: synthetic]", "[default: 256]", "[default: 2]", "[default: 8]",
                    "[default: 60.0]", "[default: cfpair-out]", "[default: the source's own]"):
        assert default in text, default


def test_summary_is_grammatical_and_a_resume_says_nothing_to_do(tmp_path: Path):
    args = ("generate", "--source-option", "n_scenes=6", "--n-candidates", "32", "--workers",
            "1", "--out", str(tmp_path / "o"))
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    text = " ".join(first.stdout.split())
    assert "1 local worker)" in text and "workers)" not in text
    assert "pairs (" in text or "1 pair (" in text
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    text = " ".join(again.stdout.split())
    assert "nothing to do" in text and "scenes/s" not in text


def test_zero_scenes_is_an_error_listing_the_splits_that_exist(tmp_path: Path):
    (tmp_path / "carla" / "train").mkdir(parents=True)
    (tmp_path / "carla" / "train" / "a.npz").write_bytes(b"")
    (tmp_path / "nav" / "navsim_logs" / "mini").mkdir(parents=True)
    (tmp_path / "nav" / "navsim_logs" / "mini" / "a.pkl").write_bytes(b"")
    one_line_error(cli("generate", "--source", "carla", "--root", str(tmp_path / "carla"),
                       "--out", str(tmp_path / "o")), "no split 'all'", "exist: train")
    one_line_error(cli("generate", "--source", "navsim", "--root", str(tmp_path / "nav"),
                       "--split", "test", "--out", str(tmp_path / "o")),
                   "no split 'test'", "exist: mini")
    (tmp_path / "da").mkdir()
    (tmp_path / "da" / "train.txt").write_text("\n")
    one_line_error(cli("generate", "--source", "deepaccident", "--root", str(tmp_path / "da"),
                       "--split", "train", "--out", str(tmp_path / "o")),
                   "0 scenes in split(s) train", "exist: train, all")
    assert not (tmp_path / "o").exists()


def test_commands_on_a_folder_that_is_not_an_output(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"format": "something else"}')
    for args in (["render", str(folder)], ["export", str(folder), "-f", "trl-dpo", "--out",
                                           str(tmp_path / "x")],
                 ["stats", str(folder)], ["show", str(folder), "abc"], ["train", str(folder)]):
        one_line_error(cli(*args), "not a cfpair")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]
    assert not (tmp_path / "x").exists()
    one_line_error(cli("render", str(tmp_path / "missing")), "no such folder")


def test_dask_without_a_scheduler_fails_fast(tmp_path: Path):
    pytest.importorskip("dask.distributed")
    t0 = time.monotonic()
    r = cli("generate", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--out",
            str(tmp_path / "o"), timeout=60)
    one_line_error(r, "no Dask scheduler answered at tcp://127.0.0.1:9")
    assert time.monotonic() - t0 < 25


def test_ctrl_c_says_what_was_written_and_the_resume_finishes(tmp_path: Path):
    out = tmp_path / "o"
    args = [sys.executable, "-m", "cfpair", "generate", "--source-option", "n_scenes=200",
            "--shard-size", "2", "--workers", "1", "--n-candidates", "32", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "data").glob("*.parquet"))
                                             if (out / "data").is_dir() else []) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    line = [ln for ln in stderr.splitlines() if ln.startswith("interrupted")]
    assert line and "re-run the same command to resume" in line[0], stderr
    written = len(json.loads((out / "manifest.json").read_text())["shards"])
    match = re.match(r"interrupted: (\d+) of (\d+) shards written", line[0])
    assert match and int(match[1]) == written, line[0]
    total = int(match[2])     # 200 scenes in shards of 2, per split (odd splits round up)
    assert 0 < written < total and 100 <= total <= 102
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    done = " ".join(resumed.stdout.split())
    assert f"{total - written} written, {written} already complete, {total} in all" in done


def test_show_and_stats(small_run: Path, tmp_path: Path):
    import cfpair

    recs = cfpair.load(small_run)
    rec = recs[0]
    folder = tmp_path / "run"
    shutil.copytree(small_run, folder)
    r = cli("show", str(folder), rec.pair_id)
    assert r.returncode == 0, r.stderr
    for text in ("expert", "negative", "positive", "pdms", "min_ttc_s", "risk level",
                 rec.pair_id):
        assert text in r.stdout, text
    picture = folder / "render" / "pairs" / f"{rec.pair_id}.png"
    assert f"picture: {picture}" in r.stdout
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one_line_error(cli("show", str(folder), "no-such-id"), "no pair with id no-such-id")

    r = cli("stats", str(folder), "--json")
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout)
    assert sum(counts["split"].values()) == len(recs)
    assert counts["split"] == {s: sum(x.split == s for x in recs) for s in counts["split"]}
    assert sum(counts["hazard"].values()) == len(recs)
    assert sum(counts["positive operator"].values()) == len(recs)
    rejects = [json.loads(ln) for ln in (folder / "rejects.jsonl").read_text().splitlines()]
    assert sum(counts["reject reason"].values()) == len(rejects)
    table = cli("stats", str(folder))
    assert table.returncode == 0 and "reject reason" in table.stdout


@pytest.mark.slow
def test_train_with_too_few_pairs_says_how_held_out_pairs_are_chosen(tmp_path: Path):
    pytest.importorskip("torch")
    out = tmp_path / "o"
    r = cli("generate", "--source-option", "n_scenes=2", "--splits", "train", "--n-candidates",
            "32", "--workers", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    one_line_error(cli("train", str(out)), "need at least 2 training and 1 held-out pair",
                   "val and test splits", "hashes to 1 in 5")


@pytest.mark.slow
def test_ablation_table_is_saved_as_markdown_and_json(small_run: Path, tmp_path: Path):
    pytest.importorskip("torch")
    ckpt = tmp_path / "ckpt"
    r = cli("train", str(small_run), "--ablation", "--seeds", "0", "--scale", "0.002",
            "--device", "cpu", "--out", str(ckpt), timeout=600)
    assert r.returncode == 0, r.stderr
    md = (ckpt / "ablation.md").read_text()
    data = json.loads((ckpt / "ablation.json").read_text())
    from cfpair.train.run import ARMS

    assert data["seeds"] == [0] and list(data["arms"]) == list(ARMS)
    for arm, row in data["arms"].items():
        assert f"| {arm} | {row['collision_rate']['mean']:.3f} ±" in md
    assert md in r.stdout.replace("\r", "")


def test_a_garbage_shard_is_one_line_pointing_to_validate(small_run: Path, tmp_path: Path):
    folder = tmp_path / "run"
    shutil.copytree(small_run, folder)
    next((folder / "data").glob("*.parquet")).write_bytes(b"not parquet at all")
    for args in (["stats", str(folder)], ["show", str(folder), "x"]):
        one_line_error(cli(*args), "cannot read its shards", f"cfpair validate {folder}")
