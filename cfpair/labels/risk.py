"""Graded risk: one table from the negative's facts to a risk level (``RISK_TABLE``).

The inputs (``RiskFacts``) come from the stored record: contact, at fault, the closing speed at
the first contact (the ego's velocity minus the critical agent's, in magnitude, at that step),
the minimum time to collision, the minimum box-to-box distance and how long the ego is off the
drivable area (seconds, from the per-step off-road cost). The first row whose condition holds
gives the level; each condition only gets easier to meet as a fact gets worse (more contact,
faster, nearer, sooner, longer off-road), so the level is monotone in every fact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cfpair.records.label import RiskLevel
from cfpair.records.schema import PairRecord, TrajectoryRecord, anchor_index

DT = 0.1
VULNERABLE = ("pedestrian", "cyclist", "motorcycle")
LEVELS = tuple(RiskLevel)


@dataclass(frozen=True)
class RiskFacts:
    """What the risk grade reads (see the module docstring for where each comes from)."""

    contact: bool
    at_fault: bool
    closing_speed_mps: float
    vulnerable: bool
    ttc_violation: bool
    min_ttc_s: float | None
    min_distance_m: float
    offroad_s: float


def _ttc_below(f: RiskFacts, s: float) -> bool:
    return f.min_ttc_s is not None and f.min_ttc_s < s


#: (level, rule as documented in the README, condition); the first that holds wins
RISK_TABLE: tuple[tuple[RiskLevel, str, Callable[[RiskFacts], bool]], ...] = (
    (RiskLevel.critical, "at-fault contact closing at >= 3 m/s (>= 1 m/s with a pedestrian, "
     "cyclist or motorcycle)",
     lambda f: f.contact and f.at_fault and f.closing_speed_mps >= (1.0 if f.vulnerable
                                                                    else 3.0)),
    (RiskLevel.high, "any other contact, or minimum TTC < 0.5 s",
     lambda f: f.contact or _ttc_below(f, 0.5)),
    (RiskLevel.medium, "TTC violation (minimum TTC under nuPlan's 0.95 s bound), minimum "
     "distance < 0.5 m, or off the drivable area for >= 1 s",
     lambda f: f.ttc_violation or _ttc_below(f, 0.95) or f.min_distance_m < 0.5
     or f.offroad_s >= 1.0),
    (RiskLevel.low, "minimum TTC < 2 s, minimum distance < 1.5 m, or off the drivable area "
     "at all",
     lambda f: _ttc_below(f, 2.0) or f.min_distance_m < 1.5 or f.offroad_s > 0.0),
    (RiskLevel.none, "otherwise", lambda f: True),
)


def grade(f: RiskFacts) -> RiskLevel:
    """The risk level of one set of facts (the first row of RISK_TABLE that holds)."""
    return next(level for level, _, cond in RISK_TABLE if cond(f))


def closing_speed(rec: PairRecord, tr: TrajectoryRecord) -> float:
    """Magnitude of the ego's velocity minus the critical agent's at the first conflict, m/s
    (the ego's own speed when the agent is unknown there)."""
    f = tr.facts
    k = 0 if f.first_conflict_time_s is None else int(round(f.first_conflict_time_s / DT))
    k = min(k, len(tr.v) - 1)
    vx, vy = tr.v[k] * math.cos(tr.yaw[k]), tr.v[k] * math.sin(tr.yaw[k])
    agent = next((a for a in rec.context.agents if a.id == f.critical_agent_id), None)
    j = anchor_index(rec.context.t) + k
    if agent is not None and j < len(agent.valid) and agent.valid[j]:
        vx, vy = vx - agent.vx[j], vy - agent.vy[j]
    return round(math.hypot(vx, vy), 2)


def offroad_seconds(tr: TrajectoryRecord) -> float:
    """Seconds of the horizon with a corner off the drivable area."""
    return round(sum(1 for c in tr.costs.offroad if c > 0) * DT, 2)


def risk_facts(rec: PairRecord, role: str = "negative") -> RiskFacts:
    """The RiskFacts of one trajectory of a record."""
    tr = getattr(rec, role)
    f = tr.facts
    return RiskFacts(contact=f.collides, at_fault=f.at_fault,
                     closing_speed_mps=closing_speed(rec, tr) if f.collides else 0.0,
                     vulnerable=str(f.critical_agent_class) in VULNERABLE,
                     ttc_violation=not f.ttc_ok, min_ttc_s=f.min_ttc_s,
                     min_distance_m=f.min_distance_m, offroad_s=offroad_seconds(tr))


def risk_level(rec: PairRecord) -> RiskLevel:
    """The graded risk of a record's negative."""
    return grade(risk_facts(rec))


def distribution(levels: Iterable[str | None]) -> dict[str, int]:
    """Counts per risk level, every level present (in order none .. critical); None skipped."""
    got = Counter(str(x) for x in levels if x is not None)
    return {str(level): got.get(str(level), 0) for level in LEVELS}


def table_markdown() -> str:
    """RISK_TABLE as the Markdown table in the README."""
    rows = ["| risk_level | when (first row that holds) |", "|---|---|"]
    return "\n".join(rows + [f"| `{lvl}` | {rule} |" for lvl, rule, _ in RISK_TABLE])


def risk_distribution(records: Iterable[PairRecord]) -> dict[str, int]:
    """Pairs per graded risk level of their negatives (every level present, none .. critical):
    the data behind the dataset card's and the HTML report's risk distribution."""
    return distribution(str(risk_level(r)) for r in records)
