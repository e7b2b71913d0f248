"""Batched collision engine: brute force with shapely, the CommonRoad checker, swept mode."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cfpair.geometry.boxes import boxes_overlap
from cfpair.geometry.collision import BoxSeq, collisions, first_collision
from cfpair.geometry.workload import make_workload
from tests.conftest import box_polygons, move_seq


def brute_force(ego: BoxSeq, agents: BoxSeq) -> np.ndarray:
    """(K, N, T) overlap by shapely on every pair (the independent reference)."""
    ex, ey, eyaw = (np.asarray(a)[:, None, :] for a in (ego.x, ego.y, ego.yaw))
    pe = box_polygons(ex, ey, eyaw, np.asarray(ego.length)[..., None, None],
                      np.asarray(ego.width)[..., None, None])
    ax, ay, ayaw = (np.asarray(a)[None] for a in (agents.x, agents.y, agents.yaw))
    pa = box_polygons(ax, ay, ayaw, np.asarray(agents.length)[None, :, None],
                      np.asarray(agents.width)[None, :, None])
    hit = shapely.intersects(pe, pa)
    if agents.valid is not None:
        hit &= np.asarray(agents.valid)[None]
    if ego.valid is not None:
        hit &= np.asarray(ego.valid)[:, None, :]
    return hit


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk", [1, 5, 8, 64])
def test_matches_shapely_brute_force(seed, chunk):
    w = make_workload(k=64, n=16, t=41, seed=seed)
    ref = brute_force(w.ego, w.agents)
    c = collisions(w.ego, w.agents, chunk=chunk)
    got = np.zeros_like(ref)
    got[c.k, c.n, c.step] = True
    assert np.array_equal(got, ref)
    step, agent, _ = c.first()
    any_hit = ref.any(axis=(1, 2))
    assert np.array_equal(step >= 0, any_hit)
    for k in np.flatnonzero(any_hit):
        t_first = np.flatnonzero(ref[k].any(axis=0))[0]
        assert step[k] == t_first
        assert agent[k] == np.flatnonzero(ref[k, :, t_first])[0]


def test_hand_computed_first_collision():
    t = np.arange(11) * 0.5
    # ego 4 x 2 driving +x at 10 m/s from x = 0; agent 4 x 2 standing at x = 30
    ego = BoxSeq(10.0 * t[None], np.zeros((1, 11)), np.zeros((1, 11)), 4.0, 2.0)
    agents = BoxSeq(np.full((2, 11), [[30.0], [-50.0]]), np.zeros((2, 11)), np.zeros((2, 11)),
                    np.array([4.0, 4.0]), np.array([2.0, 2.0]))
    step, agent, time = first_collision(ego, agents)
    # front bumper reaches 28 m when the centre is at 26 m: t = 2.6 s -> first step 2.0 s? no:
    # at step 5 (t=2.5 s) the centre is at 25, front at 27 < 28; at step 6 (3.0 s) front at 32
    assert step.tolist() == [6] and agent.tolist() == [0] and time.tolist() == [6.0]


def test_invalid_steps_never_collide():
    w = make_workload(k=32, n=8, t=21, seed=5)
    valid = np.random.default_rng(0).random((8, 21)) > 0.3
    agents = w.agents._replace(valid=valid)
    ref = brute_force(w.ego, agents)
    c = collisions(w.ego, agents)
    got = np.zeros_like(ref)
    got[c.k, c.n, c.step] = True
    assert np.array_equal(got, ref)


def test_any_leading_shape():
    w = make_workload(k=24, n=8, t=21, seed=6)
    flat = collisions(w.ego, w.agents).first()[0]
    ego4 = BoxSeq(*(np.asarray(a).reshape(2, 3, 4, 21) for a in w.ego[:3]), w.ego.length,
                  w.ego.width)
    shaped = collisions(ego4, w.agents).first()[0]
    assert shaped.shape == (2, 3, 4)
    assert np.array_equal(shaped.reshape(-1), flat)


def test_invariant_under_rigid_motion():
    w = make_workload(k=64, n=16, t=41, seed=7)
    base = collisions(w.ego, w.agents)
    for ang, tx, ty in [(1.1, 3.0e5, 5.5e6), (-2.0, -40.0, 12.0)]:
        moved = collisions(move_seq(w.ego, ang, tx, ty), move_seq(w.agents, ang, tx, ty))
        assert np.array_equal(moved.k, base.k) and np.array_equal(moved.n, base.n)
        assert np.array_equal(moved.step, base.step)


def test_matches_commonroad_checker():
    pycrcc = pytest.importorskip("commonroad_dc.pycrcc")
    for seed in range(4):
        w = make_workload(k=48, n=12, t=31, seed=seed)
        ours = collisions(w.ego, w.agents).any()
        ex, ey, eyaw = (np.asarray(a) for a in w.ego[:3])
        ax, ay, ayaw = (np.asarray(a) for a in w.agents[:3])
        checker = pycrcc.CollisionChecker()
        for n in range(ax.shape[0]):
            tv = pycrcc.TimeVariantCollisionObject(0)
            for t in range(ax.shape[1]):
                tv.append_obstacle(pycrcc.RectOBB(w.agents.length[n] / 2, w.agents.width[n] / 2,
                                                  ayaw[n, t], ax[n, t], ay[n, t]))
            checker.add_collision_object(tv)
        theirs = np.zeros_like(ours)
        for k in range(ex.shape[0]):
            tv = pycrcc.TimeVariantCollisionObject(0)
            for t in range(ex.shape[1]):
                tv.append_obstacle(pycrcc.RectOBB(w.ego.length / 2, w.ego.width / 2,
                                                  eyaw[k, t], ex[k, t], ey[k, t]))
            theirs[k] = checker.collide(tv)
        assert np.array_equal(ours, theirs), seed
        assert 0 < ours.sum() < ours.size


def test_swept_catches_tunnelling():
    # two 4.5 x 1.8 cars closing at 30 m/s (15 m/s each), 0.5 s steps: the discrete poses
    # jump from 6 m apart (centre gap) to -9 m (already passed) without ever overlapping
    t = np.arange(6) * 0.5
    ego = BoxSeq((15.0 * t)[None], np.zeros((1, 6)), np.zeros((1, 6)), 4.5, 1.8)
    agent_x = 51.0 - 15.0 * t
    agents = BoxSeq(agent_x[None], np.zeros((1, 6)), np.full((1, 6), np.pi),
                    np.array([4.5]), np.array([1.8]))
    gaps = agent_x - 15.0 * t
    assert not np.any(np.abs(gaps) <= 4.5)  # no discrete pose overlaps
    assert first_collision(ego, agents)[0].tolist() == [-1]
    step, agent, time = first_collision(ego, agents, swept=True)
    # contact when the centre gap shrinks to 4.5 m: 51 - 30 t = 4.5 -> t = 1.55 s = step 3.1
    assert step.tolist() == [3] and agent.tolist() == [0]
    assert time[0] == pytest.approx(3.1, abs=1e-9)


def test_swept_superset_and_exact_for_translation():
    rng = np.random.default_rng(9)
    k, n, t = 40, 10, 12
    # translation only (constant yaw): swept must equal a very fine discrete sampling
    ex = np.cumsum(rng.uniform(0, 6, (k, t)), axis=1)
    ey = np.cumsum(rng.uniform(-1, 1, (k, t)), axis=1)
    eyaw = np.broadcast_to(rng.uniform(-0.3, 0.3, (k, 1)), (k, t))
    ax = rng.uniform(0, 60, (n, 1)) + np.cumsum(rng.uniform(-4, 4, (n, t)), axis=1)
    ay = rng.uniform(-8, 8, (n, 1)) + np.cumsum(rng.uniform(-2, 2, (n, t)), axis=1)
    ayaw = np.broadcast_to(rng.uniform(-np.pi, np.pi, (n, 1)), (n, t))
    ego = BoxSeq(ex, ey, eyaw, 4.5, 1.8)
    agents = BoxSeq(ax, ay, ayaw, rng.uniform(1, 5, n), rng.uniform(0.5, 2, n))
    swept = collisions(ego, agents, swept=True)
    disc = collisions(ego, agents)
    assert set(zip(disc.k.tolist(), disc.n.tolist(), strict=True)) <= set(
        zip(swept.k.tolist(), swept.n.tolist(), strict=True))
    # fine reference: 400 sub-steps per interval
    sub = 400
    tau = np.arange(sub) / sub
    fx = (ex[:, :-1, None] + (ex[:, 1:] - ex[:, :-1])[..., None] * tau).reshape(k, -1)
    fy = (ey[:, :-1, None] + (ey[:, 1:] - ey[:, :-1])[..., None] * tau).reshape(k, -1)
    gx = (ax[:, :-1, None] + (ax[:, 1:] - ax[:, :-1])[..., None] * tau).reshape(n, -1)
    gy = (ay[:, :-1, None] + (ay[:, 1:] - ay[:, :-1])[..., None] * tau).reshape(n, -1)
    fine = collisions(BoxSeq(fx, fy, np.repeat(eyaw[:, :-1], sub, 1), 4.5, 1.8),
                      BoxSeq(gx, gy, np.repeat(ayaw[:, :-1], sub, 1), agents.length,
                             agents.width))
    fine_first = fine.first()[2] / sub
    swept_first = swept.first()[2]
    hit = np.isfinite(swept_first)
    # every swept contact is real (the fine sampling may miss grazing contacts shorter than
    # a sub-step, so compare the times where both see one)
    both = hit & np.isfinite(fine_first)
    assert both.sum() >= 0.9 * hit.sum()
    np.testing.assert_allclose(swept_first[both], fine_first[both], atol=1.0 / sub + 1e-9)
    assert not np.any(np.isfinite(fine_first) & ~hit)


def test_swept_rotation_is_conservative():
    rng = np.random.default_rng(10)
    k, n, t = 30, 8, 10
    ex = np.cumsum(rng.uniform(0, 5, (k, t)), axis=1)
    ey = np.zeros((k, t))
    eyaw = np.cumsum(rng.uniform(-0.5, 0.5, (k, t)), axis=1)
    # parked agents, so the dense reference below needs no agent interpolation
    ax = np.broadcast_to(rng.uniform(0, 40, (n, 1)), (n, t))
    ay = np.broadcast_to(rng.uniform(-6, 6, (n, 1)), (n, t))
    ayaw = np.broadcast_to(rng.uniform(-np.pi, np.pi, (n, 1)), (n, t))
    ego = BoxSeq(ex, ey, eyaw, 4.5, 1.8)
    agents = BoxSeq(ax, ay, ayaw, np.full(n, 4.0), np.full(n, 1.8))
    swept = collisions(ego, agents, swept=True).any()
    found = 0
    # dense sampling with linearly interpolated yaw: every contact found there is found swept
    sub = 50
    tau = np.arange(sub + 1) / sub
    for kk in range(k):
        for i in range(t - 1):
            x = ex[kk, i] + (ex[kk, i + 1] - ex[kk, i]) * tau
            yaw = eyaw[kk, i] + (eyaw[kk, i + 1] - eyaw[kk, i]) * tau
            hit = boxes_overlap((x[:, None], 0.0, yaw[:, None], 4.5, 1.8),
                                (ax[:, i][None], ay[:, i][None], ayaw[:, i][None], 4.0, 1.8))
            if hit.any():
                found += 1
                assert swept[kk]
    assert found > 0
