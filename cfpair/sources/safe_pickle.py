"""A restricted unpickler for untrusted dataset pickles (OpenScene, DeepAccident, ScenarioNet).

A pickle is a program; this module runs only the part of it that builds data. Every global a
pickle names is looked up in an exact table of (module, name) pairs — no prefixes, no dotted
names — and what the table returns is never the real object but a small checked stand-in:

- builtin containers (``set``, ``frozenset``, ``bytearray``, ``complex``, ``list`` as a
  ``defaultdict`` factory) accept only already-built, bounded arguments (no ``bytearray(10**12)``,
  no iterators);
- numpy dtypes are rebuilt from a plain type code (bool, int, uint, float, complex, fixed-width
  str/bytes only: never object, void, structured or datetime), and their pickled state must equal,
  field for field, the state numpy itself writes for that code — so no flag tricks;
- numpy arrays and scalars are rebuilt by ``np.frombuffer`` from raw bytes whose length must equal
  shape × itemsize before anything is allocated; numpy's own ``__setstate__`` never sees a pickle's
  arguments.

Anything else — ``os.system``, ``numpy.lib.format`` helpers, ``numpy.load``, a dotted path like
``dtypes.__builtins__.get``, an object array, a nested pickle, a persistent id — is refused before
it runs, with a :class:`DatasetFormatError` that names the file and the global.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from cfpair.errors import DatasetFormatError

MAX_DEPTH = 100  # containers nested deeper than this are refused
MAX_ITEMSIZE = 1 << 20  # bytes per element of a str/bytes dtype
MAX_NDIM = 32
_DTYPE_CODE = re.compile(r"[<>|=]?(b1|[iu][1248]|f(2|4|8|16)|c(8|16|32)|[US]\d{1,7})")
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _Refused(Exception):
    """Raised inside the unpickler; turned into a DatasetFormatError naming the file."""


class _Global:
    """A checked stand-in for one allowed global; BUILD on it is refused."""

    __slots__ = ()
    label = "?"

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"pickle tries to set the state of {self.label}")


class _DtypeStub:
    """A numpy dtype under construction: type code first, then numpy's own state, checked."""

    __slots__ = ("dtype", "built")

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.built = False

    def __setstate__(self, state: Any) -> None:
        if self.built or not isinstance(state, tuple) or len(state) < 2:
            raise _Refused("malformed numpy dtype state")
        order = state[1]
        if order not in ("<", ">", "|", "="):
            raise _Refused(f"numpy dtype byte order {str(order)[:20]!r}")
        dt = self.dtype if order in ("|", "=") else self.dtype.newbyteorder(order)
        if dt.__reduce__()[2] != state:
            raise _Refused(f"numpy dtype state {str(state)[:120]} is not what numpy writes for "
                           f"{dt.str}: flags, fields and sizes may not be chosen by a file")
        self.dtype = dt
        self.built = True


