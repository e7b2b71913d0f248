"""The label schema (Pydantic v2): the safety label and the enums a record's facts share with it.

The label schema is cfpair's own (SafeAlign-VLA's label fields are not public); it covers the
C-CoT stages: critical agent, risk, counterfactual reasoning, corrective meta-action. Every
model forbids unknown fields. This module imports nothing of cfpair's.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

Prob = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0, le=60.0)]


class Strict(BaseModel):
    """Base: unknown fields are errors; instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskLevel(StrEnum):
    """How bad the negative is, graded from its facts by ``cfpair.labels.risk.RISK_TABLE``."""

    none = "none"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class HazardType(StrEnum):
    """What kind of conflict the negative runs into."""

    rear_end = "rear_end"            # ego runs into an agent ahead in its lane
    side_swipe = "side_swipe"        # lateral contact / lane intrusion
    crossing = "crossing"            # crossing or turning conflict at an angle
    head_on = "head_on"              # opposite headings
    vulnerable_road_user = "vulnerable_road_user"   # pedestrian or cyclist
    static_obstacle = "static_obstacle"
    off_road = "off_road"            # leaves the drivable area, no agent conflict
    none = "none"


class CollisionType(StrEnum):  # the order is the scorer's integer code (pdms.COLLISION_TYPES)
    """NAVSIM's collision classes (plus none)."""

    none = "none"
    stopped_ego = "stopped_ego"
    stopped_track = "stopped_track"
    active_front = "active_front"
    active_rear = "active_rear"
    active_lateral = "active_lateral"


class Longitudinal(StrEnum):
    """Corrective longitudinal meta-action."""

    accelerate = "accelerate"
    keep = "keep"
    decelerate = "decelerate"
    stop = "stop"


class Lateral(StrEnum):
    """Corrective lateral meta-action."""

    keep_lane = "keep_lane"
    nudge_left = "nudge_left"
    nudge_right = "nudge_right"
    change_lane_left = "change_lane_left"
    change_lane_right = "change_lane_right"
    turn_left = "turn_left"
    turn_right = "turn_right"


class AgentClass(StrEnum):  # the one list: types.AGENT_CLASSES is derived from it
    """cfpair's agent classes (types.AGENT_CLASSES)."""

    vehicle = "vehicle"
    pedestrian = "pedestrian"
    cyclist = "cyclist"
    motorcycle = "motorcycle"
    truck = "truck"
    bus = "bus"
    static = "static"
    unknown = "unknown"


class CriticalAgent(Strict):
    """The agent the conflict is with."""

    id: str = Field(min_length=1, max_length=64)
    cls: AgentClass


class MetaAction(Strict):
    """What the positive does from the ego's current state: its own speed profile
    (longitudinal) and its own offset along the road, the reference path's frame (lateral)."""

    longitudinal: Longitudinal
    lateral: Lateral


class SafetyLabel(Strict):
    """The structured safety label of one pair."""

    schema_version: str = SCHEMA_VERSION
    risk_level: RiskLevel
    hazard_type: HazardType
    critical_agent: CriticalAgent | None
    time_to_conflict_s: Seconds | None = Field(
        description="seconds from the anchor to the negative's first conflict")
    failure_description: str = Field(min_length=10, max_length=1200,
                                     description="what goes wrong in the negative")
    counterfactual_reasoning: str = Field(min_length=10, max_length=1200,
                                          description="why the positive avoids it")
    corrective_action: MetaAction
    safety_score: Prob = Field(description="continuous safety of the negative, 0 = collision")
