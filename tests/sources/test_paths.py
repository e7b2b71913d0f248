"""sources/paths.py: the containment helper every source uses, on classes of hostile paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfpair.errors import DatasetFormatError
from cfpair.sources import paths

CLIMBING = ["/etc/passwd", "../x", "a/../../x", "a/..", "..", "\\\\server\\share", "..\\..\\x",
            "C:\\Windows", "c:/x", "~/x", "~root/x", "a\x00b", "", "x" * 5000]
NOT_STRINGS = [None, 5, 1.5, b"bytes", ["a"], {"a": 1}, Path("a")]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "ok.jpg").write_bytes(b"ok")
    (tmp_path / "secret").write_text("secret")
    (r / "link").symlink_to(tmp_path / "secret")
    (r / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    (r / "inner").symlink_to(r / "sub", target_is_directory=True)
    (r / "loop").symlink_to(r / "loop")
    return r


@pytest.mark.parametrize("rel", CLIMBING + NOT_STRINGS)
def test_relative_paths_that_climb_or_are_not_strings_are_refused(root: Path, rel: object
                                                                  ) -> None:
    with pytest.raises(DatasetFormatError) as err:
        paths.relative_inside(root, rel, "log.pkl", "camera")
    assert str(err.value).startswith("log.pkl: camera")


@pytest.mark.parametrize("rel", ["link", "dirlink/secret", "loop", "inner/../link"])
def test_symlinks_out_of_the_root_or_in_loops_are_refused(root: Path, rel: str) -> None:
    with pytest.raises(DatasetFormatError, match="log.pkl"):
        paths.relative_inside(root, rel, "log.pkl", "camera")


def test_paths_inside_the_root_are_kept_normalised(root: Path) -> None:
    assert paths.relative_inside(root, "sub/ok.jpg", "x") == "sub/ok.jpg"
    assert paths.relative_inside(root, "./sub//ok.jpg", "x") == "sub/ok.jpg"
    assert paths.relative_inside(root, "inner/ok.jpg", "x") == "sub/ok.jpg"
    assert paths.relative_inside(root, "sub/not-there-yet.jpg", "x") == "sub/not-there-yet.jpg"


def test_reading_is_contained_capped_and_utf8_checked(root: Path) -> None:
    assert paths.read_bytes(root, root / "sub" / "ok.jpg") == b"ok"
    with pytest.raises(DatasetFormatError, match="outside the dataset root"):
        paths.read_bytes(root, root / "link")
    with pytest.raises(DatasetFormatError, match="more than"):
        paths.read_bytes(root, root / "sub" / "ok.jpg", limit=1)
    with pytest.raises(DatasetFormatError, match="not a regular file"):
        paths.read_bytes(root, root / "sub")
    (root / "bad.txt").write_bytes(b"fine\nfine\n\xff\n")
    with pytest.raises(DatasetFormatError, match=r"bad.txt:3: .*not UTF-8"):
        paths.read_text(root, root / "bad.txt")
    with pytest.raises(DatasetFormatError, match="outside the dataset root"):
        paths.files(root, root, "*")


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "", " lead", "x" * 300, 5, None,
                                  "a\nb"])
def test_names_read_from_inputs_must_be_plain(name: object) -> None:
    with pytest.raises(DatasetFormatError, match="plain file name"):
        paths.safe_name(name, "split.txt")
