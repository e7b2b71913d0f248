"""Pick the risky negative and the counterfactual positive among scored candidates.

The corrective meta-action comes from :mod:`cfpair.counterfactual.meta_action`, the facts of
every candidate from :mod:`cfpair.scoring.facts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfpair.counterfactual.candidates import Candidates
from cfpair.counterfactual.meta_action import corrective_action
from cfpair.errors import SceneRejected
from cfpair.geometry.collision import collisions
from cfpair.labels.models import Contrast
from cfpair.scoring.boxes import agent_boxes, ego_boxes
from cfpair.scoring.context import EvalContext
from cfpair.scoring.facts import FactArrays
from cfpair.types import F64

MARGIN_M = 0.5        # a positive keeps at least this far from every agent box


@dataclass(frozen=True)
class Pair:
    """The outcome for one anchor: negative and positive candidate indices, the facts of every
    candidate and the corrective meta-action."""

    negative: int
    positive: int
    facts: FactArrays
    longitudinal: str
    lateral: str
    contrast: Contrast | None = None


def safe_mask(f: FactArrays, feasible: np.ndarray, need_comfort: bool = True) -> np.ndarray:
    """Feasible candidates that are safe (no contact, NC = DAC = TTC = 1) in both views (and
    comfortable in both)."""
    ok = feasible & f.safe
    comfy = (f.scores.comfort == 1) & (f.exact_scores.comfort == 1)
    return ok & comfy if need_comfort else ok


def margin_mask(ctx: EvalContext, c: Candidates) -> np.ndarray:
    """(K,) True where the candidate keeps ``MARGIN_M`` from every agent box at every step."""
    grown, _, _ = agent_boxes(ctx, MARGIN_M)
    if grown.x.shape[0] == 0:
        return np.ones(c.k, bool)
    return ~collisions(ego_boxes(ctx, c.x, c.y, c.yaw), grown).any()


def _ade(c: Candidates, ref: int) -> F64:
    return np.mean(np.hypot(c.x - c.x[ref], c.y - c.y[ref]), axis=1)


def choose(c: Candidates, f: FactArrays, margin_ok: np.ndarray, score_weight_m: float = 2.0
           ) -> tuple[int, int]:
    """(negative, positive) candidate indices, or SceneRejected. Risk and PDMS are NAVSIM's
    view (the 8 poses re-simulated, as NAVSIM scores them).

    Negative: the logged expert when it is risky; else the feasible risky candidate closest to
    the expert (mean displacement), preferring hazards with an agent (contact or TTC) over
    off-road-only ones. Positive: among safe candidates that score strictly higher than the
    negative, the one that changes it least: minimum mean displacement from it +
    ``score_weight_m`` * (1 - pdms). Safe means feasible, no contact and NC = DAC = TTC = 1 in
    both views (a candidate safe only as an exact rollout is not a positive), no contact even
    with every agent grown by ``MARGIN_M`` on each side (``margin_ok``) and comfortable; when no
    candidate is also comfortable, comfort is waived (an emergency brake can be the right
    answer) and the facts say so.
    """
    s = f.scores
    risky = s.risky
    if risky[0]:
        neg = 0
    else:
        agent_hazard = risky & c.feasible & (s.collides | (s.ttc == 0))
        pool = agent_hazard if agent_hazard.any() else risky & c.feasible
        if not pool.any():
            raise SceneRejected("no_risky_candidate",
                                f"none of {c.k} candidates collides, violates TTC or leaves the "
                                "drivable area")
        d = np.where(pool, _ade(c, 0), np.inf)
        neg = int(np.argmin(d))
    safe = safe_mask(f, c.feasible) & margin_ok
    if not safe.any():   # an emergency manoeuvre may be the only way out: comfort not required
        safe = safe_mask(f, c.feasible, need_comfort=False) & margin_ok
    if not safe.any():
        raise SceneRejected("no_safe_candidate",
                            f"none of {c.k} candidates is feasible, collision-free with a "
                            f"{MARGIN_M} m margin, TTC- and drivable-compliant in both the "
                            "exact and NAVSIM's view")
    better = safe & (s.pdms > s.pdms[neg])
    if not better.any():
        raise SceneRejected("no_better_positive",
                            f"no safe candidate scores above the negative's PDMS "
                            f"{s.pdms[neg]:.3f} in NAVSIM's view")
    cost = np.where(better, _ade(c, neg) + score_weight_m * (1 - s.pdms), np.inf)
    return neg, int(np.argmin(cost))


def meta_action(c: Candidates, neg: int, pos: int, conflict_step: int | None
                ) -> tuple[str, str]:
    """(longitudinal, lateral) of the positive's own motion; see ``meta_action.py``."""
    ma, _ = corrective_action(c.path, c.x, c.y, c.yaw, c.v, neg, pos, conflict_step)
    return str(ma.longitudinal), str(ma.lateral)


def make_pair(ctx: EvalContext, c: Candidates, facts: FactArrays) -> Pair:
    """Choose among the scored candidates (``facts`` of every one, both views); raises
    SceneRejected with a reason when there is no valid pair."""
    neg, pos = choose(c, facts, margin_mask(ctx, c))
    conflict = int(facts.first_conflict[neg])
    action, contrast = corrective_action(c.path, c.x, c.y, c.yaw, c.v, neg, pos,
                                         None if conflict < 0 else conflict)
    return Pair(neg, pos, facts, str(action.longitudinal), str(action.lateral), contrast)
