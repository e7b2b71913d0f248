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
from cfpair.records.schema import Contrast
from cfpair.scoring.boxes import agent_boxes, ego_boxes
from cfpair.scoring.context import EvalContext
from cfpair.scoring.facts import FactArrays, LazyFacts
from cfpair.types import F64

MARGIN_M = 0.5        # a positive keeps at least this far from every agent box

#: what pairing reads: the eager facts or the lazy ones of ``score_trajectories``
Facts = FactArrays | LazyFacts


@dataclass(frozen=True)
class Pair:
    """The outcome for one anchor: negative and positive candidate indices, the facts of every
    candidate and the corrective meta-action."""

    negative: int
    positive: int
    facts: Facts
    longitudinal: str
    lateral: str
    contrast: Contrast | None = None


def safe_mask(f: Facts, feasible: np.ndarray, need_comfort: bool = True) -> np.ndarray:
    """Feasible candidates that are safe (no contact, NC = DAC = TTC = 1) in both views (and
    comfortable in both), over all K (scores the exact view of every candidate)."""
    ok = feasible & f.safe
    comfy = (f.scores.comfort == 1) & (f.exact_scores.comfort == 1)
    return ok & comfy if need_comfort else ok


def margin_mask(ctx: EvalContext, c: Candidates, rows: np.ndarray | None = None
                ) -> np.ndarray:
    """True where the candidate keeps ``MARGIN_M`` from every agent box at every step: (K,)
    over all candidates, or (len(rows),) for ``rows`` only (each row's answer is its own)."""
    n = c.k if rows is None else len(rows)
    grown, _, _ = agent_boxes(ctx, MARGIN_M)
    if grown.x.shape[0] == 0 or n == 0:
        return np.ones(n, bool)
    x, y, yaw = (c.x, c.y, c.yaw) if rows is None else (c.x[rows], c.y[rows], c.yaw[rows])
    return ~collisions(ego_boxes(ctx, x, y, yaw), grown).any()


def _ade(c: Candidates, ref: int) -> F64:
    return np.mean(np.hypot(c.x - c.x[ref], c.y - c.y[ref]), axis=1)


#: the exact view of positive candidates is scored in this many rows at a time, cheapest first
EXACT_BATCHES = (8, 32)


def _batches(rows: np.ndarray) -> list[np.ndarray]:
    cuts = [b for b in np.cumsum(EXACT_BATCHES) if b < rows.size]
    return [r for r in np.split(rows, cuts) if r.size]


def _comfy_safe(f: Facts, rows: np.ndarray, also: tuple[int, ...] = ()) -> np.ndarray:
    """(len(rows),) safe in the exact view and comfortable in both (NAVSIM-view safety is the
    caller's); the exact view of the rows ``also`` is scored in the same batch."""
    ex = f.exact_on(np.concatenate([rows, np.asarray(also, np.int64)]))
    n = rows.size
    return ex.safe[:n] & (ex.comfort[:n] == 1) & (f.nav_on(rows).comfort == 1)


def choose(c: Candidates, f: Facts, margin_ok: np.ndarray, score_weight_m: float = 2.0
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

    The exact view is asked for (``f.exact_on``) only where it can decide: candidates already
    safe in NAVSIM's view, the better-scoring ones first in order of cost (the first that is
    also safe and comfortable in the exact view is the answer), the others only when none is.
    The outcome is the one of the same rule applied to all K at once.
    """
    s = f.nav_risk                 # risk and safety of all K; PDMS and comfort where needed
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
    nav_safe = c.feasible & s.safe & margin_ok          # NAVSIM's view and the margin
    cand = np.flatnonzero(nav_safe)
    got = f.nav_on(np.concatenate([[neg], cand]))
    pdms_neg = got.pdms[0]
    pdms = np.full(c.k, -np.inf)
    pdms[cand] = got.pdms[1:]
    better = nav_safe & (pdms > pdms_neg)
    cost = np.where(better, _ade(c, neg) + score_weight_m * (1 - pdms), np.inf)
    first = np.flatnonzero(better)
    first = first[np.argsort(cost[first], kind="stable")]   # = argmin's order (ties: index)
    for i, rows in enumerate(_batches(first)):
        ok = _comfy_safe(f, rows, () if i else (neg,))   # the record stores neg's exact view
        if ok.any():
            return neg, int(rows[np.argmax(ok)])
    # no better candidate is comfortably safe in both views: the rule over all candidates
    rest = np.flatnonzero(nav_safe & ~better)
    if rest.size and _comfy_safe(f, rest).any():
        raise SceneRejected("no_better_positive",
                            f"no safe candidate scores above the negative's PDMS "
                            f"{pdms_neg:.3f} in NAVSIM's view")
    # comfort waived: an emergency manoeuvre may be the only way out
    rows = cand
    safe = np.zeros(c.k, bool)
    if rows.size:
        safe[rows] = f.exact_on(rows).safe
    if not safe.any():
        raise SceneRejected("no_safe_candidate",
                            f"none of {c.k} candidates is feasible, collision-free with a "
                            f"{MARGIN_M} m margin, TTC- and drivable-compliant in both the "
                            "exact and NAVSIM's view")
    better &= safe
    if not better.any():
        raise SceneRejected("no_better_positive",
                            f"no safe candidate scores above the negative's PDMS "
                            f"{pdms_neg:.3f} in NAVSIM's view")
    return neg, int(np.argmin(np.where(better, cost, np.inf)))


def meta_action(c: Candidates, neg: int, pos: int, conflict_step: int | None
                ) -> tuple[str, str]:
    """(longitudinal, lateral) of the positive's own motion; see ``meta_action.py``."""
    ma, _ = corrective_action(c.path, c.x, c.y, c.yaw, c.v, neg, pos, conflict_step)
    return str(ma.longitudinal), str(ma.lateral)


def make_pair(ctx: EvalContext, c: Candidates, facts: Facts) -> Pair:
    """Choose among the scored candidates (``facts`` of every one, both views); raises
    SceneRejected with a reason when there is no valid pair."""
    cand = np.flatnonzero(c.feasible & facts.nav_risk.safe)   # the only rows the margin decides
    margin_ok = np.zeros(c.k, bool)
    margin_ok[cand] = margin_mask(ctx, c, cand)
    neg, pos = choose(c, facts, margin_ok)
    facts.prepare([0, neg, pos])                 # the record's rows, measured in one batch
    conflict = int(facts.first_conflict[neg])
    action, contrast = corrective_action(c.path, c.x, c.y, c.yaw, c.v, neg, pos,
                                         None if conflict < 0 else conflict)
    return Pair(neg, pos, facts, str(action.longitudinal), str(action.lateral), contrast)
