"""``cfpair render``: review PNGs per pair, grid pages and the HTML report for an output folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cfpair.progress import track
from cfpair.records.shards import atomic_write, load_records, read_records
from cfpair.render.grid import GRID_ROWS, grid_png
from cfpair.render.pair_figure import review_png
from cfpair.render.report import write_report


@dataclass
class RenderResult:
    """What a render wrote."""

    pairs: list[Path] = field(default_factory=list)
    grids: list[Path] = field(default_factory=list)
    report: Path | None = None
    rows: int = 0


def render(out: str | Path, dest: str | Path | None = None, limit: int = 20,
           split: str | None = None, ids: list[str] | None = None, grid: bool = True,
           html: bool = False, cols: int = 4, dpi: int = 110,
           on_progress: Callable[[str, int, int], None] | None = None) -> RenderResult:
    """Render the first ``limit`` pairs (or the given ids) of ``out`` into ``dest``
    (default ``out/render``): ``pairs/<pair_id>.png``, ``grid-<page>.png`` (``cols`` x
    ``GRID_ROWS`` pairs a page) and, with ``html``, ``report.html`` whose summary covers every
    pair of the split. ``on_progress(stage, done, total)`` is called after each image; inside
    the CLI the same loops also draw progress bars (``cfpair.progress``)."""
    out = Path(out)
    dest = Path(dest) if dest is not None else out / "render"
    rows = read_records(out, split).num_rows
    recs = load_records(out, split, limit, ids)
    (dest / "pairs").mkdir(parents=True, exist_ok=True)
    res = RenderResult(rows=rows)
    tell = on_progress or (lambda stage, done, total: None)
    images: dict[str, bytes] = {}
    for i, rec in enumerate(track(recs, "render", unit="pairs")):
        path = dest / "pairs" / f"{rec.pair_id}.png"
        images[rec.pair_id] = review_png(rec, dpi)
        atomic_write(path, images[rec.pair_id])
        res.pairs.append(path)
        tell("pairs", i + 1, len(recs))
    if grid:
        page = max(1, cols * GRID_ROWS)
        starts = range(0, len(recs), page)
        for n, start in enumerate(track(starts, "render grids", unit="pages")):
            path = dest / f"grid-{n + 1:03d}.png"
            atomic_write(path, grid_png(recs[start:start + page], cols))
            res.grids.append(path)
            tell("grids", n + 1, len(starts))
    if html:
        every = load_records(out, split) if res.rows > len(recs) and not ids else recs
        title = f"cfpair pairs: {out.resolve().name}" + (f" ({split})" if split else "")
        files = {pid: f"pairs/{pid}.png" for pid in images}
        res.report = write_report(every, dest / "report.html", title, res.rows,
                                  pictured=len(recs), images=images, files=files)
        tell("report", 1, 1)
    return res
