"""Free-text grounding: what the label's text states must agree with the measured facts.

Checked in ``failure_description`` and ``counterfactual_reasoning`` (every finding is a
``text_contradiction``):

- **numbers with a unit** (s, m/s, km/h, m) must each match a measured quantity of that unit
  (``quantities``) within ``TOLERANCE``; a **named score or time** ("safety score 1.0",
  "PDMS 0.4", "TTC 0.8 s", "gap 2 m") must match that quantity of the trajectory the clause
  talks about (the negative in the failure text, the positive in the reasoning, unless the
  clause names the other one);
- **agents**: a class word with an id ("vehicle 17") must name an agent of the scene with that
  class; a road-user class no agent of the scene has must not appear;
- **actions**: a clause about the positive must not state the opposite of its longitudinal
  action (accelerating vs braking / stopping) or a lane change it does not make (or deny one it
  makes);
- **comparisons**: "earlier" / "later" braking, "further left" / "right", "slower" /
  "faster" must have the sign of the measured positive-minus-negative difference;
- **collisions**: the failure text must not claim a collision the negative does not have.

A clause that negates ("not", "instead of", "rather than", "without", "avoid") is not read as
an assertion of its action words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cfpair.labels.contradiction import Contradiction
from cfpair.labels.risk import closing_speed, offroad_seconds
from cfpair.records.label import SafetyLabel
from cfpair.records.schema import PairRecord, anchor_index

KIND = "text_contradiction"
#: absolute tolerance per unit; distances also accept 10 % of the value
TOLERANCE = {"s": 0.3, "m/s": 0.6, "m": 0.3, "score": 0.1}
#: numbers the text may cite that are not facts of the pair: the 0.1 / 0.5 s grids, nuPlan's
#: TTC bound, the 2 s history, the 3 s TTC and 4 s horizons; the 0.5 m margin, a 3.5 m lane
CONSTANTS = {"s": (0.1, 0.5, 0.95, 1.0, 2.0, 3.0, 4.0), "m": (0.5, 3.5)}
CLASS_WORDS = {"pedestrian": ("pedestrian",), "cyclist": ("cyclist", "bicycle"),
               "truck": ("truck",), "bus": ("bus",), "motorcycle": ("motorcycle",),
               "vehicle": ("car", "vehicle"), "static": ("static", "stationary")}
_NUM = r"(?<![\w.])(-?\d+(?:\.\d+)?)"
_UNIT = re.compile(_NUM + r"\s*(m/s|km/h|seconds?|s|metres?|meters?|m)(?![\w/])", re.I)
_NAMED = re.compile(r"\b(safety score|pdms|score|ttc|time to collision|gap|distance)\b"
                    r"([^.;:\d]{0,30}?)" + _NUM, re.I)
_BELOW = re.compile(r"\b(under|below|less than|at most|within)\b", re.I)
_ABOVE = re.compile(r"\b(above|over|more than|at least|never (drops|falls) below)\b", re.I)
_AGENT = re.compile(r"\b(pedestrian|cyclist|truck|bus|motorcycle|vehicle|car)\s+"
                    r"(?:id\s+)?([A-Za-z0-9_\-]*\d[A-Za-z0-9_\-]*)\b"
                    r"(?!\.\d)(?!\s*(?:m/s|km/h|s|m|seconds?|metres?|meters?)\b)", re.I)
_NEG_WORDS = re.compile(r"\b(negative|risky|logged|original|as planned|as driven)\b", re.I)
_POS_WORDS = re.compile(r"\b(positive|counterfactual|corrected|safe trajectory|alternative)\b",
                        re.I)
_NEGATION = re.compile(r"\b(not|no|never|instead of|rather than|without|avoid\w*|than)\b|n't",
                       re.I)
_ACCEL = re.compile(r"\b(accelerat\w*|speeds? up|speeding up)\b", re.I)
_BRAKE = re.compile(r"\b(brak\w*|slow\w* down|slows|decelerat\w*|stops?|stopping|halts?)\b",
                    re.I)
_LANE_CHANGE = re.compile(r"\b(changes? lanes?|lane change|changing lanes?|moves? (a|one) lane)"
                          r"\b", re.I)
_KEEPS_LANE = re.compile(r"\b(keeps?|stays?|staying|keeping) (in )?(its|the|his) lane\b", re.I)
_COLLIDE = re.compile(r"\b(collid\w*|(?<!to )collision|crash\w*|hits?|strikes?|runs? into)\b",
                      re.I)
_SIGNED = {"earlier": ("brake", -1), "later": ("brake", 1), "further left": ("lat", 1),
           "further right": ("lat", -1), "slower": ("speed", -1), "faster": ("speed", 1)}


@dataclass(frozen=True)
class Quantity:
    """One measured number the text may cite."""

    name: str
    role: str        # negative | positive | scene | contrast
    unit: str        # s | m/s | m | score
    value: float


def _traj(rec: PairRecord, role: str) -> list[Quantity]:
    tr = getattr(rec, role)
    f = tr.facts
    q = [("speed now", "m/s", tr.v[0]), ("final speed", "m/s", tr.v[-1]),
         ("lowest speed", "m/s", min(tr.v)), ("highest speed", "m/s", max(tr.v)),
         ("closest gap", "m", f.min_distance_m), ("progress", "m", f.progress_m),
         ("pdms", "score", f.pdms), ("safety score", "score", f.safety_score),
         ("off-road time", "s", offroad_seconds(tr))]
    if f.first_conflict_time_s is not None:
        k = min(int(round(f.first_conflict_time_s / 0.1)), len(tr.v) - 1)
        q += [("conflict time", "s", f.first_conflict_time_s),
              ("speed at the conflict", "m/s", tr.v[k]),
              ("closing speed", "m/s", closing_speed(rec, tr))]
    if f.min_ttc_s is not None:
        q.append(("ttc", "s", f.min_ttc_s))
    return [Quantity(n, role, u, float(v)) for n, u, v in q]


def quantities(rec: PairRecord) -> list[Quantity]:
    """Every number a label's text may state, with its unit and whose it is."""
    out = _traj(rec, "negative") + _traj(rec, "positive") + _traj(rec, "expert")
    c = rec.positive_vs_negative
    if c is not None:
        for n, u, v in (("at", "s", c.at_time_s), ("speed difference", "m/s", c.speed_delta_mps),
                        ("lateral difference", "m", c.lateral_delta_m),
                        ("along difference", "m", c.along_delta_m),
                        ("brake onset", "s", c.brake_onset_s),
                        ("negative brake onset", "s", c.negative_brake_onset_s)):
            if v is not None:
                out.append(Quantity(n, "contrast", u, abs(float(v))))
        if c.brake_onset_s is not None and c.negative_brake_onset_s is not None:
            out.append(Quantity("brake lead", "contrast", "s",
                                abs(c.negative_brake_onset_s - c.brake_onset_s)))
    k = anchor_index(rec.context.t)
    h = rec.context.ego_history
    out.append(Quantity("ego speed", "scene", "m/s", h.v[-1]))
    for a in rec.context.agents:
        if a.valid[k]:
            out += [Quantity(f"{a.id} distance", "scene", "m", (a.x[k] ** 2 + a.y[k] ** 2) ** .5),
                    Quantity(f"{a.id} speed", "scene", "m/s", (a.vx[k] ** 2 + a.vy[k] ** 2) ** .5)]
    out += [Quantity("constant", "scene", u, v) for u, vs in CONSTANTS.items() for v in vs]
    return out


