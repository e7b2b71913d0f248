"""A restricted unpickler for untrusted dataset pickles (OpenScene, DeepAccident, ScenarioNet).

A pickle is a program; this module runs only the part of it that builds data. Before CPython's
unpickler sees a byte, a linear scan of the opcode stream refuses the opcodes no dataset needs
(extension codes, persistent ids, out-of-band buffers, INST/OBJ/NEWOBJ) and memo indexes larger
than the file (one 6-byte ``LONG_BINPUT`` would otherwise make CPython allocate and clear
gigabytes). Every global a pickle names is then looked up in an exact table of (module, name)
pairs — no prefixes, no dotted names — and what the table returns is never the real object but
a small checked stand-in, made afresh for each load (nothing is shared between loads):

- builtin containers (``set``, ``frozenset``, ``bytearray``, ``complex``, ``list``) accept only
  already-built, bounded arguments (no ``bytearray(10**12)``, no iterators); ``dict``, ``int``,
  ``float``, ``str``, ``tuple``, ``bool`` may only be named as a ``defaultdict`` factory;
- numpy dtypes are rebuilt from a plain type code (bool, int, uint, float, complex, fixed-width
  str/bytes only: never object, void, structured or datetime; the zero-width ``S0``/``U0`` only
  for numpy's empty str/bytes scalars, never for arrays), and their pickled state must equal,
  field for field, the state numpy itself writes for that code — so no flag tricks;
- numpy arrays and scalars are rebuilt by ``np.frombuffer`` from raw bytes whose length must equal
  shape × itemsize before anything is allocated; numpy's own ``__setstate__`` never sees a pickle's
  arguments (like it, we return non-native byte order as native, except for protocol 5's
  ``_frombuffer``). Bool data must be 0/1 and str data valid Unicode scalar values (no
  surrogates), so nothing fails later when the values are used;
- everything the stand-ins copy (array data, ``bytearray``, ``list``, ``set``, latin-1 text) is
  charged to a budget of twice the file size plus 1 MiB, so one large value referenced many times
  through the memo cannot be turned into many large copies.

A walk after loading replaces the stand-ins by real values (numpy arrays, dtypes and scalars;
``OrderedDict``/``defaultdict`` come back as plain dicts), refuses a stand-in left as a value,
refuses containers that contain themselves and refuses nesting deeper than :data:`MAX_DEPTH`
along any path (shared sub-structures are measured once, by their height, so the walk is linear).

Anything else — ``os.system``, ``numpy.lib.format`` helpers, ``numpy.load``, a dotted path like
``dtypes.__builtins__.get``, an object array, a nested pickle, a persistent id — is refused before
it runs, with a :class:`DatasetFormatError` that names the file and, where there is one, the
global. Error messages never ``repr`` a file's objects (a shared list-of-lists can have an
exponentially long repr).

While ``copyreg`` has extension codes registered (CPython registers none), loads use CPython's
pure-Python unpickler with EXT refused, because the C one answers an EXT opcode from a
process-wide cache of real objects without asking ``find_class``.

Ints are limited to 9 bytes (every int64/uint64 fits): larger ones only serve to make many dict
keys share one hash. Known limit: dicts and sets are filled by CPython itself, so tuple keys
whose numbers are chosen to share one tuple hash still make insertion quadratic — bounded by the
file size, but 20 000 such keys take seconds and a file of megabytes minutes, as with
``pickle.loads``. Load files whose origin you do not trust in a worker with a timeout.
"""

from __future__ import annotations

import copyreg
import io
import itertools
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from cfpair.errors import DatasetFormatError

