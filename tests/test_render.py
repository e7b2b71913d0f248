"""``cfpair render``: per-pair pictures, grid pages and the HTML report of every sample source
show what they should (each role, the critical agent, a complete legend, an informative title,
a speed panel that separates speed-only pairs, no overlapping text, a no-map note), and the
observation image leaks nothing."""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from cfpair.config import GenerateConfig
from cfpair.errors import ShardError
from cfpair.pipeline import generate
from cfpair.records.schema import PairRecord
from cfpair.records.shards import load_records
from cfpair.render.bev import COLOURS, observation_png
from cfpair.render.grid import grid_figure
from cfpair.render.pair_figure import review_figure, review_png
from cfpair.render.run import render
from cfpair.render.summary import draw_risk, risk_order

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
#: (source, split) of the sample data in examples/data
SAMPLES = {"navsim": "mini", "deepaccident": "train", "carla": "all"}


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _count(img: np.ndarray, hex_colour: str, tol: int = 12) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img.astype(int) - rgb).max(-1) <= tol).sum())


@pytest.fixture(scope="module")
def sample_runs(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An output folder per source: the synthetic small run and one generated from each
    sample dataset in examples/data through its real loader."""
    runs = {"synthetic": small_run}
    base = tmp_path_factory.mktemp("samples")
    for source, split in SAMPLES.items():
        out = base / source
        generate(GenerateConfig(source=source, root=str(EXAMPLES / source), splits=(split,),
                                out=str(out), workers=1))
        runs[source] = out
    return runs


def _by_gid(fig: Figure, gid: str) -> list:
    return [a for a in fig.findobj() if a.get_gid() == gid]


def _drawn(fig: Figure):  # noqa: ANN202
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_review_image_shows_each_role_and_the_critical_agent(small_run: Path) -> None:
    for rec in load_records(small_run, limit=3):
        img = _rgb(review_png(rec))
        assert img.shape[0] > 800 and img.shape[1] > 1000
        for role in ("negative", "positive", "ego"):
            assert _count(img, COLOURS[role]) > 40, (rec.pair_id, role)
        if rec.negative.facts.critical_agent_id is not None:
            assert _count(img, COLOURS["critical"]) > 30, rec.pair_id


@pytest.mark.parametrize("source", ["synthetic", *SAMPLES])
def test_every_sample_source_renders_a_picture_a_researcher_can_read(
        sample_runs: dict[str, Path], source: str) -> None:
    recs = load_records(sample_runs[source], limit=4)
    assert recs, f"the {source} sample gave no pairs"
    for rec in recs:
        fig = review_figure(rec)
        renderer = _drawn(fig)
        w, h = fig.get_size_inches() * 110
        assert 1000 < w < 1800 and 800 < h < 900
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        wanted = ["ego at t = 0", "expert", "negative", "positive", "other road users",
                  "negative ego at", "positive ego at the same time", "markers: every 1 s"]
        if rec.negative.facts.critical_agent_id is not None:
            wanted.append("critical agent at t = 0")
        if rec.context.map.available:
            wanted += ["drivable area", "route"]
        else:
            wanted.append("no map in the source")
        for entry in wanted:
            assert any(t.startswith(entry) for t in legend), (source, entry, legend)
        title = _by_gid(fig, "title")[0].get_text()
        assert rec.provenance.source in title and rec.split in title
        assert rec.pair_id not in title
        assert len(_by_gid(fig, "no-map")) == (0 if rec.context.map.available else 1)
        # nothing overlaps: title, subtitle, the two panels, the legend, the details
        bev, speed = fig.axes
        boxes = {"title": _by_gid(fig, "title")[0].get_window_extent(renderer),
                 "subtitle": _by_gid(fig, "subtitle")[0].get_window_extent(renderer),
                 "bev": bev.get_tightbbox(renderer), "speed": speed.get_tightbbox(renderer),
                 "legend": fig.legends[0].get_window_extent(renderer),
                 "details": _by_gid(fig, "details")[0].get_window_extent(renderer)}
        for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2):
            if {a, b} != {"title", "subtitle"}:
                assert not ba.overlaps(bb), (source, rec.pair_id, a, b)
        page = fig.bbox
        for name, box in boxes.items():
            assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1, (name, box, page)
            assert box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1, (name, box, page)
        label = _by_gid(fig, "critical-label")
        if label:   # the critical agent's name stays inside the drawing
            inner = label[0].get_window_extent(renderer)
            frame = bev.get_window_extent(renderer)
            assert frame.x0 <= inner.x0 and inner.x1 <= frame.x1, (source, rec.pair_id)
            assert frame.y0 <= inner.y0 and inner.y1 <= frame.y1, (source, rec.pair_id)


def _retimed(rec: PairRecord, share: float) -> PairRecord:
    """``rec`` whose positive drives the negative's own path, covering ``share`` of its
    distance at each moment: a speed-only pair."""
    neg = rec.negative
    x, y, yaw = (np.asarray(v) for v in (neg.x, neg.y, neg.yaw))
    s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    s2 = s * share
    nx, ny, nyaw = np.interp(s2, s, x), np.interp(s2, s, y), np.interp(s2, s, yaw)
    t = np.asarray(neg.t)
    poses = [[float(nx[i]), float(ny[i]), float(nyaw[i])] for i in range(len(t))
             if t[i] > 0 and abs(t[i] * 2 - round(t[i] * 2)) < 1e-6]
    pos = neg.model_copy(update={"x": nx.tolist(), "y": ny.tolist(), "yaw": nyaw.tolist(),
                                 "v": (np.asarray(neg.v) * share).tolist(), "poses": poses})
    return rec.model_copy(update={"positive": pos})


def test_a_speed_only_pair_shows_distinct_speeds_and_places(small_run: Path) -> None:
    rec = next(r for r in load_records(small_run)
               if r.negative.facts.first_conflict_time_s is not None
               and max(r.negative.v) > 5.0)
    pair = _retimed(rec, 0.6)
    fig = review_figure(pair)
    neg_path, pos_path = (_by_gid(fig, f"path-{r}")[0] for r in ("negative", "positive"))
    # the two paths lie on top of each other ...
    pu, pw = pos_path.get_data()
    nu, nw = neg_path.get_data()
    k = np.linspace(0, len(nu) - 1, 20 * len(nu))   # the negative's polyline, densely
    nu, nw = (np.interp(k, np.arange(len(v)), v) for v in (nu, nw))
    gap = np.hypot(pu[:, None] - nu[None, :], pw[:, None] - nw[None, :]).min(1)
    assert gap.max() < 0.1
    # ... yet the speed curves differ and the 1 s markers and conflict-time boxes do not meet
    neg_v, pos_v = (_by_gid(fig, f"speed-{r}")[0].get_ydata() for r in ("negative", "positive"))
    assert np.abs(np.asarray(neg_v) - np.asarray(pos_v)).max() > 0.3 * max(rec.negative.v)
    neg_t, pos_t = (_by_gid(fig, f"ticks-{r}")[0].get_offsets() for r in ("negative",
                                                                         "positive"))
    assert len(neg_t) == len(pos_t) == 4
    assert np.hypot(*(np.asarray(neg_t) - np.asarray(pos_t)).T).max() > 5.0
    boxes = [_by_gid(fig, f"snapshot-{r}")[0].get_xy().mean(0) for r in ("negative",
                                                                         "positive")]
    assert np.hypot(*(boxes[0] - boxes[1])) > 2.0


def test_grid_pages_are_legible(sample_runs: dict[str, Path]) -> None:
    recs = [r for src in sample_runs.values() for r in load_records(src, limit=3)][:12]
    fig = grid_figure(recs, 4)
    renderer = _drawn(fig)
    assert fig.get_size_inches()[0] * 100 > 1600
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert min(t.get_fontsize() for t in texts) >= 8.0
    assert not any(re.fullmatch(r"[0-9a-f]{20}", t.get_text()) for t in texts)
    titles = [t.get_window_extent(renderer) for ax in fig.axes
              for t in [ax._left_title, *ax.texts] if t.get_text()]  # noqa: SLF001
    for a, b in itertools.combinations(titles, 2):
        assert not a.overlaps(b)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "no map in the source" in legend and "drivable area" in legend


def test_risk_plot_reads_any_level_the_records_carry(small_run: Path) -> None:
    assert risk_order(["high", "severe", "unlabeled", "none"], every=True) == [
        "none", "low", "medium", "high", "critical", "severe", "unlabeled"]
    recs = load_records(small_run, limit=3)
    odd = recs[0].model_copy(update={"label": recs[0].label.model_copy(
        update={"risk_level": "severe"})})
    ax = Figure().subplots()
    draw_risk(ax, [odd, *recs[1:]])
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[-1] == "severe" and ticks[:5] == ["none", "low", "medium", "high", "critical"]


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


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[dict[str, str | None]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.append({"tag": tag, **dict(attrs)})


@pytest.mark.parametrize("source", ["synthetic", "deepaccident"])
def test_render_writes_pairs_grid_and_a_self_contained_report(
        sample_runs: dict[str, Path], source: str, tmp_path: Path) -> None:
    out = sample_runs[source]
    res = render(out, tmp_path / "r", limit=5, html=True)
    every = load_records(out)
    n = min(5, len(every))
    assert len(res.pairs) == n and all(p.stat().st_size > 20_000 for p in res.pairs)
    assert len(res.grids) == 1 and _rgb(res.grids[0].read_bytes()).shape[1] > 400
    assert res.report is not None
    text = res.report.read_text()
    page = _Page()
    page.feed(text)
    srcs = [a["src"] for a in page.attrs if a.get("src")]
    fulls = [a["data-full"] for a in page.attrs if a.get("data-full")]
    # every image inline, nothing fetched from anywhere: opens from disk with no server
    assert all(s.startswith("data:image/png;base64,") for s in srcs + fulls)
    assert len(fulls) == n and len(srcs) == n + 2   # thumbnails, the summary, the legend
    assert "http://" not in text and "https://" not in text
    ids = {a["id"] for a in page.attrs if a.get("id")}
    hrefs = [a["href"] or "" for a in page.attrs if "href" in a]
    assert hrefs
    for href in hrefs:   # every link resolves: to a card on the page or a file next to it
        if href.startswith("#"):
            assert href[1:] in ids, href
        else:
            assert (res.report.parent / href).is_file(), href
    files = [a["data-file"] for a in page.attrs if a.get("data-file")]
    assert len(files) == n and all((res.report.parent / f).is_file() for f in files)
    # the table: every pair, sortable headers and filters driven by the inline script
    assert page.tags.count("th") == 13 and "<script>" in text and "onclick" in text
    assert sum(1 for a in page.attrs if a["tag"] == "select") == 4
    for rec in every:
        assert rec.pair_id in text
    assert f"{len(every)} of {res.rows} pairs" in text


def test_render_by_id_and_unknown_id(small_run: Path, tmp_path: Path) -> None:
    recs = load_records(small_run, limit=3)
    res = render(small_run, tmp_path / "r", ids=[recs[2].pair_id, recs[0].pair_id], grid=False)
    assert [p.stem for p in res.pairs] == [recs[2].pair_id, recs[0].pair_id]
    with pytest.raises(ShardError, match="nope"):
        render(small_run, tmp_path / "r2", ids=["nope"])
    assert not (tmp_path / "r2").exists()   # nothing created before the error


def test_cli_render(small_run: Path, tmp_path: Path) -> None:
    helptext = subprocess.run([sys.executable, "-m", "cfpair", "render", "--help"],
                              capture_output=True, text=True, timeout=60).stdout
    flag = "--dest" if "--dest" in helptext else "--out"   # the CLI is renaming it
    cmd = [sys.executable, "-m", "cfpair", "render", str(small_run), flag,
           str(tmp_path / "r"), "--limit", "2", "--html", "--split", "train"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert re.search(r"2 pair images of \d+ rows", p.stdout)
    assert "report.html" in p.stdout and (tmp_path / "r" / "report.html").is_file()
    bad = subprocess.run([sys.executable, "-m", "cfpair", "render", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no shards" in bad.stderr


def test_a_row_that_cannot_be_drawn_is_a_one_line_error(small_run: Path, tmp_path: Path) -> None:
    from cfpair.records.shards import atomic_write, parquet_bytes, table_of

    good = load_records(small_run, limit=1)[0]
    agent = good.context.agents[0]
    ragged = good.model_copy(update={
        "pair_id": "ragged", "negative": good.negative.model_copy(update={"x": []}),
        "context": good.context.model_copy(update={"agents": [
            agent.model_copy(update={"valid": agent.valid[:3]})]})})
    out = tmp_path / "hostile"
    atomic_write(out / "data" / "train-000-of-001.parquet", parquet_bytes(table_of([ragged])))
    # a folder that passes the CLI's output-folder check (a cfpair manifest), so the row is
    # what fails
    fmt = json.loads((small_run / "manifest.json").read_text())["format"]
    atomic_write(out / "manifest.json", json.dumps({"format": fmt}).encode())
    for draw in (review_png, observation_png):
        with pytest.raises(ShardError, match="pair ragged: cannot draw"):
            draw(ragged)
    cmd = [sys.executable, "-m", "cfpair", "render", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "pair ragged: cannot draw: negative trajectory" in p.stderr
    assert "agent" in p.stderr and len(p.stderr.strip().splitlines()) == 1
