"""``cfpair show DIR PAIR_ID``: one pair's facts side by side, its label and its picture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from cfpair.records.schema import Facts, PairRecord

ROLES = ("expert", "negative", "positive")


@dataclass
class Shown:
    """A pair, the rich tables that describe it and the path of its picture."""

    record: PairRecord
    facts: Table
    label: Table
    picture: Path


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def facts_table(rec: PairRecord) -> Table:
    """Every measured fact (rows) of the expert, the negative and the positive (columns)."""
    table = Table(title=f"pair {rec.pair_id} ({rec.split}, {rec.provenance.source} "
                        f"{rec.provenance.scenario_id} @ {rec.provenance.anchor_time_s:.1f} s)")
    table.add_column("fact")
    for role in ROLES:
        table.add_column(role, justify="right")
    table.add_row("perturbation", *[getattr(rec, r).perturbation.split(" ", 1)[0]
                                    for r in ROLES])
    for name in Facts.model_fields:
        table.add_row(name, *[_cell(getattr(getattr(rec, r).facts, name)) for r in ROLES])
    return table


def label_table(rec: PairRecord) -> Table:
    """The safety label (or why there is none) and the corrective meta-action."""
    table = Table(title=f"label ({rec.label_status}, by {rec.provenance.labeler})",
                  show_header=False)
    table.add_row("meta-action", f"{rec.meta_action.longitudinal}, {rec.meta_action.lateral}")
    if rec.label is None:
        table.add_row("label", "none (unlabeled)")
        return table
    lab = rec.label
    agent = f"{lab.critical_agent.cls} {lab.critical_agent.id}" if lab.critical_agent else "-"
    for key, value in (("risk level", lab.risk_level), ("hazard", lab.hazard_type),
                       ("critical agent", agent),
                       ("time to conflict", _cell(lab.time_to_conflict_s) + " s"),
                       ("safety score", _cell(lab.safety_score)),
                       ("failure", lab.failure_description),
                       ("counterfactual", lab.counterfactual_reasoning)):
        table.add_row(key, str(value))
    return table


def show(out: str | Path, pair_id: str, picture: bool = True) -> Shown:
    """Load one pair of ``out``; its picture is ``out/render/pairs/<id>.png``, drawn now
    (with ``cfpair.render``) if it is not there yet."""
    from cfpair.api import load

    (rec,) = load(out, ids=[pair_id])
    path = Path(out) / "render" / "pairs" / f"{pair_id}.png"
    if picture and not path.is_file():
        from cfpair.render.run import render

        render(out, ids=[pair_id], grid=False)
    return Shown(rec, facts_table(rec), label_table(rec), path)
