"""A restricted unpickler for untrusted dataset pickles (OpenScene logs, DeepAccident calib).

Only builtin containers and scalars, and numpy array / dtype / scalar reconstruction, may be
named by a pickle; any other global (os.system, builtins.eval, subprocess, ...) is refused before
anything runs, with an error that names the file and the forbidden global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from cfpair.errors import DatasetFormatError

_ALLOWED: dict[str, set[str]] = {
    "builtins": {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                 "int", "float", "complex", "bool", "slice", "range", "NoneType"},
    "collections": {"OrderedDict", "defaultdict"},
    "numpy": {"ndarray", "dtype", "float64", "float32", "int64", "int32", "bool_", "str_"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
    "_codecs": {"encode"},
}


class _Restricted(pickle.Unpickler):
    def __init__(self, data: io.BytesIO, path: Path) -> None:
        super().__init__(data)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        if module.startswith("numpy") and name.startswith("dtype"):
            return super().find_class(module, name)  # numpy.dtypes.Float64DType and friends
        raise DatasetFormatError(
            self._path, f"pickle refers to {module}.{name}, which is not allowed: only builtin "
            "containers/scalars and numpy arrays may appear in a dataset pickle")


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` with the restricted unpickler; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetFormatError(path, f"cannot read pickle: {exc.strerror or exc}") from exc
    return safe_loads(data, path)


def safe_loads(data: bytes, path: str | Path = "<bytes>") -> Any:
    """Unpickle bytes with the restricted unpickler."""
    path = Path(path)
    try:
        return _Restricted(io.BytesIO(data), path).load()
    except DatasetFormatError:
        raise
    except Exception as exc:  # truncated, corrupt or wrong protocol
        raise DatasetFormatError(path, f"not a readable pickle ({type(exc).__name__}: {exc})"
                                 ) from exc
