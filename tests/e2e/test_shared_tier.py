"""The shared result tier with real processes: workers and nodes render each thumbnail once,
results survive restarts, and a failing tier (Redis killed or hung, a disk folder gone
unwritable or corrupt) costs renders, never a failed request.

Renders are counted from the servers' own log: one `rendered …` line per render, whichever
worker process did it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.probe import LoggedServer, write_config
from tests.support.redis_server import RedisServer, redis_server_binary

NO_REDIS = "redis-server is not on PATH (Debian: apt-get install redis-server; .ci/run installs it)"
SIZES = [40 + 8 * n for n in range(10)]  # ten distinct thumbnails


def renders(*servers: LoggedServer) -> int:
    return sum(server.log_text().count(" rendered ") for server in servers)


@pytest.fixture
def redis(tmp_path: Path):
    if redis_server_binary() is None:
        pytest.skip(NO_REDIS)
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.resume()
        server.stop()


# Root reads and writes whatever the mode bits say because of two capabilities: a server without
# them is bound by the owner's bits, as any other user would be.
WITHOUT_DAC_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                        "--bounding-set=-dac_override,-dac_read_search"]


def server(tmp_path: Path, root: Path, name: str, *, workers: int = 1, prefix: list[str] | None = None,
           **cache: object) -> LoggedServer:
    config = write_config(tmp_path / f"{name}.yaml", cache=cache, limits={"render_workers": 2})
    # The environment wins over the file: every server of a test shares this test's disk tier.
    return LoggedServer(config, root, log=tmp_path / f"{name}.log", workers=workers, prefix=prefix,
                        env={"THUMBSERVER_CACHE_DISK_PATH": str(tmp_path / "results")})


async def fetch_all(urls: list[str], *, timeout: float = 30) -> list[httpx.Response]:
    """GET every URL at once, each on a fresh connection (so the kernel spreads them over workers)."""
    limits = httpx.Limits(max_connections=len(urls), max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        return await asyncio.gather(*(http.get(url) for url in urls))


class TestWorkersShareOneTier:
    """Two worker processes on the disk tier: N distinct thumbnails cost exactly N renders."""

    async def test_sixty_requests_ten_thumbnails_ten_renders(self, tmp_path: Path, root: Path) -> None:
        with server(tmp_path, root, "two-workers", workers=2) as live:
            urls = [f"{live.url}/thumb/{SIZES[n % 10]}x/photo.jpg" for n in range(60)]
            responses = await fetch_all(urls)
            assert [r.status_code for r in responses] == [200] * 60
            by_size = {}
            for response in responses:
                by_size.setdefault(response.url.path, set()).add((response.headers["etag"], response.content))
            assert all(len(variants) == 1 for variants in by_size.values())  # one body, one ETag per URL
            assert renders(live) == 10

    async def test_restart_renders_nothing_again(self, tmp_path: Path, root: Path) -> None:
        urls = lambda live: [f"{live.url}/thumb/{size}x/photo.jpg" for size in SIZES[:5]]  # noqa: E731
        with server(tmp_path, root, "before") as live:
            before = await fetch_all(urls(live))
            assert renders(live) == 5
        with server(tmp_path, root, "after") as live:
            after = await fetch_all(urls(live))
            assert renders(live) == 0
        assert [(r.headers["etag"], r.content) for r in before] == [(r.headers["etag"], r.content) for r in after]


class TestDiskFaults:
    """An unwritable, unreadable or corrupt disk tier: every request still gets its 200."""

    async def test_folder_made_unreadable_while_serving(self, tmp_path: Path, root: Path) -> None:
        prefix = WITHOUT_DAC_OVERRIDE if os.geteuid() == 0 else None
        if prefix and shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a chmod 000 folder would stay readable")
        with server(tmp_path, root, "chmod", prefix=prefix) as live:
            results = tmp_path / "results"
            assert (await fetch_all([f"{live.url}/thumb/50x/photo.jpg"]))[0].status_code == 200
            results.chmod(0)
            try:
                answers = await fetch_all([f"{live.url}/thumb/{size}x/photo.jpg" for size in SIZES])
            finally:
                results.chmod(0o755)
            assert [r.status_code for r in answers] == [200] * len(SIZES)
            assert renders(live) == 1 + len(SIZES)  # nothing could be read or written back
            assert live.log_text().count("WARNING") <= 2  # logged once per burst

    async def test_full_disk(self, tmp_path: Path, root: Path) -> None:
        results = tmp_path / "results"
        results.mkdir()
        mounted = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(results)], capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("cannot mount a small tmpfs here (needs root): no way to fill a disk safely")
        try:
            with server(tmp_path, root, "full") as live:
                (results / "filler").write_bytes(b"\0" * 200_000)
                answers = await fetch_all([f"{live.url}/thumb/{size}x/photo.jpg" for size in SIZES])
                assert [r.status_code for r in answers] == [200] * len(SIZES)
                (results / "filler").unlink()
        finally:
            subprocess.run(["umount", "-l", str(results)], check=False)

    async def test_corrupt_and_truncated_entries(self, tmp_path: Path, root: Path) -> None:
        with server(tmp_path, root, "first") as live:
            first = await fetch_all([f"{live.url}/thumb/{size}x/photo.jpg" for size in SIZES[:4]])
        entries = sorted(p for p in (tmp_path / "results").rglob("*") if p.is_file() and len(p.name) == 32)
        assert len(entries) == 4
        entries[0].write_bytes(entries[0].read_bytes()[:-10])  # torn
        data = bytearray(entries[1].read_bytes())
        data[-1] ^= 0xFF  # a flipped bit
        entries[1].write_bytes(bytes(data))
        entries[2].write_bytes(b"")  # empty
        with server(tmp_path, root, "second") as live:
            again = await fetch_all([f"{live.url}/thumb/{size}x/photo.jpg" for size in SIZES[:4]])
            assert renders(live) == 3  # the three damaged ones, not the intact one
        assert [(r.status_code, r.content) for r in again] == [(200, r.content) for r in first]

    async def test_eviction_keeps_the_folder_within_its_budget(self, tmp_path: Path, root: Path) -> None:
        budget = 60_000
        with server(tmp_path, root, "small", workers=2, disk_max_bytes=budget) as live:
            urls = [f"{live.url}/thumb/{100 + n}x/photo.jpg" for n in range(80)]
            for start in range(0, len(urls), 8):
                answers = await fetch_all(urls[start:start + 8])
                assert {r.status_code for r in answers} == {200}
            largest = max(len(r.content) for r in answers)
        used = sum(p.stat().st_size for p in (tmp_path / "results").rglob("*") if p.is_file())
        assert used <= budget + largest + 4096, used


class TestNodesShareRedis:
    """Two servers (nodes) on one Redis render a thumbnail once between them."""

    async def test_rendered_on_one_served_by_the_other(self, tmp_path: Path, root: Path, redis: RedisServer) -> None:
        with server(tmp_path, root, "a", shared="redis", redis_url=redis.url) as a, \
                server(tmp_path, root, "b", shared="redis", redis_url=redis.url) as b:
            [from_a] = await fetch_all([f"{a.url}/thumb/120x/photo.jpg"])
            [from_b] = await fetch_all([f"{b.url}/thumb/120x/photo.jpg"])
            assert (from_a.status_code, from_b.status_code) == (200, 200)
            assert from_a.content == from_b.content and from_a.headers["etag"] == from_b.headers["etag"]
            assert (renders(a), renders(b)) == (1, 0)

    async def test_a_burst_over_both_nodes_renders_once(self, tmp_path: Path, root: Path, redis: RedisServer) -> None:
        with server(tmp_path, root, "a", shared="redis", redis_url=redis.url) as a, \
                server(tmp_path, root, "b", shared="redis", redis_url=redis.url) as b:
            urls = [f"{(a, b)[n % 2].url}/thumb/333x/photo.jpg" for n in range(40)]
            answers = await fetch_all(urls)
            assert {r.status_code for r in answers} == {200}
            assert len({r.content for r in answers}) == 1
            assert renders(a, b) == 1

    async def test_restart_with_redis_renders_nothing(self, tmp_path: Path, root: Path, redis: RedisServer) -> None:
        with server(tmp_path, root, "a", shared="redis", redis_url=redis.url) as a:
            await fetch_all([f"{a.url}/thumb/{size}x/photo.jpg" for size in SIZES[:3]])
        with server(tmp_path, root, "a2", shared="redis", redis_url=redis.url) as a:
            answers = await fetch_all([f"{a.url}/thumb/{size}x/photo.jpg" for size in SIZES[:3]])
            assert {r.status_code for r in answers} == {200} and renders(a) == 0


class TestRedisFaults:
    """Redis killed, hung or back again: requests are answered, the tier is used once it works."""

    async def test_killed_then_restarted(self, tmp_path: Path, root: Path, redis: RedisServer) -> None:
        with server(tmp_path, root, "a", shared="redis", redis_url=redis.url) as a:
            assert (await fetch_all([f"{a.url}/thumb/60x/photo.jpg"]))[0].status_code == 200
            redis.kill()
            down = await fetch_all([f"{a.url}/thumb/{size}x/photo.jpg" for size in SIZES])
            assert [r.status_code for r in down] == [200] * len(SIZES)
            log = a.log_text()
            assert log.count("WARNING") <= 2, log  # once per burst, not once per request
            redis.start()  # empty again: a restarted Redis without persistence
            time.sleep(6)  # past the circuit breaker's wait (5 s)
            await fetch_all([f"{a.url}/thumb/999x/photo.jpg"])  # a fresh key: probes, then writes
            await asyncio.sleep(0.5)
        with server(tmp_path, root, "b", shared="redis", redis_url=redis.url) as b:
            [answer] = await fetch_all([f"{b.url}/thumb/999x/photo.jpg"])
            assert answer.status_code == 200 and renders(b) == 0  # the tier worked again for node a

    async def test_paused_redis_costs_a_timeout_not_a_failure(self, tmp_path: Path, root: Path,
                                                              redis: RedisServer) -> None:
        with server(tmp_path, root, "a", shared="redis", redis_url=redis.url, redis_timeout_s=0.25) as a:
            assert (await fetch_all([f"{a.url}/thumb/70x/photo.jpg"]))[0].status_code == 200
            redis.pause()
            try:
                started = time.monotonic()
                answers = await fetch_all([f"{a.url}/thumb/{size}x/photo.jpg" for size in SIZES], timeout=20)
                elapsed = time.monotonic() - started
            finally:
                redis.resume()
            assert [r.status_code for r in answers] == [200] * len(SIZES)
            # A bound, not a speed claim: a hung Redis costs its timeout once, then the breaker skips it.
            assert elapsed < 10, elapsed
