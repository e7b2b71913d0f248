"""Hand-built pickle payloads for the restricted-unpickler tests (one builder per payload class).

Every builder returns the opcodes of one value (no PROTO/STOP); :func:`whole` wraps them. Payloads
that use explicit memo indexes do not use :func:`pk` (whose MEMOIZE opcodes would shift them).
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable

import numpy as np

PROTO4 = b"\x80\x04"


def whole(ops: bytes) -> bytes:
    return PROTO4 + ops + b"."


def u(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + struct.pack(
        "<I", len(raw)) + raw


def glob(module: str, name: str) -> bytes:
    return u(module) + u(name) + b"\x93"  # STACK_GLOBAL resolves dotted names (protocol 4)


def call(module: str, name: str, *args: bytes) -> bytes:
    return glob(module, name) + b"(" + b"".join(args) + b"tR"


def pk(obj: object) -> bytes:
    """The opcodes of one value as pickle writes them (protocol 4, frame header dropped)."""
    data = pickle.dumps(obj, protocol=4)
    return data[11:-1] if data[2] == 0x95 else data[2:-1]


def put(i: int) -> bytes:
    return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)


def get(i: int) -> bytes:
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)


def binbytes(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def dtype(code: str, state: bytes | None = None) -> bytes:
    """numpy.dtype(code, False, True), then BUILD with ``state`` (numpy's own state if None)."""
    if state is None:
        state = pk(np.dtype(code).__reduce__()[2])
    return glob("numpy", "dtype") + b"(" + u(code) + b"\x89\x88tR" + state + b"b"


def array(dtype_ops: bytes, shape: tuple[int, ...], raw_ops: bytes, fortran: bool = False) -> bytes:
    """numpy's protocol-2..4 array: _reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, ...)."""
    head = (glob("numpy.core.multiarray", "_reconstruct") + b"(" + glob("numpy", "ndarray")
            + b"K\x00\x85" + b"C\x01b" + b"tR")
    return (head + b"(K\x01" + pk(shape) + dtype_ops + (b"\x88" if fortran else b"\x89")
            + raw_ops + b"tb")


def f8_array(n: int = 1) -> bytes:
    return array(dtype("f8"), (n,), binbytes(b"\x00" * 8 * n))


def scalar(dtype_ops: bytes, raw: bytes) -> bytes:
    return call("numpy.core.multiarray", "scalar", dtype_ops, binbytes(raw))


def repr_bomb(levels: int = 60, base: int = 0) -> bytes:
    """A list holding its predecessor twice, ``levels`` times: 2**levels elements in its repr."""
    ops = b"]" + put(base) + b"0"
    for i in range(levels):
        ops += b"(" + get(base + i) + get(base + i) + b"l" + put(base + i + 1) + b"0"
    return ops + get(base + levels)


def shared_chain(n: int) -> bytes:
    """[A1, A2, ..., An] where A(k) = [A(k-1)]: each A(k) is first met at depth 1, yet A(n) is
    n lists deep — a depth check that marks containers done at their first depth misses it."""
    ops = b"]" + put(0) + b"0"
    for i in range(1, n + 1):
        ops += b"(" + get(i - 1) + b"l" + put(i) + b"0"
    return ops + b"(" + b"".join(get(i) for i in range(1, n + 1)) + b"l"


def amplify(value_ops: bytes, wrap: Callable[[bytes], bytes], copies: int) -> bytes:
    """``value`` memoized once, then ``wrap(GET)`` ``copies`` times in one list."""
    return value_ops + put(0) + b"0" + b"(" + b"".join(wrap(get(0)) for _ in range(copies)) + b"l"
