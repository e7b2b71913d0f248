"""Time to collision: hand-computed cases, brute force with shapely, invariance."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cfpair.geometry.collision import BoxSeq
from cfpair.geometry.ttc import NAVSIM_TTC_OFFSETS, constant_velocity_ttc, projected_ego_hits
from cfpair.geometry.workload import make_workload
from tests.conftest import box_polygons, move_seq


def test_constant_velocity_ttc_head_on():
    # ego 4 x 2 at x=0 moving +x at 10 m/s; agent 4 x 2 at x=30 moving -x at 5 m/s
    # gap between bumpers 26 m, closing 15 m/s -> TTC = 26 / 15 s
    t = np.arange(3) * 0.1
    ego = BoxSeq((10 * t)[None], np.zeros((1, 3)), np.zeros((1, 3)), 4.0, 2.0)
    agents = BoxSeq((30 - 5 * t)[None], np.zeros((1, 3)), np.full((1, 3), np.pi),
                    np.array([4.0]), np.array([2.0]))
    ttc, agent = constant_velocity_ttc(ego, 10.0, 0.0, agents, np.full((1, 3), -5.0),
                                       np.zeros((1, 3)), horizon=5.0)
    np.testing.assert_allclose(ttc[0], (26 - 15 * t) / 15, atol=1e-9)
    assert agent.tolist() == [[0, 0, 0]]
    # a 1.5 s horizon sees nothing
    ttc, agent = constant_velocity_ttc(ego, 10.0, 0.0, agents, np.full((1, 3), -5.0),
                                       np.zeros((1, 3)), horizon=1.5)
    assert np.all(np.isinf(ttc)) and np.all(agent == -1)


def test_constant_velocity_ttc_lateral_miss_and_overlap():
    ego = BoxSeq(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), 4.0, 2.0)
    # parallel, 2.5 m to the left, same speed: never touches
    agents = BoxSeq(np.array([[10.0], [1.0]]), np.array([[2.5], [0.5]]), np.zeros((2, 1)),
                    np.array([4.0, 4.0]), np.array([2.0, 2.0]))
    ttc, agent = constant_velocity_ttc(ego, 10.0, 0.0, agents, np.array([[10.0], [0.0]]),
                                       np.zeros((2, 1)))
    # the second agent already overlaps -> TTC 0 with agent 1
    assert ttc[0, 0] == 0.0 and agent[0, 0] == 1


def brute_ttc(ego, evx, evy, agents, avx, avy, horizon, sub=3000):
    """Sampled reference: earliest sampled time at which the boxes overlap."""
    k, n_t = np.shape(ego.x)
    n = np.shape(agents.x)[0]
    taus = np.linspace(0, horizon, sub + 1)
    out = np.full((k, n_t), np.inf)
    for kk in range(k):
        for t in range(n_t):
            pe = box_polygons(ego.x[kk, t] + evx[kk, t] * taus, ego.y[kk, t] + evy[kk, t] * taus,
                              ego.yaw[kk, t], ego.length, ego.width)
            for j in range(n):
                pa = box_polygons(agents.x[j, t] + avx[j, t] * taus,
                                  agents.y[j, t] + avy[j, t] * taus, agents.yaw[j, t],
                                  agents.length[j], agents.width[j])
                hit = np.flatnonzero(shapely.intersects(pe, pa))
                if hit.size:
                    out[kk, t] = min(out[kk, t], taus[hit[0]])
    return out


def test_constant_velocity_ttc_matches_sampling():
    w = make_workload(k=6, n=6, t=5, seed=3)
    rng = np.random.default_rng(0)
    evx = rng.uniform(0, 20, (6, 5))
    evy = rng.uniform(-2, 2, (6, 5))
    avx = rng.uniform(-15, 15, (6, 5))
    avy = rng.uniform(-5, 5, (6, 5))
    ours, _ = constant_velocity_ttc(w.ego, evx, evy, w.agents, avx, avy, horizon=3.0)
    ref = brute_ttc(w.ego, evx, evy, w.agents, avx, avy, 3.0)
    assert np.array_equal(np.isfinite(ours), np.isfinite(ref))
    fin = np.isfinite(ours)
    assert fin.sum() > 0
    np.testing.assert_allclose(ours[fin], ref[fin], atol=3.0 / 3000 + 1e-9)


def test_projected_hits_match_loop():
    w = make_workload(k=24, n=10, t=41, seed=4)
    speed = np.random.default_rng(1).uniform(0, 25, (24, 41))
    hits = projected_ego_hits(w.ego, speed, w.agents, dt=0.1)
    got = set(zip(hits.k.tolist(), hits.t.tolist(), hits.j.tolist(), hits.n.tolist(),
                  strict=True))
    ref = set()
    ex, ey, eyaw = (np.asarray(a) for a in w.ego[:3])
    for j, off in enumerate(NAVSIM_TTC_OFFSETS):
        for t in range(41 - off):
            d = speed[:, t] * off * 0.1
            pe = box_polygons(ex[:, t] + d * np.cos(eyaw[:, t]), ey[:, t] + d * np.sin(eyaw[:, t]),
                              eyaw[:, t], w.ego.length, w.ego.width)
            pa = box_polygons(w.agents.x[:, t + off], w.agents.y[:, t + off],
                              w.agents.yaw[:, t + off], w.agents.length, w.agents.width)
            kk, nn = np.nonzero(shapely.intersects(pe[:, None], pa[None, :]))
            ref |= {(int(a), t, j, int(b)) for a, b in zip(kk, nn, strict=True)}
    assert got == ref
    assert len(ref) > 10
    # sorted by (k, t, j, n)
    keys = list(zip(hits.k, hits.t, hits.j, hits.n, strict=True))
    assert keys == sorted(keys)


@pytest.mark.parametrize("ang,tx,ty", [(0.8, 4.0e5, -3.0e6), (-np.pi / 2, 1.0, 2.0)])
def test_ttc_invariant_under_rigid_motion(ang, tx, ty):
    w = make_workload(k=16, n=8, t=11, seed=5)
    rng = np.random.default_rng(2)
    evx, evy = rng.uniform(0, 20, (16, 11)), rng.uniform(-2, 2, (16, 11))
    avx, avy = rng.uniform(-15, 15, (8, 11)), rng.uniform(-5, 5, (8, 11))
    base = constant_velocity_ttc(w.ego, evx, evy, w.agents, avx, avy)
    c, s = np.cos(ang), np.sin(ang)
    moved = constant_velocity_ttc(move_seq(w.ego, ang, tx, ty), c * evx - s * evy,
                                  s * evx + c * evy, move_seq(w.agents, ang, tx, ty),
                                  c * avx - s * avy, s * avx + c * avy)
    fin = np.isfinite(base[0])
    assert np.array_equal(fin, np.isfinite(moved[0]))
    np.testing.assert_allclose(moved[0][fin], base[0][fin], atol=1e-6)
