"""The README's Python API example runs as written, and the API's answers are the files'."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    text = README.read_text()
    found = re.search(r"<!-- api-example[^\n]*-->\n```python\n(.*?)```", text, re.S)
    assert found, "README lost its <!-- api-example --> block"
    return found[1]


def test_readme_api_example_runs(small_run: Path, tmp_path: Path):
    pytest.importorskip("datasets")
    shutil.copytree(small_run, tmp_path / "cfpair-out")
    r = subprocess.run([sys.executable, "-c", api_example()], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    n, n_val = (int(x) for x in lines[0].split()[:2])
    import cfpair

    assert n == len(cfpair.load(small_run)) and n_val == len(cfpair.load(small_run, "val"))
    assert len(lines) == 5


def test_load_and_score_agree_with_the_files(small_run: Path):
    import pyarrow.parquet as pq

    import cfpair

    recs = cfpair.load(small_run)
    ids = [i for p in sorted((small_run / "data").glob("*.parquet"))
           for i in pq.read_table(p, columns=["pair_id"]).column(0).to_pylist()]
    assert [r.pair_id for r in recs] == ids
    df = recs.to_pandas()
    assert list(df["pair_id"]) == ids and df.loc[0, "provenance"]["source"] == "synthetic"
    rec = recs[0]
    f = cfpair.score(rec, rec.positive.poses)
    assert f.collides == rec.positive.facts.collides
    assert isinstance(f, cfpair.api.Facts) and 0.0 <= f.pdms <= 1.0   # tracked, not replayed
    batch = cfpair.score(rec, np.stack([rec.negative.poses, rec.positive.poses]))
    assert [x.collides for x in batch] == [rec.negative.facts.collides,
                                           rec.positive.facts.collides]
    from cfpair.errors import ShapeError, ShardError

    with pytest.raises(ShapeError, match=r"\(8, 3\)"):
        cfpair.score(rec, np.zeros((7, 3)))
    with pytest.raises(ShapeError):
        cfpair.score(rec, np.full((8, 3), np.nan))
    with pytest.raises(ShardError, match="not a cfpair output folder"):
        cfpair.load(small_run / "data")
