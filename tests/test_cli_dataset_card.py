"""The dataset card makes ``datasets.load_dataset(FOLDER)`` follow the content: a folder written
again under the same name, even with the old files' names and times, loads the new rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _generate(out: Path, n_scenes: int) -> None:
    r = subprocess.run([sys.executable, "-m", "cfpair", "generate", "--source-option",
                        f"n_scenes={n_scenes}", "--splits", "train", "--n-candidates", "32",
                        "--workers", "1", "--out", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr


def _load_ids(folder: Path, cache: Path) -> list[str]:
    from datasets import load_dataset

    return list(load_dataset(str(folder), cache_dir=str(cache))["train"]["pair_id"])


@pytest.mark.slow
def test_load_dataset_follows_a_rewritten_folder(tmp_path: Path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, other, cache = tmp_path / "pairs", tmp_path / "other", tmp_path / "hf-cache"
    _generate(folder, 12)
    _generate(other, 16)
    first = _load_ids(folder, cache)
    assert len(first) == 12
    card = (folder / "README.md").read_text()
    assert "dataset_info:" in card and "num_examples: 12" in card

    # the new run's files under the old names with the old modification times (as a copy
    # with cp -p, rsync -a or a restore leaves them): only the card tells them apart
    for src in (other / "data").glob("*.parquet"):
        dst = folder / "data" / src.name
        st = dst.stat()
        shutil.copyfile(src, dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.copyfile(other / "README.md", folder / "README.md")
    second = _load_ids(folder, cache)
    import pyarrow.parquet as pq

    expected = [i for p in sorted((other / "data").glob("*.parquet"))
                for i in pq.read_table(p, columns=["pair_id"]).column(0).to_pylist()]
    assert second == expected and second != first


def test_export_card_describes_its_files(small_run: Path, tmp_path: Path):
    from cfpair.export.formats import export

    res = export(small_run, tmp_path / "dpo", "trl-dpo", images="bev", limit=2, pixels=64)
    card = (tmp_path / "dpo" / "README.md").read_text()
    for split, n in res.rows.items():
        size = sum(p.stat().st_size for p in (tmp_path / "dpo" / "data").glob(f"{split}-*"))
        assert f"  - name: {split}\n    num_bytes: {size}\n    num_examples: {n}\n" in card
