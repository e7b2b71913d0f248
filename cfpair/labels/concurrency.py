"""Adaptive request concurrency for the LLM labeler: climb while throughput grows, halve on a
timeout, never above what the server says it can run.

Starts at one request in flight. After a change it skips the answers of requests started
before it and of the next limit - 1 (they queued behind the old regime); then, after
``WINDOW`` x limit answers, it measures throughput (limit / mean latency): if that beat the
best so far by ``GAIN`` it tries one more in flight, else it settles on the best limit and
stops climbing. A timeout halves the limit (at least 1) and caps it there (multiplicative
decrease). A single-slot server (llama.cpp with
one slot queues the second request, so latency doubles and throughput stays flat) settles at 1
after a few requests; a server with parallel slots climbs up to ``ceiling``.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

WINDOW = 2
GAIN = 1.15
TIMEOUT_HINT = ("requests timed out: a single-slot local server (llama.cpp) answers one request "
                "at a time; try --concurrency 1 and a longer --request-timeout")


def timeout_hint(stats: dict[str, float]) -> str | None:
    """A hint for the run summary when requests timed out."""
    return TIMEOUT_HINT if stats.get("failed_timeout", 0) else None


class AdaptiveLimit:
    """An async context manager that admits at most ``limit`` holders at once."""

    def __init__(self, ceiling: int, adaptive: bool = True) -> None:
        self.cap = max(1, ceiling)
        self.limit = 1 if adaptive else self.cap
        self.adaptive = adaptive
        self.in_flight = 0
        self.peak = 0
        self.best: tuple[float, int] | None = None
        self._latencies: list[float] = []
        self._changed = time.monotonic()
        self._settling = 0
        self._cond = asyncio.Condition()

    def cap_at(self, slots: int) -> None:
        """The server reported ``slots`` parallel slots: never run more."""
        self.cap = max(1, min(self.cap, slots))
        self.limit = min(self.limit, self.cap)

    async def __aenter__(self) -> AdaptiveLimit:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        return self

    async def __aexit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                        _tb: TracebackType | None) -> None:
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    async def success(self, latency_s: float) -> None:
        """An answered request: maybe climb (or settle)."""
        if not self.adaptive or time.monotonic() - latency_s < self._changed:
            return          # started before the last change: it measured the old limit
        self._settling -= 1
        if self._settling >= 0:
            return          # queued behind requests of the old limit: not yet steady state
        self._latencies.append(max(latency_s, 1e-6))
        if len(self._latencies) < WINDOW * self.limit:
            return
        thr = self.limit / (sum(self._latencies) / len(self._latencies))
        self._latencies.clear()
        if self.best is None or thr > self.best[0] * GAIN:
            self.best = (thr, self.limit)
            if self.limit < self.cap:
                await self._set(self.limit + 1)
        else:
            self.cap = self.best[1]
            await self._set(self.best[1])

    async def timeout(self) -> None:
        """A request timed out: halve the limit and never climb above it again."""
        if not self.adaptive:
            return
        self.cap = max(1, self.limit // 2)
        self._latencies.clear()
        await self._set(self.cap)

    async def _set(self, value: int) -> None:
        async with self._cond:
            self.limit = max(1, min(value, self.cap))
            self._changed = time.monotonic()
            self._settling = self.limit - 1
            self._latencies.clear()
            self._cond.notify_all()
