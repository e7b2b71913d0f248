"""examples/data: the real loaders read every sample scene; the data is what make_data.py writes."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

import pytest

from cfpair.sources.base import Rejected, get_source, load_all

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DATA = EXAMPLES / "data"


@pytest.mark.parametrize(("name", "sub", "split", "count"), [
    ("deepaccident", "deepaccident", "train", 3), ("deepaccident", "deepaccident", "val", 1),
    ("navsim", "navsim", "mini", 4), ("carla", "carla", "all", 4)])
def test_loaders_read_the_sample_data(name: str, sub: str, split: str, count: int) -> None:
    if name == "carla":
        pytest.importorskip("carla")
    out = list(load_all(get_source(name, DATA / sub), split))
    assert [o for o in out if isinstance(o, Rejected)] == []
    assert len(out) == count
    assert all(s.source == name and s.anchors for s in out)


def test_sample_data_is_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_data", EXAMPLES / "make_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path)
    committed = sorted(p.relative_to(DATA) for p in DATA.rglob("*") if p.is_file()
                       and p.name != "README.md")
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert committed == fresh
    # GPKG files embed write timestamps; everything else must be byte-identical
    same = [p for p in fresh if p.suffix != ".gpkg"]
    _, mismatch, errors = filecmp.cmpfiles(DATA, tmp_path, [str(p) for p in same], shallow=False)
    assert mismatch == [] and errors == []
