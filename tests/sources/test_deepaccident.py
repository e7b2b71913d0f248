"""DeepAccident: real lines from the spec, round trip through the writer, malformed corpus."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from cfpair.errors import DatasetFormatError
from cfpair.sources.base import Rejected, load_all
from cfpair.sources.deepaccident import DeepAccidentSource, parse_label_file, parse_meta
from cfpair.sources.deepaccident_writer import write_deepaccident, write_split
from cfpair.sources.synthetic import SyntheticSource

REAL_LINES = """0.0 0.0
car 78.72284516674358 30.2601938920738 -2.4741850862891717 3.987684965133667 1.8508483171463013 1.6171096563339233 3.083730477344937 0.0 0.0 20017 0 False
car -11.322061738492891 -1.1220229654831542 -1.3597587620497014 6.273553371429443 2.3895740509033203 2.098191261291504 0.26862670698632135 -1.9075593327095062 3.166942064036916 1339 547 True
"""  # noqa: E501  (the maintainer's lines from issue 14, with a header)

REAL_META = """HardRainNoon 1236 car 1237 car 6790.168605131015 same front_side 78
 colliding agents: ego_behind other_behind
 agents id: 1223 1236 1212 1237
 road_type: four-way junction
 another_vehicle_spawn_side: left
 ego_vehicle_direction: straight
 other_vehicle_direction: straight
