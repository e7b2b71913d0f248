"""The deterministic rules labeler: a complete SafetyLabel written from the facts alone.

The text is what a careful annotator would write: what the ego does and what goes wrong, then
what the positive does instead and how it differs, in plain words. Every number in it is a
measured quantity (``text_grounding.quantities``); no operator names or parameters. Wording is
varied: each phrase is picked from a few equivalent ones by a hash of the pair id, so a record
always gets the same text.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from cfpair.labels.base import Outcome, register
from cfpair.labels.grounding import allowed_hazards, check_label
from cfpair.labels.risk import closing_speed, offroad_seconds, risk_level
from cfpair.records.label import CriticalAgent, HazardType, MetaAction, SafetyLabel
from cfpair.records.schema import Facts, PairRecord

NAME = "rules"
_HAZARD_ORDER = [HazardType.vulnerable_road_user, HazardType.head_on, HazardType.crossing,
                 HazardType.static_obstacle, HazardType.rear_end, HazardType.side_swipe,
                 HazardType.off_road, HazardType.none]
_NEG_LON = {"accelerate": ["speeds up from {v} m/s", "accelerates from {v} m/s"],
            "keep": ["holds about {v} m/s", "carries on at about {v} m/s"],
            "decelerate": ["slows from {v} m/s", "eases off from {v} m/s"],
            "stop": ["brakes from {v} m/s", "slows towards a stop from {v} m/s"]}
_NEG_LAT = {"keep_lane": "in its lane", "nudge_left": "while drifting left",
            "nudge_right": "while drifting right",
            "change_lane_left": "while moving over to the left",
            "change_lane_right": "while moving over to the right",
            "turn_left": "through the left turn", "turn_right": "through the right turn"}
_POS_LON = {"accelerate": ["Speeding up", "Accelerating"],
            "keep": ["Holding its speed", "Keeping its speed"],
            "decelerate": ["Slowing down", "Easing off"],
            "stop": ["Braking to a stop", "Coming to a stop"]}
_POS_LAT = {"keep_lane": ["in its lane", "on its line"],
            "nudge_left": ["with a shift to the left", "while edging left"],
            "nudge_right": ["with a shift to the right", "while edging right"],
            "change_lane_left": ["and moving a lane to the left",
                                 "and changing to the lane on the left"],
            "change_lane_right": ["and moving a lane to the right",
                                  "and changing to the lane on the right"],
            "turn_left": ["through the left turn", "while following the left turn"],
            "turn_right": ["through the right turn", "while following the right turn"]}
_WHEN = ["{t} s from now", "after {t} s", "within {t} s"]


def _pick(rec: PairRecord, slot: str, options: list[str]) -> str:
    """One of ``options``, chosen by a hash of the pair id and the slot."""
    h = int(hashlib.sha256(f"{rec.pair_id}/{slot}".encode()).hexdigest()[:8], 16)
    return options[h % len(options)]


def agent_name(agent_id: str | None, cls: str | None) -> str:
    """How the text names an agent: "the pedestrian" when the id is just the class, "the lead
    vehicle" for a word id, "vehicle 17" otherwise (never "pedestrian pedestrian")."""
    if agent_id is None or cls is None:
        return "another road user"
    noun = "stationary object" if cls == "static" else cls
    low = agent_id.lower()
    if low == cls:
        return f"the {noun}"
    if low.startswith(cls):
        return agent_id
    if agent_id.isalpha():
        return f"the {agent_id} {noun}"
    return f"{noun} {agent_id}"


def _f(x: float) -> str:
    return f"{x:.1f}"


def _contact(rec: PairRecord, f: Facts, who: str, when: str) -> str:
    hazard = label_hazard(f)
    if f.collision_type in ("active_rear", "stopped_ego") or not f.at_fault:
        verb = _pick(rec, "hit", [f"is hit by {who} {when}", f"gets struck by {who} {when}"])
    elif hazard == HazardType.vulnerable_road_user:
        verb = _pick(rec, "hit", [f"strikes {who} {when}", f"hits {who} {when}"])
    elif hazard == HazardType.head_on:
        verb = f"collides head-on with {who} {when}"
    elif hazard == HazardType.crossing:
        verb = _pick(rec, "hit", [f"hits {who}, which is crossing its path, {when}",
                                  f"collides with {who} across its path {when}"])
    elif hazard == HazardType.side_swipe:
        verb = _pick(rec, "hit", [f"sideswipes {who} {when}", f"scrapes along {who} {when}"])
    elif hazard == HazardType.static_obstacle:
        verb = f"runs into {who} {when}"
    else:
        verb = _pick(rec, "hit", [f"runs into the back of {who} {when}",
                                  f"rear-ends {who} {when}"])
    cs = closing_speed(rec, rec.negative)
    blame = ("the ego is at fault" if f.at_fault
             else "the other road user is at fault")
    return f"{verb}, closing at {_f(cs)} m/s; {blame}"


