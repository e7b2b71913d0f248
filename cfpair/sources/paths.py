"""Containment of every path a source reads: nothing named by an input leaves the dataset root.

A dataset is hostile until read: a log may name a camera file ``/home/me/.ssh/id_rsa`` or
``../../x.jpg``, a split file may list ``../../etc``, a label file may be a symlink to a file
outside the dataset. Every source resolves the paths it opens or stores through this module:

- :func:`inside` resolves a path (following every symlink, of files and folders) and refuses it
  unless the result lies under the resolved root;
- :func:`relative_inside` checks a *relative* path read from an input (camera paths): it must be
  a non-empty string without NUL, not absolute, without ``..``, and resolve inside the root;
- :func:`safe_name` checks a single path component read from an input (scenario names, map
  locations);
- :func:`read_bytes` / :func:`read_text` read a contained file with a size cap, and
  :func:`read_text` turns bad UTF-8 into an error naming the line;
- :func:`files` lists a folder's files, refusing any entry that resolves outside the root.

Every refusal is a :class:`~cfpair.errors.DatasetFormatError` naming the file, so a bad path is
one rejected clip, never a crash and never a read outside the dataset.
"""

from __future__ import annotations

import re
from pathlib import Path

from cfpair.errors import DatasetFormatError

#: the largest file a source reads into memory (a log pickle, a label file, a calib pickle)
MAX_FILE_BYTES = 512 * 1024 * 1024
#: the longest relative path accepted from an input
MAX_PATH_CHARS = 1024
_NAME = re.compile(r"^[A-Za-z0-9._@+=,-][A-Za-z0-9 ._@+=,-]{0,254}$")


def root_of(root: str | Path) -> Path:
    """The resolved dataset root (symlinks in the root itself are the user's choice)."""
    return Path(root).resolve()


def inside(root: str | Path, path: str | Path, what: str = "file") -> Path:
    """``path`` (absolute, or relative to the working directory like any path a source builds
    from its root) resolved with every symlink followed; an error naming it unless it lies
    under ``root``."""
    base = root_of(root)
    p = Path(path)
    if "\x00" in str(p):
        raise DatasetFormatError(p, f"{what} path contains a NUL byte")
    try:
        real = p.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise DatasetFormatError(p, f"cannot resolve {what} path ({exc})") from None
    if real != base and not real.is_relative_to(base):
        raise DatasetFormatError(p, f"{what} resolves to {real}, outside the dataset root "
                                 f"{base} (symlink or '..'): refused")
    return real


def check_relative(rel: object, origin: str | Path, what: str = "path") -> str:
    """The form of a relative path read from the input file ``origin``: a non-empty string
    without NUL, at most MAX_PATH_CHARS long, not absolute, without any ``..`` component."""
    if not isinstance(rel, str) or not rel:
        raise DatasetFormatError(origin, f"{what} must be a non-empty string, got "
                                 f"{type(rel).__name__} {str(rel)[:80]!r}")
    if len(rel) > MAX_PATH_CHARS or "\x00" in rel:
        raise DatasetFormatError(origin, f"{what} is longer than {MAX_PATH_CHARS} characters "
                                 "or holds a NUL byte")
    parts = rel.replace("\\", "/").split("/")
    if rel.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", rel) or ".." in parts:
        raise DatasetFormatError(origin, f"{what} {rel[:200]!r} is absolute or climbs out "
                                 "with '..': paths in a dataset must stay inside its root")
    return rel


def relative_inside(root: str | Path, rel: object, origin: str | Path, what: str = "path"
                    ) -> str:
    """A relative path read from the input file ``origin``, checked; returned normalised.

    Refused (naming ``origin``): see :func:`check_relative`, and any path that resolves
    (through symlinks of files or folders) outside ``root``.
    """
    rel = check_relative(rel, origin, what)
    try:
        real = inside(root, Path(root) / rel, what)
    except DatasetFormatError as exc:
        raise DatasetFormatError(origin, f"{what} {rel[:200]!r}: {exc.reason}") from None
    return real.relative_to(root_of(root)).as_posix()


def safe_name(name: object, origin: str | Path, what: str = "name") -> str:
    """One path component read from an input: letters, digits, ``._-@+=,`` and spaces only."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise DatasetFormatError(origin, f"{what} must be a plain file name (letters, digits, "
                                 f"'._-'), got {str(name)[:80]!r}")
    return name


def read_bytes(root: str | Path, path: str | Path, what: str = "file",
               limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a contained regular file of at most ``limit`` bytes."""
    real = inside(root, path, what)
    try:
        st = real.stat()
        if not real.is_file():
            raise DatasetFormatError(path, f"{what} is not a regular file")
        if st.st_size > limit:
            raise DatasetFormatError(path, f"{what} is {st.st_size} bytes, more than the "
                                     f"{limit} bytes cfpair reads")
        with open(real, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise DatasetFormatError(path, f"cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise DatasetFormatError(path, f"{what} grew past {limit} bytes while read")
    return data


def read_text(root: str | Path, path: str | Path, what: str = "file",
              limit: int = MAX_FILE_BYTES) -> str:
    """A contained UTF-8 text file; bad bytes are an error naming the line and the byte."""
    data = read_bytes(root, path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetFormatError(path, f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x}"
                                 f" at offset {exc.start})", line) from None


def files(root: str | Path, folder: str | Path, pattern: str, what: str = "file"
          ) -> list[Path]:
    """Entries of ``folder`` matching ``pattern``, sorted; any that resolves outside ``root``
    (a symlink out of the dataset) is an error naming it."""
    folder = Path(folder)
    try:
        found = sorted(folder.glob(pattern))
    except OSError as exc:
        raise DatasetFormatError(folder, f"cannot list: {exc.strerror or exc}") from None
    for p in found:
        inside(root, p, what)
    return found

