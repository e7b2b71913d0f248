"""Scrub secrets (the API key, any Authorization / Bearer value) from text before it is stored
(label text, the request cache, error messages, logs)."""

from __future__ import annotations

import re

REDACTED = "[redacted]"
_PATTERNS = (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{4,}"),
             re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+)?[^\s\"',}]+"),
             re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"))


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every secret value and every Authorization / Bearer / api_key value
    replaced by ``[redacted]``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, REDACTED)
    text = _PATTERNS[0].sub(REDACTED, text)
    text = _PATTERNS[1].sub(lambda m: m.group(1) + REDACTED, text)
    return _PATTERNS[2].sub(lambda m: m.group(1) + REDACTED, text)
