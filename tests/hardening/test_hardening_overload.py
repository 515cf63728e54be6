"""Renders past their deadline, and a burst of distinct cache misses far beyond the render queue."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.metrics import service_state
from tests.support.app import client_for
from tests.support.probe import LoggedServer, budget, percentile, write_config

WORKERS, QUEUE = 2, 64


@pytest.fixture
def big_png(image_root: Path) -> Path:
    # A PNG is decoded whole (no draft scaling): a few tens of ms per render, whatever the box.
    return images.write(image_root / "big.png", images.png_bytes((3000, 2250), mode="RGB"))


async def _wait_idle(http: httpx.AsyncClient, *, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = service_state((await http.get("/metrics")).text)
        if health["in_flight"] == 0 or time.monotonic() > deadline:
            return health
        await asyncio.sleep(0.05)


class TestRenderDeadline:
    """A render past limits.render_timeout_s answers 503 with Retry-After, and nothing is cached."""

    async def test_past_the_deadline(self, make_settings, big_png: Path) -> None:
        settings = make_settings(limits={"render_timeout_s": 0.001})
        async with client_for(settings) as http:
            for attempt in range(2):  # the abandoned render must not have cached anything either
                response = await http.get("/thumb/300x/big.png")
                assert response.status_code == 503, attempt
                assert int(response.headers["retry-after"]) >= 1
                assert response.headers["cache-control"] == "no-store"
                assert response.json()["detail"]
                health = await _wait_idle(http)
                assert health["in_flight"] == 0
                assert health["cache_entries"] == 0 and health["cache_bytes"] == 0

    async def test_within_the_deadline(self, make_settings, big_png: Path) -> None:
        async with client_for(make_settings()) as http:
            response = await http.get("/thumb/300x/big.png")
            assert response.status_code == 200
            assert service_state((await http.get("/metrics")).text)["cache_entries"] == 1


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("overload")
    root = work / "images"
    images.write(root / "big.png", images.png_bytes((3000, 2250), mode="RGB"))
    # A deadline far past the burst: this test is about the queue bound, and every queued render
    # must finish on a slow or busy machine too (the deadline has its own tests above).
    config = write_config(work / "config.yaml", limits={"render_workers": WORKERS, "render_queue": QUEUE,
                                                       "render_timeout_s": 120},
                          thumbnails={"auto_formats": []})
    with LoggedServer(config, root, log=work / "server.log") as server:
        yield server


# The health checks run in a process of their own: in the burst's process, they would measure
# that client's own event loop as much as the server.
_POLLER = """
import json, sys, time, httpx
url, seconds = sys.argv[1], float(sys.argv[2])
samples = []
def in_flight(response):
    lines = response.text.splitlines()
    return next(float(line.split()[1]) for line in lines if line.startswith("thumbserver_renders_in_flight "))

with httpx.Client(base_url=url, timeout=5) as http:
    http.get("/metrics")
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = http.get("/healthz")
        samples.append([time.perf_counter() - started, response.status_code, in_flight(http.get("/metrics"))])
        time.sleep(0.01)
print(json.dumps(samples), flush=True)
"""


class HealthPoller:
    """GET /healthz (timed) and /metrics (renders in flight) every 10 ms from another process for
    `seconds`: latencies and in-flight counts."""

    def __init__(self, url: str, seconds: float) -> None:
        self._process = subprocess.Popen([sys.executable, "-c", _POLLER, url, str(seconds)], stdout=subprocess.PIPE,
                                         text=True)
        assert self._process.stdout.readline().strip() == "ready"

    def results(self) -> tuple[list[float], list[int], list[int]]:
        output, _ = self._process.communicate(timeout=60)
        samples = json.loads(output)
        return [s[0] for s in samples], [s[1] for s in samples], [s[2] for s in samples]


class TestOverload:
    """200 concurrent distinct misses: the queue bound holds, the excess gets 503, /healthz stays fast."""

    async def test_burst_of_distinct_misses(self, busy_server: LoggedServer) -> None:
        burst = 200
        limits = httpx.Limits(max_connections=burst, max_keepalive_connections=burst)
        poller = HealthPoller(busy_server.url, seconds=5.0)
        async with httpx.AsyncClient(base_url=busy_server.url, limits=limits, timeout=60) as http:
            # Distinct widths: 200 cache keys, so no request is coalesced with another.
            started = time.monotonic()
            responses = await asyncio.gather(*(http.get(f"/thumb/{100 + n}x/big.png") for n in range(burst)))
            burst_seconds = time.monotonic() - started
        latencies, health_statuses, in_flight = poller.results()
        assert set(health_statuses) == {200}

        statuses = [response.status_code for response in responses]
        print(f"burst of {burst}: {statuses.count(200)} x 200, {statuses.count(503)} x 503 in {burst_seconds:.1f} s; "
              f"/healthz p99 {percentile(latencies, 0.99) * 1000:.0f} ms over {len(latencies)} checks; "
              f"max in flight {max(in_flight)}")
        refused = [response for response in responses if response.status_code == 503]
        assert set(statuses) <= {200, 503}, statuses
        assert refused, "the burst never filled the queue"
        assert statuses.count(200) >= WORKERS + QUEUE
        for response in refused:
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["cache-control"] == "no-store"
        assert max(in_flight) <= WORKERS + QUEUE
        assert len(latencies) >= 10, f"only {len(latencies)} health checks in {burst_seconds:.1f} s"
        assert percentile(latencies, 0.99) < 0.100, sorted(latencies)[-5:]

        # At once: the very next miss renders, and nothing is left in flight.
        async with httpx.AsyncClient(base_url=busy_server.url, timeout=10) as http:
            started = time.monotonic()
            fresh = await http.get("/thumb/99x/big.png")
            assert fresh.status_code == 200
            assert time.monotonic() - started < 2.0
            health = await _wait_idle(http, timeout=5)
            assert health["in_flight"] == 0

    async def test_repeated_bursts(self, busy_server: LoggedServer) -> None:
        # More rounds under TS_TEST_BUDGET=full; each is bounded by its request count.
        rounds = budget(1, 20)
        limits = httpx.Limits(max_connections=150)
        async with httpx.AsyncClient(base_url=busy_server.url, limits=limits, timeout=60) as http:
            for round_number in range(rounds):
                # Small JPEG outputs, and a quality per round: every key is new, every encode cheap.
                quality = 1 + round_number
                responses = await asyncio.gather(
                    *(http.get(f"/thumb/{50 + n}x,jpeg,q{quality}/big.png") for n in range(150))
                )
                assert {response.status_code for response in responses} <= {200, 503}
                health = await _wait_idle(http)
                assert health["in_flight"] == 0
