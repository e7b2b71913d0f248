"""Progress bars for long commands: library loops call ``track``; only the CLI makes them show.

Inside ``with shown():`` (the CLI) every ``track(items, label)`` and ``task(label, total)`` draws a
rich bar on stderr; outside it (the Python API, tests) they cost nothing and draw nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cfpair.errors import CfpairError

T = TypeVar("T")
_ACTIVE: ContextVar[Progress | None] = ContextVar("cfpair_progress", default=None)


@contextmanager
def shown(console: Console | None = None) -> Iterator[Progress]:
    """Show the bars of every ``track``/``task`` inside this block (on stderr by default)."""
    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console or Console(stderr=True))
    token = _ACTIVE.set(bars)
    try:
        with bars:
            try:
                yield bars
            except CfpairError:     # the error line says it all; no half-drawn bar above it
                for tid in list(bars.task_ids):
                    bars.remove_task(tid)
                raise
    finally:
        _ACTIVE.reset(token)


def task(label: str, total: int | None, unit: str = "") -> Callable[[int], None]:
    """A bar of ``total`` steps; returns ``advance(n)``. A no-op outside ``shown()``."""
    bars = _ACTIVE.get()
    if bars is None:
        return lambda n=1: None
    tid = bars.add_task(label, total=total, unit=unit)
    return lambda n=1: bars.advance(tid, n)


def track(items: Iterable[T], label: str, total: int | None = None, unit: str = "") -> Iterator[T]:
    """Yield ``items`` while advancing a bar (total: ``len(items)`` where it has one)."""
    if _ACTIVE.get() is None:
        yield from items
        return
    if total is None and isinstance(items, Sized):
        total = len(items)
    advance = task(label, total, unit)
    for item in items:
        yield item
        advance(1)
