"""Transport-level pieces of the LLM labeler: failure kinds, Retry-After, the slot probe."""

from __future__ import annotations

import email.utils
import json
import time
import urllib.request

import openai

try:        # the HTTP client openai is built on: httpx2 here, httpx for openai 1.x
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx  # type: ignore[no-redef]

HTTPError = httpx.HTTPError


class TransportFailure(Exception):
    """The server could not be made to answer (kind: timeout, rate_limit, http_500, ...)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class BadReply(Exception):
    """A reply the model should be re-asked about (kind: oversize, invalid_json, ...)."""

    def __init__(self, kind: str, feedback: str) -> None:
        super().__init__(f"{kind}: {feedback}")
        self.kind = kind
        self.feedback = feedback


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), if any."""
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time()) if when else None


def _kind(exc: BaseException) -> str:
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError | httpx.ConnectError):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limit"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "truncated_body"
    return type(exc).__name__


def server_slots(base_url: str | None, timeout_s: float = 2.0) -> int | None:
    """Parallel slots a llama.cpp server reports at ``/props`` (``total_slots``), if any."""
    if not base_url:
        return None
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/props", timeout=timeout_s) as r:
            data = json.loads(r.read(65536))
    except (OSError, ValueError):
        return None
    slots = data.get("total_slots") if isinstance(data, dict) else None
    return slots if isinstance(slots, int) and slots >= 1 else None


