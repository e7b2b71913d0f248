"""Hostile OpenScene logs and maps: every payload class is one clean reject naming the file.

The corpus is built here, in tmp dirs, from the sample logs that ``navsim_writer`` wrote: each
case mutates one field of the current frame (or of every frame) into a value of the wrong type,
shape, size or range, or points a path out of the dataset. A case passes when loading yields no
exception at all (an escaping exception would be an ``internal_error`` in a run) and, for the
cases that cannot be data, a reject naming the log.
"""

from __future__ import annotations

import pickle
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cfpair.errors import DatasetFormatError
from cfpair.sources.base import Rejected, load_all
from cfpair.sources.navsim import NavsimSource

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "navsim"
LOG = "synthetic-cut_in-000001.pkl"
CUR = 3  # the current frame of the first scene window


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A one-log copy of the sample NAVSIM data with its map."""
    dst = tmp_path / "navsim"
    (dst / "navsim_logs" / "mini").mkdir(parents=True)
    shutil.copy(EXAMPLES / "navsim_logs" / "mini" / LOG, dst / "navsim_logs" / "mini" / LOG)
    shutil.copytree(EXAMPLES / "maps", dst / "maps")
    return dst


def _frames(root: Path) -> list[dict]:
    return pickle.loads((root / "navsim_logs" / "mini" / LOG).read_bytes())


def _write(root: Path, frames: list[dict]) -> Path:
    path = root / "navsim_logs" / "mini" / LOG
    path.write_bytes(pickle.dumps(frames, protocol=4))
    return path


def _load(root: Path, **kw: Any) -> list[Any]:
    return list(load_all(NavsimSource(root, **kw), "mini"))


def _rejected(out: list[Any], path: Path) -> list[Rejected]:
    rej = [o for o in out if isinstance(o, Rejected)]
    assert rej and not [o for o in out if not isinstance(o, Rejected)], out
    assert all(str(path) in r.reason for r in rej), [r.reason for r in rej]
    return rej


def test_the_sample_log_loads(root: Path) -> None:
    out = _load(root)
    assert out and not [o for o in out if isinstance(o, Rejected)]


_BOX = [10.0, 1.0, 0.8, 4.5, 1.9, 1.6, 0.0]
#: field -> values that are not data (wrong type, shape, size, range)
NOT_DATA: dict[str, list[Any]] = {
    "timestamp": ["1600000000000000", 1.6e15, True, None, [1], {"t": 1}],
    "token": [5, ["a"], "", "x" * 10_000, None],
    "log_name": [5, None, ["a"]],
    "map_location": ["../../etc", "a/b", 5, "", ".."],
    "ego2global_translation": [np.zeros(2), 5.0, "abc", [1e308] * 3, [np.nan] * 3,
                               np.zeros((3, 3)), None, {"x": 1}, [[1, 2, 3]]],
    "ego2global_rotation": [np.array([1.0, 0, 0]), [0, 0, 0, 0], "q", 1.0, [1e308, 0, 0, 0],
                            [np.inf, 0, 0, 0]],
    "ego_dynamic_state": [[], [1e308, 0, 0, 0], "fast", None, [np.nan, 0]],
    "roadblock_ids": [np.array([[1, 2]]), "1", 5, [[1]], [None], np.zeros(2)],
    "driving_command": [[], np.array([]), "left", [np.nan] * 4, np.zeros((2, 2)), [1, 0]],
    "cams": [["CAM_F0"], {"CAM_F0": ["x"]}, {"CAM_F0": {"data_path": "/etc/passwd"}},
             {"CAM_F0": {"data_path": "../../../../etc/passwd"}},
             {"CAM_F0": {"data_path": 5}}, "cams", {"CAM_F0": {"data_path": "a\x00b"}}],
    "anns": [[], "anns", {"gt_boxes": "x"}, {"gt_boxes": np.zeros((1, 6))},
             {"gt_boxes": np.array([_BOX[:3] + [1e308, 1.9, 1.6, 0.0]]), "gt_names": ["vehicle"],
              "track_tokens": ["t"], "gt_velocity_3d": np.zeros((1, 3))},
             {"gt_boxes": np.array([_BOX[:6] + [1e308]]), "gt_names": ["vehicle"],
              "track_tokens": ["t"], "gt_velocity_3d": np.zeros((1, 3))},
             {"gt_boxes": np.array([[1e308] + _BOX[1:]]), "gt_names": ["vehicle"],
              "track_tokens": ["t"], "gt_velocity_3d": np.zeros((1, 3))},
             {"gt_boxes": np.array([_BOX]), "gt_names": ["dragon"], "track_tokens": ["t"],
              "gt_velocity_3d": np.zeros((1, 3))},
             {"gt_boxes": np.array([_BOX]), "gt_names": ["vehicle"], "track_tokens": [["t"]],
              "gt_velocity_3d": np.zeros((1, 3))},
             {"gt_boxes": np.array([_BOX, _BOX]), "gt_names": ["vehicle"] * 2,
              "track_tokens": ["t", "t"], "gt_velocity_3d": np.zeros((2, 3))},
             {"gt_boxes": np.array([_BOX]), "gt_names": ["vehicle"], "track_tokens": ["t"],
              "gt_velocity_3d": "fast"}],
}
CASES = [(k, i) for k, vals in NOT_DATA.items() for i in range(len(vals))]


@pytest.mark.parametrize(("field", "index"), CASES, ids=[f"{k}-{i}" for k, i in CASES])
@pytest.mark.parametrize("where", ["current", "all"])
def test_a_field_that_is_not_data_is_a_reject(root: Path, field: str, index: int,
                                              where: str) -> None:
    frames = _frames(root)
    for k, fr in enumerate(frames):
        if where == "all" or k == CUR:
            fr[field] = NOT_DATA[field][index]
    path = _write(root, frames)
    _rejected(_load(root), path)


def test_accepted_variants_of_real_fields(root: Path) -> None:
    """What real logs do is data, not an error: roadblock ids as arrays or integers."""
    for ids in (np.array(["1", "2"]), [1, 2], ("1",)):
        frames = _frames(root)
        for fr in frames:
            fr["roadblock_ids"] = ids
        _write(root, frames)
        out = _load(root)
        assert out and not [o for o in out if isinstance(o, Rejected)], (ids, out)


def test_deeply_nested_token_is_a_reject(root: Path) -> None:
    frames = _frames(root)
    frames[CUR]["token"] = "NESTEDTOKEN"
    data = pickle.dumps(frames, protocol=4)
    marker = b"\x8c\x0bNESTEDTOKEN"
    assert data.count(marker) == 1
    depth = 200_000
    data = data.replace(marker, b"]" * depth + b"a" * (depth - 1))
    path = root / "navsim_logs" / "mini" / LOG
    path.write_bytes(data)
    _rejected(_load(root), path)


def test_duplicate_and_out_of_order_frames_are_refused(root: Path) -> None:
    frames = _frames(root)
    _write(root, frames[:5] + frames[4:5] + frames[5:])
    assert "duplicate" in _rejected(_load(root), root / "navsim_logs/mini" / LOG)[0].reason
    frames = _frames(root)
    frames[2], frames[3] = frames[3], frames[2]
    path = _write(root, frames)
    assert "out-of-order" in _rejected(_load(root), path)[0].reason
    frames = _frames(root)
    frames[4]["timestamp"] = frames[3]["timestamp"]
    frames[4]["token"] = "other"
    path = _write(root, frames)
    assert "out-of-order" in _rejected(_load(root), path)[0].reason


def test_camera_paths_stay_inside_the_root(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not yours")
    blobs = root / "sensor_blobs" / "mini"
    blobs.mkdir(parents=True)
    (blobs / "link.jpg").symlink_to(secret)
    (blobs / "outdir").symlink_to(tmp_path, target_is_directory=True)
    for bad in (str(secret), "link.jpg", "outdir/secret.jpg", "../../../secret.jpg"):
        frames = _frames(root)
        frames[CUR]["cams"] = {"CAM_F0": {"data_path": bad}}
        path = _write(root, frames)
        rej = _rejected(_load(root), path)
        assert "CAM_F0" in rej[0].reason, rej[0].reason
    frames = _frames(root)
    (blobs / "ok.jpg").write_bytes(b"\xff\xd8 fine")
    frames[CUR]["cams"] = {"CAM_F0": {"data_path": "ok.jpg"}}
    _write(root, frames)
    (scn,) = _load(root)
    assert scn.sensors["CAM_F0"][CUR] == "sensor_blobs/mini/ok.jpg"


def test_symlinks_out_of_the_root_are_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    log = root / "navsim_logs" / "mini" / LOG
    shutil.move(log, outside / LOG)
    log.symlink_to(outside / LOG)                       # a file symlink out of the root
    rej = _rejected(_load(root), log)
    assert "outside the dataset root" in rej[0].reason
    log.unlink()
    shutil.rmtree(root / "navsim_logs" / "mini")
    (root / "navsim_logs" / "mini").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetFormatError, match="outside the dataset root"):  # folder link
        _load(root)


def _gpkg(root: Path) -> Path:
    loc = _frames(root)[CUR]["map_location"]
    return next((root / "maps" / loc).glob("*/map.gpkg"))


def test_containment_holds_for_a_relative_root(root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = Path(root.name)
    assert _load(rel) and not [o for o in _load(rel) if isinstance(o, Rejected)]
    log = rel / "navsim_logs" / "mini" / LOG
    (tmp_path / LOG).write_bytes(log.read_bytes())
    log.unlink()
    log.symlink_to(tmp_path / LOG)
    assert "outside the dataset root" in _rejected(_load(rel), log)[0].reason


def test_a_map_that_is_missing_unreadable_or_empty_is_a_reject(root: Path) -> None:
    from cfpair.sources.navsim_writer import write_gpkg
    from cfpair.sources.nuplan_map import load_map

    gpkg = _gpkg(root)
    gpkg.write_bytes(b"SQLite format 3\x00 garbage")
    load_map.cache_clear()
    assert "not a readable GPKG" in _rejected(_load(root), gpkg)[0].reason
    shutil.rmtree(gpkg.parent.parent)
    assert "no <version>/map.gpkg" in _rejected(_load(root), gpkg.parent.parent)[0].reason
    out = _load(root, require_map=False)                  # explicitly without maps: loads
    assert out and all(not isinstance(o, Rejected) and o.map.empty for o in out)
    write_gpkg(_scene_with_map_far_away(), gpkg)
    load_map.cache_clear()
    assert "no drivable area" in _rejected(_load(root), gpkg)[0].reason


def _scene_with_map_far_away():  # noqa: ANN202
    from dataclasses import replace

    from cfpair.sources.synthetic import SyntheticSource

    src = SyntheticSource(n_scenes=1)
    scn = src.load(src.list("all")[0])
    m = scn.map
    return replace(scn, map=replace(m, drivable=tuple(p + 50_000.0 for p in m.drivable),
                                    centerlines=tuple(p + 50_000.0 for p in m.centerlines)))


@pytest.mark.parametrize("crs", ["EPSG:999999", "not a crs at all", "EPSG:4326", "+proj=lol"])
def test_garbage_crs_in_a_gpkg_is_a_reject(root: Path, crs: str) -> None:
    from cfpair.sources.nuplan_map import load_map

    gpkg = _gpkg(root)
    with sqlite3.connect(gpkg) as db:
        n = db.execute("UPDATE meta SET value = ? WHERE key = 'projectedCoordSystem'",
                       (crs,)).rowcount
    assert n == 1
    load_map.cache_clear()
    rej = _rejected(_load(root), gpkg)
    assert "projectedCoordSystem" in rej[0].reason, rej[0].reason
