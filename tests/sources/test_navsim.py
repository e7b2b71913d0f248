"""NAVSIM / OpenScene: round trip through real-format logs and GPKG maps, scene cutting,
malformed inputs."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from cfpair.errors import DatasetFormatError
from cfpair.sources.base import Rejected, load_all
from cfpair.sources.navsim import NavsimSource, quaternion_yaw
from cfpair.sources.navsim_writer import UTM_ORIGIN, write_gpkg, write_log
from cfpair.sources.nuplan_map import NuplanMap
from cfpair.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def navsim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("navsim")
    src = SyntheticSource(n_scenes=4, seed=9)
    scenes = {}
    for ref in src.list("all"):
        s = src.load(ref)
        loc = f"synthetic-{s.meta['index']}"
        write_log(s, root / "navsim_logs" / "mini" / f"{s.scenario_id}.pkl", location=loc)
        write_gpkg(s, root / "maps" / loc / "1.0" / "map.gpkg")
        scenes[s.scenario_id] = s
    return root, scenes


def test_quaternion_yaw():
    for yaw in (0.0, 0.3, -2.0, math.pi - 1e-9):
        q = [math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
        assert quaternion_yaw(q) == pytest.approx(yaw)


def test_round_trip(navsim_root):
    root, scenes = navsim_root
    ns = NavsimSource(root)
    refs = ns.list("mini")
    assert len(refs) == 4
    for ref in refs:
        sc = ns.load(ref)
        s = scenes[sc.meta["log_name"]]
        assert sc.n_steps == 14 and sc.dt == 0.5 and sc.anchors == (3,)
        np.testing.assert_allclose(sc.ego.t, (np.arange(14) - 3) * 0.5)
        np.testing.assert_allclose(sc.ego.x - UTM_ORIGIN[0], s.ego.x[::5][:14], atol=1e-6)
        np.testing.assert_allclose(sc.ego.y - UTM_ORIGIN[1], s.ego.y[::5][:14], atol=1e-6)
        np.testing.assert_allclose(sc.ego.vx, s.ego.vx[::5][:14], atol=1e-9)
        order = [list(s.agents.ids).index(t) for t in sc.agents.ids]
        np.testing.assert_allclose(sc.agents.x - UTM_ORIGIN[0], s.agents.x[order][:, ::5][:, :14],
                                   atol=1e-6)
        np.testing.assert_allclose(np.cos(sc.agents.yaw - s.agents.yaw[order][:, ::5][:, :14]),
                                   1, atol=1e-9)
        assert list(sc.map.on_route) == list(s.map.on_route)
        assert len(sc.map.drivable) == len(s.map.drivable)
        np.testing.assert_allclose(sc.map.drivable[0] - UTM_ORIGIN, s.map.drivable[0], atol=1e-6)
        assert sc.meta["driving_command"] == "forward"
        assert sc.sensors["CAM_F0"][3].endswith(".jpg")
        assert sc.sensors["CAM_F0"][3].startswith("sensor_blobs/mini/")


def test_scene_cutting(tmp_path):
    s = SyntheticSource(n_scenes=1, seed=0).generate(0)
    log = write_log(s, tmp_path / "navsim_logs" / "mini" / "a.pkl", stride=1)  # 71 frames
    frames = pickle.loads(log.read_bytes())
    assert len(frames) == 71
    assert len(NavsimSource(tmp_path).list("mini")) == 71 // 14
    assert len(NavsimSource(tmp_path, frame_interval=1).list("mini")) == 71 - 14 + 1
    frames[3]["roadblock_ids"] = []
    log.write_bytes(pickle.dumps(frames))
    refs = NavsimSource(tmp_path, frame_interval=1).list("mini")
    assert len(refs) == 71 - 14  # 58 windows, the one whose current frame has no route dropped
    assert len(NavsimSource(tmp_path, frame_interval=1, require_route=False).list("mini")) == 58


def _log(tmp_path, mutate):
    s = SyntheticSource(n_scenes=1, seed=0).generate(0)
    path = write_log(s, tmp_path / "navsim_logs" / "mini" / "bad.pkl")
    frames = pickle.loads(path.read_bytes())
    data = mutate(frames)
    path.write_bytes(pickle.dumps(data))
    return path


def _gap(frames):
    for fr in frames[5:]:
        fr["timestamp"] += 1_000_000
    return frames


def _ann_mismatch(frames):
    frames[2]["anns"]["track_tokens"] = frames[2]["anns"]["track_tokens"][:-1]
    return frames


def _nan_pose(frames):
    frames[1]["ego2global_translation"] = np.array([np.nan, 0.0, 0.0])
    return frames


def _unknown_class(frames):
    frames[0]["anns"]["gt_names"] = np.array(["ufo"] * len(frames[0]["anns"]["gt_names"]))
    return frames


def _missing_key(frames):
    del frames[4]["ego_dynamic_state"]
    return frames


BAD = {
    "time gap": (_gap, "time gap of 1.50 s"),
    "anns lengths differ": (_ann_mismatch, "equally long"),
    "nan pose": (_nan_pose, "NaN/inf"),
    "unknown class": (_unknown_class, "unknown class 'ufo'"),
    "missing key": (_missing_key, "frame 4 lacks keys ['ego_dynamic_state']"),
    "empty log": (lambda frames: [], "non-empty list"),
    "wrong type": (lambda frames: {"frames": frames}, "non-empty list of frame dicts"),
    "frame not a dict": (lambda frames: [1, 2, 3], "frame 0 is a int"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_logs_are_rejected_with_reasons(case, tmp_path):
    mutate, expected = BAD[case]
    path = _log(tmp_path, mutate)
    out = list(load_all(NavsimSource(tmp_path), "mini"))
    rejected = [o for o in out if isinstance(o, Rejected)]
    assert rejected, case
    assert all(str(path) in r.reason for r in rejected)
    assert expected in rejected[0].reason


def test_corrupt_gpkg(tmp_path):
    p = tmp_path / "map.gpkg"
    p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(DatasetFormatError, match="map.gpkg: not a readable GPKG map"):
        NuplanMap(p)
    s = SyntheticSource(n_scenes=1).generate(0)
    good = write_gpkg(s, tmp_path / "good.gpkg")
    m = NuplanMap(good).crop(UTM_ORIGIN[0], UTM_ORIGIN[1], 50.0, ("1",))
    assert len(m.drivable) >= 1 and m.on_route.any()
