"""Records -> training arrays: a rasterised bird's-eye view (vision), the driving command and
scene tokens (language), the anchors' waypoints (action) and the risk / hazard targets.

Raster: GRID x GRID cells over x in [-16, 48] m (ahead), y in [-32, 32] m (left), channels
drivable, route centrelines, road users now, road users 1 s ago, ego now + its last 2 s.
Scene tokens: one per road user (the MAX_AGENTS nearest at the anchor: x, y, vx, vy, length,
width, is-vulnerable; zeros + mask for missing) and one for the ego (speed, acceleration).
Targets: waypoints (8, 2) of the positive, negative and expert (x, y at 0.5 s .. 4 s);
``risk`` = 1 when the logged (expert) continuation is risky (collision, TTC < 1 s or off-road),
``hazard``, ``agent_cls``, ``action`` = the label's hazard type, critical agent class and
corrective meta-action: the structured failure / corrective statement of the negative-enhanced
stage (see ``statement``). ``labeled`` marks records that have a label (the others get 'none').
``validation_split`` carves a tuning split out of the training records (never reported).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path as MplPath

from cfpair.errors import ConfigError
from cfpair.geometry.boxes import box_corners
from cfpair.labels.models import NEAREST_AGENTS as MAX_AGENTS
from cfpair.labels.models import (
    AgentClass,
    HazardType,
    Lateral,
    Longitudinal,
    PairRecord,
    SafetyLabel,
    anchor_index,
    nearest_agents,
)
from cfpair.scoring.pdms import risky

GRID = 48
X_RANGE, Y_RANGE = (-16.0, 48.0), (-32.0, 32.0)
CHANNELS = ("drivable", "route", "agents_now", "agents_1s_ago", "ego")
COMMANDS = ("left", "straight", "right")
HAZARDS = tuple(str(h) for h in HazardType)
#: critical agent classes of the statement ('none' when the label names no agent)
AGENT_CLASSES = ("none", *(str(c) for c in AgentClass))
#: corrective meta-actions of the statement: "longitudinal, lateral"
ACTIONS = tuple(f"{lo}, {la}" for lo in Longitudinal for la in Lateral)
_VRU = ("pedestrian", "cyclist", "motorcycle")

_xs = X_RANGE[0] + (np.arange(GRID) + 0.5) * (X_RANGE[1] - X_RANGE[0]) / GRID
_ys = Y_RANGE[1] - (np.arange(GRID) + 0.5) * (Y_RANGE[1] - Y_RANGE[0]) / GRID
#: cell centres, row-major: row = lateral (left at the top), column = ahead
CELLS = np.stack(np.meshgrid(_xs, _ys), -1).reshape(-1, 2)


@dataclass(frozen=True)
class Batch:
    """Arrays of N scenes (numpy; the stages turn them into tensors)."""

    raster: np.ndarray      # (N, C, GRID, GRID) float32
    command: np.ndarray     # (N,) int64 into COMMANDS
    agents: np.ndarray      # (N, MAX_AGENTS, 7) float32
    agent_mask: np.ndarray  # (N, MAX_AGENTS) bool
    ego: np.ndarray         # (N, 2) float32: speed m/s, acceleration m/s^2
    positive: np.ndarray    # (N, 8, 2) float32 waypoints
    negative: np.ndarray
    expert: np.ndarray
    risk: np.ndarray        # (N,) float32 in {0, 1}
    hazard: np.ndarray      # (N,) int64 into HAZARDS
    agent_cls: np.ndarray   # (N,) int64 into AGENT_CLASSES
    action: np.ndarray      # (N,) int64 into ACTIONS
    labeled: np.ndarray     # (N,) bool: the record has a label (the statement targets are real)

    def __len__(self) -> int:
        return int(self.raster.shape[0])

    def take(self, idx: np.ndarray) -> Batch:
        """Rows ``idx`` of every array."""
        return Batch(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})


def _fill(mask: np.ndarray, poly: np.ndarray) -> None:
    if len(poly) >= 3:
        mask |= MplPath(poly).contains_points(CELLS)


def _line(mask: np.ndarray, line: np.ndarray, width: float = 1.5) -> None:
    for a, b in zip(line[:-1], line[1:], strict=True):
        d = b - a
        n = float(np.hypot(*d))
        if n < 1e-6:
            continue
        rel = CELLS - a
        along = rel @ d / n
        across = np.abs(rel[:, 0] * d[1] - rel[:, 1] * d[0]) / n
        mask |= (along >= 0) & (along <= n) & (across <= width / 2)


def raster(rec: PairRecord) -> np.ndarray:
    """The (C, GRID, GRID) bird's-eye raster of a record at its anchor."""
    c = rec.context
    out = np.zeros((len(CHANNELS), GRID * GRID), bool)
    for p in c.map.drivable:
        _fill(out[0], np.asarray(p).reshape(-1, 2))
    for p, route in zip(c.map.centerlines, c.map.on_route, strict=False):
        if route:
            _line(out[1], np.asarray(p).reshape(-1, 2))
    now = anchor_index(c.t)
    ago = anchor_index([t + 1.0 for t in c.t])
    for a in c.agents:
        for ch, k in ((2, now), (3, ago)):
            if a.valid[k]:
                _fill(out[ch], box_corners(a.x[k], a.y[k], a.yaw[k], a.length, a.width))
    _fill(out[4], box_corners(c.ego_rear_to_center, 0.0, 0.0, c.ego_length, c.ego_width))
    h = c.ego_history
    pts = np.array([(x, y) for x, y, v in zip(h.x, h.y, h.valid, strict=True) if v])
    if len(pts) > 1:
        _line(out[4], pts, 1.0)
    return out.reshape(len(CHANNELS), GRID, GRID).astype(np.float32)