MAX_DEPTH = 100  # at most this many containers nested inside one another (the top one counts)
MAX_ITEMSIZE = 1 << 20  # bytes per element of a str/bytes dtype
MAX_NDIM = 32
_MAX_NBYTES = 1 << 62  # numpy's own limit on shape × itemsize (ignoring zero dimensions)
_DTYPE_CODE = re.compile(r"[<>|=]?(b1|[iu][1248]|f(2|4|8|16)|c(8|16|32)|[US](0|[1-9][0-9]{0,6}))")
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_NAME_ALIASES = {("builtins", "long"): ("builtins", "int"),
                 ("builtins", "unicode"): ("builtins", "str")}
_LEAVES = frozenset({str, bytes, bytearray, int, float, complex, bool, type(None)})
_SEQUENCES = frozenset({tuple, list})


class _Refused(Exception):
    """Raised inside the unpickler; turned into a DatasetFormatError naming the file."""


def _show(x: Any) -> str:
    """A short description of a value from the file; never a full repr (that can be huge)."""
    t = type(x)
    if t is int:
        return str(x) if x.bit_length() < 128 else f"<int of {x.bit_length()} bits>"
    if t in (str, bytes, bytearray):
        return repr(x[:40]) + ("..." if len(x) > 40 else "")
    if t in (float, complex, bool, type(None)):
        return repr(x)
    label = getattr(x, "label", None)
    if isinstance(label, str):
        return f"<{label}>"
    if t in (tuple, list, dict, set, frozenset):
        return f"<{t.__name__} of {len(x)}>"
    return f"<{t.__name__}>"


def _clean(name: str, limit: int = 80) -> str:
    """Text from the file, cut short and with control characters escaped (no forged lines)."""
    return name[:limit].encode("unicode_escape").decode("ascii")


# --- the opcode scan ---------------------------------------------------------------------------

_REFUSED_OPS = {
    0x82: "an extension code (EXT1)", 0x83: "an extension code (EXT2)",
    0x84: "an extension code (EXT4)", ord("P"): "a persistent id (PERSID)",
    ord("Q"): "a persistent id (BINPERSID)", 0x97: "an out-of-band buffer (NEXT_BUFFER)",
    0x98: "a read-only buffer (READONLY_BUFFER)", ord("i"): "INST (class instantiation)",
    ord("o"): "OBJ (class instantiation)", 0x81: "NEWOBJ (class instantiation)",
    0x92: "NEWOBJ_EX (class instantiation)",
}
_COUNTED = {  # opcode -> (bytes of its length field, signed)
    0x8C: (1, False), ord("C"): (1, False), ord("U"): (1, False), 0x8A: (1, False),
    ord("X"): (4, False), ord("B"): (4, False), ord("T"): (4, True), 0x8B: (4, True),
    0x8D: (8, False), 0x8E: (8, False), 0x96: (8, False),
}
_LINE_OPS = frozenset(b"ILSVFg")  # one newline-terminated argument (PUT 'p' is checked apart)
# Ints hash to themselves modulo 2**61 - 1, so k * (2**61 - 1) for k = 1..n are n keys with one
# hash: a dict of them fills in O(n**2). Capped at 9 bytes (every int64 and uint64 fits), at most
# ~2 * 2**10 ints share a hash.
_LONGS = frozenset({0x8A, 0x8B, ord("I"), ord("L")})
_MAX_INT_BYTES = 9
_SHORT_STRINGS = 48  # SHORT_BINUNICODE/BYTES/STRING up to this length are skipped by the regex


def _fast_pattern() -> re.Pattern[bytes]:
    """Opcodes that need no check, as one possessive regex run: scanned at C speed."""
    noarg = re.escape(b"N\x88\x89]aelt)\x85\x86\x87}dsu\x8f\x90\x91\x30\x32(\x31\x94\x93Rb")
    counted = b"|".join(re.escape(bytes([n])) + b"[\\s\\S]{%d}" % n
                        for n in range(_SHORT_STRINGS + 1))
    return re.compile(
        b"(?:G[\\s\\S]{8}|[" + noarg + b"]|[Khq\\x80][\\s\\S]|M[\\s\\S]{2}|[Jj][\\s\\S]{4}"
        b"|r[\\s\\S]{2}[\\x00-\\x0f]\\x00"  # LONG_BINPUT below 2**20: always small enough
        b"|[\\x8cCU](?:" + counted + b"))*+")