def _close(q: Quantity, value: float) -> bool:
    tol = TOLERANCE[q.unit] + (0.1 * abs(q.value) if q.unit == "m" else 0.0)
    return abs(abs(q.value) - abs(value)) <= tol


def _unit(raw: str) -> tuple[str, float]:
    u = raw.lower()
    if u == "km/h":
        return "m/s", 1 / 3.6
    if u.startswith("s"):
        return "s", 1.0
    if u == "m/s":
        return "m/s", 1.0
    return "m", 1.0


def _clauses(text: str) -> list[str]:
    return [c for c in re.split(r"(?<!\d)[.;](?!\d)|,\s+(?:while|whereas|but)\b|\bwhile\b",
                                text) if c.strip()]


def _role(clause: str, default: str) -> str:
    if _NEG_WORDS.search(clause):
        return "negative"
    if _POS_WORDS.search(clause):
        return "positive"
    return default


_NAMED_Q = {"safety score": "safety score", "score": "safety score", "pdms": "pdms",
            "ttc": "ttc", "time to collision": "ttc", "gap": "closest gap",
            "distance": "closest gap"}


def _numbers(text: str, default: str, qs: list[Quantity]) -> list[str]:
    found = []
    for clause in _clauses(text):
        role = _role(clause, default)
        named = set()
        for m in _NAMED.finditer(clause):
            named.add(m.start(3))       # a bound ("never below 1.5 s") is checked here only
            name, value = _NAMED_Q[m.group(1).lower()], float(m.group(3))
            want = [q for q in qs if q.name == name and q.role == role]
            if _ABOVE.search(m.group(2)):
                ok = any(q.value >= value - TOLERANCE[q.unit] for q in want)
            elif _BELOW.search(m.group(2)):
                ok = any(q.value <= value + TOLERANCE[q.unit] for q in want)
            else:
                ok = any(_close(q, value) for q in want)
            if want and not ok:
                found.append(f"states the {role}'s {name} as {value:g}, measured "
                             f"{want[0].value:.2f}")
        for m in _UNIT.finditer(clause):
            if m.start(1) in named:
                continue
            unit, scale = _unit(m.group(2))
            value = float(m.group(1)) * scale
            if not any(q.unit == unit and _close(q, value) for q in qs):
                found.append(f"states {m.group(0)!r}, which matches no measured {unit} "
                             "quantity of this pair")
    return found


