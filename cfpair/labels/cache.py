"""sqlite request cache: a reply is stored under the hash of everything that decides it.

Only replies that became an accepted (parsed, grounded) label are stored, after secrets are
scrubbed; a stored reply that fails validation later is deleted, never replayed. Replies are
bounded by the labeler's ``max_reply_bytes`` and the label schema's text limits.

The key is sha256 of the canonical JSON of (model, prompt version, schema version, messages,
request params). The API key and the server address are never part of it and never stored.
Safe to share between worker processes (WAL journal, busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfpair.errors import ConfigError


def request_key(model: str, prompt_version: str, schema_version: str,
                messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the request's deciding parts."""
    blob = json.dumps({"model": model, "prompt_version": prompt_version,
                       "schema_version": schema_version, "messages": messages,
                       "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A stored reply and what it cost when it was first paid for."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


def _wal(db: sqlite3.Connection, wait_s: float = 60.0) -> None:
    """Switch to the WAL journal. Two workers opening a new cache file at once can get
    ``database is locked`` here at once (the switch does not wait out the busy timeout), so
    it is retried for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class RequestCache:
    """Key -> reply table in one sqlite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            _wal(self.db)
            self.db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, "
                            "content TEXT NOT NULL, prompt_tokens INTEGER, "
                            "completion_tokens INTEGER, latency_s REAL, created REAL)")
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open the request cache ({exc})") from None

    def get(self, key: str) -> CachedReply | None:
        """The stored reply, or None."""
        row = self.db.execute("SELECT content, prompt_tokens, completion_tokens, latency_s "
                              "FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else CachedReply(*row)

    def put(self, key: str, reply: CachedReply) -> None:
        """Store a reply (the first one stored for a key wins)."""
        self.db.execute("INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?, ?)",
                        (key, reply.content, reply.prompt_tokens, reply.completion_tokens,
                         reply.latency_s, time.time()))

    def delete(self, key: str) -> None:
        """Forget a reply (one that turned out invalid must never be replayed)."""
        self.db.execute("DELETE FROM replies WHERE key = ?", (key,))

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self.db.close()
