"""The restricted unpickler: data loads, code never runs — a corpus of payload classes."""

from __future__ import annotations

import collections
import os
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from cfpair.errors import DatasetFormatError
from cfpair.sources.safe_pickle import GLOBALS, safe_load, safe_loads

REAL = next((p / "shared" / "realdata" / "scenarionet" for p in Path(__file__).resolve().parents
             if (p / "shared" / "realdata" / "scenarionet").is_dir()), Path("/nonexistent"))


def _u(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _global(module: str, name: str) -> bytes:
    return _u(module) + _u(name) + b"\x93"  # STACK_GLOBAL resolves dotted names (protocol 4)


def _call(module: str, name: str, *args: bytes) -> bytes:
    """Protocol-4 bytes for ``module.name(*args)``; each arg is already-pickled opcodes."""
    return b"\x80\x04" + _global(module, name) + b"(" + b"".join(args) + b"tR."


def _pickled(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=4)[2:-1]  # the opcodes of one value, no PROTO/STOP


class _MakesAFile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_round_trips_data(protocol, tmp_path):
    data = [{"token": "abc", "arr": np.arange(12.0).reshape(3, 4), "names": np.array(["car", "x"]),
             "none": None, "t": (1, 2.5, True), "i": np.int64(3), "f": np.float32(0.5),
             "b": np.bool_(True), "u8": np.array([[1, 2]], dtype=np.uint8).T,
             "empty": np.zeros((0, 3)), "0d": np.array(7.5), "big": np.arange(4, dtype=">i4"),
             "dd": collections.defaultdict(list),
             "od": collections.OrderedDict(a=1), "set": {1, 2}, "fs": frozenset({3}), "c": 1 + 2j,
             "by": b"\x00\xff", "ba": bytearray(b"x"), "dt": np.dtype("f4"), "s": np.str_("x")}]
    p = tmp_path / "log.pkl"
    p.write_bytes(pickle.dumps(data, protocol=protocol))
    out = safe_load(p)[0]
    ref = pickle.loads(p.read_bytes())[0]
    assert out.keys() == ref.keys()
    for k, v in ref.items():
        if isinstance(v, np.ndarray):
            assert type(out[k]) is np.ndarray and out[k].shape == v.shape, k
            np.testing.assert_array_equal(out[k], v)
            assert out[k].flags.writeable and out[k].flags.f_contiguous == v.flags.f_contiguous
        else:
            assert out[k] == v and type(out[k]) is type(v) or isinstance(v, dict), k
    assert out["u8"].dtype == np.uint8 and out["names"].tolist() == ["car", "x"]


@pytest.mark.skipif(not REAL.exists(), reason="shared real data not present")
def test_real_scenarionet_pickles_load_identically():
    files = sorted(REAL.rglob("*.pkl"))
    assert len(files) >= 8
    for f in files:
        got, ref = safe_load(f), pickle.loads(f.read_bytes())
        assert got.keys() == ref.keys()
        if "tracks" in ref:
            sdc = ref["metadata"]["sdc_id"]
            for key, arr in ref["tracks"][sdc]["state"].items():
                np.testing.assert_array_equal(got["tracks"][sdc]["state"][key], arr)


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


_S = _pickled("x")
GLOBAL_PAYLOADS = {
    # plain code-running globals
    "os.system": _call("os", "system", _pickled("true")),
    "posix.system": _call("posix", "system", _pickled("true")),
    "builtins.eval": _call("builtins", "eval", _pickled("1")),
    "builtins.exec": _call("builtins", "exec", _pickled("1")),
    "builtins.getattr": _call("builtins", "getattr", _pickled(1), _pickled("real")),
    "builtins.__import__": _call("builtins", "__import__", _pickled("os")),
    "subprocess.Popen": _call("subprocess", "Popen", _pickled(["true"])),
    "pickle.loads": _call("pickle", "loads", _pickled(b"N.")),
    "_pickle.loads": _call("_pickle", "loads", _pickled(b"N.")),
    # dotted-name traversal through allowed names (protocol 4 resolves dots)
    "numpy.dtypes.__builtins__.get": _call("numpy", "dtypes.__builtins__.get", _S),
    "numpy.dtype.__class__": _call("numpy", "dtype.__class__", _S),
    "builtins.set.__init__.__globals__": _call("builtins", "set.__init__.__globals__", _S),
    "collections.OrderedDict.__module__": _call("collections", "OrderedDict.__module__", _S),
    "numpy.core.multiarray._reconstruct.__self__": _call(
        "numpy.core.multiarray", "_reconstruct.__self__", _S),
    # prefixes of allowed names, numpy helpers that import, read files or unpickle
    "numpy.dtypes.Float64DType": _call("numpy.dtypes", "Float64DType", _S),
    "numpyx.dtype": _call("numpyx", "dtype", _S),
    "numpy.dtypeX": _call("numpy", "dtypeX", _S),
    "numpy.load": _call("numpy", "load", _pickled("/etc/passwd")),
    "numpy.fromfile": _call("numpy", "fromfile", _pickled("/etc/passwd")),
    "numpy.lib.format.read_array": _call("numpy.lib.format", "read_array", _S),
    "numpy.lib.npyio.load": _call("numpy.lib.npyio", "load", _S),
    "numpy.testing._private.utils.runstring": _call(
        "numpy.testing._private.utils", "runstring", _pickled("1"), _pickled({})),
    "numpy.f2py.compile": _call("numpy.f2py", "compile", _S),
    "numpy.ma.core._mareconstruct": _call("numpy.ma.core", "_mareconstruct", _S),
    "numpy.core.multiarray._reconstruct_x": _call("numpy.core.multiarray", "_reconstruct_x", _S),
    "copyreg._reconstructor": _call("copyreg", "_reconstructor", _S),
    "builtins.range": _call("builtins", "range", _pickled(10**12)),
    "builtins.type": _call("builtins", "type", _S),
}


@pytest.mark.parametrize("name", sorted(GLOBAL_PAYLOADS))
def test_every_foreign_global_is_refused_with_its_name(name, tmp_path):
    p = tmp_path / "payload.pkl"
    p.write_bytes(GLOBAL_PAYLOADS[name])
    with pytest.raises(DatasetFormatError) as err:
        safe_load(p)
    msg = str(err.value)
    assert str(p) in msg and name.split(".")[-1] in msg and "not allowed" in msg


def test_allow_list_is_exact_pairs_without_dots():
    assert all("." not in name for _, name in GLOBALS)
    assert all(mod in {"builtins", "_codecs", "collections"} or mod.startswith("numpy")
               for mod, _ in GLOBALS)


def _dtype(code: str, state: bytes) -> bytes:
    """numpy.dtype(code, False, True) followed by BUILD with ``state`` opcodes."""
    return (_global("numpy", "dtype") + b"(" + _pickled(code) + b"\x89\x88tR" + state + b"b")


def _array(dtype_ops: bytes, shape: tuple[int, ...], raw: bytes) -> bytes:
    head = (_global("numpy.core.multiarray", "_reconstruct") + b"(" + _global("numpy", "ndarray")
            + _pickled((0,)) + _pickled(b"b") + b"tR")
    return head + b"(" + _pickled(1) + _pickled(shape) + dtype_ops + b"\x89" + _pickled(raw) + b"tb"


F8_STATE = _pickled((3, "<", None, None, None, -1, -1, 0))


def test_well_formed_hand_built_array_loads():
    data = b"\x80\x04" + _array(_dtype("f8", F8_STATE), (2,), struct.pack("<2d", 1.5, -2)) + b"."
    np.testing.assert_array_equal(safe_loads(data), [1.5, -2.0])


STATE_PAYLOADS = {
    # dtype state tricks: flags that mark a plain dtype as holding objects, sizes, fields
    "object flags on f8": _dtype("f8", _pickled((3, "<", None, None, None, -1, -1, 63))),
    "itemsize override": _dtype("f8", _pickled((3, "<", None, None, None, 1 << 40, -1, 0))),
    "fields injected": _dtype("f8", _pickled((3, "<", None, ("a",), {"a": 1}, -1, -1, 0))),
    "subarray injected": _dtype("f8", _pickled((3, "<", (2,), None, None, -1, -1, 0))),
    "bad byte order": _dtype("f8", _pickled((3, "!", None, None, None, -1, -1, 0))),
    "object dtype": _dtype("O8", F8_STATE),
    "void dtype": _dtype("V8", F8_STATE),
    "datetime dtype": _dtype("M8", F8_STATE),
    "structured dtype": _dtype("f8,i4", F8_STATE),
    "dtype code not a string": (_global("numpy", "dtype") + b"(" + _pickled(8) + b"tR"),
    # array state tricks
    "data shorter than shape": _array(_dtype("f8", F8_STATE), (4,), b"\x00" * 8),
    "shape bomb": _array(_dtype("f8", F8_STATE), (10**12,), b"\x00" * 8),
    "negative shape": _array(_dtype("f8", F8_STATE), (-1,), b""),
    "object list as data": (_array(_dtype("f8", F8_STATE), (1,), b"")[:-3] + _pickled([1]) + b"tb"),
    "dtype that is not a dtype": _array(_pickled("f8"), (1,), b"\x00" * 8),
    "array subclass": (_global("numpy.core.multiarray", "_reconstruct") + b"("
                       + _global("numpy.core.multiarray", "scalar") + _pickled((0,))
                       + _pickled(b"b") + b"tR"),
    "array without data": (_global("numpy.core.multiarray", "_reconstruct") + b"("
                           + _global("numpy", "ndarray") + _pickled((0,)) + _pickled(b"b") + b"tR"),
    "second state on an array": _array(_dtype("f8", F8_STATE), (1,), b"\x00" * 8)
    + b"(" + _pickled(1) + _pickled((1,)) + _dtype("f8", F8_STATE) + b"\x89"
    + _pickled(b"\x00" * 8) + b"tb",
    "scalar from an object": (_global("numpy.core.multiarray", "scalar") + b"("
                              + _dtype("f8", F8_STATE) + _pickled([1, 2]) + b"tR"),
    "frombuffer of an object": (_global("numpy.core.numeric", "_frombuffer") + b"("
                                + _pickled([1]) + _dtype("f8", F8_STATE) + _pickled((1,))
                                + _pickled("C") + b"tR"),
    # BUILD on the allowed stand-ins themselves
    "state on numpy.dtype": _global("numpy", "dtype") + _pickled({"x": 1}) + b"b",
    "state on numpy.ndarray": _global("numpy", "ndarray") + _pickled((1, (1,))) + b"b",
    "slots on builtins.set": _global("builtins", "set") + _pickled((None, {"x": 1})) + b"b",
    "state on a set": (_global("builtins", "set") + b"(" + _pickled([1]) + b"tR"
                       + _pickled({"a": 1}) + b"b"),
    "a global used as a value": _global("numpy", "ndarray"),
    # memory bombs through allowed constructors
    "bytearray of a size": _global("builtins", "bytearray") + b"(" + _pickled(10**12) + b"tR",
    "bytes of a size": _global("builtins", "bytes") + b"(" + _pickled(10**12) + b"tR",
    "list of an iterator": _global("builtins", "list") + b"(" + _pickled("x" * 10) + b"tR",
    "set of a string": _global("builtins", "set") + b"(" + _pickled("abc") + b"tR",
    "codecs other than latin-1": (_global("_codecs", "encode") + b"(" + _pickled("eJw=")
                                  + _pickled("base64") + b"tR"),
    "defaultdict with a foreign factory": (_global("collections", "defaultdict") + b"("
                                           + _global("numpy", "dtype") + b"tR"),
    "complex of strings": _global("builtins", "complex") + b"(" + _pickled("1j") + b"tR",
    # nested pickles: bytes that are a pickle stay bytes; an object array holding one is refused
    "persistent id": b"\x8c\x01x\x94Q",
}


@pytest.mark.parametrize("name", sorted(STATE_PAYLOADS))
def test_state_and_constructor_tricks_are_refused(name, tmp_path):
    p = tmp_path / "payload.pkl"
    p.write_bytes(b"\x80\x04" + STATE_PAYLOADS[name] + b".")
    t0 = time.perf_counter()
    with pytest.raises(DatasetFormatError) as err:
        safe_load(p)
    assert time.perf_counter() - t0 < 5  # refused before any allocation of the claimed size
    assert str(p) in str(err.value)


def test_object_arrays_and_nested_pickles_are_refused():
    inner = pickle.dumps(_Eval())
    obj = np.array([inner, _Eval()], dtype=object)
    with pytest.raises(DatasetFormatError, match="O8|object|not allowed"):
        safe_loads(pickle.dumps(obj))
    assert safe_loads(pickle.dumps({"blob": inner}))["blob"] == inner  # data, never unpickled


def test_deep_nesting_and_shared_structure(tmp_path):
    deep = b"\x80\x04" + b"(" * 5000 + b"l" * 5000 + b"."  # MARK...LIST: [[[...]]] 5000 deep
    with pytest.raises(DatasetFormatError, match="nested"):
        safe_loads(deep)
    dag: list = [0]
    for _ in range(90):  # 2**90 paths through 90 shared lists: walked once each
        dag = [dag, dag]
    out = safe_loads(pickle.dumps(dag))
    assert out[0] is out[1]
    loop: list = []
    loop.append(loop)  # a container inside itself is infinitely deep: refused, like depth > 100
    with pytest.raises(DatasetFormatError, match="contains itself"):
        safe_loads(pickle.dumps(loop))


def test_truncated_and_missing(tmp_path):
    p = tmp_path / "cut.pkl"
    p.write_bytes(pickle.dumps(list(range(1000)))[:50])
    with pytest.raises(DatasetFormatError, match="cut.pkl: .*truncated"):
        safe_load(p)
    with pytest.raises(DatasetFormatError, match="cannot read"):
        safe_load(tmp_path / "missing.pkl")
    with pytest.raises(DatasetFormatError):
        safe_loads(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b"x")  # BINBYTES8 claims 4 EiB