def _agents(text: str, rec: PairRecord) -> list[str]:
    found = []
    by_id = {a.id: str(a.cls) for a in rec.context.agents}
    for m in _AGENT.finditer(text):
        word, ident = m.group(1).lower(), m.group(2)
        if ident not in by_id:
            found.append(f"names {word} {ident!r}, which is not in the scene")
        elif word not in CLASS_WORDS.get(by_id[ident], ()) and not (
                word == "vehicle" and by_id[ident] in ("truck", "bus", "unknown")):
            found.append(f"calls {ident!r} a {word}; it is a {by_id[ident]}")
    present = {str(a.cls) for a in rec.context.agents}
    for cls, words in CLASS_WORDS.items():
        if cls in ("vehicle", "static") or cls in present:
            continue
        for w in words:
            if re.search(rf"\b{w}s?\b", text, re.I):
                found.append(f"mentions a {w}; the scene has none")
    return found


def _asserted(rx: re.Pattern[str], clause: str) -> bool:
    m = rx.search(clause)
    return m is not None and not _NEGATION.search(clause[: m.start()])


def _actions(text: str, rec: PairRecord) -> list[str]:
    found = []
    ma, c = rec.meta_action, rec.positive_vs_negative
    for clause in _clauses(text):
        if _role(clause, "positive") != "positive":
            continue
        if ma.longitudinal in ("decelerate", "stop") and _asserted(_ACCEL, clause):
            found.append(f"says the positive accelerates; it does {ma.longitudinal}")
        if ma.longitudinal == "accelerate" and _asserted(_BRAKE, clause):
            found.append("says the positive brakes or slows; it accelerates")
        changes = str(ma.lateral).startswith("change_lane")
        if not changes and _asserted(_LANE_CHANGE, clause):
            found.append(f"says the positive changes lanes; its lateral action is {ma.lateral}")
        if changes and _asserted(_KEEPS_LANE, clause):
            found.append(f"says the positive keeps its lane; it does {ma.lateral}")
    for clause in _clauses(text) if c is not None else []:
        for word, (what, sign) in _SIGNED.items():
            if not re.search(rf"\b{word}\b", clause, re.I):
                continue
            if what == "brake":
                if "brak" not in clause.lower():
                    continue
                pb, nb = c.brake_onset_s, c.negative_brake_onset_s
                if pb is None or (nb is not None and (pb - nb) * sign < 0):
                    found.append(f"says the positive brakes {word}; its onset is {pb} s, the "
                                 f"negative's {nb} s")
            else:
                delta = c.lateral_delta_m if what == "lat" else c.speed_delta_mps
                if delta * sign < -TOLERANCE["m" if what == "lat" else "m/s"]:
                    found.append(f"says the positive is {word}; measured difference "
                                 f"{delta:+.2f}")
    return found


def _collisions(text: str, rec: PairRecord) -> list[str]:
    if rec.negative.facts.collides:
        return []
    return [f"claims a collision ({clause.strip()[:60]!r}); the negative has none"
            for clause in _clauses(text)
            if _role(clause, "negative") == "negative" and _asserted(_COLLIDE, clause)]


def check_text(label: SafetyLabel, rec: PairRecord) -> list[Contradiction]:
    """Contradictions between the label's free text and the record's facts."""
    qs = quantities(rec)
    msgs = []
    for field, default in (("failure_description", "negative"),
                           ("counterfactual_reasoning", "positive")):
        text = getattr(label, field)
        found = _numbers(text, default, qs) + _agents(text, rec)
        found += _actions(text, rec) if default == "positive" else _collisions(text, rec)
        msgs += [f"{field}: {m}" for m in found]
    return [Contradiction(KIND, m) for m in msgs]
