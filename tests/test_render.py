"""``cfpair render``: per-pair PNGs, grid pages and the HTML report are produced and show what
they should (colours of the three trajectories, the critical agent, no leakage in the
observation image)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cfpair.render.bev import COLOURS, observation_png, review_png
from cfpair.render.run import render
from cfpair.shards import load_records


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _count(img: np.ndarray, hex_colour: str, tol: int = 12) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img.astype(int) - rgb).max(-1) <= tol).sum())


def test_review_image_shows_each_role_and_the_critical_agent(small_run: Path) -> None:
    recs = load_records(small_run, limit=3)
    for rec in recs:
        img = _rgb(review_png(rec))
        assert img.shape[0] > 600 and img.shape[1] > 600
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50   # not a blank page
        for role in ("negative", "positive", "ego"):
            assert _count(img, COLOURS[role]) > 40, (rec.pair_id, role)
        if rec.negative.facts.critical_agent_id is not None:
            assert _count(img, COLOURS["critical"]) > 30, rec.pair_id


def test_observation_image_leaks_no_future_and_no_label(small_run: Path) -> None:
    rec = load_records(small_run, limit=1)[0]
    img = _rgb(observation_png(rec, 224))
    assert img.shape == (224, 224, 3)
    assert _count(img, COLOURS["ego"]) > 50
    assert _count(img, COLOURS["drivable"], 4) > 500
    for leak in ("negative", "positive", "critical"):
        assert _count(img, COLOURS[leak], 20) == 0, leak


def test_the_image_moves_with_the_scene_not_with_the_label(small_run: Path) -> None:
    a, b = load_records(small_run, limit=2)
    relabelled = a.model_copy(update={"pair_id": "x"})
    assert observation_png(a) == observation_png(relabelled)
    assert observation_png(a) != observation_png(b)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        d = dict(attrs)
        if "src" in d:
            self.srcs.append(d["src"] or "")
        if "href" in d:
            self.hrefs.append(d["href"] or "")


def test_render_writes_pairs_grid_and_a_self_contained_report(small_run: Path,
                                                              tmp_path: Path) -> None:
    res = render(small_run, tmp_path / "r", limit=5, html=True)
    assert len(res.pairs) == 5 and all(p.stat().st_size > 20_000 for p in res.pairs)
    assert len(res.grids) == 1 and _rgb(res.grids[0].read_bytes()).shape[1] > 1000
    assert res.report is not None
    text = res.report.read_text()
    parser = _Links()
    parser.feed(text)
    # every image inline, nothing fetched from anywhere: opens from disk with no server
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert parser.hrefs == [] and "<script" not in text
    assert len(parser.srcs) == 5 + 1   # five pairs + the summary plots
    every = load_records(small_run)
    for rec in every:   # the table lists every pair, not only the pictured ones
        assert rec.pair_id in text
    assert f"{len(every)} of {res.rows} pairs" in text
    summary = [s for s in parser.srcs if s][-1]
    assert len(summary) > 20_000


def test_render_by_id_and_unknown_id(small_run: Path, tmp_path: Path) -> None:
    recs = load_records(small_run, limit=3)
    res = render(small_run, tmp_path / "r", ids=[recs[2].pair_id, recs[0].pair_id], grid=False)
    assert [p.stem for p in res.pairs] == [recs[2].pair_id, recs[0].pair_id]
    from cfpair.errors import ShardError

    with pytest.raises(ShardError, match="nope"):
        render(small_run, tmp_path / "r", ids=["nope"])


def test_cli_render(small_run: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cfpair", "render", str(small_run), "--dest",
           str(tmp_path / "r"), "--limit", "2", "--html", "--split", "train"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert re.search(r"2 pair images of \d+ rows", p.stdout)
    assert "report.html" in p.stdout and (tmp_path / "r" / "report.html").is_file()
    bad = subprocess.run([sys.executable, "-m", "cfpair", "render", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no shards" in bad.stderr
