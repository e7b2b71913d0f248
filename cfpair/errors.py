"""Exception hierarchy: one root, subclasses that carry the context a user needs to act."""

from __future__ import annotations

from pathlib import Path


class CfpairError(Exception):
    """Root of every error cfpair raises on purpose."""


class ShapeError(CfpairError, ValueError):
    """Arrays whose shapes, dtypes or values break a documented contract."""


class DatasetFormatError(CfpairError):
    """A file on disk does not follow its format; names the file, the line and what was expected."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


class ConfigError(CfpairError, ValueError):
    """A configuration value is missing, malformed or inconsistent."""


class ShardError(CfpairError):
    """An output directory or shard is inconsistent (other config, bad checksum, missing file)."""


class LabelingError(CfpairError):
    """A labeler could not produce a valid, grounded label; carries what it tried."""


class SceneRejected(CfpairError):
    """A (scenario, anchor) cannot yield a pair; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class TrajectoryParseError(CfpairError, ValueError):
    """A text holds no well-formed trajectory; the message says what was expected."""


class SourceUnavailable(CfpairError):
    """A source needs a package or a server that is not there; the message says how to get it."""


class CarlaUnavailable(SourceUnavailable):
    """The ``carla`` package is missing or no server answered."""
