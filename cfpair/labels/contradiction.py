"""One way a label disagrees with the measured facts (a kind and a message)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contradiction:
    """One way a label disagrees with the facts."""

    kind: str
    message: str
