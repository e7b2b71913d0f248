"""The Python API: ``cfpair.load(DIR)`` -> records (also as pandas or a HF Dataset), and
``cfpair.score(record, poses)`` -> the facts of new trajectories in a stored scene."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cfpair.errors import ShapeError, ShardError
from cfpair.records.schema import Facts, PairRecord

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    import pyarrow as pa


def output_folder(out: str | Path) -> Path:
    """``out`` if it is a cfpair output folder (a cfpair manifest.json), else a ShardError
    saying what is there instead. Reads only; creates nothing."""
    out = Path(out)
    man = out / "manifest.json"
    if not out.is_dir():
        raise ShardError(f"{out}: no such folder, so no shards (expected the --out of cfpair "
                         "generate)")
    if not man.is_file():
        raise ShardError(f"{out} is not a cfpair output folder (no manifest.json); write one "
                         f"with `cfpair generate --out {out}`")
    try:
        fmt = json.loads(man.read_text(encoding="utf-8")).get("format", "")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        fmt = ""
    if not str(fmt).startswith("cfpair-pairs/"):
        raise ShardError(f"{man} is not a cfpair manifest (no format 'cfpair-pairs/...'); is "
                         f"{out} the --out of cfpair generate?")
    return out


class Records(list[PairRecord]):
    """The rows of an output folder as validated :class:`PairRecord` objects (a list)."""

    def to_arrow(self) -> pa.Table:
        """The records as an Arrow table with cfpair's on-disk schema."""
        from cfpair.records.shards import table_of

        return table_of(list(self))

    def to_pandas(self) -> pd.DataFrame:
        """One row per pair; nested parts (facts, label, provenance) as dicts."""
        return self.to_arrow().to_pandas()

    def to_hf(self) -> datasets.Dataset:
        """A Hugging Face ``datasets.Dataset`` with the same columns (needs ``datasets``)."""
        try:
            from datasets import Dataset
            from datasets.table import InMemoryTable
        except ImportError:
            raise ShardError("Records.to_hf needs the datasets package: "
                             "pip install datasets") from None
        return Dataset(InMemoryTable(self.to_arrow()))


def load(out: str | Path, split: str | None = None, limit: int | None = None,
         ids: list[str] | None = None) -> Records:
    """The pairs of a ``cfpair generate`` output folder (optionally one split, the given pair
    ids, at most ``limit``), each validated against the record schema."""
    from cfpair.records.shards import load_records

    folder = output_folder(out)
    with unreadable_shards(folder):
        return Records(load_records(folder, split, limit, ids))


@contextmanager
def unreadable_shards(out: Path) -> Iterator[None]:
    """Shards that Arrow or the record schema cannot read: a ShardError pointing to validate."""
    import pyarrow as pa
    from pydantic import ValidationError

    try:
        yield
    except (pa.ArrowException, ValidationError, OSError, UnicodeDecodeError) as exc:
        raise ShardError(f"{out}: cannot read its shards ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                         f"`cfpair validate {out}` names the file") from None


def load_pandas(out: str | Path, split: str | None = None) -> pd.DataFrame:
    """``load(out, split).to_pandas()``."""
    return load(out, split).to_pandas()


def load_hf(out: str | Path, split: str | None = None) -> datasets.Dataset:
    """``load(out, split).to_hf()``."""
    return load(out, split).to_hf()


def score(record: PairRecord, poses: Any) -> Facts | list[Facts]:
    """The facts (collision, TTC, drivable area, comfort, PDMS, safety score) of trajectories
    driven in ``record``'s scene. ``poses``: NAVSIM-style (8, 3) ``[x, y, yaw]`` at 0.5 s ..
    4 s in the ego frame, or a batch (K, 8, 3); one Facts, or a list of K."""
    from cfpair.scoring.rescore import score_poses

    arr = np.asarray(poses, dtype=np.float64)
    if arr.shape[-2:] != (8, 3) or arr.ndim not in (2, 3) or not np.all(np.isfinite(arr)):
        raise ShapeError(f"poses must be finite, shaped (8, 3) or (K, 8, 3); got {arr.shape}")
    facts = score_poses(record, arr.reshape(-1, 8, 3))
    return facts[0] if arr.ndim == 2 else facts