def failure_text(r: PairRecord) -> str:
    """What goes wrong in the negative, in words and measured numbers."""
    f = r.negative.facts
    who = agent_name(f.critical_agent_id, f.critical_agent_class)
    neg = r.positive_vs_negative.negative_action if r.positive_vs_negative else MetaAction(
        longitudinal="keep", lateral="keep_lane")
    lon = _pick(r, "neg_lon", _NEG_LON[neg.longitudinal]).format(v=_f(r.negative.v[0]))
    origin = _pick(r, "origin", ["As logged, the ego", "Driving as it did in the log, the ego"]
                   ) if r.negative.perturbation.startswith("expert") else "The ego"
    t = f.first_conflict_time_s
    when = _pick(r, "when", _WHEN).format(t=_f(t if t is not None else 0.0))
    if f.collides:
        event = _contact(r, f, who, when)
    elif not f.ttc_ok:
        ttc = (f"its time to collision bottoms out at {_f(f.min_ttc_s)} s"
               if f.min_ttc_s is not None else "it has no room to react")
        event = _pick(r, "ttc", [f"closes on {who} too fast: the margin becomes unsafe {when} "
                                 f"and {ttc}",
                                 f"gets dangerously close to {who} {when}; {ttc}"])
    elif not f.drivable_ok:
        event = (f"leaves the drivable area {when} and stays off it for "
                 f"{_f(offroad_seconds(r.negative))} s")
    else:
        event = "keeps only a reduced margin"
    still = "It still" if neg.longitudinal in ("decelerate", "stop") else "It"
    gap = (f" The closest gap is {_f(f.min_distance_m)} m." if not f.collides
           and f.min_distance_m < 100 else "")
    return f"{origin} {lon} {_NEG_LAT[neg.lateral]}. {still} {event}.{gap}"


def reasoning_text(r: PairRecord) -> str:
    """What the positive does instead and why that is safe, in measured numbers."""
    p, n = r.positive.facts, r.negative.facts
    ma = r.meta_action
    who = agent_name(n.critical_agent_id, n.critical_agent_class)
    act = (_pick(r, "pos_lon", _POS_LON[ma.longitudinal]) + " "
           + _pick(r, "pos_lat", _POS_LAT[ma.lateral]))
    if n.critical_agent_id is not None:
        keep = _pick(r, "keep", [f"keeps at least {_f(p.min_distance_m)} m from {who}",
                                 f"never gets closer than {_f(p.min_distance_m)} m to {who}"])
    else:
        keep = "stays on the drivable area"
    ttc = (", with no conflict ahead within 3 s" if p.min_ttc_s is None
           else f" and its time to collision never drops below {_f(p.min_ttc_s)} s")
    text = f"{act}, the ego {keep}{ttc}."
    if r.positive_vs_negative is not None:
        lead = _pick(r, "cmp", ["Compared with the risky plan, it", "Against the risky plan, it"])
        summary = r.positive_vs_negative.summary.replace("the negative", "the risky plan")
        text += f" {lead} {summary}."
    if not p.comfort_ok:
        text += " It takes a harsh manoeuvre to get there."
    return text


def label_hazard(f: Facts) -> HazardType:
    """The most specific hazard type the facts allow."""
    allowed = allowed_hazards(f)
    return next(h for h in _HAZARD_ORDER if h in allowed)


def label(r: PairRecord) -> SafetyLabel:
    """The rules label of a record (its ``label`` field is ignored)."""
    f = r.negative.facts
    agent = (CriticalAgent(id=f.critical_agent_id, cls=f.critical_agent_class)
             if f.critical_agent_id is not None and f.critical_agent_class is not None else None)
    return SafetyLabel(risk_level=risk_level(r), hazard_type=label_hazard(f),
                       critical_agent=agent, time_to_conflict_s=f.first_conflict_time_s,
                       failure_description=failure_text(r),
                       counterfactual_reasoning=reasoning_text(r),
                       corrective_action=r.meta_action, safety_score=round(f.safety_score, 4))


class RulesLabeler:
    """The rules labeler behind the ``Labeler`` protocol: a label that contradicts the facts
    (a bug here, counted by kind) is dropped and the record stays unlabelled."""

    name = NAME

    def __init__(self) -> None:
        self.contradictions: Counter[str] = Counter()

    def label_batch(self, records: list[PairRecord]) -> list[Outcome]:
        """Label every record."""
        out = []
        for rec in records:
            lab = label(rec)
            bad = check_label(lab, rec)
            self.contradictions.update(c.kind for c in bad)
            out.append(Outcome(lab, "ok", NAME, 1) if not bad else Outcome(
                None, "unlabeled", NAME, 1, "; ".join(f"{c.kind}: {c.message}" for c in bad)))
        return out

    def counters(self) -> dict[str, float]:
        """Nothing to report beyond the outcomes."""
        return {}

    def close(self) -> None:
        """Nothing to release."""


@register(NAME)
def _factory(_cfg: Any) -> RulesLabeler:
    return RulesLabeler()
