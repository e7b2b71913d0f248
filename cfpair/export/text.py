"""The text a policy reads and writes: the scene prompt, the answer with its safety analysis,
and the reversible text form of a trajectory.

Trajectory text form (what ``format_trajectory`` writes and ``parse_trajectory`` reads)::

    <trajectory>[(4.12, -0.03, 0.010), (8.30, -0.05, 0.012), ...]</trajectory>

eight ``(x, y, yaw)`` tuples, the NAVSIM output poses at 0.5, 1.0, ..., 4.0 s after the
anchor, of the ego rear axle in the ego frame at the anchor (x forward, y left, metres; yaw
counter-clockwise, radians). x and y are written with XY_DECIMALS = 2 decimals (1 cm), yaw
with YAW_DECIMALS = 3 (1 mrad); parsing gives back exactly the rounded numbers. The parser
takes the last ``<trajectory>`` block of a text, so an answer may reason first.
"""

from __future__ import annotations

import math
import re

import numpy as np

from cfpair.errors import TrajectoryParseError
from cfpair.labels.models import (
    NEAREST_AGENTS,
    PairRecord,
    SafetyLabel,
    anchor_index,
    nearest_agents,
)
from cfpair.labels.rules import agent_name

XY_DECIMALS = 2
YAW_DECIMALS = 3
N_POSES = 8
_NUM = r"[-+]?\d+(?:\.\d+)?"
_TUPLE = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_BLOCK = re.compile(r"<trajectory>(.*?)</trajectory>", re.S)
#: LLaMA-Factory counts every literal "<image>" as an image slot; never let one into text
IMAGE_TOKEN = "<image>"

SYSTEM = ("You are the planner of an automated car. From the bird's-eye or camera image and "
          "the scene description, first assess the risk, then give the ego car's trajectory "
          "for the next 4 seconds.")


def _num(v: float, decimals: int) -> str:
    s = f"{round(float(v), decimals):.{decimals}f}"
    return "0." + "0" * decimals if s == "-0." + "0" * decimals else s


def format_trajectory(poses: object) -> str:
    """Poses (8, 3) [x, y, yaw] -> the documented text form."""
    p = np.asarray(poses, np.float64)
    if p.shape != (N_POSES, 3) or not np.all(np.isfinite(p)):
        raise TrajectoryParseError(f"expected {N_POSES} finite (x, y, yaw) poses, got shape "
                                   f"{p.shape}")
    body = ", ".join(f"({_num(x, XY_DECIMALS)}, {_num(y, XY_DECIMALS)}, "
                     f"{_num(yaw, YAW_DECIMALS)})" for x, y, yaw in p)
    return f"<trajectory>[{body}]</trajectory>"


def parse_trajectory(text: str, n: int = N_POSES) -> np.ndarray:
    """The poses (n, 3) of the last ``<trajectory>[...]</trajectory>`` block in ``text``."""
    blocks = _BLOCK.findall(text)
    if not blocks:
        raise TrajectoryParseError("expected a <trajectory>[(x, y, yaw), ...]</trajectory> "
                                   f"block; found none in {text[-120:]!r}")
    body = blocks[-1].strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise TrajectoryParseError(f"expected [...] inside <trajectory>, got {body[:60]!r}")
    found = _TUPLE.findall(body)
    rest = _TUPLE.sub("", body[1:-1]).replace(",", "").strip()
    if rest:
        raise TrajectoryParseError(f"unexpected text between poses: {rest[:60]!r}")
    if len(found) != n:
        raise TrajectoryParseError(f"expected {n} (x, y, yaw) poses, got {len(found)}")
    out = np.asarray(found, np.float64)
    if not np.all(np.isfinite(out)):
        raise TrajectoryParseError("poses must be finite numbers")
    return out


def clean(text: str) -> str:
    """Text safe for every trainer format: no literal image token."""
    return text.replace(IMAGE_TOKEN, "[image]")