_FAST = _fast_pattern()


def _scan(data: bytes) -> None:
    """Walk the opcodes up to STOP; refuse dangerous ones and memo indexes above the file size."""
    end, pos, match = len(data), 0, _FAST.match
    while True:
        m = match(data, pos)
        pos = m.end() if m else pos
        if pos >= end:
            raise _Refused("pickle data was truncated (no STOP opcode)")
        op = data[pos]
        if op == 0x2E:  # STOP
            return
        if op in _COUNTED:
            width, signed = _COUNTED[op]
            size = int.from_bytes(data[pos + 1:pos + 1 + width], "little", signed=signed)
            if size < 0 or pos + 1 + width + size > end:
                raise _Refused(f"pickle data was truncated ({size} bytes claimed at {pos})")
            if op in _LONGS and size > _MAX_INT_BYTES:
                raise _Refused(f"pickle has an integer of {size} bytes at {pos} (more than "
                               f"{_MAX_INT_BYTES}: such ints only serve to collide dict hashes)")
            pos += 1 + width + size
        elif op in _LINE_OPS or op == 0x63 or op == 0x70:  # c GLOBAL: two lines; p PUT
            nl = data.find(b"\n", pos + 1)
            if op == 0x63:
                nl = data.find(b"\n", nl + 1) if nl >= 0 else -1
            if nl < 0:
                raise _Refused("pickle data was truncated (unterminated line)")
            if op in _LONGS and nl - pos > 25:  # I/L, sign, 22 digits (9 bytes), L
                raise _Refused(f"pickle has an integer of {nl - pos - 1} digits at {pos}")
            if op == 0x70:
                digits = data[pos + 1:nl]
                if not digits.isdigit() or len(digits) > 20:
                    raise _Refused(f"malformed memo index {_show(digits)}")
                _check_memo_index(int(digits), end)
            pos = nl + 1
        elif op == 0x95:  # FRAME: CPython's pure-Python unpickler accepts a frame past the end
            if pos + 9 + int.from_bytes(data[pos + 1:pos + 9], "little") > end:
                raise _Refused(f"pickle data was truncated (frame at {pos} runs past the end)")
            pos += 9
        elif op == 0x72:  # LONG_BINPUT the regex did not take
            _check_memo_index(int.from_bytes(data[pos + 1:pos + 5], "little"), end)
            pos += 5
        elif op in _REFUSED_OPS:
            raise _Refused(f"pickle uses {_REFUSED_OPS[op]} at byte {pos}, which is not allowed "
                           "in a dataset pickle")
        else:
            raise _Refused(f"pickle has an unknown opcode {op:#04x} at byte {pos}")


def _check_memo_index(idx: int, end: int) -> None:
    if idx > end:
        raise _Refused(f"pickle puts memo entry {idx} in a {end}-byte file (a memory bomb)")


# --- per-load state and stand-ins --------------------------------------------------------------

class _Load:
    """What one load may still allocate; every stand-in of that load charges it."""

    __slots__ = ("left",)

    def __init__(self, budget: int) -> None:
        self.left = budget

    def charge(self, nbytes: int, what: str) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise _Refused(f"{what} would make the data more than twice the size of the file "
                           "(one large value referenced many times?)")


class _StandIn:
    """Base of every object the unpickler can hold that is not a builtin: BUILD on it refused."""

    __slots__ = ()
    label = "?"

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"pickle tries to set the state of {self.label}")

    def __reduce__(self) -> Any:
        raise TypeError(f"{self.label} stand-ins are not picklable")


class _Global(_StandIn):
    """A checked stand-in for one allowed global, bound to one load."""

    __slots__ = ("load",)

    def __init__(self, load: _Load) -> None:
        self.load = load


