"""Check a label against the measured facts; every contradiction is named by kind."""

from __future__ import annotations

from dataclasses import dataclass

from cfpair.labels.models import Facts, HazardType, PairRecord, RiskLevel, SafetyLabel

TIME_TOLERANCE_S = 0.3
SCORE_TOLERANCE = 0.15
KINDS = ("critical_agent", "risk_level", "hazard_type", "time_to_conflict", "corrective_action",
         "safety_score")


@dataclass(frozen=True)
class Contradiction:
    """One way a label disagrees with the facts."""

    kind: str
    message: str


def expected_risk(f: Facts) -> set[RiskLevel]:
    """Risk levels compatible with the negative's facts."""
    if f.collides:
        return {RiskLevel.critical}
    if not f.ttc_ok:
        return {RiskLevel.high, RiskLevel.critical}
    if not f.drivable_ok:
        return {RiskLevel.medium, RiskLevel.high}
    if f.min_distance_m < 1.0:
        return {RiskLevel.low, RiskLevel.medium}
    return {RiskLevel.none, RiskLevel.low}


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


def check_label(label: SafetyLabel, record: PairRecord) -> list[Contradiction]:
    """All contradictions between ``label`` and the record's measured facts."""
    f = record.negative.facts
    out = []
    want_id = f.critical_agent_id
    got_id = label.critical_agent.id if label.critical_agent else None
    if got_id != want_id or (label.critical_agent and label.critical_agent.cls
                             != f.critical_agent_class):
        out.append(Contradiction("critical_agent", f"label names {got_id!r} "
                                 f"({label.critical_agent.cls if label.critical_agent else None})"
                                 f", facts say {want_id!r} ({f.critical_agent_class})"))
    if label.risk_level not in expected_risk(f):
        out.append(Contradiction("risk_level", f"risk {label.risk_level} but the negative "
                                 f"{'collides' if f.collides else 'does not collide'}, TTC ok="
                                 f"{f.ttc_ok}, drivable ok={f.drivable_ok}; expected one of "
                                 f"{sorted(expected_risk(f))}"))
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
