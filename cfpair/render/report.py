"""The self-contained HTML report of an output folder: counts, the summary plots, clickable
thumbnails of the pictured pairs (click: the full review picture) and a table of every pair
that sorts by any column and filters by text, split, source, risk and hazard.

Every image is inlined as a base64 PNG and the script is a few lines inline, so the file opens
from disk in any browser with no server and no network; links to the per-pair PNG files are
relative to the report.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from pathlib import Path

from cfpair.records.schema import PairRecord
from cfpair.render.grid import cell_title, legend_png, thumb_png
from cfpair.render.pair_figure import review_png, scenario_kind
from cfpair.render.summary import risk_of, risk_order, summary_png

esc = html.escape

_STYLE = """body{font-family:system-ui,sans-serif;margin:24px auto;color:#222;max-width:1500px;
padding:0 16px}table{border-collapse:collapse;font-size:13px;width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa}tbody tr:hover{background:#eef4fb}
.pairs{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:18px}
.pair{border:1px solid #ddd;padding:8px;border-radius:4px}.pair img{width:100%;cursor:zoom-in}
.pair:target{outline:3px solid #ff7f0e}.small{font-size:13px;color:#444;margin:4px 0}
.filters{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0;align-items:center}
.filters input{width:280px;padding:4px}#box{display:none;position:fixed;inset:0;
background:rgba(0,0,0,.8);z-index:9;overflow:auto;text-align:center;cursor:zoom-out}
#box img{max-width:98vw;margin-top:1vh;background:white}#box a,#box p{color:#fff}"""

_SCRIPT = """
const $ = (s) => document.querySelector(s), $$ = (s) => [...document.querySelectorAll(s)];
const tb = $('#all tbody'), q = $('#q'), sels = $$('select[data-col]'), shown = $('#shown');
function filt() {
  const words = q.value.toLowerCase().split(/\\s+/).filter(Boolean);
  let n = 0;
  for (const r of tb.rows) {
    const t = r.textContent.toLowerCase();
    const ok = words.every((w) => t.includes(w)) &&
      sels.every((s) => !s.value || r.cells[+s.dataset.col].textContent === s.value);
    r.style.display = ok ? '' : 'none';
    n += ok;
  }
  shown.textContent = n;
}
q.oninput = filt;
sels.forEach((s) => (s.onchange = filt));
$$('#all th').forEach((th, i) => (th.onclick = () => {
  const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  $$('#all th').forEach((h) => delete h.dataset.dir);
  th.dataset.dir = dir;
  const key = (r) => {
    const c = r.cells[i], v = c.dataset.v ?? c.textContent, f = parseFloat(v);
    return isNaN(f) ? v : f;
  };
  const cmp = (x, y) => typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
    : (typeof x === 'number' ? -1 : 1);
  [...tb.rows].sort((a, b) => (dir === 'asc' ? 1 : -1) * cmp(key(a), key(b)))
    .forEach((r) => tb.appendChild(r));
}));
const box = $('#box'), big = $('#big'), file = $('#file');
$$('.pair img').forEach((im) => (im.onclick = () => {
  big.src = im.dataset.full;
  file.style.display = im.dataset.file ? '' : 'none';
  if (im.dataset.file) file.href = im.dataset.file;
  box.style.display = 'block';
}));
box.onclick = (e) => { if (e.target !== file) box.style.display = 'none'; };
document.onkeydown = (e) => { if (e.key === 'Escape') box.style.display = 'none'; };
"""

#: the table's column headers (cells: :func:`_cells`)
_COLUMNS = ("pair", "split", "source", "scenario type", "risk", "hazard", "critical agent",
            "negative collides", "neg. min TTC s", "neg. PDMS", "pos. PDMS", "corrective action",
            "label")
#: columns with a drop-down filter
_FILTERED = ("split", "source", "risk", "hazard")


def _b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="{_b64(data)}">'


def _cells(r: PairRecord) -> list[tuple[str, str | None]]:
    """(text, sort value) of each column for one record."""
    lab = r.label
    n, p = r.negative.facts, r.positive.facts
    ca = lab.critical_agent if lab else None
    return [(r.pair_id, None), (r.split, None), (r.provenance.source, None),
            (scenario_kind(r), None), (risk_of(r), None),
            (str(lab.hazard_type) if lab else "-", None),
            (f"{ca.cls} {ca.id}" if ca else "-", None), ("yes" if n.collides else "no", None),
            ("-" if n.min_ttc_s is None else f"{n.min_ttc_s:.2f}",
             "9999" if n.min_ttc_s is None else None),
            (f"{n.pdms:.2f}", None), (f"{p.pdms:.2f}", None),
            (f"{r.meta_action.longitudinal} + {r.meta_action.lateral}", None),
            (r.label_status, None)]


def table_html(recs: list[PairRecord], pictured: set[str]) -> str:
    """The table of every pair with its filters; a pictured pair's id links to its card."""
    risk_col = _COLUMNS.index("risk")
    filters = ['<div class="filters"><label>filter <input id="q" placeholder="any words, e.g. '
               'pedestrian decelerate"></label>']
    values: dict[int, list[str]] = {}
    for col in _FILTERED:
        i = _COLUMNS.index(col)
        seen = sorted({_cells(r)[i][0] for r in recs})
        values[i] = risk_order(seen) if i == risk_col else seen
        opts = "".join(f"<option>{esc(v)}</option>" for v in values[i])
        filters.append(f'<label>{col} <select data-col="{i}"><option value="">all</option>'
                       f"{opts}</select></label>")
    filters.append(f'<span><b id="shown">{len(recs)}</b> of {len(recs)} shown; click a '
                   "header to sort</span></div>")
    rows = []
    for r in recs:
        tds = []
        for j, (text, key) in enumerate(_cells(r)):
            body = esc(text)
            if j == 0 and r.pair_id in pictured:
                body = f'<a href="#p-{esc(r.pair_id)}">{body}</a>'
            attr = f' data-v="{esc(key)}"' if key is not None else ""
            tds.append(f"<td{attr}>{body}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    head = "".join(f"<th>{esc(c)}</th>" for c in _COLUMNS)
    return ("".join(filters) + f'<table id="all"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def card_html(r: PairRecord, full: bytes, file: str | None) -> str:
    """One pictured pair: its thumbnail (click: the full picture), title and reasoning."""
    head, detail = cell_title(r)
    n, p = r.negative.facts, r.positive.facts
    text = esc(r.label.counterfactual_reasoning) if r.label else "unlabeled"
    link = f' data-file="{esc(file)}"' if file else ""
    opened = f' · <a href="{esc(file)}">PNG file</a>' if file else ""
    return (f'<div class="pair" id="p-{esc(r.pair_id)}"><img alt="{esc(r.pair_id)}" '
            f'src="{_b64(thumb_png(r))}" data-full="{_b64(full)}"{link}>'
            f"<p><b>{esc(head)}</b><br>{esc(detail)}</p><p class=small>PDMS negative "
            f"{n.pdms:.2f} → positive {p.pdms:.2f} · pair {esc(r.pair_id)}{opened}</p>"
            f"<p class=small>{text}</p></div>")


def html_report(recs: list[PairRecord], title: str, total: int, pictured: int = 24,
                images: dict[str, bytes] | None = None,
                files: dict[str, str] | None = None) -> str:
    """The report: counts, the summary plots, cards of the first ``pictured`` pairs (review
    pictures taken from ``images`` by pair id where given, else drawn; ``files`` maps a pair
    id to its PNG's path relative to the report) and the table of every pair; ``total`` is
    the number of rows in the folder."""
    images, files = images or {}, files or {}
    risk = Counter(risk_of(r) for r in recs)
    status = Counter(r.label_status for r in recs)
    sources = Counter(r.provenance.source for r in recs)
    head = (f"<h1>{esc(title)}</h1><p>{len(recs)} of {total} pairs summarised; sources "
            f"{esc(', '.join(f'{k}: {v}' for k, v in sources.items()))}; label status "
            f"{esc(', '.join(f'{k}: {v}' for k, v in status.items()))}; risk "
            f"{esc(', '.join(f'{k}: {risk[k]}' for k in risk_order(list(risk))))}.</p>")
    shown = recs[:pictured]
    cards = [card_html(r, images.get(r.pair_id) or review_png(r, dpi=90), files.get(r.pair_id))
             for r in shown]
    body = (head + "<h2>Summary</h2>" + _img(summary_png(recs), "summary plots")
            + f"<h2>Pairs ({len(shown)} pictured; click a picture to enlarge it)</h2>"
            + (_img(legend_png(shown), "legend") if shown else "")
            + '<div class="pairs">' + "".join(cards) + "</div><h2>All pairs</h2>"
            + table_html(recs, {r.pair_id for r in shown})
            + '<div id="box"><img id="big" alt="full picture"><p><a id="file">open the '
            "PNG file</a> · click anywhere or press Esc to close</p></div>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}<script>{_SCRIPT}</script>"
            "</body></html>")


def write_report(recs: list[PairRecord], path: Path, title: str, total: int,
                 pictured: int = 24, images: dict[str, bytes] | None = None,
                 files: dict[str, str] | None = None) -> Path:
    """Write :func:`html_report` to ``path``."""
    path.write_text(html_report(recs, title, total, pictured, images, files), encoding="utf-8")
    return path
