"""Render the labeler prompt of one pair from its measured facts (templates: package data).

The model sees numbers, not arrays: a compact table of the nearest road users, the negative's
failure and the positive's correction. The JSON Schema sent with the request is the label
schema with every measured fact pinned (single-value enums), so a server with constrained
decoding can only write a grounded label; the free text and the choice among the risk levels
and hazard types the facts allow are the model's.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from cfpair.errors import ConfigError
from cfpair.labels.grounding import allowed_hazards, expected_risk
from cfpair.labels.risk import closing_speed, offroad_seconds, risk_facts, risk_level
from cfpair.records.label import SafetyLabel
from cfpair.records.schema import PairRecord, TrajectoryRecord, anchor_index

#: the versioned templates, package data (``cfpair/labels/prompts/<version>/``)
PROMPTS_DIR = Path(str(files("cfpair.labels") / "prompts"))
MAX_AGENTS = 8
#: text fields are capped tighter for the model than the record allows (1,200)
TEXT_MAX = 600
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp"}


@cache
def templates(version: str) -> tuple[str, str]:
    """(system, user) templates of a prompt version; a clear error for an unknown one."""
    folder = PROMPTS_DIR / version
    try:
        return ((folder / "system.md").read_text().strip(),
                (folder / "user.md").read_text().strip())
    except OSError:
        known = sorted(p.name for p in PROMPTS_DIR.iterdir() if p.is_dir()) \
            if PROMPTS_DIR.is_dir() else []
        raise ConfigError(f"prompt version {version!r}: no {folder}/system.md and user.md; "
                          f"known versions {known}") from None


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Resolve ``$ref``s (strict-schema servers handle flat schemas best) and drop titles."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k not in ("title", "$defs")}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


@cache
def _base_schema() -> dict[str, Any]:
    raw = SafetyLabel.model_json_schema()
    schema = _inline(raw, raw.get("$defs", {}))
    schema["properties"].pop("schema_version")
    for key in ("failure_description", "counterfactual_reasoning"):
        schema["properties"][key]["maxLength"] = TEXT_MAX
        schema["properties"][key].pop("description", None)   # the system prompt says what
    return schema


def label_schema(rec: PairRecord | None = None) -> dict[str, Any]:
    """The JSON Schema for the model's reply; with a record, its measured facts pinned."""
    s = copy.deepcopy(_base_schema())
    if rec is None:
        return s
    f, p = rec.negative.facts, s["properties"]
    p["risk_level"] = {"type": "string", "enum": sorted(expected_risk(rec))}
    p["hazard_type"] = {"type": "string", "enum": sorted(allowed_hazards(f))}
    if f.critical_agent_id is None or f.critical_agent_class is None:
        p["critical_agent"] = {"type": "null"}
    else:
        p["critical_agent"] = {"type": "object", "additionalProperties": False,
                               "required": ["id", "cls"],
                               "properties": {"id": {"type": "string",
                                                     "enum": [f.critical_agent_id]},
                                              "cls": {"type": "string",
                                                      "enum": [str(f.critical_agent_class)]}}}
    t = f.first_conflict_time_s
    p["time_to_conflict_s"] = {"type": "null"} if t is None else {"type": "number",
                                                                  "enum": [round(t, 2)]}
    ma = rec.meta_action
    p["corrective_action"]["properties"] = {
        "longitudinal": {"type": "string", "enum": [str(ma.longitudinal)]},
        "lateral": {"type": "string", "enum": [str(ma.lateral)]}}
    p["safety_score"] = {"type": "number", "enum": [round(f.safety_score, 3)],
                         "description": "the negative's measured safety score"}
    return s


def agent_table(rec: PairRecord) -> str:
    """The MAX_AGENTS nearest valid road users at the anchor, one line each."""
    k = anchor_index(rec.context.t)
    crit = rec.negative.facts.critical_agent_id
    rows = []
    for a in rec.context.agents:
        if not a.valid[k]:
            continue
        dist = math.hypot(a.x[k], a.y[k])
        rows.append((a.id != crit, dist, a))
    rows.sort(key=lambda r: (r[0], r[1]))
    lines = ["| id | class | x m | y m | speed m/s | heading deg | distance m |",
             "|---|---|---|---|---|---|---|"]
    for _, dist, a in rows[:MAX_AGENTS]:
        mark = " (critical)" if a.id == crit else ""
        lines.append(f"| {a.id}{mark} | {a.cls} | {a.x[k]:.1f} | {a.y[k]:.1f} | "
                     f"{math.hypot(a.vx[k], a.vy[k]):.1f} | {math.degrees(a.yaw[k]):.0f} | "
                     f"{dist:.1f} |")
    if len(rows) > MAX_AGENTS:
        lines.append(f"({len(rows) - MAX_AGENTS} more road users farther away)")
    return "\n".join(lines) if rows else "(no other road users within range)"


