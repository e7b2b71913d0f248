"""Score waypoints in stored scenes in NAVSIM's view (NAVSIM's tracker, then NAVSIM v1.1's
scorer; the one path of :mod:`cfpair.scoring.views`): the reward of GRPO and the metrics of the
evaluation. Contexts are built once per record and reused."""

from __future__ import annotations

import numpy as np

from cfpair.records.schema import Facts, PairRecord
from cfpair.scoring.context import EvalContext
from cfpair.scoring.rescore import context_from_record, score_poses
from cfpair.train.data import poses_of


class Scorer:
    """Facts and rewards of waypoints (K, 8, 2) driven in record i's scene."""

    def __init__(self, recs: list[PairRecord]) -> None:
        self.recs = recs
        self._ctx: dict[int, EvalContext] = {}

    def facts(self, i: int, waypoints: np.ndarray) -> list[Facts]:
        """Facts of each of K waypoint sets in scene i."""
        if i not in self._ctx:
            self._ctx[i] = context_from_record(self.recs[i])
        return score_poses(self.recs[i], poses_of(waypoints), self._ctx[i])

    def rewards(self, i: int, waypoints: np.ndarray, collision_penalty: float = 0.5,
                sparse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """GRPO's reward and cost (1 for a collision) of each set. Reward: PDMS -
        ``collision_penalty`` for any collision, or, ``sparse``, 1 for a success (no collision
        and PDMS > 0) and 0 otherwise."""
        fs = self.facts(i, waypoints)
        cost = np.array([float(f.collides) for f in fs])
        pdms = np.array([f.pdms for f in fs])
        if sparse:
            return ((cost == 0) & (pdms > 0)).astype(np.float64), cost
        return pdms - collision_penalty * cost, cost
