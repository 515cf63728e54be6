"""A soak: many mixed requests against a real server with a small cache. Memory stays within
`cache.max_bytes` + 150 MB, no descriptor leaks, and every answer is the one expected.

3,000 requests by default; 100,000 under `make soak` (TS_TEST_BUDGET=full).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.metrics import service_state
from tests.support.probe import FULL, LoggedServer, budget, open_fds, peak_rss_mb, rss_mb, settle_fds, write_config

CACHE_BYTES = 2 * 1024 * 1024
HEADROOM_MB = 150
SOURCES = ["photo.jpg", "logo.png", "hills.webp", "sub/deep.jpg"]
HIT_SPECS = ["100x", "x80", "64x64,cover", "small", "120x90,webp"]
CLIENTS = 8


def _build_root(root: Path) -> None:
    images.write(root / "photo.jpg", images.jpeg_bytes((480, 360), image=images.textured((480, 360))))
    images.write(root / "logo.png", images.png_bytes((300, 200), mode="RGBA"))
    images.write(root / "hills.webp", images.webp_bytes((400, 300)))
    images.write(root / "sub" / "deep.jpg", images.jpeg_bytes((320, 240)))


class Mix:
    """Draws the next request of a category and checks its answer."""

    CATEGORIES = ["hit", "hit", "hit", "miss", "not_modified", "not_modified", "original", "range", "head",
                  "not_found", "bad_spec"]

    def __init__(self, seed: int, etags: dict[str, str]) -> None:
        self.random = random.Random(seed)
        self.etags = etags

    def draw(self) -> tuple[str, str, str, dict[str, str], set[int]]:
        """(category, method, url, headers, acceptable statuses)."""
        category = self.random.choice(self.CATEGORIES)
        source = self.random.choice(SOURCES)
        if category == "hit":
            return category, "GET", f"/thumb/{self.random.choice(HIT_SPECS)}/{source}", {}, {200}
        if category == "miss":
            # ~ 400 x 100 distinct keys: the 2 MB cache keeps evicting. 503 only if the queue filled.
            spec = f"{self.random.randint(16, 400)}x,q{self.random.randint(1, 100)}"
            return category, "GET", f"/thumb/{spec}/{source}", {}, {200}
        if category == "not_modified":
            url = self.random.choice(sorted(self.etags))
            return category, "GET", url, {"If-None-Match": self.etags[url]}, {304}
        if category == "original":
            return category, "GET", f"/{source}", {}, {200}
        if category == "range":
            start = self.random.randint(0, 100)  # every source is longer than 200 bytes
            return category, "GET", f"/{source}", {"Range": f"bytes={start}-{start + 99}"}, {206}
        if category == "head":
            return category, "HEAD", self.random.choice([f"/{source}", f"/thumb/100x/{source}"]), {}, {200}
        if category == "not_found":
            name = self.random.choice([f"missing-{self.random.randint(0, 10**6)}.jpg", "etc/passwd.jpg",
                                       "sub/nothing.png", ".hidden.jpg"])
            return category, "GET", self.random.choice([f"/{name}", f"/thumb/100x/{name}"]), {}, {404}
        spec = self.random.choice(["0x0", "100x100,bogus", "99999x", "100x@9x", "q50", "100x,q0", "abc"])
        return category, "GET", f"/thumb/{spec}/{source}", {}, {400}


@pytest.fixture(scope="module")
def soak_server(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("soak")
    _build_root(work / "images")
    config = write_config(work / "config.yaml", cache={"max_bytes": CACHE_BYTES})
    with LoggedServer(config, work / "images", log=work / "server.log") as server:
        yield server


def _warm_up(url: str) -> dict[str, str]:
    """Fetch every hit URL and original once; return their ETags for the 304 requests."""
    etags = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        for source in SOURCES:
            for path in [f"/{source}", *(f"/thumb/{spec}/{source}" for spec in HIT_SPECS)]:
                response = http.get(path)
                assert response.status_code == 200, path
                etags[path] = response.headers["etag"]
        http.get("/missing.jpg")
        http.get("/thumb/bogus/photo.jpg")
    return etags


class TestSoak:
    """Mixed traffic for a while: bounded memory, no leaked descriptors, only expected answers."""

    def test_mixed_traffic(self, soak_server: LoggedServer) -> None:
        pid = soak_server.pid
        etags = _warm_up(soak_server.url)
        time.sleep(0.5)  # the warm-up client's connection is closed by now
        fds_before = open_fds(pid)
        total = budget(3_000, 100_000)
        deadline = time.monotonic() + budget(150, 2_400)
        seen: Counter[tuple[str, int]] = Counter()
        wrong: list[tuple[str, str, int]] = []
        rss_samples: list[float] = []
        done = threading.Event()
        lock = threading.Lock()

        def client(index: int) -> None:
            mix = Mix(seed=index, etags=etags)
            with httpx.Client(base_url=soak_server.url, timeout=30) as http:
                for _ in range(total // CLIENTS):
                    if time.monotonic() > deadline:
                        return
                    category, method, url, headers, acceptable = mix.draw()
                    response = http.request(method, url, headers=headers)
                    with lock:
                        seen[(category, response.status_code)] += 1
                        if response.status_code not in acceptable:
                            wrong.append((category, url, response.status_code))

        def sample_rss() -> None:
            while not done.wait(0.25):
                rss_samples.append(rss_mb(pid))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()

        requests = sum(seen.values())
        peak = max(peak_rss_mb(pid), *rss_samples)
        fds_after = settle_fds(pid, len(fds_before), timeout=15)
        summary = (f"soak: {requests} requests in {elapsed:.0f} s ({requests / elapsed:.0f}/s); "
                   f"statuses {dict(sorted(Counter(status for _, status in seen.elements()).items()))}; "
                   f"by category {dict(sorted(seen.items()))}; peak RSS {peak:.0f} MB "
                   f"(limit {CACHE_BYTES / 2**20 + HEADROOM_MB:.0f}); fds {len(fds_before)} -> {fds_after}")
        print(summary)
        if FULL:
            Path(soak_server.log.parent / "soak-summary.txt").write_text(summary + "\n")

        assert requests == (total // CLIENTS) * CLIENTS, f"time budget ran out: {summary}"
        assert not wrong, wrong[:20]
        assert all(status < 500 for _, status in seen), summary
        assert peak <= CACHE_BYTES / 2**20 + HEADROOM_MB, summary
        assert fds_after == len(fds_before), (fds_before, open_fds(pid))
        # Not just the count: no file of the image root is left open.
        assert [fd for fd in open_fds(pid) if "/images/" in fd] == []
        state = service_state(httpx.get(f"{soak_server.url}/metrics").text)
        assert state["cache_bytes"] <= CACHE_BYTES
        assert state["in_flight"] == 0
        assert "Traceback" not in soak_server.log_text()
