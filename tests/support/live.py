"""A real `thumbserver serve` process on a free 127.0.0.1 port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """Start with `with LiveServer(config_file, root) as server:`; `server.url` is its base URL."""

    def __init__(self, config: Path | None, root: Path, *, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--root", str(root), "--workers", str(workers)]
        if config is not None:
            command += ["--config", str(config)]
        self.command = command
        # A folder with no Python packages and no config.yaml: nothing there can shadow a module
        # (tests/http would shadow the standard library's http) or change the settings.
        self.cwd = Path(root)
        # The shared disk tier goes to a folder of this server's own unless the test picks one:
        # never the user's cache folder.
        self._results = tempfile.TemporaryDirectory(prefix="ts-results-")
        defaults = {"THUMBSERVER_CACHE_DISK_PATH": self._results.name}
        self.env = {**os.environ, **defaults, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def __enter__(self) -> LiveServer:
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it.
        self._output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdout=self._output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._output.seek(0)
                raise RuntimeError(f"server exited: {self._output.read().decode(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("server did not become healthy within 30 s")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None or self.process.poll() is not None:
            self._close_output()
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_output()

    def _close_output(self) -> None:
        if self._output is not None:
            self._output.close()
        self._results.cleanup()
