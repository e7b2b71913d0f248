"""``cfpair stats DIR``: counts by split, source, hazard, risk level, operator, reject reason."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa

#: (title, flattened column) of the counts read from the shards
COLUMNS = (("split", "split"), ("source", "provenance.source"),
           ("hazard", "label.hazard_type"), ("risk level", "label.risk_level"),
           ("label status", "label_status"), ("negative operator", "negative.perturbation"),
           ("positive operator", "positive.perturbation"))


def _values(table: pa.Table, column: str) -> list[str]:
    values = table.column(column).to_pylist()
    if column.endswith(".perturbation"):    # "lane_change {...}" -> "lane_change"
        values = [v.split(" ", 1)[0] for v in values]
    return ["(none)" if v is None else str(v) for v in values]


def stats(out: str | Path) -> dict[str, dict[str, int]]:
    """{title: {value: count}} over every pair of ``out``, plus rejects by reason."""
    from cfpair.api import output_folder, unreadable_shards
    from cfpair.records.shards import read_records

    out = output_folder(out)
    tops = sorted({c.split(".")[0] for _, c in COLUMNS})
    with unreadable_shards(out):
        table = read_records(out).select(tops).flatten()
    res = {title: dict(Counter(_values(table, col)).most_common()) for title, col in COLUMNS}
    rejects: Counter[str] = Counter()
    path = out / "rejects.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rejects[str(json.loads(line).get("reason", "?"))] += 1
            except (ValueError, AttributeError):
                rejects["(unreadable line)"] += 1
    res["reject reason"] = dict(rejects.most_common())
    return res