"""


def test_real_label_lines(tmp_path):
    p = tmp_path / "x_001.txt"
    p.write_text(REAL_LINES)
    speeds, rows = parse_label_file(p)
    assert speeds == (0.0, 0.0) and len(rows) == 2
    assert rows[0].actor_id == 20017 and not rows[0].visible and rows[0].num_points == 0
    assert rows[1].actor_id == 1339 and rows[1].visible
    assert rows[1].length == pytest.approx(6.273553371429443)


def test_real_meta(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text(REAL_META)
    m = parse_meta(p)
    assert m.collision and m.colliding_ids == (1236, 1237)
    assert m.colliding_classes == ("car", "car")
    assert m.agents_id == [1223, 1236, 1212, 1237] and m.length_frames == 78
    assert m.fields["colliding agents"] == ["ego_behind", "other_behind"]
    p.write_text("ClearSunset -1 -1 -1 -1 -1 -1 -1 55\n colliding agents: none none\n")
    assert not parse_meta(p).collision


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepaccident")
    src = SyntheticSource(n_scenes=6, seed=5)
    scenes, entries = [], []
    for i, ref in enumerate(src.list("all")):
        s = src.load(ref)
        name = f"Town04_type001_subtype0001_scenario{i:05d}"
        typ = "type1_subtype1_accident" if s.meta["logged_future_risky"] else \
            "type1_subtype1_normal"
        write_deepaccident(s, root, typ, name)
        entries.append((typ, name))
        scenes.append(s)
    write_split(root, "train", entries)
    return root, scenes, entries


def test_round_trip_through_the_real_layout(dataset):
    root, scenes, _ = dataset
    da = DeepAccidentSource(root)
    refs = da.list("train")
    assert [r.scenario_id for r in refs] == [f"{t}/{n}" for t, n in dataset[2]]
    for ref, s in zip(refs, scenes, strict=True):
        out = da.load(ref)
        cx, cy = s.ego_box_centre()
        np.testing.assert_allclose(out.ego.x, cx, atol=1e-5)
        np.testing.assert_allclose(out.ego.y, cy, atol=1e-5)
        np.testing.assert_allclose(np.cos(out.ego.yaw - s.ego.yaw), 1.0, atol=1e-9)
        assert out.ego_rear_to_center == 0.0 and out.dt == pytest.approx(0.1)
        # every loaded agent matches a synthetic agent wherever it was seen
        for i in range(out.agents.n):
            v = out.agents.valid[i]
            d = np.hypot(s.agents.x[:, v] - out.agents.x[i, v], s.agents.y[:, v]
                         - out.agents.y[i, v]).max(axis=1)
            assert d.min() < 1e-4
        # collision truth comes from meta line 1 and agrees with the geometry
        assert out.meta["collision"] == (s.meta["min_future_gap_m"] == 0.0)
        assert out.anchors and max(out.anchors) == out.n_steps - 6
        # the conflict agent gets its own recording view when it is a vehicle
        assert out.meta["views"][0] == "ego_vehicle" and len(out.meta["views"]) in (1, 2)


def test_left_handed_conversion(tmp_path):
    # ego at the world origin facing +x (CARLA), object 10 m ahead and 2 m to the RIGHT in the
    # lidar frame (y right) -> cfpair (y left) puts it at y = -2
    root = tmp_path
    base = root / "type1_subtype1_normal"
    name = "Town01_type001_subtype0001_scenario00001"
    for k in range(1, 4):
        lab = base / "ego_vehicle" / "label" / name
        cal = base / "ego_vehicle" / "calib" / name
        lab.mkdir(parents=True, exist_ok=True)
        cal.mkdir(parents=True, exist_ok=True)
        (lab / f"{name}_{k:03d}.txt").write_text(
            "0 0\ncar 0 0 0 4 2 1.5 0 0 0 -100 10 True\n"
            "car 10 2 0 4 2 1.5 0.5 0 0 77 10 True\n")
        e2w = np.eye(4)
        with open(cal / f"{name}_{k:03d}.pkl", "wb") as fh:
            pickle.dump({"lidar_to_ego": np.eye(4), "ego_to_world": e2w}, fh)
    (base / "meta").mkdir()
    (base / "meta" / f"{name}.txt").write_text(
        "ClearNoon -1 -1 -1 -1 -1 -1 -1 13\n agents id: 1 2 3 4\n")
    s = DeepAccidentSource(root).load(DeepAccidentSource(root).list("all")[0])
    assert s.agents.ids.tolist() == ["77"]
    assert s.agents.x[0, 0] == pytest.approx(10) and s.agents.y[0, 0] == pytest.approx(-2)
    assert s.agents.yaw[0, 0] == pytest.approx(-0.5)


BAD_LABELS = {
    "wrong_token_count": ("0 0\ncar 1 2 3 4 5\n", ":2: expected 13 tokens"),
    "nan": ("0 0\ncar nan 0 0 4 2 1.5 0 0 0 5 1 True\n", ":2: x must be finite"),
    "inf": ("0 0\ncar 1 0 0 inf 2 1.5 0 0 0 5 1 True\n", ":2: length must be finite"),
    "unknown_class": ("0 0\nspaceship 1 0 0 4 2 1.5 0 0 0 5 1 True\n", "unknown class"),
    "empty": ("", "empty label file"),
    "bad_header": ("0\ncar 1 0 0 4 2 1.5 0 0 0 5 1 True\n", ":1: header must hold 2"),
    "bad_id": ("0 0\ncar 1 0 0 4 2 1.5 0 0 0 x 1 True\n", "must be integers"),
}


@pytest.mark.parametrize("case", sorted(BAD_LABELS))
def test_malformed_label_files(case, tmp_path):
    text, expected = BAD_LABELS[case]
    p = tmp_path / f"{case}_001.txt"
    p.write_text(text)
    with pytest.raises(DatasetFormatError) as err:
        parse_label_file(p)
    assert str(p) in str(err.value) and expected in str(err.value)


BAD_META = {
    "short_line1": ("ClearNoon -1 -1 78\n", ":1: line 1 must hold 9 tokens"),
    "bad_length": ("ClearNoon -1 -1 -1 -1 -1 -1 -1 long\n", "length must be an integer"),
    "no_colon": ("ClearNoon -1 -1 -1 -1 -1 -1 -1 5\n agents id 1 2 3 4\n", ":2: expected 'key"),
    "agents_count": ("ClearNoon -1 -1 -1 -1 -1 -1 -1 5\n agents id: 1 2\n", "must list 4"),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_malformed_meta(case, tmp_path):
    text, expected = BAD_META[case]
    p = tmp_path / "meta.txt"
    p.write_text(text)
    with pytest.raises(DatasetFormatError, match="meta.txt") as err:
        parse_meta(p)
    assert expected in str(err.value)


def test_bad_clips_are_rejected_good_ones_load(dataset, tmp_path):
    root = tmp_path / "da"
    shutil.copytree(dataset[0], root)
    entries = dataset[2]
    (typ0, n0), (typ1, n1), (typ2, n2) = entries[0], entries[1], entries[2]
    # clip 0: a calib file goes missing; clip 1: meta deleted; clip 2: garbage inside a pickle
    next((root / typ0 / "ego_vehicle" / "calib" / n0).glob("*.pkl")).unlink()
    (root / typ1 / "meta" / f"{n1}.txt").unlink()
    bad_pkl = sorted((root / typ2 / "ego_vehicle" / "calib" / n2).glob("*.pkl"))[3]
    bad_pkl.write_bytes(pickle.dumps({"lidar_to_ego": "not a matrix", "ego_to_world": 1}))
    out = list(load_all(DeepAccidentSource(root), "train"))
    rejected = [o for o in out if isinstance(o, Rejected)]
    good = [o for o in out if not isinstance(o, Rejected)]
    assert len(good) == len(entries) - 3 and len(rejected) == 3
    reasons = " | ".join(r.reason for r in rejected)
    assert "calib file missing" in reasons and "meta file" in reasons
    assert "must be a finite 4x4 matrix" in reasons and str(bad_pkl) in reasons


def test_missing_split_file(tmp_path):
    with pytest.raises(DatasetFormatError, match="no split file for 'val'"):
        DeepAccidentSource(tmp_path).list("val")
    (tmp_path / "val.txt").write_text("only_one_token\n")
    with pytest.raises(DatasetFormatError, match=r"val.txt:1: expected"):
        DeepAccidentSource(tmp_path).list("val")