class _DtypeStub(_StandIn):
    """A numpy dtype under construction: type code first, then numpy's own state, checked."""

    __slots__ = ("dtype", "built", "values_checked")
    label = "numpy dtype"

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.built = False
        self.values_checked = dtype.kind in "bU"  # bool bytes 0/1, str code points valid

    def __setstate__(self, state: Any) -> None:
        if self.built or type(state) is not tuple or len(state) < 2:
            raise _Refused("malformed numpy dtype state")
        order = state[1]
        if type(order) is not str or order not in ("<", ">", "|", "="):
            raise _Refused(f"numpy dtype byte order {_show(order)}")
        dt = self.dtype if order in ("|", "=") else self.dtype.newbyteorder(order)
        if dt.__reduce__()[2] != state:
            raise _Refused(f"numpy dtype state {_show_tuple(state)} is not what numpy writes for "
                           f"{dt.str}: flags, fields and sizes may not be chosen by a file")
        self.dtype = dt
        self.built = True


def _show_tuple(t: tuple[Any, ...]) -> str:
    return "(" + ", ".join(_show(v) for v in t[:10]) + (", ...)" if len(t) > 10 else ")")


class _ArrayStub(_StandIn):
    """A numpy array under construction; holds the finished array once its state is checked."""

    __slots__ = ("array", "load")
    label = "numpy array"

    def __init__(self, load: _Load, array: np.ndarray | None = None) -> None:
        self.load = load
        self.array = array

    def __setstate__(self, state: Any) -> None:
        if self.array is not None or type(state) is not tuple or len(state) != 5:
            raise _Refused("malformed numpy array state")
        version, shape, dtype, fortran, raw = state
        if type(version) is not int or version != 1 or type(fortran) is not bool:
            raise _Refused("malformed numpy array state")
        array = _from_bytes(self.load, raw, dtype, shape, "F" if fortran else "C")
        if not array.dtype.isnative:  # numpy's __setstate__ swaps to native order on load
            array = array.astype(array.dtype.newbyteorder("="), order="K")
        self.array = array


class _ScalarStub(_StandIn):
    __slots__ = ("value",)
    label = "numpy scalar"

    def __init__(self, value: Any) -> None:
        self.value = value


class _PendingSet(_StandIn):
    """A set whose members may still be stand-ins; built when the load finishes."""

    __slots__ = ("items", "frozen")
    label = "set"

    def __init__(self, items: list[Any], frozen: bool = False) -> None:
        self.items = items
        self.frozen = frozen


def _dtype_of(stub: Any) -> np.dtype:
    if type(stub) is not _DtypeStub:
        raise _Refused("a numpy array or scalar whose dtype is not a plain numpy dtype")
    return stub.dtype


def _shape_of(shape: Any, itemsize: int) -> tuple[tuple[int, ...], int]:
    """A pickled shape -> (shape, number of bytes the data must have)."""
    if type(shape) is not tuple or len(shape) > MAX_NDIM:
        raise _Refused(f"numpy shape {_show(shape)} is not a tuple of sizes")
    for n in shape:  # one or two sizes in practice: a plain loop is the fastest check
        if type(n) is not int or not 0 <= n < _MAX_NBYTES:
            raise _Refused(f"numpy shape {_show_tuple(shape)} is not a tuple of sizes")
    nbytes = math.prod(shape) * itemsize
    if nbytes >= _MAX_NBYTES or (not nbytes and math.prod(n or 1 for n in shape) >= _MAX_NBYTES):
        raise _Refused(f"numpy shape {_show_tuple(shape)} is larger than numpy can hold")
    return shape, nbytes


