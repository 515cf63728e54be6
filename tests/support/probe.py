"""Tools of the hardening tests: budgets, a raw HTTP/1.1 client, and what /proc says about a server.

Every tool talks to 127.0.0.1 only, and every loop in the tests that use them is bounded by a
request count and a wall-clock deadline taken from `budget()`.

Budgets: `TS_TEST_BUDGET=full` (set by `make soak` / `make fuzz`) selects the long runs; anything
else (CI, `make test`) the short ones. The name must not start with `THUMBSERVER_`: that prefix is
server configuration, and an unknown key there stops the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.live import LiveServer

BUDGET_ENV = "TS_TEST_BUDGET"
FULL = os.environ.get(BUDGET_ENV, "").strip().lower() == "full"


def budget(ci: int | float, full: int | float):
    """`ci` in the short (default) run, `full` under TS_TEST_BUDGET=full."""
    return full if FULL else ci


# --- raw HTTP ---------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    reason: bytes
    headers: dict[str, str]
    body: bytes
    complete: bool  # the body has Content-Length bytes (or the response has no Content-Length)
    raw_head: bytes = field(repr=False, default=b"")


def raw_request(target: bytes, *, method: bytes = b"GET", headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A request head with `target` sent exactly as given (no normalisation, no escaping)."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers or []]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def exchange(port: int, data: bytes, *, timeout: float = 10.0, max_bytes: int = 64 * 1024 * 1024) -> RawResponse | None:
    """Send `data` on a fresh connection to 127.0.0.1:`port` and read until the server closes it.

    Returns None when the server closed the connection without sending a status line.
    """
    deadline = time.monotonic() + timeout
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (e.g. 400) and close before it has read everything
        while len(received) < max_bytes and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(256 * 1024)
            except ConnectionResetError:
                break
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
    return parse_response(bytes(received))


def _complete(received: bytearray) -> bool:
    head_end = received.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    response = parse_response(bytes(received))
    return response is not None and response.complete and "content-length" in response.headers


def parse_response(data: bytes) -> RawResponse | None:
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or not data.startswith(b"HTTP/1."):
        return None
    head = data[:head_end]
    status_line, *header_lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    body = data[head_end + 4 :]
    complete = True
    if "content-length" in headers:
        length = int(headers["content-length"])
        complete = len(body) >= length
        body = body[:length]
    return RawResponse(int(parts[1]), parts[2] if len(parts) > 2 else b"", headers, body, complete, head)


# --- a server process seen from /proc ---------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends from /proc/PID/status, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.startswith("Vm"):
            values[name] = int(rest.split()[0])
    return values


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def process_running(pid: int) -> bool:
    """The process exists and has not ended (a zombie has ended)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def rss_mb(pid: int) -> float:
    return proc_status(pid)["VmRSS"] / 1024


def peak_rss_mb(pid: int) -> float:
    return proc_status(pid)["VmHWM"] / 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def open_fds(pid: int) -> list[str]:
    """What each of the process's descriptors points at (sockets show as socket:[inode])."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    for entry in fd_dir.iterdir():
        try:
            targets.append(os.readlink(entry))
        except FileNotFoundError:
            pass  # closed while we listed
    return sorted(targets)


def settle_fds(pid: int, expected: int, *, timeout: float = 10.0) -> int:
    """The descriptor count once it is back to `expected`, or whatever it is after `timeout` s."""
    deadline = time.monotonic() + timeout
    count = len(open_fds(pid))
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        count = len(open_fds(pid))
    return count


def write_config(path: Path, **sections: dict) -> Path:
    """A config.yaml with just `sections` (everything else at its default)."""
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- a live server whose output cannot block it -----------------------------------------------


class LoggedServer(LiveServer):
    """`LiveServer` with its output in a file: a pipe nobody reads fills up after 64 KB of log
    (about 1,400 "Invalid HTTP request received" warnings) and then blocks the server for good.

    `prefix` runs the server under another command, e.g. `["setpriv", "--reuid=65534", …]`.
    """

    def __init__(self, config: Path | None, root: Path, *, log: Path, prefix: list[str] | None = None,
                 **options) -> None:
        super().__init__(config, root, **options)
        self.command = [*(prefix or []), *self.command]
        self.log = log

    def __enter__(self) -> LoggedServer:
        with open(self.log, "ab") as log_file:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_text()}")
            response = None
            try:
                response = exchange(self.port, raw_request(b"/healthz"), timeout=1)
            except OSError:
                pass
            if response is not None and response.status == 200:
                return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"server did not become healthy within 30 s: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid
