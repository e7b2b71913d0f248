"""Boxes: hand-computed cases, exact agreement with shapely, invariances, properties."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from cfpair.geometry.boxes import box_corners, box_distance, boxes_overlap
from tests.conftest import box_polygons, move_box, random_boxes

# (box1, box2, overlap, distance) computed by hand
HAND = [
    ((0, 0, 0, 4, 2), (3, 0, 0, 2, 2), True, 0.0),       # overlap by 1 m along x
    ((0, 0, 0, 4, 2), (4, 0, 0, 4, 2), True, 0.0),       # edges touch exactly
    ((0, 0, 0, 4, 2), (5, 0, 0, 4, 2), False, 1.0),      # 1 m gap along x
    ((0, 0, 0, 4, 2), (0, 3, 0, 4, 2), False, 1.0),      # 1 m gap along y
    ((0, 0, 0, 4, 2), (5, 4, 0, 4, 2), False, np.hypot(1, 2)),  # corner to corner
    ((0, 0, 0, 10, 10), (0, 0, 0.3, 2, 1), True, 0.0),   # nested
    ((0, 0, np.pi / 2, 4, 2), (0, 3, 0, 2, 2), True, 0.0),  # rotated: spans y in [-2, 2]
    ((0, 0, np.pi / 4, 2, 2), (3, 0, 0, 2, 2), False, 2 - np.sqrt(2)),  # diamond tip to edge
]


def test_corner_order_and_values():
    c = box_corners(1.0, 2.0, 0.0, 4.0, 2.0)
    np.testing.assert_allclose(c, [[3, 3], [-1, 3], [-1, 1], [3, 1]])
    c = box_corners(0.0, 0.0, np.pi / 2, 4.0, 2.0)
    np.testing.assert_allclose(c, [[-1, 2], [-1, -2], [1, -2], [1, 2]], atol=1e-12)


@pytest.mark.parametrize("b1,b2,overlap,dist", HAND)
def test_hand_computed(b1, b2, overlap, dist):
    assert bool(boxes_overlap(b1, b2)) is overlap
    assert bool(boxes_overlap(b2, b1)) is overlap
    assert float(box_distance(b1, b2)) == pytest.approx(dist, abs=1e-12)


def test_diamond_tip_touching_edge():
    # square of half-diagonal 2 rotated 45 deg: its right tip is at x = 2, the other box's
    # left edge at x = 2 -> they touch (within rounding): overlap counts touching
    b1 = (0.0, 0.0, np.pi / 4, 2 * np.sqrt(2), 2 * np.sqrt(2))
    assert bool(boxes_overlap(b1, (3.0, 0.0, 0.0, 2.0, 2.0)))
    assert not bool(boxes_overlap(b1, (3.0 + 1e-6, 0.0, 0.0, 2.0, 2.0)))


def _shapely_agrees(b1, b2):
    p1, p2 = box_polygons(*b1), box_polygons(*b2)
    ours = boxes_overlap(b1, b2)
    theirs = shapely.intersects(p1, p2)
    return ours, theirs, p1, p2


def test_agrees_with_shapely_random_pairs():
    rng = np.random.default_rng(0)
    b1, b2 = random_boxes(rng, 12000, spread=3.0), random_boxes(rng, 12000, spread=3.0)
    ours, theirs, p1, p2 = _shapely_agrees(b1, b2)
    # exclude only pairs whose separation is below float rounding (undecidable without exact
    # arithmetic); there are almost none in random data
    gap = shapely.distance(p1, p2)
    decided = (gap > 1e-7) | theirs
    assert decided.sum() > 11990
    assert np.array_equal(ours[decided], theirs[decided])
    assert 0.2 < theirs.mean() < 0.8  # the sample holds both answers in bulk


def test_agrees_with_shapely_touching_nested_and_near_miss():
    rng = np.random.default_rng(1)
    n = 4000
    # touching: axis-aligned boxes with dyadic sizes placed edge to edge (exact in floats)
    hl1 = rng.integers(1, 16, n) / 4
    hw1 = rng.integers(1, 16, n) / 4
    hl2 = rng.integers(1, 16, n) / 4
    hw2 = rng.integers(1, 16, n) / 4
    x1 = rng.integers(-40, 40, n) / 8
    y1 = rng.integers(-40, 40, n) / 8
    side = rng.integers(0, 4, n)
    slide = rng.integers(-8, 8, n) / 8
    dx = np.select([side == 0, side == 1, side == 2, side == 3],
                   [hl1 + hl2, -(hl1 + hl2), slide, slide])
    dy = np.select([side == 0, side == 1, side == 2, side == 3],
                   [slide, slide, hw1 + hw2, -(hw1 + hw2)])
    yaw = np.zeros(n)
    t1 = (x1, y1, yaw, 2 * hl1, 2 * hw1)
    t2 = (x1 + dx, y1 + dy, yaw, 2 * hl2, 2 * hw2)
    ours, theirs, _, _ = _shapely_agrees(t1, t2)
    assert np.array_equal(ours, theirs)
    # corner-only contact when slide puts them diagonally: still both say True or both False
    # nested: a small box strictly inside a large one, any rotation
    big = (np.zeros(n), np.zeros(n), rng.uniform(-np.pi, np.pi, n), np.full(n, 20.0),
           np.full(n, 20.0))
    small = (rng.uniform(-3, 3, n), rng.uniform(-3, 3, n), rng.uniform(-np.pi, np.pi, n),
             rng.uniform(0.5, 4, n), rng.uniform(0.5, 4, n))
    ours, theirs, _, _ = _shapely_agrees(big, small)
    assert ours.all() and theirs.all()
    # near miss: move box 2 away from a touching placement by 1e-6 .. 1e-3 m along the normal
    gap = 10 ** rng.uniform(-6, -3, n)
    push_x = np.select([side == 0, side == 1], [gap, -gap], 0.0)
    push_y = np.select([side == 2, side == 3], [gap, -gap], 0.0)
    t3 = (x1 + dx + push_x, y1 + dy + push_y, yaw, 2 * hl2, 2 * hw2)
    ours, theirs, _, _ = _shapely_agrees(t1, t3)
    assert np.array_equal(ours, theirs)
    assert not theirs.any()


def test_distance_agrees_with_shapely():
    rng = np.random.default_rng(2)
    b1, b2 = random_boxes(rng, 5000, spread=12.0), random_boxes(rng, 5000, spread=12.0)
    ours = box_distance(b1, b2)
    theirs = shapely.distance(box_polygons(*b1), box_polygons(*b2))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_invariant_under_rigid_motion():
    rng = np.random.default_rng(3)
    b1, b2 = random_boxes(rng, 3000), random_boxes(rng, 3000)
    base_o, base_d = boxes_overlap(b1, b2), box_distance(b1, b2)
    for ang, tx, ty in [(0.7, 1000.0, -250.0), (-2.9, 5.0e5, 4.1e6), (np.pi, 0.0, 0.0)]:
        m1, m2 = move_box(b1, ang, tx, ty), move_box(b2, ang, tx, ty)
        clear = (base_d > 1e-6) | base_o
        assert np.array_equal(boxes_overlap(m1, m2)[clear], base_o[clear])
        np.testing.assert_allclose(box_distance(m1, m2), base_d, atol=1e-6)


def test_broadcasting_leading_dims():
    rng = np.random.default_rng(4)
    x = rng.uniform(-5, 5, (3, 4, 5))
    out = boxes_overlap((x, x.T.T, 0.0, 2.0, 1.0), (0.0, 0.0, 0.3, 3.0, 1.5))
    assert out.shape == (3, 4, 5)
    assert box_corners(x, x, x, 1.0, 1.0).shape == (3, 4, 5, 4, 2)


finite = st.floats(-50, 50, allow_nan=False)
size = st.floats(0.1, 10)
angle = st.floats(-10, 10, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(finite, finite, angle, size, size, finite, finite, angle, size, size)
def test_symmetry_and_consistency(x1, y1, a1, l1, w1, x2, y2, a2, l2, w2):
    b1, b2 = (x1, y1, a1, l1, w1), (x2, y2, a2, l2, w2)
    o12, o21 = bool(boxes_overlap(b1, b2)), bool(boxes_overlap(b2, b1))
    assert o12 == o21
    d12, d21 = float(box_distance(b1, b2)), float(box_distance(b2, b1))
    assert d12 == pytest.approx(d21, abs=1e-9)
    assert d12 >= 0
    if o12:
        assert d12 == 0
    else:
        assert d12 > -1e-9
    # a box always overlaps itself; the distance to itself is zero
    assert bool(boxes_overlap(b1, b1)) and float(box_distance(b1, b1)) == 0
