"""The on-disk row schema (Pydantic v2): one pair record with its scene, trajectories, facts,
costs and provenance.

Every model forbids unknown fields; ``schemas/`` holds the JSON Schema of the row and of the
label (``python -m cfpair.records.json_schema`` regenerates it; a test fails when it is stale).
This module imports nothing of cfpair's but the label schema beside it.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated

from pydantic import Field

from cfpair.records.label import (
    AgentClass,
    CollisionType,
    MetaAction,
    Prob,
    SafetyLabel,
    Seconds,
    Strict,
)


class Contrast(Strict):
    """How the positive differs from the negative (positive minus negative), at ``at_time_s``:
    the negative's first conflict, else the end of the horizon. Lateral and along-road
    distances are measured in the reference path's frame (+ = further left / further ahead)."""

    at_time_s: Seconds
    speed_delta_mps: float
    lateral_delta_m: float
    along_delta_m: float
    brake_onset_s: Seconds | None = Field(
        description="when the positive starts braking (deceleration over 1 m/s^2), if it does")
    negative_brake_onset_s: Seconds | None = Field(
        description="when the negative starts braking, if it does")
    negative_action: MetaAction = Field(
        description="what the negative itself does from the ego's current state")
    summary: str = Field(max_length=300, description="the differences above, in words")


class Costs(Strict):
    """Per-step costs at 0.1 s (SafeVLA-style): each list has one value per future state."""

    collision: list[Prob]
    proximity: list[Prob]
    offroad: list[Prob]
    comfort: list[Prob]
    safety: list[Prob]


class Facts(Strict):
    """What cfpair's geometry measured for one trajectory.

    The events (collision, conflict, critical agent, TTC, drivable area, comfort) and the PDMS
    sub-scores are NAVSIM's view: the trajectory's 8 poses re-simulated by NAVSIM's tracker,
    scored as NAVSIM v1.1 does. ``exact_*`` are the sub-scores of the stored 0.1 s states
    themselves; min_ttc_s, min_distance_m, safety_score and the costs are measured on those
    states. ``dac`` is None (``dac_evaluated`` False) when the scene has no map.
    """

    collides: bool
    at_fault: bool
    collision_type: CollisionType
    first_conflict_time_s: Seconds | None
    critical_agent_id: str | None
    critical_agent_class: AgentClass | None
    relative_heading_deg: Annotated[float, Field(ge=-180.0, le=180.0)] | None = Field(
        description="critical agent heading minus ego heading at the first conflict")
    min_ttc_s: Annotated[float, Field(ge=0.0)] | None
    min_distance_m: Annotated[float, Field(ge=0.0)]
    ttc_ok: bool
    drivable_ok: bool
    comfort_ok: bool
    feasible: bool
    progress_m: Annotated[float, Field(ge=0.0)]
    nc: Prob
    dac: Prob | None
    ttc: Prob
    ep: Prob
    comfort: Prob
    pdms: Prob
    safety_score: Prob
    dac_evaluated: bool
    exact_nc: Prob
    exact_dac: Prob | None
    exact_ttc: Prob
    exact_ep: Prob
    exact_comfort: Prob
    exact_pdms: Prob


class TrajectoryRecord(Strict):
    """Ego rear-axle states in the ego frame at the anchor: ``t`` 0..4 s every 0.1 s, plus the
    NAVSIM output ``poses`` (8 x [x, y, yaw] at 0.5 s .. 4 s)."""

    perturbation: str
    t: list[float]
    x: list[float]
    y: list[float]
    yaw: list[float]
    v: list[float]
    poses: list[Annotated[list[float], Field(min_length=3, max_length=3)]]
    facts: Facts
    costs: Costs


class Agent(Strict):
    """One agent on the record's time grid (history + future, 0.1 s), ego frame."""

    id: str
    cls: AgentClass
    length: Annotated[float, Field(gt=0)]
    width: Annotated[float, Field(gt=0)]
    x: list[float]
    y: list[float]
    yaw: list[float]
    vx: list[float]
    vy: list[float]
    valid: list[bool]


class MapSummary(Strict):
    """Map near the ego (ego frame): polygons and polylines as flat [x0, y0, x1, y1, ...]."""

    available: bool
    drivable: list[list[float]]
    lanes: list[list[float]]
    centerlines: list[list[float]]
    on_route: list[bool]


class Camera(Strict):
    """A camera image at the anchor frame, relative to the dataset root."""

    name: str
    path: str


class EgoHistory(Strict):
    """Ego states before the anchor (0.1 s steps, ego frame)."""

    t: list[float]
    x: list[float]
    y: list[float]
    yaw: list[float]
    v: list[float]
    valid: list[bool]


def anchor_index(t: list[float]) -> int:
    """Index of t = 0 (the anchor) on a record's time grid (the first of equal nearest)."""
    return min(range(len(t)), key=lambda i: abs(t[i]))


class Context(Strict):
    """The scene as the policy sees it at the anchor."""

    t: list[float]
    ego_history: EgoHistory
    ego_length: Annotated[float, Field(gt=0)]
    ego_width: Annotated[float, Field(gt=0)]
    ego_rear_to_center: float
    driving_command: Annotated[str, Field(pattern="^(left|straight|right)$")]
    agents: list[Agent]
    map: MapSummary
    cameras: list[Camera]


#: how many road users the labeler prompt, the export prompt and the trainer's scene tokens show
NEAREST_AGENTS = 8


def nearest_agents(context: Context) -> list[tuple[float, Agent]]:
    """Road users valid at the anchor, nearest first: (distance from the ego rear axle, agent)."""
    k = anchor_index(context.t)
    rows = [(math.hypot(a.x[k], a.y[k]), a) for a in context.agents if a.valid[k]]
    return sorted(rows, key=lambda r: r[0])


class Provenance(Strict):
    """Where the record came from and what made it."""

    source: str
    scenario_id: str
    anchor_index: int
    anchor_time_s: float
    seed: int
    n_candidates: int
    cfpair_version: str
    schema_version: str
    config_hash: str
    labeler: str
    prompt_version: str | None
    label_model: str | None = None
    frame: str = "ego rear axle at the anchor; x forward, y left, yaw CCW (rad)"
    #: what the source had to guess or correct to read this scene ("key: value"), e.g. a
    #: swapped ego size, the rear-axle offset, where the velocities come from
    source_notes: list[str] = []


def pair_id(source: str, scenario_id: str, anchor: int) -> str:
    """Stable id of a (source, scenario, anchor): the first 20 hex digits of its sha256."""
    return hashlib.sha256(f"{source}/{scenario_id}/{anchor}".encode()).hexdigest()[:20]


class PairRecord(Strict):
    """One shard row: a counterfactual safety pair with its scene, facts, label, provenance."""

    pair_id: str
    split: str
    context: Context
    expert: TrajectoryRecord
    negative: TrajectoryRecord
    positive: TrajectoryRecord
    meta_action: MetaAction
    positive_vs_negative: Contrast | None = None
    label: SafetyLabel | None
    label_status: Annotated[str, Field(pattern="^(ok|fallback|unlabeled)$")]
    provenance: Provenance
