"""The restricted unpickler: data loads, code never runs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from cfpair.errors import DatasetFormatError
from cfpair.sources.safe_pickle import safe_load, safe_loads


class _MakesAFile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_round_trips_data(protocol, tmp_path):
    data = [{"token": "abc", "arr": np.arange(12.0).reshape(3, 4), "names": np.array(["car"]),
             "none": None, "t": (1, 2.5, True), "i": np.int64(3)}]
    p = tmp_path / "log.pkl"
    p.write_bytes(pickle.dumps(data, protocol=protocol))
    out = safe_load(p)
    np.testing.assert_array_equal(out[0]["arr"], data[0]["arr"])
    assert out[0]["names"].tolist() == ["car"] and out[0]["t"] == (1, 2.5, True)


def test_malicious_pickle_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"frames": [_MakesAFile(str(target))]}))
    with pytest.raises(DatasetFormatError) as err:
        safe_load(p)
    assert not target.exists()
    assert str(p) in str(err.value) and "system" in str(err.value)
    with pytest.raises(DatasetFormatError, match="eval"):
        safe_loads(pickle.dumps(_Eval()))


def test_truncated_and_missing(tmp_path):
    p = tmp_path / "cut.pkl"
    p.write_bytes(pickle.dumps(list(range(1000)))[:50])
    with pytest.raises(DatasetFormatError, match="cut.pkl: not a readable pickle"):
        safe_load(p)
    with pytest.raises(DatasetFormatError, match="cannot read"):
        safe_load(tmp_path / "missing.pkl")
