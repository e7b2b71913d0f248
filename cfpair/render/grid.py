"""Grid pages (many pairs on one page under one shared legend) and the single-cell thumbnail
the HTML report shows; fonts are sized in points for a page read at 100 %."""

from __future__ import annotations

import math
import textwrap

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cfpair.records.schema import PairRecord
from cfpair.render.bev import draw_scene, no_map_note, png_bytes
from cfpair.render.legend import legend_entries
from cfpair.render.pair_figure import scenario_kind

#: rows of a grid page; a page holds ``cols * GRID_ROWS`` pairs
GRID_ROWS = 3
#: cell width and height, the title band above each cell, the gap between cells (inches)
CELL_W, CELL_H, CELL_TITLE, CELL_GAP = 3.7, 4.5, 0.8, 0.5


def cell_title(rec: PairRecord) -> tuple[str, str]:
    """(bold line, detail line) above a cell: type · source / split, then risk · hazard · fix."""
    head = f"{scenario_kind(rec)} · {rec.provenance.source}/{rec.split}"
    lab = rec.label
    if lab is None:
        return head, f"unlabeled · negative PDMS {rec.negative.facts.pdms:.2f}"
    act = rec.meta_action
    return head, (f"{lab.risk_level} · {lab.hazard_type.replace('_', ' ')} · fix "
                  f"{act.longitudinal} + {act.lateral.replace('_', ' ')}")


def fit(text: str, width_in: float, fontsize: float, lines: int = 1) -> str:
    """``text`` wrapped to ``lines`` lines that fit ``width_in`` inches at ``fontsize``."""
    chars = max(10, int(width_in * 72 / (0.5 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars, max_lines=lines, placeholder=" ..."))


def draw_cell(ax: Axes, rec: PairRecord, aspect: float, fontsize: float = 10.0,
              title: bool = True) -> None:
    """One pair in a cell of height / width ``aspect``: the scene, the no-map note and, with
    ``title``, a title of up to three lines that fits the cell (type · source / split in
    bold, then risk · hazard · fix)."""
    draw_scene(ax, rec, aspect)
    no_map_note(ax, rec, fontsize - 1.5)
    ax.tick_params(labelsize=fontsize - 1.5, pad=2)
    if not title:
        return
    fig_w = ax.figure.get_size_inches()[0]
    width_in = ax.get_position().width * fig_w
    head, detail = cell_title(rec)
    detail = fit(detail, width_in, fontsize - 0.5, 2)
    ax.set_title(detail, fontsize=fontsize - 0.5, loc="left", pad=4)
    rise = 4 + 1.25 * (fontsize - 0.5) * (detail.count("\n") + 1) + 2
    ax.annotate(fit(head, width_in, fontsize * 1.1), (0.0, 1.0), xycoords="axes fraction",
                xytext=(0, rise), textcoords="offset points", fontsize=fontsize,
                fontweight="bold", va="bottom")


def grid_png(recs: list[PairRecord], cols: int = 4, dpi: int = 100) -> bytes:
    """:func:`grid_figure` as a PNG."""
    return png_bytes(grid_figure(recs, cols), dpi)


def grid_figure(recs: list[PairRecord], cols: int = 4) -> Figure:
    """Many pairs on one page: a legend across the top, then ``cols`` cells a row."""
    cols = max(1, min(cols, len(recs) or 1))
    rows = max(1, math.ceil(len(recs) / cols))
    entries = legend_entries(recs) if recs else []
    ncol = max(3, min(len(entries), round(cols * 1.6)))
    head = 0.3 + 0.2 * math.ceil(len(entries) / ncol)
    width = cols * CELL_W + (cols + 1) * CELL_GAP
    pitch = CELL_H + CELL_TITLE + CELL_GAP
    height = head + rows * pitch
    fig = Figure(figsize=(width, height))
    for i, rec in enumerate(recs):
        r, c = divmod(i, cols)
        left = CELL_GAP + c * (CELL_W + CELL_GAP)
        bottom = height - head - (r + 1) * pitch + CELL_GAP * 0.6
        ax = fig.add_axes((left / width, bottom / height, CELL_W / width, CELL_H / height))
        draw_cell(ax, rec, CELL_H / CELL_W)
    if entries:
        handles, labels = zip(*entries, strict=True)
        fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=10,
                   bbox_to_anchor=(0.5, 1 - 0.12 / height), frameon=False, columnspacing=1.4)
    return fig


def thumb_png(rec: PairRecord, dpi: int = 90) -> bytes:
    """One cell on its own with no title (about 400 x 430 px): the report's clickable
    thumbnail, captioned in HTML."""
    fig = Figure(figsize=(4.5, 4.8))
    ax = fig.add_axes((0.12, 0.07, 0.85, 0.9))
    draw_cell(ax, rec, 0.9 * 4.8 / (0.85 * 4.5), fontsize=10.5, title=False)
    return png_bytes(fig, dpi)


def legend_png(recs: list[PairRecord], width: float = 14.0, dpi: int = 90) -> bytes:
    """The legend of ``recs``'s pictures on its own, in rows across ``width`` inches."""
    entries = legend_entries(recs)
    ncol = 5
    fig = Figure(figsize=(width, 0.25 + 0.24 * math.ceil(len(entries) / ncol)))
    handles, labels = zip(*entries, strict=True)
    fig.legend(handles, labels, loc="center", ncol=ncol, fontsize=10.5, frameon=False,
               columnspacing=1.6)
    return png_bytes(fig, dpi)
