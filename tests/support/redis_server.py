"""A real `redis-server` on a free 127.0.0.1 port, in a folder of its own, without persistence.

    server = RedisServer(tmp_path)      # nothing runs yet
    server.start()                      # returns once it answers PING (or raises RedisServerFailed)
    server.url                          # redis://127.0.0.1:{port}/0
    server.kill(); server.start()       # a crash, then a restart on the same port
    server.pause(); server.resume()     # SIGSTOP / SIGCONT: a server that accepts and never answers
    server.stop()

`redis_server_binary()` is None where the binary is not installed: tests then skip.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 10.0

from tests.support.live import free_port


class RedisServerFailed(RuntimeError):
    """redis-server did not start, or did not answer PING in time; the message has its log's tail."""


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")




def answers_ping(port: int, timeout_s: float = 0.5) -> bool:
    """Whether a Redis on 127.0.0.1:`port` answers PING with +PONG within `timeout_s`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1 (port chosen at the first start, kept on restarts)."""

    def __init__(self, workdir: Path, *, binary: str | None = None) -> None:
        self.workdir = workdir
        self.binary = binary or redis_server_binary() or "redis-server"
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "redis.log"

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart on the same port); a first start retries on another port if its port was taken."""
        assert self.process is None, "already running"
        if self.port is not None:
            self._launch(self.port)
            return
        for attempt in range(3):
            port = free_port()
            try:
                self._launch(port)
            except RedisServerFailed:
                if attempt == 2:
                    raise
                continue
            self.port = port
            return

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 5 s."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything, as in a crash."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _launch(self, port: int) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            "--loglevel", "warning",
        ]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if answers_ping(port):
                self.process = process
                return
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        raise RedisServerFailed(f"redis-server on 127.0.0.1:{port} did not answer PING: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"