def _check_values(flat: np.ndarray, dt: np.dtype) -> None:
    """Refuse bool bytes other than 0/1 and str code points that are not Unicode scalars."""
    if not flat.size:
        return
    if dt.kind == "b" and flat.view(np.uint8).max() > 1:
        raise _Refused("numpy bool data holds bytes other than 0 and 1")
    if dt.kind == "U":
        cp = flat.view(dt.str[0] + "u4")
        if ((cp > 0x10FFFF) | ((cp >= 0xD800) & (cp <= 0xDFFF))).any():
            raise _Refused("numpy str data holds code points that are not Unicode characters")


def _from_bytes(load: _Load, raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if type(dtype) is not _DtypeStub:
        raise _Refused("a numpy array or scalar whose dtype is not a plain numpy dtype")
    dt = dtype.dtype
    if not dt.itemsize:  # 'S0'/'U0': only numpy's empty str/bytes scalars use it, never arrays
        raise _Refused(f"numpy array of dtype {dt.str}0: elements of zero bytes")
    shape, need = _shape_of(shape, dt.itemsize)
    if type(raw) is not bytes and type(raw) is not bytearray:
        raise _Refused("numpy array data must be raw bytes (object arrays are not allowed)")
    if type(order) is not str or order not in ("C", "F"):
        raise _Refused(f"numpy array order {_show(order)} (only 'C' and 'F')")
    if need != len(raw):
        raise _Refused(f"numpy array of shape {_show_tuple(shape)} and dtype {dt.str} needs "
                       f"{need} bytes, the file holds {len(raw)}")
    load.charge(need, "a numpy array")
    flat = np.frombuffer(raw, dtype=dt)
    if dtype.values_checked:
        _check_values(flat, dt)
    if order == "C" or len(shape) < 2:
        return flat.reshape(shape).copy()
    return flat.reshape(shape, order="F").copy(order="F")


class _Dtype(_Global):
    __slots__ = ()
    label = "numpy.dtype"

    def __call__(self, code: Any, align: Any = False, copy: Any = True) -> _DtypeStub:
        if type(code) is not str or not _DTYPE_CODE.fullmatch(code):
            raise _Refused(f"numpy dtype {_show(code)} is not a plain numeric/str dtype")
        if type(align) is not bool or type(copy) is not bool:
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
        if type(cls) is not _Ndarray:
            raise _Refused("numpy array subclasses are not allowed (only numpy.ndarray)")
        return _ArrayStub(self.load)


class _Frombuffer(_Global):
    __slots__ = ()
    label = "numpy._frombuffer"

    def __call__(self, buf: Any, dtype: Any, shape: Any, order: Any) -> _ArrayStub:
        return _ArrayStub(self.load, _from_bytes(self.load, buf, dtype, shape, order))


class _Scalar(_Global):
    __slots__ = ()
    label = "numpy.scalar"

    def __call__(self, dtype: Any, data: Any = None) -> _ScalarStub:
        dt = _dtype_of(dtype)
        if type(data) is not bytes or len(data) != dt.itemsize:
            raise _Refused(f"numpy scalar of dtype {dt.str} needs {dt.itemsize} raw bytes")
        self.load.charge(dt.itemsize, "a numpy scalar")
        if not dt.itemsize:  # np.str_('') and np.bytes_(b'') are pickled with 'U0' / 'S0'
            return _ScalarStub(np.str_() if dt.kind == "U" else np.bytes_())
        flat = np.frombuffer(data, dtype=dt)
        _check_values(flat, dt)
        return _ScalarStub(flat[0])


def _items(load: _Load, x: Any, what: str) -> list[Any]:
    if type(x) not in _SEQUENCES:
        raise _Refused(f"{what} built from something other than a list or tuple")
    load.charge(8 * len(x), what)
    return list(x)


class _Set(_Global):
    __slots__ = ()
    label = "builtins.set"

    def __call__(self, items: Any = ()) -> _PendingSet:
        return _PendingSet(_items(self.load, items, "builtins.set"))


class _Frozenset(_Global):
    __slots__ = ()
    label = "builtins.frozenset"

    def __call__(self, items: Any = ()) -> _PendingSet:
        return _PendingSet(_items(self.load, items, "builtins.frozenset"), frozen=True)


class _List(_Global):
    __slots__ = ()
    label = "builtins.list"

    def __call__(self, items: Any = ()) -> list[Any]:
        return _items(self.load, items, "builtins.list")


class _Bytearray(_Global):
    __slots__ = ()
    label = "builtins.bytearray"

    def __call__(self, data: Any = b"", encoding: Any = None) -> bytearray:
        if type(data) is bytes and encoding is None:
            self.load.charge(len(data), "builtins.bytearray")
            return bytearray(data)
        if type(data) is str and type(encoding) is str and encoding in ("latin1", "latin-1"):
            self.load.charge(len(data), "builtins.bytearray")
            return bytearray(data, "latin-1")
        raise _Refused("builtins.bytearray with anything but bytes (no sizes, no iterators)")


class _Bytes(_Global):
    __slots__ = ()
    label = "builtins.bytes"

    def __call__(self, data: Any = b"") -> bytes:
        if type(data) is not bytes:
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
        if (type(text) is not str or type(encoding) is not str
                or encoding not in ("latin1", "latin-1")):
            raise _Refused("_codecs.encode other than a latin-1 string (protocol-2 bytes)")
        self.load.charge(len(text), "_codecs.encode")
        return text.encode("latin-1")


class _OrderedDict(_Global):
    """``collections.OrderedDict()``: pickle fills it with SETITEMS; returned as a plain dict."""

    __slots__ = ()
    label = "collections.OrderedDict"

    def __call__(self, *args: Any) -> dict[Any, Any]:
        if args:
            raise _Refused("collections.OrderedDict with arguments (pickle never passes any)")
        return {}


class _Factory(_Global):
    """A builtin type named only as a ``defaultdict`` factory; calling it is refused."""

    __slots__ = ()
    label = "builtins type"

    def __call__(self, *args: Any) -> Any:
        raise _Refused("a builtin type called by a pickle (only allowed as a defaultdict factory)")


class _Defaultdict(_Global):
    """``collections.defaultdict(factory)``: pickle fills it with SETITEMS; a plain dict."""

    __slots__ = ()
    label = "collections.defaultdict"

    def __call__(self, factory: Any = None, *rest: Any) -> dict[Any, Any]:
        if rest or not (factory is None or type(factory) in _FACTORIES):
            raise _Refused("collections.defaultdict with a factory that is not a builtin type")
        return {}


_FACTORIES = (_List, _Set, _Frozenset, _Factory, _OrderedDict, _Defaultdict)
_NUMPY: dict[str, type[_Global]] = {"_reconstruct": _Reconstruct, "scalar": _Scalar}
GLOBALS: dict[tuple[str, str], type[_Global]] = {
    ("builtins", "set"): _Set,
    ("builtins", "frozenset"): _Frozenset,
    ("builtins", "list"): _List,
    ("builtins", "bytearray"): _Bytearray,
    ("builtins", "bytes"): _Bytes,
    ("builtins", "complex"): _Complex,
    ("_codecs", "encode"): _Encode,
    ("collections", "OrderedDict"): _OrderedDict,
    ("collections", "defaultdict"): _Defaultdict,
    **{("builtins", name): _Factory for name in ("dict", "int", "float", "str", "tuple", "bool")},
    ("numpy", "ndarray"): _Ndarray,
    ("numpy", "dtype"): _Dtype,
    **{(mod, name): fn for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name, fn in _NUMPY.items()},
    **{(mod, "_frombuffer"): _Frombuffer
       for mod in ("numpy.core.numeric", "numpy._core.numeric")},
}
"""The allowed (module, name) pairs and the stand-in class each one is given (one per load)."""


class _Checks:
    """find_class / persistent_load shared by the C unpickler and the pure-Python fallback."""

    _load: _Load
    _made: dict[tuple[str, str], _Global]

    def _setup(self, load: _Load) -> None:
        self._load = load
        self._made = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (_MODULE_ALIASES.get(module, module), name)
        key = _NAME_ALIASES.get(key, key)  # what Python 3 writes for Python 2 (protocols 0-2)
        cls = GLOBALS.get(key)
        if cls is None:
            raise _Refused(f"pickle refers to {_clean(module)}.{_clean(name)}, which is not "
                           "allowed: only builtin containers/scalars and plain numpy arrays may "
                           "appear in a dataset pickle")
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = cls(self._load)
        return made

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("pickle uses a persistent id")


class _Restricted(_Checks, pickle.Unpickler):
    def __init__(self, data: bytes, load: _Load) -> None:
        super().__init__(io.BytesIO(data))
        self._setup(load)


def _refuse_extension(self: Any) -> None:
    raise _Refused("pickle uses an extension code, which is not allowed in a dataset pickle")


class _PyRestricted(_Checks, pickle._Unpickler):  # type: ignore[name-defined]
    """Pure-Python unpickler, used only while copyreg has extension codes registered: the C one
    would serve a cached real object for an EXT opcode without asking find_class."""

    dispatch = {**pickle._Unpickler.dispatch,  # type: ignore[attr-defined]
                **{op[0]: _refuse_extension for op in (pickle.EXT1, pickle.EXT2, pickle.EXT4)}}

    def __init__(self, data: bytes, load: _Load) -> None:
        super().__init__(io.BytesIO(data))
        self._setup(load)


# --- the walk ----------------------------------------------------------------------------------

class _Walk:
    """Replace stand-ins by real values; measure the height of every container once."""

    def __init__(self, spare: int) -> None:
        # id -> (original, replacement, height); height -1 while the container is being walked.
        # The original is kept so that its id cannot be reused by a new object during the walk.
        self.seen: dict[int, tuple[Any, Any, int]] = {}
        # Elements the list-of-tuples shortcut may still look at: it does not see sharing (one
        # tuple in a list 10**5 times would be read 10**5 times), so it is bounded by the file.
        self.spare = spare

    def visit(self, obj: Any, depth: int) -> tuple[Any, int]:
        """``obj`` found ``depth`` containers deep -> (its replacement, its height)."""
        t = type(obj)
        if t in _LEAVES:
            return obj, 0
        key = id(obj)
        hit = self.seen.get(key)
        if hit is not None:
            _, out, height = hit
            if height < 0:
                raise _Refused(f"a {t.__name__} that contains itself (a cycle)")
            if depth + height > MAX_DEPTH:
                raise _Refused(f"containers nested more than {MAX_DEPTH} deep")
            return out, height
        if t is _ArrayStub:
            if obj.array is None:
                raise _Refused("a numpy array without data")
            out, height = obj.array, 0
        elif t is _ScalarStub:
            out, height = obj.value, 0
        elif t is _DtypeStub:
            out, height = obj.dtype, 0
        else:
            if depth >= MAX_DEPTH:
                raise _Refused(f"containers nested more than {MAX_DEPTH} deep")
            self.seen[key] = (obj, obj, -1)
            if t is list:
                out, height = obj, self._list(obj, depth)
            elif t is dict:
                out, height = obj, self._dict(obj, depth)
            elif t is tuple:
                out, height = self._tuple(obj, depth)
            elif t is set or t is frozenset or t is _PendingSet:
                out, height = self._set(obj, depth)
            else:
                raise _Refused(f"{_show(obj)} used as a value")
        self.seen[key] = (obj, out, height)
        return out, height

    def _children(self, seq: Any, depth: int) -> tuple[list[Any], int, bool]:
        out, height, changed = [], 0, False
        for v in seq:
            t = type(v)
            if t in _LEAVES:
                out.append(v)
                continue
            if t is _ArrayStub and v.array is not None:  # the common case, without bookkeeping
                out.append(v.array)
                changed = True
                continue
            nv, h = self.visit(v, depth + 1)
            out.append(nv)
            height = max(height, h)
            changed = changed or nv is not v
        return out, height + 1, changed

    def _list(self, obj: list[Any], depth: int) -> int:
        kinds = set(map(type, obj))
        if kinds <= _LEAVES:
            return 1
        if kinds <= _SEQUENCES and depth + 2 <= MAX_DEPTH:
            total = sum(map(len, obj))
            if total <= self.spare:
                self.spare -= total
                if set(map(type, itertools.chain.from_iterable(obj))) <= _LEAVES:
                    return 2
        new, height, changed = self._children(obj, depth)
        if changed:
            obj[:] = new
        return height

    def _tuple(self, obj: tuple[Any, ...], depth: int) -> tuple[Any, int]:
        if set(map(type, obj)) <= _LEAVES:
            return obj, 1
        new, height, changed = self._children(obj, depth)
        return (tuple(new) if changed else obj), height

    def _dict(self, obj: dict[Any, Any], depth: int) -> int:
        keys_flat = set(map(type, obj)) <= _LEAVES
        if keys_flat and set(map(type, obj.values())) <= _LEAVES:
            return 1
        if keys_flat:
            values, height, changed = self._children(obj.values(), depth)
            if changed:
                for k, v in zip(list(obj), values, strict=True):
                    obj[k] = v
            return height
        keys, hk, _ = self._children(obj, depth)
        values, hv, _ = self._children(obj.values(), depth)
        obj.clear()
        for k, v in zip(keys, values, strict=True):
            obj[k] = v  # a key that is not hashable once real (an array, a set) fails here
        return max(hk, hv)

    def _set(self, obj: Any, depth: int) -> tuple[Any, int]:
        members = obj.items if type(obj) is _PendingSet else obj
        if type(obj) is not _PendingSet and set(map(type, members)) <= _LEAVES:
            return obj, 1
        new, height, changed = self._children(members, depth)
        frozen = obj.frozen if type(obj) is _PendingSet else type(obj) is frozenset
        if type(obj) is set:
            if changed:
                obj.clear()
                obj.update(new)
            return obj, height
        if not changed and type(obj) is frozenset:
            return obj, height
        return (frozenset(new) if frozen else set(new)), height


# --- entry points ------------------------------------------------------------------------------

def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` with the restricted unpickler; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetFormatError(path, f"cannot read pickle: {exc.strerror or exc}") from exc
    return safe_loads(data, path)


def _describe(exc: BaseException) -> str:
    """An exception from CPython or numpy, described without repr-ing file objects."""
    if all(type(a) in (str, int) for a in exc.args):
        return f"{type(exc).__name__}: {_clean(str(exc), 200)}"
    return f"{type(exc).__name__}: {', '.join(_show(a) for a in exc.args[:3])}"


def safe_loads(data: bytes, path: str | Path = "<bytes>") -> Any:
    """Unpickle bytes with the restricted unpickler."""
    path = Path(path)
    try:
        if type(data) is not bytes:
            data = bytes(data)
        _scan(data)
        load = _Load(2 * len(data) + (1 << 20))
        plain = not (copyreg._inverted_registry or copyreg._extension_cache)  # type: ignore
        unpickler = (_Restricted if plain else _PyRestricted)(data, load)
        obj = unpickler.load()
        del unpickler
        return _Walk(len(data)).visit(obj, 0)[0]
    except _Refused as exc:
        raise DatasetFormatError(path, str(exc)) from None
    except RecursionError:
        raise DatasetFormatError(path, "pickle nested too deeply") from None
    except Exception as exc:  # truncated, corrupt, wrong protocol, a check inside numpy
        raise DatasetFormatError(path, f"not a readable pickle ({_describe(exc)})") from None
