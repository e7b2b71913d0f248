"""Pair records from synthetic scenes (first anchor of each), for label tests and benchmarks."""

from __future__ import annotations

from cfpair.counterfactual.candidates import build_candidates
from cfpair.counterfactual.pairing import make_pair
from cfpair.counterfactual.record import build_record
from cfpair.errors import SceneRejected
from cfpair.labels.models import PairRecord
from cfpair.scoring.context import build_context
from cfpair.scoring.views import score_trajectories
from cfpair.sources.synthetic import SyntheticSource


def synthetic_records(n_scenes: int, seed: int, n_candidates: int,
                      limit: int | None = None) -> list[PairRecord]:
    """Records of the scenes that pair (``no_safe_candidate`` ones are skipped)."""
    src = SyntheticSource(n_scenes=n_scenes, seed=seed)
    out: list[PairRecord] = []
    for ref in src.list("all"):
        scn = src.load(ref)
        try:
            ctx = build_context(scn, scn.anchors[0])
            c = build_candidates(ctx, n_candidates, 0)
            s = score_trajectories(ctx, c.x, c.y, c.yaw, c.v, c.feasible)
            out.append(build_record(scn, ctx, c, make_pair(ctx, c, s), "train", 0, "h"))
        except SceneRejected:
            continue
        if limit is not None and len(out) == limit:
            break
    return out
