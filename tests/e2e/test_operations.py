"""Operating the server: Prometheus metrics summed over worker processes, JSON access logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from server.http.observe import FLUSH_S
from tests.support.metrics import samples, value
from tests.support.probe import LoggedServer, write_config


class TestMetricsAcrossWorkers:
    """Known traffic over two workers, fresh connections: /metrics counts every request once."""

    def test_counts_after_known_traffic(self, tmp_path: Path, root: Path) -> None:
        config = write_config(tmp_path / "config.yaml", cache={"shared": "disk"})
        with LoggedServer(config, root, log=tmp_path / "server.log", workers=2,
                          env={"THUMBSERVER_CACHE_DISK_PATH": str(tmp_path / "results")}) as live:
            for _ in range(20):  # fresh connections: the kernel spreads them over both workers
                assert httpx.get(f"{live.url}/photo.jpg").status_code == 200
            for n in range(5):
                for _ in range(4):
                    assert httpx.get(f"{live.url}/thumb/{100 + n}x/photo.jpg").status_code == 200
            for _ in range(3):
                assert httpx.get(f"{live.url}/missing.jpg").status_code == 404
            # Each worker adds its request counts to the shared files at most FLUSH_S after them.
            time.sleep(FLUSH_S + 0.5)
            found = samples(httpx.get(f"{live.url}/metrics").text)
        assert value(found, "thumbserver_requests_total", kind="original", status="200") == 20
        assert value(found, "thumbserver_requests_total", kind="thumbnail", status="200") == 20
        assert value(found, "thumbserver_requests_total", kind="original", status="404") == 3
        assert value(found, "thumbserver_renders_total", format="jpeg") == 5  # one per thumbnail, both workers
        hits = value(found, "thumbserver_cache_lookups_total", tier="memory", result="hit")
        shared_hits = value(found, "thumbserver_cache_lookups_total", tier="shared", result="hit")
        assert hits + shared_hits >= 15 - 5  # at most one shared hit per thumbnail and worker
        assert value(found, "thumbserver_request_duration_seconds_count", kind="thumbnail") == 20
        assert value(found, "thumbserver_render_duration_seconds_count") == 5
        assert value(found, "thumbserver_renders_in_flight") == 0


class TestJsonAccessLog:
    """server.access_log: json writes one parseable object per request, with the cache outcome."""

    def test_lines(self, tmp_path: Path, root: Path) -> None:
        config = write_config(tmp_path / "config.yaml", server={"access_log": "json"}, cache={"shared": "none"})
        with LoggedServer(config, root, log=tmp_path / "server.log") as live:
            first = httpx.get(f"{live.url}/thumb/120x/photo.jpg")
            httpx.get(f"{live.url}/thumb/120x/photo.jpg")
            httpx.get(f"{live.url}/thumb/120x/photo.jpg", headers={"If-None-Match": first.headers["etag"]})
            httpx.head(f"{live.url}/photo.jpg")
            httpx.get(f"{live.url}/nope.jpg?x=1")
            time.sleep(0.3)
            lines = [json.loads(line) for line in live.log_text().splitlines() if line.startswith("{")]
        thumbs = [line for line in lines if line["kind"] == "thumbnail"]
        assert [(t["status"], t["cache"]) for t in thumbs] == [(200, "render"), (200, "memory"), (304, "304")]
        assert thumbs[0]["render_ms"] > 0 and thumbs[1]["render_ms"] is None
        assert thumbs[0]["bytes"] == len(first.content) and thumbs[2]["bytes"] == 0
        head = next(line for line in lines if line["method"] == "HEAD")
        assert head["bytes"] == 0 and head["kind"] == "original" and head["status"] == 200
        missing = next(line for line in lines if line["status"] == 404)
        assert missing["path"] == "/nope.jpg?x=1" and missing["client"] == "127.0.0.1"
        for line in lines:
            assert line["time"].endswith("Z") and line["duration_ms"] >= 0
            assert set(line) == {"time", "method", "path", "status", "bytes", "duration_ms", "kind", "cache",
                                 "render_ms", "client"}
