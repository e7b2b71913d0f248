"""cfpair's batched NAVSIM-view scoring agrees with a per-trajectory scorer written from the
spec with shapely polygons (benchmarks/scoring_reference.py, no code shared), trajectory by
trajectory, on synthetic scenes with generate's candidates."""

from __future__ import annotations

import numpy as np
from scoring import (  # benchmarks/ (on sys.path via conftest)
    agreement,
    reference_scene,
    score_batched,
    score_per_trajectory,
    synthetic_scenes,
)


def test_batched_and_per_trajectory_navsim_scores_agree() -> None:
    scenes = synthetic_scenes(6, 256, seed=3)
    ours, peer = [], []
    for ctx, poses in scenes:
        # the expert (EP reference) plus a spread of the candidates, risky ones included
        sub = poses[np.r_[0, 1:256:9]]
        ours.append(score_batched(ctx, sub))
        peer.append(score_per_trajectory(ctx, sub, reference_scene(ctx)))
    a = {k: np.concatenate([o[k] for o in ours]) for k in ours[0]}
    b = {k: np.concatenate([o[k] for o in peer]) for k in ours[0]}
    assert a["nc"].size >= 100 and (a["nc"] < 1).any() and (a["ttc"] < 1).any()
    assert agreement(a, b) == {"nc": 1.0, "dac": 1.0, "ttc": 1.0, "comfort": 1.0, "pdms": 1.0}
    np.testing.assert_allclose(a["ep"], b["ep"], atol=1e-9)