class _ArrayStub:
    """A numpy array under construction; holds the finished array once its state is checked."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray | None = None) -> None:
        self.array = array

    def __setstate__(self, state: Any) -> None:
        if self.array is not None or not isinstance(state, tuple) or len(state) != 5:
            raise _Refused("malformed numpy array state")
        version, shape, dtype, fortran, raw = state
        if version != 1 or not isinstance(fortran, bool):
            raise _Refused("malformed numpy array state")
        self.array = _from_bytes(raw, dtype, shape, "F" if fortran else "C")


class _ScalarStub:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __setstate__(self, state: Any) -> None:
        raise _Refused("pickle tries to set the state of a numpy scalar")


def _dtype_of(stub: Any) -> np.dtype:
    if not isinstance(stub, _DtypeStub):
        raise _Refused("a numpy array or scalar whose dtype is not a plain numpy dtype")
    return stub.dtype


def _shape_of(shape: Any) -> tuple[int, ...]:
    if (not isinstance(shape, tuple) or len(shape) > MAX_NDIM
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise _Refused(f"numpy shape {str(shape)[:80]} is not a tuple of sizes")
    return shape


def _from_bytes(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    dt = _dtype_of(dtype)
    shape = _shape_of(shape)
    if isinstance(raw, pickle.PickleBuffer):
        raw = bytes(raw.raw())
    if not isinstance(raw, bytes | bytearray) or order not in ("C", "F"):
        raise _Refused("numpy array data must be raw bytes (object arrays are not allowed)")
    if math.prod(shape) * dt.itemsize != len(raw):
        raise _Refused(f"numpy array of shape {shape} and dtype {dt.str} needs "
                       f"{math.prod(shape) * dt.itemsize} bytes, the file holds {len(raw)}")
    flat = np.frombuffer(raw, dtype=dt)
    return flat.reshape(shape, order=order).copy(order=order)


class _Dtype(_Global):
    __slots__ = ()
    label = "numpy.dtype"

    def __call__(self, code: Any, align: Any = False, copy: Any = True) -> _DtypeStub:
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
            raise _Refused(f"numpy dtype {str(code)[:40]!r} is not a plain numeric/str dtype")
        if not isinstance(align, bool) or not isinstance(copy, bool):
            raise _Refused("malformed numpy dtype arguments")
        dt = np.dtype(code)
        if dt.hasobject or dt.fields is not None or dt.itemsize > MAX_ITEMSIZE:
            raise _Refused(f"numpy dtype {code!r} is not allowed")
        return _DtypeStub(dt)


class _Ndarray(_Global):
    __slots__ = ()
    label = "numpy.ndarray"


class _Reconstruct(_Global):
    __slots__ = ()
    label = "numpy._reconstruct"

    def __call__(self, cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
        if not isinstance(cls, _Ndarray):
            raise _Refused("numpy array subclasses are not allowed (only numpy.ndarray)")
        _shape_of(shape)
        return _ArrayStub()


class _Frombuffer(_Global):
    __slots__ = ()
    label = "numpy._frombuffer"

    def __call__(self, buf: Any, dtype: Any, shape: Any, order: Any) -> _ArrayStub:
        return _ArrayStub(_from_bytes(buf, dtype, shape, order))


class _Scalar(_Global):
    __slots__ = ()
    label = "numpy.scalar"

    def __call__(self, dtype: Any, data: Any = None) -> _ScalarStub:
        dt = _dtype_of(dtype)
        if not isinstance(data, bytes) or len(data) != dt.itemsize:
            raise _Refused(f"numpy scalar of dtype {dt.str} needs {dt.itemsize} raw bytes")
        return _ScalarStub(np.frombuffer(data, dtype=dt)[0])


def _items(x: Any) -> list[Any]:
    if not isinstance(x, list | tuple):
        raise _Refused("a container built from something other than a list or tuple")
    return list(x)


class _Set(_Global):
    __slots__ = ()
    label = "builtins.set"

    def __call__(self, items: Any = ()) -> _PendingSet:
        return _PendingSet(_items(items))


class _Frozenset(_Global):
    __slots__ = ()
    label = "builtins.frozenset"

    def __call__(self, items: Any = ()) -> _PendingSet:
        return _PendingSet(_items(items), frozen=True)


class _PendingSet:
    """A set whose members may still be stand-ins; built when the load finishes."""

    __slots__ = ("items", "frozen")

    def __init__(self, items: list[Any], frozen: bool = False) -> None:
        self.items = items
        self.frozen = frozen

    def __setstate__(self, state: Any) -> None:
        raise _Refused("pickle tries to set the state of a set")


class _List(_Global):
    __slots__ = ()
    label = "builtins.list"

    def __call__(self, items: Any = ()) -> list[Any]:
        return _items(items)


class _Bytearray(_Global):
    __slots__ = ()
    label = "builtins.bytearray"

    def __call__(self, data: Any = b"", encoding: Any = None) -> bytearray:
        if isinstance(data, bytes) and encoding is None:
            return bytearray(data)
        if isinstance(data, str) and encoding in ("latin1", "latin-1"):
            return bytearray(data, "latin-1")
        raise _Refused("builtins.bytearray with anything but bytes (no sizes, no iterators)")


class _Bytes(_Global):
    __slots__ = ()
    label = "builtins.bytes"

    def __call__(self, data: Any = b"") -> bytes:
        if not isinstance(data, bytes):
            raise _Refused("builtins.bytes with anything but bytes (no sizes, no iterators)")
        return data


class _Complex(_Global):
    __slots__ = ()
    label = "builtins.complex"

    def __call__(self, real: Any = 0.0, imag: Any = 0.0) -> complex:
        if not all(type(v) in (int, float) for v in (real, imag)):
            raise _Refused("builtins.complex with non-numbers")
        return complex(real, imag)


class _Encode(_Global):
    __slots__ = ()
    label = "_codecs.encode"

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _Refused("_codecs.encode other than a latin-1 string (protocol-2 bytes)")
        return text.encode("latin-1")


class _Dict(_Global):
    """``collections.OrderedDict`` / ``defaultdict``: data is returned as a plain dict."""

    __slots__ = ()
    label = "collections.defaultdict"

    def __call__(self, factory: Any = None, *rest: Any) -> dict[Any, Any]:
        if rest or not (factory is None or isinstance(factory, _List | _Dict | _Set)):
            raise _Refused("collections.defaultdict with a factory other than list/dict/set")
        return {}


_NUMPY = {"_reconstruct": _Reconstruct(), "scalar": _Scalar()}
GLOBALS: dict[tuple[str, str], _Global] = {
    ("builtins", "set"): _Set(),
    ("builtins", "frozenset"): _Frozenset(),
    ("builtins", "list"): _List(),
    ("builtins", "bytearray"): _Bytearray(),
    ("builtins", "bytes"): _Bytes(),
    ("builtins", "complex"): _Complex(),
    ("_codecs", "encode"): _Encode(),
    ("collections", "OrderedDict"): _Dict(),
    ("collections", "defaultdict"): _Dict(),
    ("numpy", "ndarray"): _Ndarray(),
    ("numpy", "dtype"): _Dtype(),
    **{(mod, name): fn for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name, fn in _NUMPY.items()},
    **{(mod, "_frombuffer"): _Frombuffer()
       for mod in ("numpy.core.numeric", "numpy._core.numeric")},
}
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None))


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        key = (_MODULE_ALIASES.get(module, module), name)
        if key in GLOBALS:
            return GLOBALS[key]
        raise _Refused(f"pickle refers to {module[:80]}.{name[:80]}, which is not allowed: only "
                       "builtin containers/scalars and plain numpy arrays may appear in a "
                       "dataset pickle")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("pickle uses a persistent id")


def _finish(obj: Any, depth: int, done: dict[int, Any]) -> Any:
    """Replace every stand-in by the real value; containers are walked once each."""
    if isinstance(obj, _LEAVES):
        return obj
    key = id(obj)
    if key in done:
        return done[key]
    if depth > MAX_DEPTH:
        raise _Refused(f"containers nested more than {MAX_DEPTH} deep")
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise _Refused("a numpy array without data")
        out: Any = obj.array
    elif isinstance(obj, _ScalarStub):
        out = obj.value
    elif isinstance(obj, _DtypeStub):
        out = obj.dtype
    elif isinstance(obj, list):
        done[key] = obj
        obj[:] = [_finish(v, depth + 1, done) for v in obj]
        return obj
    elif isinstance(obj, dict):
        done[key] = obj
        items = list(obj.items())
        obj.clear()
        for k, v in items:
            obj[_finish(k, depth + 1, done)] = _finish(v, depth + 1, done)
        return obj
    elif isinstance(obj, tuple):
        out = tuple(_finish(v, depth + 1, done) for v in obj)
    elif isinstance(obj, _PendingSet):
        members = [_finish(v, depth + 1, done) for v in obj.items]
        out = frozenset(members) if obj.frozen else set(members)
    elif isinstance(obj, set | frozenset):
        out = type(obj)(_finish(v, depth + 1, done) for v in obj)
    else:
        raise _Refused(f"a {getattr(obj, 'label', type(obj).__name__)} used as a value")
    done[key] = out
    return out


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
        return _finish(_Restricted(io.BytesIO(data)).load(), 0, {})
    except _Refused as exc:
        raise DatasetFormatError(path, str(exc)) from None
    except RecursionError:
        raise DatasetFormatError(path, "pickle nested too deeply") from None
    except Exception as exc:  # truncated, corrupt, wrong protocol, a check inside numpy
        raise DatasetFormatError(path, f"not a readable pickle ({type(exc).__name__}: "
                                 f"{str(exc)[:200]})") from None
