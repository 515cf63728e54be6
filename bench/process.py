"""Child processes the harness starts: launch in their own session, wait until ready, stop.

Each service runs in a new session so that stopping it signals its whole process group
(uvicorn's worker children, nginx's workers) by the id of the process we started, and nothing
else on the machine. :func:`redis_server` is one such service: a ``redis-server`` of the run's
own on 127.0.0.1, without persistence, for our server's Redis tier.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class StartFailed(Exception):
    """A service exited or never became ready. ``str(error)`` is a one-line reason."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def service(
    command: list[str], *, ready_url: str = "", log: Path, env: dict[str, str] | None = None,
    cwd: Path | None = None, timeout: float = 60.0, ready: Callable[[], bool] | None = None,
) -> Iterator[subprocess.Popen]:
    """Run ``command`` until the block ends; enter the block once ``ready_url`` answers 2xx
    (or, for a service that speaks no HTTP, once ``ready()`` is true).

    Output goes to ``log`` (a pipe left unread would block a chatty server). Raises
    :class:`StartFailed` naming the log's last line if the process dies or times out.
    """
    check = ready or (lambda: _answers(ready_url))
    with log.open("ab") as sink:
        child = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    try:
        _wait_ready(child, check, log, timeout)
        yield child
    finally:
        stop(child)


@contextmanager
def redis_server(workdir: Path, *, timeout: float = 20.0) -> Iterator[str]:
    """A ``redis-server`` on a free 127.0.0.1 port, files in ``workdir``, no persistence;
    yields its ``redis://`` URL and stops it when the block ends. Raises :class:`StartFailed`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartFailed("redis-server is not installed (Debian: redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
    with service(command, log=workdir / "redis.log", ready=lambda: answers_ping(port),
                 timeout=timeout):
        yield f"redis://127.0.0.1:{port}/0"


def answers_ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop(child: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it outlives ``grace`` seconds."""
    if child.poll() is None:
        _signal_group(child, signal.SIGTERM)
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()
    # Workers of a group leader that already exited may linger; they share its group id.
    _signal_group(child, signal.SIGKILL)


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_ready(child: subprocess.Popen, ready: Callable[[], bool], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise StartFailed(f"exited with status {child.returncode}: {last_log_line(log)}")
        if ready():
            return
        time.sleep(0.1)
    raise StartFailed(f"not ready after {timeout:.0f} s: {last_log_line(log)}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def last_log_line(log: Path) -> str:
    """The last non-blank line of ``log``, or ``(no output)``."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return lines[-1].strip() if lines else "(no output)"