def describe(rec: PairRecord, role: str) -> str:
    """One trajectory's motion and measured facts in a sentence or two (no operator names)."""
    tr: TrajectoryRecord = getattr(rec, role)
    f = tr.facts
    motion = (f"speed {tr.v[0]:.1f} -> {tr.v[-1]:.1f} m/s (lowest {min(tr.v):.1f}), ends at "
              f"x {tr.x[-1]:.1f} m, y {tr.y[-1]:.1f} m after {tr.t[-1]:.1f} s")
    if f.collides:
        what = (f"collides ({f.collision_type}, {'at fault' if f.at_fault else 'not at fault'}) "
                f"with {f.critical_agent_class} {f.critical_agent_id} at "
                f"{f.first_conflict_time_s:.2f} s, closing at {closing_speed(rec, tr):.1f} m/s")
    elif not f.ttc_ok:
        what = (f"time to collision with {f.critical_agent_class} {f.critical_agent_id} falls "
                f"below 1 s at {f.first_conflict_time_s:.2f} s")
    elif not f.drivable_ok:
        what = (f"leaves the drivable area at {f.first_conflict_time_s:.2f} s, off it for "
                f"{offroad_seconds(tr):.1f} s")
    else:
        what = "no collision, no TTC violation, stays on the drivable area"
    ttc = "none within 3 s" if f.min_ttc_s is None else f"{f.min_ttc_s:.2f} s"
    return (f"{motion}. It {what}. Min TTC {ttc}, min gap {f.min_distance_m:.2f} m, "
            f"comfortable {f.comfort_ok}, PDMS {f.pdms:.3f}, safety score "
            f"{f.safety_score:.3f}.")


def risk_line(rec: PairRecord) -> str:
    """The graded risk and the facts it was graded from."""
    f = risk_facts(rec)
    ttc = "none within 3 s" if f.min_ttc_s is None else f"{f.min_ttc_s:.2f} s"
    return (f"{risk_level(rec)} (contact {f.contact}, at fault {f.at_fault}, closing "
            f"{f.closing_speed_mps:.1f} m/s, min TTC {ttc}, min gap {f.min_distance_m:.2f} m, "
            f"off-road {f.offroad_s:.1f} s)")


def scene_line(rec: PairRecord) -> str:
    """Source, command, ego speed and map availability."""
    h = rec.context.ego_history
    return (f"{rec.provenance.source} scenario {rec.provenance.scenario_id}, driving command "
            f"'{rec.context.driving_command}', ego speed {h.v[-1]:.1f} m/s, "
            f"{len(rec.context.agents)} road users tracked, map "
            f"{'available' if rec.context.map.available else 'not available'}.")


def _image_parts(rec: PairRecord, image_root: str | None) -> tuple[list[dict[str, Any]], int]:
    """Camera images of the anchor frame as data URLs; also how many were missing."""
    parts, missing = [], 0
    for cam in rec.context.cameras:
        path = Path(image_root or ".") / cam.path
        mime = IMAGE_TYPES.get(path.suffix.lower())
        if mime is None or not path.is_file():
            missing += 1
            continue
        url = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts, missing


def messages(rec: PairRecord, version: str, with_images: bool = False,
             image_root: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Chat messages for one pair, and the number of camera images that could not be read."""
    system, user = templates(version)
    ma = rec.meta_action
    text = user.format(scene=scene_line(rec), agent_table=agent_table(rec),
                       negative=describe(rec, "negative"),
                       positive=describe(rec, "positive"),
                       meta_action=f"longitudinal {ma.longitudinal}, lateral {ma.lateral}",
                       contrast=(rec.positive_vs_negative.summary if rec.positive_vs_negative
                                 else "not measured"),
                       risk=risk_line(rec),
                       schema=json.dumps(label_schema(rec), separators=(",", ":")))
    content: str | list[dict[str, Any]] = text
    missing = 0
    if with_images:
        parts, missing = _image_parts(rec, image_root)
        if parts:
            content = [{"type": "text", "text": text}, *parts]
    return [{"role": "system", "content": system}, {"role": "user", "content": content}], missing
