"""Renders in processes of their own, against a real server: cache hits keep their pace while
renders run, a render past its deadline is killed, one that outgrows its address space is a 422,
and no render process outlives the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.probe import LoggedServer, proc_stat, process_running, write_config

# 7000x7000 to 4000x4000 WebP: a few seconds of decoding, resampling and encoding per render.
EXPENSIVE = "/thumb/4000x4000,cover,webp/huge.png"
HIT = "/thumb/64x,png/small.png"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("render-processes") / "images"
    images.write(root / "huge.png", images.png_bytes((7000, 7000), mode="RGB"))
    images.write(root / "small.png", images.png_bytes((320, 240)))
    return root


def _server(root: Path, name: str, **limits: object) -> LoggedServer:
    work = root.parent / name
    work.mkdir()
    config = write_config(work / "config.yaml", limits=limits, thumbnails={"auto_formats": []})
    return LoggedServer(config, root, log=work / "server.log")


# --- what /proc says about a server's processes ----------------------------------------------




def _session(sid: int) -> dict[int, int]:
    """pid -> parent pid of every running process in session `sid` (a LoggedServer starts one)."""
    found = {}
    for entry in os.listdir("/proc"):
        stat = proc_stat(int(entry)) if entry.isdigit() else None
        if stat is not None and int(stat[3]) == sid and stat[0] not in ("Z", "X"):
            found[int(entry)] = int(stat[1])
    return found


def _render_processes(server: LoggedServer) -> set[int]:
    """The server's render processes: the children of its fork server."""
    processes = _session(server.pid)
    for pid, parent in processes.items():
        try:
            forkserver = parent == server.pid and b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if forkserver:
            return {child for child, of in processes.items() if of == pid}
    return set()


def _all_gone(pids: set[int], *, timeout: float) -> set[int]:
    """Those of `pids` still running after `timeout` seconds (polled)."""
    deadline = time.monotonic() + timeout
    running = {pid for pid in pids if process_running(pid)}
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = {pid for pid in running if process_running(pid)}
    return running


# The measurement runs in a process of its own: in the test's process it would measure that
# client's event loop as much as the server.
_PACE = """
import json, sys, threading, time, httpx
url, hit, expensive, renders, window = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])

def in_flight(http):
    lines = http.get("/metrics").text.splitlines()
    return next(float(line.split()[1]) for line in lines if line.startswith("thumbserver_renders_in_flight "))

def hits_during(http, seconds):
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert http.get(hit).status_code == 200
        count += 1
    return count

statuses = []
def render(n):
    with httpx.Client(base_url=url, timeout=120) as own:  # a connection of its own
        statuses.append(own.get(expensive.replace("4000x4000", f"{4000 - n}x4000")).status_code)

with httpx.Client(base_url=url, timeout=30) as http:
    assert http.get(hit).status_code == 200  # now cached
    idle = hits_during(http, window)
    threads = [threading.Thread(target=render, args=(n,)) for n in range(renders)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while in_flight(http) < renders and time.monotonic() < deadline:
        time.sleep(0.01)
    busy = hits_during(http, window)
    in_flight_after = in_flight(http)
    for thread in threads:
        thread.join(120)
print(json.dumps({"idle": idle, "busy": busy, "in_flight_after": in_flight_after, "statuses": statuses}))
"""


class TestHitsWhileRendering:
    """While two expensive renders run, cache hits on another connection keep at least half
    their idle pace (measured in one run: a ratio, not a time)."""

    def test_pace_of_hits(self, root: Path) -> None:
        renders, window = 2, 1.0
        # Two renders of ~0.6 GB peak each fit the budget together.
        with _server(root, "pace", render_workers=renders, render_timeout_s=60,
                     render_memory_bytes=4 * 1024**3) as server:
            measured = subprocess.run(
                [sys.executable, "-c", _PACE, server.url, HIT, EXPENSIVE, str(renders), str(window)],
                capture_output=True, text=True, timeout=180,
            )
            assert measured.returncode == 0, measured.stderr
            pace = json.loads(measured.stdout)
        ratio = pace["busy"] / pace["idle"]
        print(f"cache hits per {window:.0f} s: {pace['idle']} idle, {pace['busy']} during {renders} renders "
              f"(ratio {ratio:.2f}); renders {pace['statuses']}")
        assert pace["statuses"] == [200] * renders
        assert pace["in_flight_after"] == renders, "a render ended before the window did: make it longer"
        assert ratio >= 0.5, pace


class TestDeadline:
    """A render past limits.render_timeout_s is a 503, and its process (its CPU) is gone at once;
    the server keeps answering and renders in a new process."""

    def test_killed_at_the_deadline(self, root: Path) -> None:
        with _server(root, "deadline", render_workers=1, render_timeout_s=1) as server:
            before = _render_processes(server)
            assert len(before) == 1
            started = time.monotonic()
            response = httpx.get(server.url + EXPENSIVE, timeout=30)
            elapsed = time.monotonic() - started
            assert response.status_code == 503
            assert int(response.headers["retry-after"]) == 5
            assert elapsed < 1 + 2, elapsed
            assert _all_gone(before, timeout=2.0) == set(), "the render past its deadline still runs"

            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            small = httpx.get(server.url + HIT, timeout=10)
            assert small.status_code == 200
            after = _render_processes(server)
            assert len(after) == 1 and not after & before


class TestAddressSpace:
    """A render that outgrows its process's address space is a 422; the server carries on."""

    def test_out_of_memory(self, root: Path) -> None:
        with _server(root, "memory", render_workers=1, render_process_memory_bytes=256 * 1024**2) as server:
            response = httpx.get(server.url + EXPENSIVE, timeout=30)
            assert response.status_code == 422
            assert response.json()["detail"]
            assert httpx.get(server.url + HIT, timeout=10).status_code == 200


class TestMemoryBudget:
    """A render whose peak alone exceeds limits.render_memory_bytes is refused with a 422."""

    def test_over_the_budget(self, root: Path) -> None:
        with _server(root, "budget", render_workers=1, render_memory_bytes=64 * 1024**2) as server:
            response = httpx.get(server.url + EXPENSIVE, timeout=30)
            assert response.status_code == 422
            assert response.json()["detail"] == "The source image is too large."
            assert httpx.get(server.url + HIT, timeout=10).status_code == 200


class TestStop:
    """SIGTERM to the server's process group stops everything it started: no render process,
    fork server or resource tracker outlives it."""

    def test_nothing_outlives_the_server(self, root: Path) -> None:
        server = _server(root, "stop", render_workers=2)
        with server:
            assert httpx.get(server.url + HIT, timeout=10).status_code == 200
            started = set(_session(server.pid))
            assert len(_render_processes(server)) == 2
        # LoggedServer's exit sent SIGTERM to the group and waited for the server itself.
        assert _all_gone(started, timeout=10.0) == set()
