"""The deterministic rules labeler: a complete SafetyLabel written from the facts alone."""

from __future__ import annotations

from cfpair.labels.grounding import allowed_hazards, expected_risk
from cfpair.labels.models import (
    CriticalAgent,
    Facts,
    HazardType,
    PairRecord,
    RiskLevel,
    SafetyLabel,
)

NAME = "rules"
_RISK_ORDER = [RiskLevel.critical, RiskLevel.high, RiskLevel.medium, RiskLevel.low,
               RiskLevel.none]
_HAZARD_ORDER = [HazardType.vulnerable_road_user, HazardType.head_on, HazardType.crossing,
                 HazardType.static_obstacle, HazardType.rear_end, HazardType.side_swipe,
                 HazardType.off_road, HazardType.none]
_LON = {"accelerate": "accelerating", "keep": "keeping its speed", "decelerate": "slowing down",
        "stop": "stopping"}
_LAT = {"keep_lane": "staying on its path", "nudge_left": "nudging left",
        "nudge_right": "nudging right", "change_lane_left": "moving a lane to the left",
        "change_lane_right": "moving a lane to the right", "turn_left": "turning left",
        "turn_right": "turning right"}
_COLLISION = {"stopped_ego": "while the ego is stopped", "stopped_track":
              "into a stationary object", "active_front": "with its front",
              "active_rear": "from behind (the other road user hits the ego)",
              "active_lateral": "side-on"}


def _who(f: Facts) -> str:
    return (f"{f.critical_agent_class} {f.critical_agent_id}" if f.critical_agent_id
            else "no other road user")


def _speed(v: list[float]) -> str:
    return f"{v[0]:.1f} m/s"


def failure_text(r: PairRecord) -> str:
    """What goes wrong in the negative, in numbers."""
    f = r.negative.facts
    origin = ("The logged driving" if r.negative.perturbation.startswith("expert")
              else f"A near-expert variant ({r.negative.perturbation.split(' ')[0]})")
    parts = [f"{origin} starts at {_speed(r.negative.v)}"]
    if f.collides:
        parts.append(f"and collides {_COLLISION.get(f.collision_type, '')} with {_who(f)} "
                     f"{f.first_conflict_time_s:.1f} s after the anchor"
                     f"{' (at fault)' if f.at_fault else ' (not at fault)'}")
    elif not f.ttc_ok:
        parts.append(f"and closes on {_who(f)} with a time to collision under 1 s at "
                     f"{f.first_conflict_time_s:.1f} s")
    elif not f.drivable_ok:
        parts.append(f"and leaves the drivable area at {f.first_conflict_time_s:.1f} s")
    ttc = "none within 3 s" if f.min_ttc_s is None else f"{f.min_ttc_s:.1f} s"
    return (" ".join(parts) + f". Minimum TTC {ttc}, closest gap {f.min_distance_m:.1f} m, "
            f"PDMS {f.pdms:.2f}.")


def reasoning_text(r: PairRecord) -> str:
    """Why the positive avoids it, in numbers."""
    p, n = r.positive.facts, r.negative.facts
    ma = r.meta_action
    ttc = "no conflict within 3 s" if p.min_ttc_s is None else f"minimum TTC {p.min_ttc_s:.1f} s"
    comfort = "" if p.comfort_ok else " It needs an uncomfortable manoeuvre to get there."
    return (f"{_LON[ma.longitudinal].capitalize()} and {_LAT[ma.lateral]} instead keeps "
            f"{p.min_distance_m:.1f} m from {_who(n)} with {ttc}, stays on the drivable area and "
            f"scores PDMS {p.pdms:.2f} instead of {n.pdms:.2f}.{comfort}")


def label(r: PairRecord) -> SafetyLabel:
    """The rules label of a record (its ``label`` field is ignored)."""
    f = r.negative.facts
    risk = next(x for x in _RISK_ORDER if x in expected_risk(f))
    hazard = next(h for h in _HAZARD_ORDER if h in allowed_hazards(f))
    agent = (CriticalAgent(id=f.critical_agent_id, cls=f.critical_agent_class)
             if f.critical_agent_id is not None and f.critical_agent_class is not None else None)
    return SafetyLabel(risk_level=risk, hazard_type=hazard, critical_agent=agent,
                       time_to_conflict_s=f.first_conflict_time_s,
                       failure_description=failure_text(r),
                       counterfactual_reasoning=reasoning_text(r),
                       corrective_action=r.meta_action, safety_score=round(f.safety_score, 4))
