"""Hostile DeepAccident clips: bad bytes, absurd values, duplicate frames and paths out of the
root are each one reject naming the file (and line); the other clips still load."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from cfpair.errors import DatasetFormatError
from cfpair.sources.base import Rejected, load_all
from cfpair.sources.deepaccident import DeepAccidentSource, parse_label_file, parse_meta

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "deepaccident"
TYPE = "type1_subtype1_accident"
NAME = "Town04_type001_subtype0001_scenario00000"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    dst = tmp_path / "da"
    shutil.copytree(EXAMPLES, dst)
    return dst


def _label(root: Path, frame: int = 1, view: str = "ego_vehicle") -> Path:
    return root / TYPE / view / "label" / NAME / f"{NAME}_{frame:03d}.txt"


def _meta(root: Path) -> Path:
    return root / TYPE / "meta" / f"{NAME}.txt"


def _split(root: Path) -> tuple[list, list]:
    out = list(load_all(DeepAccidentSource(root), "train"))
    return [o for o in out if isinstance(o, Rejected)], [o for o in out
                                                         if not isinstance(o, Rejected)]


def _one_reject(root: Path, named: Path, n_good: int = 2) -> str:
    rej, good = _split(root)
    assert len(rej) == 1 and len(good) == n_good, (rej, len(good))
    assert str(named) in rej[0].reason, rej[0].reason
    return rej[0].reason


def test_the_samples_load(root: Path) -> None:
    rej, good = _split(root)
    assert not rej and len(good) == 3


@pytest.mark.parametrize("where", ["label", "meta"])
@pytest.mark.parametrize("bad", [b"\xff\xfe\x00", b"caf\xe9", b"\xc3\x28", b"\xed\xa0\x80"])
def test_non_utf8_bytes_are_a_reject_with_a_line(root: Path, where: str, bad: bytes) -> None:
    path = _label(root) if where == "label" else _meta(root)
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1] + b" " + bad
    path.write_bytes(b"\n".join(lines))
    reason = _one_reject(root, path)
    assert "not UTF-8" in reason and f"{path}:2" in reason


def _edit_row(path: Path, col: int, value: str) -> None:
    lines = path.read_text().splitlines()
    tok = lines[2].split()
    tok[col] = value
    lines[2] = " ".join(tok)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("col", "value"), [
    (4, "1e308"), (5, "1e308"), (6, "1e308"), (4, "0"), (5, "-2"), (6, "-1"), (7, "1e308"),
    (1, "1e308"), (2, "-1e300"), (4, "nan"), (7, "inf"), (10, "1.5"), (11, "many"),
    (0, "dragon")])
def test_absurd_label_values_are_a_reject(root: Path, col: int, value: str) -> None:
    path = _label(root, 5)
    _edit_row(path, col, value)
    reason = _one_reject(root, path)
    assert f"{path}:3" in reason


@pytest.mark.parametrize("calib", [
    {"lidar_to_ego": [[1e308] * 4] * 4, "ego_to_world": [[1, 0, 0, 0]] * 4},
    {"lidar_to_ego": "eye", "ego_to_world": 1},
    {"lidar_to_ego": [[[1]]]},
    ["not", "a", "dict"],
])
def test_absurd_calib_is_a_reject(root: Path, calib: object) -> None:
    path = root / TYPE / "ego_vehicle" / "calib" / NAME / f"{NAME}_004.pkl"
    path.write_bytes(pickle.dumps(calib))
    _one_reject(root, path)


def test_duplicate_frames_and_huge_frame_numbers(root: Path) -> None:
    label = _label(root, 3)
    dup = label.with_name(f"{NAME}_0003.txt")
    shutil.copy(label, dup)
    assert "duplicate frames" in _one_reject(root, label.parent)
    dup.unlink()
    huge = label.with_name(f"{NAME}_999999999.txt")
    shutil.copy(label, huge)
    assert "more than" in _one_reject(root, label.parent)


def test_symlinks_out_of_the_root_are_refused(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2 0 0 0 1 1 1 0 0 0 7 1 True\n")
    label = _label(root, 2)
    label.unlink()
    label.symlink_to(secret)
    reason = _one_reject(root, label)
    assert "outside the dataset root" in reason and "hunter2" not in reason
    label.unlink()
    shutil.copy(_label(root, 1), label)
    meta = _meta(root)
    meta.rename(tmp_path / "meta.txt")
    meta.symlink_to(tmp_path / "meta.txt")
    assert "outside the dataset root" in _one_reject(root, meta)
    meta.unlink()
    (tmp_path / "meta.txt").rename(meta)
    clip = root / TYPE / "ego_vehicle" / "calib" / NAME
    shutil.move(clip, tmp_path / "calib")
    clip.symlink_to(tmp_path / "calib", target_is_directory=True)   # a folder symlink
    assert "outside the dataset root" in _one_reject(root, clip)


@pytest.mark.parametrize("line", [f"../../.. {NAME}", f"{TYPE} ../../etc", f"/etc {NAME}",
                                  f"{TYPE} a/b"])
def test_split_file_names_cannot_climb_out(root: Path, line: str) -> None:
    split = root / "split_txt_files" / "train.txt"
    split.write_text(split.read_text() + line + "\n")
    rej, good = _split(root)
    assert len(good) == 3 and len(rej) == 1
    assert "plain file name" in rej[0].reason and str(split) in rej[0].reason


def test_parsers_refuse_paths_outside_their_root(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    target = tmp_path / "x.txt"
    target.write_text("1 2\n")
    (inner / "x.txt").symlink_to(target)
    with pytest.raises(DatasetFormatError, match="outside the dataset root"):
        parse_label_file(inner / "x.txt", inner)
    with pytest.raises(DatasetFormatError, match="outside the dataset root"):
        parse_meta(inner / "x.txt", inner)