def scene_prompt(rec: PairRecord, max_agents: int = NEAREST_AGENTS) -> str:
    """What the policy is told about the scene at the anchor: the command, the ego's motion
    over the last 2 s, the nearest road users now. Nothing of the future and nothing of the
    label (the critical agent is not marked)."""
    c = rec.context
    h = c.ego_history
    past = [i for i, (t, v) in enumerate(zip(h.t, h.valid, strict=True))
            if v and abs(t * 2 - round(t * 2)) < 1e-6 and t < 0][-4:]
    hist = ", ".join(f"t={h.t[i]:.1f}s ({h.x[i]:.1f}, {h.y[i]:.1f}) {h.v[i]:.1f} m/s"
                     for i in past) or "not available"
    k = anchor_index(c.t)
    near = nearest_agents(c)
    lines = [f"- {a.cls} {a.id}: at ({a.x[k]:.1f}, {a.y[k]:.1f}) m, heading "
             f"{math.degrees(a.yaw[k]):.0f} deg, speed {math.hypot(a.vx[k], a.vy[k]):.1f} m/s"
             for _, a in near[:max_agents]]
    if len(near) > max_agents:
        lines.append(f"- ({len(near) - max_agents} more farther away)")
    speed = h.v[-1] if h.valid[-1] else rec.expert.v[0]
    text = "\n".join([
        f"Driving command: {c.driving_command}. Ego speed: {speed:.1f} m/s. "
        f"Ego frame: x forward, y left (metres), yaw counter-clockwise (radians).",
        f"Ego past positions: {hist}.",
        "Road users now:" if lines else "Road users now: none tracked nearby.", *lines,
        "Answer with the risk assessment, then the trajectory as eight (x, y, yaw) poses at "
        "0.5 s steps up to 4 s: <trajectory>[(x, y, yaw), ...]</trajectory>."])
    return clean(text)


def analysis(label: SafetyLabel) -> str:
    """The safety analysis of a label: risk, critical agent, what fails, the correction."""
    agent = (agent_name(label.critical_agent.id, str(label.critical_agent.cls))
             if label.critical_agent else "none")
    ttc = ("" if label.time_to_conflict_s is None
           else f", conflict in {label.time_to_conflict_s:.1f} s")
    ma = label.corrective_action
    return clean("\n".join([
        f"Risk: {label.risk_level} ({label.hazard_type}); critical agent: {agent}{ttc}.",
        f"What would go wrong: {label.failure_description}",
        f"Correction: {label.counterfactual_reasoning}",
        f"Action: {ma.longitudinal}, {ma.lateral}."]))


def negative_analysis(rec: PairRecord) -> str:
    """The assessment the negative itself acts on (the rejected answer of a preference pair):
    in the same form as ``analysis``, it sees no risk and does what the negative does."""
    c = rec.positive_vs_negative
    ma = c.negative_action if c is not None else None
    lon, lat = (ma.longitudinal, ma.lateral) if ma is not None else ("keep", "keep_lane")
    return clean("\n".join([
        "Risk: none (none); critical agent: none.",
        "What would go wrong: nothing; the way ahead looks clear.",
        "Correction: none needed; the ego carries on with its plan.",
        f"Action: {lon}, {lat}."]))


def answer(rec: PairRecord, role: str = "positive", reasoning: bool = True) -> str:
    """The assistant's answer, in the order the prompt asks for: the assessment, then the
    ``role`` trajectory in the text form. The positive carries the label's analysis (when the
    record has a label), the negative its own wrong assessment (``negative_analysis``);
    ``reasoning=False`` gives the trajectory alone."""
    traj = format_trajectory(getattr(rec, role).poses)
    if not reasoning:
        return traj
    if role == "negative":
        return negative_analysis(rec) + "\n" + traj
    if rec.label is not None:
        return analysis(rec.label) + "\n" + traj
    return traj
