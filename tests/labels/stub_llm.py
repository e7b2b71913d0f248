"""A stdlib OpenAI-compatible stub server on 127.0.0.1 for fault injection (and overhead bench).

Its default answer plays a constrained decoder: it fills the JSON Schema sent with the request
(first enum value of every pinned field, short text), so a reply is valid and grounded. A test
swaps in a ``script``: a callable from (request number, request JSON) to a ``Reply``.
"""

from __future__ import annotations

import json
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

    def __init__(self, script: Script = default_script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.auth: list[str] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self._send(200, {}, json.dumps({"object": "list", "data": [
                    {"id": "stub", "object": "model"}]}).encode())

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub._lock:
                    n = len(stub.requests)
                    stub.requests.append(body)
                    stub.times.append(time.monotonic())
                    stub.auth.append(self.headers.get("Authorization", ""))
                reply = stub.script(n, body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.raw if reply.raw is not None else (
                    completion(reply.content or "") if reply.status == 200 else json.dumps(
                        {"error": {"message": f"stub error {reply.status}",
                                   "type": "stub", "code": reply.status}}).encode())
                try:
                    self._send(reply.status, reply.headers, data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

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
