"""generate's lazy scoring path (``LazyFacts``) against the full computation of every fact of
every candidate: the same pair (or reject) and, for every row it computed, the same values bit
for bit."""

from __future__ import annotations

import numpy as np
import pytest

from cfpair.counterfactual.candidates import build_candidates
from cfpair.counterfactual.pairing import (
    _ade,
    choose,
    make_pair,
    margin_mask,
    safe_mask,
)
from cfpair.errors import SceneRejected
from cfpair.scoring.context import build_context
from cfpair.scoring.facts import FactArrays, LazyFacts
from cfpair.scoring.pdms import Scores
from cfpair.scoring.views import score_trajectories
from cfpair.sources.synthetic import SyntheticSource


def _rule_over_all_k(c, f: FactArrays, margin_ok):
    """The pairing rule written over all K at once (as before the lazy path), for comparison."""
    s = f.scores
    if s.risky[0]:
        neg = 0
    else:
        hazard = s.risky & c.feasible & (s.collides | (s.ttc == 0))
        pool = hazard if hazard.any() else s.risky & c.feasible
        if not pool.any():
            return "no_risky_candidate"
        neg = int(np.argmin(np.where(pool, _ade(c, 0), np.inf)))
    safe = safe_mask(f, c.feasible) & margin_ok
    if not safe.any():
        safe = safe_mask(f, c.feasible, need_comfort=False) & margin_ok
    if not safe.any():
        return "no_safe_candidate"
    better = safe & (s.pdms > s.pdms[neg])
    if not better.any():
        return "no_better_positive"
    return neg, int(np.argmin(np.where(better, _ade(c, neg) + 2.0 * (1 - s.pdms), np.inf)))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _same_scores(a: Scores, b: Scores) -> bool:
    return all(_same(v, getattr(b, k)) for k, v in vars(a).items())


def _anchors(n: int, seed: int):  # noqa: ANN202
    src = SyntheticSource(n_scenes=n, seed=seed)
    for ref in src.list("all"):
        scn = src.load(ref)
        ctx = build_context(scn, scn.anchors[0])
        yield ctx, build_candidates(ctx, 256, 0)


@pytest.mark.parametrize("seed", [1, 3])
def test_the_lazy_path_pairs_and_measures_as_the_full_one(seed: int) -> None:
    outcomes = set()
    for ctx, c in _anchors(10, seed):
        lazy = score_trajectories(ctx, c.x, c.y, c.yaw, c.v, c.feasible)
        full = score_trajectories(ctx, c.x, c.y, c.yaw, c.v, c.feasible).full()
        assert isinstance(lazy, LazyFacts) and isinstance(full, FactArrays)
        want = _rule_over_all_k(c, full, margin_mask(ctx, c))
        try:
            p = make_pair(ctx, c, lazy)
            got: object = (p.negative, p.positive)
        except SceneRejected as exc:
            got = exc.reason
        assert got == want
        outcomes.add(got if isinstance(got, str) else "pair")
        rows = lazy.reported
        if isinstance(got, tuple):
            assert choose(c, full, margin_mask(ctx, c)) == got   # the eager facts agree
            assert {0, *got} <= set(rows["facts"].tolist())
            assert rows["exact"].size < c.k and rows["nav"].size < c.k   # it did skip work
        assert _same_scores(lazy.exact_on(rows["exact"]), full.exact_scores.select(rows["exact"]))
        assert _same_scores(lazy.nav_on(rows["nav"]), full.scores.select(rows["nav"]))
        for i in rows["facts"]:
            assert lazy.row(ctx, i) == full.row(ctx, i)
            assert lazy.cost_row(i) == full.cost_row(i)
    assert outcomes == {"pair", "no_safe_candidate"}     # both kinds of outcome were checked


def test_any_row_alone_and_any_full_field_equal_the_full_computation() -> None:
    ctx, c = next(_anchors(3, 2))
    lazy = score_trajectories(ctx, c.x, c.y, c.yaw, c.v, c.feasible)
    full = score_trajectories(ctx, c.x, c.y, c.yaw, c.v, c.feasible).full()
    for i in (200, 3, 0, 117):                     # one row at a time, row 0 not first
        assert lazy.row(ctx, i) == full.row(ctx, i)
        assert lazy.cost_row(i) == full.cost_row(i)
    assert _same(lazy.nav_risk.safe, full.scores.safe)
    assert _same(lazy.first_conflict, full.first_conflict)
    # a field outside what pairing reads: the full computation, all K
    for name in ("exact_pdms", "min_ttc_s", "min_distance_m", "safety_score", "pdms"):
        assert _same(getattr(lazy, name), getattr(full, name))
    assert _same_scores(lazy.scores, full.scores)
    assert _same_scores(lazy.exact_scores, full.exact_scores)
