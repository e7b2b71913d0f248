"""Synthetic source: deterministic, split-disjoint, and it makes the scenes it promises."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from cfpair.errors import ConfigError
from cfpair.geometry.drivable import DrivableArea
from cfpair.geometry.kinematics import check_feasibility
from cfpair.sources.base import get_source, load_all
from cfpair.sources.synthetic import FAMILIES, SyntheticSource


def test_registry_and_determinism():
    src = get_source("synthetic", n_scenes=30, seed=3)
    refs = src.list("all")
    assert len(refs) == 30
    a = [src.load(r) for r in refs]
    b = [SyntheticSource(n_scenes=30, seed=3).load(r) for r in reversed(refs)][::-1]
    for x, y in zip(a, b, strict=True):
        assert x.scenario_id == y.scenario_id
        np.testing.assert_array_equal(x.ego.x, y.ego.x)
        np.testing.assert_array_equal(x.agents.y, y.agents.y)
    other = SyntheticSource(n_scenes=30, seed=4).load(refs[0])
    assert not np.array_equal(other.ego.x, a[0].ego.x)


def test_splits_partition_and_families_cycle():
    src = SyntheticSource(n_scenes=200, seed=0)
    ids = {s: {r.scenario_id for r in src.list(s)} for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"])
    assert sum(len(v) for v in ids.values()) == 200
    assert 130 < len(ids["train"]) < 190
    fams = {src.load(r).meta["family"] for r in src.list("all")[:6]}
    assert fams == set(FAMILIES)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_risky_share_and_intent(share):
    src = SyntheticSource(n_scenes=60, seed=1, risky_share=share)
    scenes = [s for s in load_all(src, "all")]
    risky = np.array([s.meta["logged_future_risky"] for s in scenes])
    met = np.array([s.meta["intent_met"] for s in scenes])
    gaps = np.array([s.meta["min_future_gap_m"] for s in scenes])
    assert abs(risky.mean() - share) <= 0.2
    assert met.all()
    assert np.all(gaps[risky] <= 0.3) and np.all(gaps[~risky] >= 1.0)


def test_scenes_are_valid_and_ego_stays_on_the_road():
    src = SyntheticSource(n_scenes=24, seed=2)
    for s in load_all(src, "all"):
        s.validate()
        assert s.dt == pytest.approx(0.1) and s.n_steps == 71 and s.anchors == (20,)
        area = DrivableArea([shapely.Polygon(p) for p in s.map.drivable])
        cx, cy = s.ego_box_centre()
        assert area.boxes_inside(cx, cy, s.ego.yaw, s.ego_length, s.ego_width).all()
        assert s.map.on_route.any() and len(s.map.centerlines) >= 2


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown synthetic families"):
        SyntheticSource(families=("lead_brake", "meteor"))
    with pytest.raises(ConfigError, match="risky_share"):
        SyntheticSource(risky_share=1.5)
    with pytest.raises(ConfigError, match="unknown split"):
        SyntheticSource().list("holdout")
    with pytest.raises(ConfigError, match="unknown source"):
        get_source("waymo")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_expert_is_kinematically_feasible(family):
    """The logged ego of every family obeys the kinematic bicycle within the vehicle limits,
    side-slip included (the rear axle moves along its heading), risky and safe scenes alike."""
    src = SyntheticSource(n_scenes=16, seed=11, families=(family,), risky_share=0.5)
    scenes = [src.generate(i) for i in range(16)]
    assert {s.meta["logged_future_risky"] for s in scenes} == {True, False}
    for s in scenes:
        f = check_feasibility(s.ego.x, s.ego.y, s.ego.yaw, s.dt)
        assert f.ok, (s.scenario_id, f)
        assert float(f.max_abs_slip) < np.radians(0.5), s.scenario_id
    if family in ("unprotected_left", "merge"):   # the families that turn do turn
        assert max(np.ptp(np.unwrap(s.ego.yaw)) for s in scenes) > 0.1
