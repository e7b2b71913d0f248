"""``cfpair render``: review PNGs per pair, grid pages and the HTML report for an output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cfpair.progress import track
from cfpair.render.bev import review_png
from cfpair.render.report import grid_png, write_report
from cfpair.shards import atomic_write, load_records, read_records

#: pairs per grid page
GRID_PAGE = 24


@dataclass
class RenderResult:
    """What a render wrote."""

    pairs: list[Path] = field(default_factory=list)
    grids: list[Path] = field(default_factory=list)
    report: Path | None = None
    rows: int = 0


def render(out: str | Path, dest: str | Path | None = None, limit: int = 20,
           split: str | None = None, ids: list[str] | None = None, grid: bool = True,
           html: bool = False, cols: int = 4, dpi: int = 110) -> RenderResult:
    """Render the first ``limit`` pairs (or the given ids) of ``out`` into ``dest``
    (default ``out/render``): ``pairs/<pair_id>.png``, ``grid-<page>.png`` and, with
    ``html``, ``report.html`` whose summary covers every pair of the split."""
    out = Path(out)
    dest = Path(dest) if dest is not None else out / "render"
    (dest / "pairs").mkdir(parents=True, exist_ok=True)
    res = RenderResult(rows=read_records(out, split).num_rows)
    recs = load_records(out, split, limit, ids)
    images: dict[str, bytes] = {}
    for rec in track(recs, "render", unit="pairs"):
        path = dest / "pairs" / f"{rec.pair_id}.png"
        images[rec.pair_id] = review_png(rec, dpi)
        atomic_write(path, images[rec.pair_id])
        res.pairs.append(path)
    if grid:
        for page, start in enumerate(range(0, len(recs), GRID_PAGE)):
            path = dest / f"grid-{page + 1:03d}.png"
            atomic_write(path, grid_png(recs[start:start + GRID_PAGE], cols))
            res.grids.append(path)
    if html:
        every = load_records(out, split) if res.rows > len(recs) and not ids else recs
        title = f"cfpair pairs: {out.resolve().name}" + (f" ({split})" if split else "")
        res.report = write_report(every, dest / "report.html", title, res.rows,
                                  pictured=len(recs), images=images)
    return res
