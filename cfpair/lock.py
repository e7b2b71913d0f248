"""One writer per output folder: an exclusive ``flock`` on ``<folder>/.cfpair.lock``.

The kernel drops a ``flock`` when its process exits, however it exits (kill -9 included), so a
lock file left behind by a dead run is never in the way: the next run simply takes it. A second
live writer fails fast with a message naming the holder's pid. The file is removed on release,
after checking that it is still the file that was locked (so two runs can never each hold a
lock on a different file of the same name).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from cfpair.errors import ShardError
from cfpair.outdir import LOCK_NAME


class FolderLock:
    """``with FolderLock(folder):`` holds the folder's lock (creating the folder)."""

    def __init__(self, folder: str | Path, what: str = "output folder") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock or raise a ShardError naming the process that holds it."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ShardError(f"{self.folder}: cannot create the {self.what} "
                             f"({exc.strerror or exc})") from None
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise ShardError(f"{self.path}: cannot open the lock file "
                                 f"({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise ShardError(f"{self.folder} is being written by another cfpair process "
                                 f"({holder or 'pid unknown'}; lock {self.path}); wait for it "
                                 f"to finish or choose another {self.what}") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:     # the holder removed it between our open and our flock: retry
                os.close(fd)
                continue
            try:    # who holds it, for the message of a second writer (a full disk: none)
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
                         .encode())
            except OSError:
                pass
            self._fd = fd
            return self
        raise ShardError(f"{self.path}: could not take the lock (it keeps changing)")

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode(errors="replace").strip()
    except OSError:
        return ""