def _agents(rec: PairRecord) -> tuple[np.ndarray, np.ndarray]:
    k = anchor_index(rec.context.t)
    rows = nearest_agents(rec.context)[:MAX_AGENTS]
    feat = np.zeros((MAX_AGENTS, 7), np.float32)
    mask = np.zeros(MAX_AGENTS, bool)
    for i, (_, a) in enumerate(rows):
        feat[i] = (a.x[k] / 30, a.y[k] / 30, a.vx[k] / 10, a.vy[k] / 10, a.length / 5,
                   a.width / 2, float(a.cls in _VRU))
        mask[i] = True
    return feat, mask


def _risky(rec: PairRecord) -> bool:
    f = rec.expert.facts
    return bool(risky(f.collides, f.ttc_ok, f.drivable_ok))


def _wp(poses: list[list[float]]) -> np.ndarray:
    return np.asarray(poses, np.float32)[:, :2]


def statement(hazard: str, agent_cls: str, action: str) -> str:
    """The structured failure / corrective statement: one line of text, the same format for
    the model's output and for the label, so language accuracy is an exact string match."""
    return f"hazard: {hazard}; critical agent: {agent_cls}; action: {action}"


def label_targets(label: SafetyLabel | None) -> tuple[int, int, int]:
    """(hazard, agent class, action) indices of a label; None -> ('none', 'none', the first
    action) -- such rows are masked out of the statement by ``Batch.labeled``."""
    if label is None:
        return HAZARDS.index("none"), 0, 0
    cls = "none" if label.critical_agent is None else str(label.critical_agent.cls)
    act = f"{label.corrective_action.longitudinal}, {label.corrective_action.lateral}"
    return HAZARDS.index(str(label.hazard_type)), AGENT_CLASSES.index(cls), ACTIONS.index(act)


def label_statement(label: SafetyLabel) -> str:
    """The statement a label makes (the target of the language accuracy)."""
    h, a, c = label_targets(label)
    return statement(HAZARDS[h], AGENT_CLASSES[a], ACTIONS[c])


def _empty() -> Batch:
    z = np.zeros((0, 8, 2), np.float32)
    i = np.zeros(0, np.int64)
    return Batch(np.zeros((0, len(CHANNELS), GRID, GRID), np.float32), i,
                 np.zeros((0, MAX_AGENTS, 7), np.float32), np.zeros((0, MAX_AGENTS), bool),
                 np.zeros((0, 2), np.float32), z, z, z, np.zeros(0, np.float32), i, i, i,
                 np.zeros(0, bool))


def encode(recs: list[PairRecord]) -> Batch:
    """Arrays of every record (unlabeled ones get hazard 'none' and ``labeled`` False)."""
    if not recs:
        return _empty()

    def ego(r: PairRecord) -> tuple[float, float]:
        v = r.context.ego_history.v
        return v[-1], (v[-1] - v[-6]) / 0.5 if len(v) >= 6 else 0.0
    ag = [_agents(r) for r in recs]
    tg = np.array([label_targets(r.label) for r in recs], np.int64).reshape(-1, 3)
    return Batch(
        raster=np.stack([raster(r) for r in recs]),
        command=np.array([COMMANDS.index(r.context.driving_command) for r in recs], np.int64),
        agents=np.stack([a for a, _ in ag]), agent_mask=np.stack([m for _, m in ag]),
        ego=np.array([ego(r) for r in recs], np.float32),
        positive=np.stack([_wp(r.positive.poses) for r in recs]),
        negative=np.stack([_wp(r.negative.poses) for r in recs]),
        expert=np.stack([_wp(r.expert.poses) for r in recs]),
        risk=np.array([float(_risky(r)) for r in recs], np.float32),
        hazard=tg[:, 0], agent_cls=tg[:, 1], action=tg[:, 2],
        labeled=np.array([r.label is not None for r in recs], bool))


def _unit(scenario_id: str, salt: str) -> float:
    h = hashlib.sha256(f"{salt}:{scenario_id}".encode()).hexdigest()[:12]
    return int(h, 16) / 16 ** 12


def validation_split(train: list[PairRecord], share: float = 0.2, salt: str = "cfpair-val"
                     ) -> tuple[list[PairRecord], list[PairRecord]]:
    """(fit, validation): about ``share`` of the training *scenarios* (by a salted hash of the
    scenario id, so every anchor of a scenario lands on one side) go to validation. Tuning
    reads validation numbers only; the held-out split stays unread until the reported run."""
    if not 0.0 < share < 1.0:
        raise ConfigError(f"validation share must be in (0, 1), got {share}")
    val = [r for r in train if _unit(r.provenance.scenario_id, salt) < share]
    fit = [r for r in train if _unit(r.provenance.scenario_id, salt) >= share]
    return fit, val


def poses_of(waypoints: np.ndarray) -> np.ndarray:
    """Waypoints (..., 8, 2) -> NAVSIM poses (..., 8, 3): yaw along the direction of travel
    from the previous waypoint (the origin for the first), kept where the car barely moves."""
    w = np.asarray(waypoints, np.float64)
    prev = np.concatenate([np.zeros_like(w[..., :1, :]), w[..., :-1, :]], -2)
    d = w - prev
    yaw = np.arctan2(d[..., 1], d[..., 0])
    still = np.hypot(d[..., 0], d[..., 1]) < 0.2
    for i in range(w.shape[-2]):   # carry the last heading through stops
        last = yaw[..., i - 1] if i else np.zeros_like(yaw[..., 0])
        yaw[..., i] = np.where(still[..., i], last, yaw[..., i])
    return np.concatenate([w, yaw[..., None]], -1)
