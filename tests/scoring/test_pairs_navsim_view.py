"""Every pair of a small default run (the real CLI, 256 candidates) holds in NAVSIM's view: the
positive's 8 poses, re-simulated by NAVSIM's tracker, touch no agent and keep all four corners
strictly inside drivable polygons at every step (NAVSIM's own DAC rule, spec 5.2: corners
only, each may lie in a different polygon; checked with shapely, independently of cfpair's
geometry engine), and the negative scores strictly below the positive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

from cfpair.geometry.boxes import box_corners
from cfpair.labels.models import PairRecord, anchor_index
from cfpair.scoring.navsim_tracker import simulate_poses
from cfpair.scoring.rescore import context_from_record, recompute_facts
from cfpair.scoring.views import initial_state
from cfpair.shards import load_records


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> list[PairRecord]:
    out = tmp_path_factory.mktemp("navsim_view") / "out"
    subprocess.run([sys.executable, "-m", "cfpair", "generate", "--out", str(out),
                    "--source-option", "n_scenes=30", "--workers", "1"], check=True,
                   capture_output=True, timeout=600)
    recs = load_records(Path(out))
    assert len(recs) >= 20
    return recs


def _navsim_polygons(rec: PairRecord, poses: list[list[float]]) -> list[shapely.Polygon]:
    """The ego footprint at NAVSIM's 41 simulated states of these poses."""
    c = rec.context
    st = simulate_poses(np.asarray(poses, np.float64)[None],
                        initial_state(context_from_record(rec)))[0]
    off = c.ego_rear_to_center
    corners = box_corners(st[:, 0] + off * np.cos(st[:, 2]), st[:, 1] + off * np.sin(st[:, 2]),
                          st[:, 2], c.ego_length, c.ego_width)
    return [shapely.Polygon(q) for q in corners]


def test_every_positive_is_safe_in_navsim_view_by_an_independent_check(default_run) -> None:
    for rec in default_run:
        c = rec.context
        k0 = anchor_index(c.t)
        drivable = [shapely.Polygon(np.reshape(p, (-1, 2))).buffer(0) for p in c.map.drivable]
        for t, ego in enumerate(_navsim_polygons(rec, rec.positive.poses)):
            for corner in shapely.points(np.asarray(ego.exterior.coords)[:4]):
                assert any(d.contains(corner) for d in drivable), (
                    f"{rec.pair_id}: a corner of the positive is off-road at step {t}")
            for a in c.agents:
                if a.valid[k0 + t]:
                    box = shapely.Polygon(box_corners(a.x[k0 + t], a.y[k0 + t], a.yaw[k0 + t],
                                                      a.length, a.width))
                    assert not ego.intersects(box), f"{rec.pair_id}: hits {a.id} at {t}"


def test_stored_facts_are_navsim_view_and_pairs_are_ordered(default_run) -> None:
    for rec in default_run:
        p, n = rec.positive.facts, rec.negative.facts
        assert p.nc == p.dac == p.ttc == 1.0 and not p.collides
        assert p.exact_nc == p.exact_dac == p.exact_ttc == 1.0
        assert n.collides or not n.ttc_ok or not n.drivable_ok
        assert n.pdms < p.pdms
        again = recompute_facts(rec)
        for role in ("expert", "negative", "positive"):
            stored, measured = getattr(rec, role).facts, again[role]
            assert (stored.nc, stored.dac, stored.ttc, stored.comfort) == (
                measured.nc, measured.dac, measured.ttc, measured.comfort), (rec.pair_id, role)
            assert abs(stored.pdms - measured.pdms) <= 1e-3, (rec.pair_id, role)
