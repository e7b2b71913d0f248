"""Check a label against the measured facts; every contradiction is named by kind.

The structured fields are checked exactly (risk level, critical agent, corrective action) or
within a tolerance (times, safety score). The free text (``text_grounding.py``) is checked for
numbers, agents, actions and comparisons that contradict the facts (kind
``text_contradiction``). ``check_label`` does both; ``validate`` and the LLM labeler call it.
"""

from __future__ import annotations

from cfpair.labels.contradiction import Contradiction
from cfpair.labels.risk import risk_facts, risk_level
from cfpair.labels.text_grounding import check_text
from cfpair.records.label import HazardType, RiskLevel, SafetyLabel
from cfpair.records.schema import Facts, PairRecord

TIME_TOLERANCE_S = 0.3
SCORE_TOLERANCE = 0.15
KINDS = ("critical_agent", "risk_level", "hazard_type", "time_to_conflict", "corrective_action",
         "safety_score", "text_contradiction")

__all__ = ["KINDS", "Contradiction", "allowed_hazards", "check_label", "expected_risk"]


def expected_risk(rec: PairRecord) -> set[RiskLevel]:
    """The risk level the negative's facts grade to (``risk.RISK_TABLE``), as a set."""
    return {risk_level(rec)}


def allowed_hazards(f: Facts) -> set[HazardType]:
    """Hazard types that fit the collision type, agent class and relative heading."""
    if f.critical_agent_class is None or (f.collides is False and f.ttc_ok):
        return {HazardType.off_road} if not f.drivable_ok else {HazardType.none}
    if f.critical_agent_class in ("pedestrian", "cyclist"):
        return {HazardType.vulnerable_road_user}
    if f.critical_agent_class == "static" or f.collision_type == "stopped_track":
        out = {HazardType.static_obstacle}
        return out | {HazardType.rear_end} if f.collision_type != "active_lateral" else out
    rel = abs(f.relative_heading_deg) if f.relative_heading_deg is not None else 0.0
    if rel > 150:
        return {HazardType.head_on}
    if rel > 30:
        return {HazardType.crossing, HazardType.side_swipe} if rel < 60 else {HazardType.crossing}
    if f.collision_type == "active_lateral":
        return {HazardType.side_swipe}
    return {HazardType.rear_end, HazardType.side_swipe}


def check_structured(label: SafetyLabel, record: PairRecord) -> list[Contradiction]:
    """Contradictions between the label's structured fields and the facts."""
    f = record.negative.facts
    out = []
    want_id = f.critical_agent_id
    got_id = label.critical_agent.id if label.critical_agent else None
    if got_id != want_id or (label.critical_agent and label.critical_agent.cls
                             != f.critical_agent_class):
        out.append(Contradiction("critical_agent", f"label names {got_id!r} "
                                 f"({label.critical_agent.cls if label.critical_agent else None})"
                                 f", facts say {want_id!r} ({f.critical_agent_class})"))
    want_risk = risk_level(record)
    if label.risk_level != want_risk:
        rf = risk_facts(record)
        out.append(Contradiction("risk_level", f"risk {label.risk_level} but the facts grade "
                                 f"{want_risk} (contact {rf.contact}, at fault {rf.at_fault}, "
                                 f"closing {rf.closing_speed_mps} m/s, min TTC {rf.min_ttc_s}, "
                                 f"min distance {rf.min_distance_m} m, off-road "
                                 f"{rf.offroad_s} s)"))
    if label.hazard_type not in allowed_hazards(f):
        out.append(Contradiction("hazard_type", f"hazard {label.hazard_type} does not fit "
                                 f"collision type {f.collision_type}, agent class "
                                 f"{f.critical_agent_class}, relative heading "
                                 f"{f.relative_heading_deg}; allowed {sorted(allowed_hazards(f))}"))
    want_t, got_t = f.first_conflict_time_s, label.time_to_conflict_s
    if (want_t is None) != (got_t is None) or (
            want_t is not None and got_t is not None and abs(want_t - got_t) > TIME_TOLERANCE_S):
        out.append(Contradiction("time_to_conflict", f"label says {got_t} s, the first conflict "
                                 f"is at {want_t} s (tolerance {TIME_TOLERANCE_S} s)"))
    if label.corrective_action != record.meta_action:
        out.append(Contradiction("corrective_action", "label action "
                                 f"{label.corrective_action.longitudinal}/"
                                 f"{label.corrective_action.lateral} but the positive does "
                                 f"{record.meta_action.longitudinal}/{record.meta_action.lateral}"))
    if abs(label.safety_score - f.safety_score) > SCORE_TOLERANCE:
        out.append(Contradiction("safety_score", f"label safety {label.safety_score:.2f}, "
                                 f"measured {f.safety_score:.2f}"))
    return out


def check_label(label: SafetyLabel, record: PairRecord) -> list[Contradiction]:
    """All contradictions between ``label`` (structured fields and free text) and the facts."""
    return check_structured(label, record) + check_text(label, record)


def check_stored(record: PairRecord) -> list[Contradiction]:
    """The contradictions of a stored row's label (none when it has no label)."""
    return [] if record.label is None else check_label(record.label, record)
