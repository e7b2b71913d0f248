"""A stdlib OpenAI-compatible stub server on 127.0.0.1 for fault injection (and overhead bench).

Its default answer plays a constrained decoder: it fills the JSON Schema sent with the request
(first enum value of every pinned field, short text), so a reply is valid and grounded. A test
swaps in a ``script``: a callable from (request number, request JSON) to a ``Reply``.

Server-like behaviour for the transport tests: ``slots`` serialises request processing like a
llama.cpp server with that many slots (``peak`` counts requests being processed at once,
``peak_open`` requests open at once); ``props`` answers ``GET /props``; while a reply is delayed
the stub watches the socket and stops when the client has gone (``disconnects``), as a server
that cancels abandoned work does.
"""

from __future__ import annotations

import json
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the stub sends: HTTP status, headers, a chat content string or a raw body."""

    status: int = 200
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    delay_s: float = 0.0
    truncate: bool = False      # announce twice the body's length, send the body, hang up


def _fill(schema: dict[str, Any]) -> Any:
    """A value that satisfies a (pinned) label schema."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _fill(schema["anyOf"][0])
    t = schema.get("type")
    if t == "object":
        return {k: _fill(v) for k, v in schema.get("properties", {}).items()}
    if t == "string":
        return "The stub describes the measured facts here."
    if t == "number":
        return schema.get("minimum", 0.0)
    if t == "null":
        return None
    raise ValueError(f"cannot fill {schema}")


def request_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema a request carries (json_schema or json_object + schema)."""
    fmt = body.get("response_format") or {}
    return fmt["json_schema"]["schema"] if fmt.get("type") == "json_schema" else fmt["schema"]


def valid_content(body: dict[str, Any]) -> str:
    """A grounded label for the request, as a JSON string."""
    return json.dumps(_fill(request_schema(body)))


def completion(content: str, prompt_tokens: int = 100, completion_tokens: int = 50) -> bytes:
    """A chat.completion response body."""
    return json.dumps({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
        "model": "stub", "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}}).encode()


Script = Callable[[int, dict[str, Any]], Reply]


def default_script(_n: int, body: dict[str, Any]) -> Reply:
    """Always a valid, grounded label."""
    return Reply(content=valid_content(body))


class StubLLM:
    """Start with ``with StubLLM(script) as stub:``; ``stub.base_url``, ``stub.requests``."""

    def __init__(self, script: Script = default_script, slots: int | None = None,
                 props: dict[str, Any] | None = None) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.auth: list[str] = []
        self.disconnects = 0
        self.open = self.peak_open = self.busy = self.peak = 0
        self.props = props
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(slots) if slots else None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.rstrip("/") == "/props":
                    if stub.props is None:
                        self._send(404, {}, b"{}")
                    else:
                        self._send(200, {}, json.dumps(stub.props).encode())
                    return
                self._send(200, {}, json.dumps({"object": "list", "data": [
                    {"id": "stub", "object": "model"}]}).encode())

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub._lock:
                    n = len(stub.requests)
                    stub.requests.append(body)
                    stub.times.append(time.monotonic())
                    stub.auth.append(self.headers.get("Authorization", ""))
                    stub.open += 1
                    stub.peak_open = max(stub.peak_open, stub.open)
                try:
                    if stub._slots is not None:
                        stub._slots.acquire()
                    try:
                        self._serve(n, body)
                    finally:
                        if stub._slots is not None:
                            stub._slots.release()
                finally:
                    with stub._lock:
                        stub.open -= 1

            def _gone(self, seconds: float) -> bool:
                """Wait ``seconds``; True as soon as the client has closed the connection."""
                end = time.monotonic() + seconds
                while (left := end - time.monotonic()) > 0:
                    ready, _, _ = select.select([self.connection], [], [], min(left, 0.02))
                    if ready and not self.connection.recv(1, 2):   # MSG_PEEK: EOF = gone
                        return True
                return False

            def _serve(self, n: int, body: dict[str, Any]) -> None:
                with stub._lock:
                    stub.busy += 1
                    stub.peak = max(stub.peak, stub.busy)
                try:
                    reply = stub.script(n, body)
                    if reply.delay_s and self._gone(reply.delay_s):
                        with stub._lock:
                            stub.disconnects += 1
                        return
                finally:
                    with stub._lock:
                        stub.busy -= 1
                data = reply.raw if reply.raw is not None else (
                    completion(reply.content or "") if reply.status == 200 else json.dumps(
                        {"error": {"message": f"stub error {reply.status}",
                                   "type": "stub", "code": reply.status}}).encode())
                try:
                    self._send(reply.status, reply.headers, data, reply.truncate)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status: int, headers: dict[str, str], data: bytes,
                      truncate: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) * (2 if truncate else 1)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                if truncate:
                    self.wfile.flush()
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubLLM:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
