"""What the server tells its operators: Prometheus metrics and JSON access logs.

`Observer` is the outermost ASGI layer, so nothing — not the image front, not FastAPI — answers
a request without it being counted: it labels each request with the URL classifier's kind,
times it, reads its status and body bytes off `send`, and, with `server.access_log: json`,
writes one JSON object per request to stdout. The thumbnail service reports renders, lookups
and rejections through `Metrics`, its `ServiceEvents`.

Metrics are correct across worker processes with prometheus-client's multiprocess mode: the
command line points `PROMETHEUS_MULTIPROC_DIR` at a fresh folder before any worker starts, each
worker writes its own files there, and `/metrics` sums them. Without that variable (the app
built in a test), each app has a registry of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import HistogramMetricFamily
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.thumbnails import ServiceEvents

KINDS = ("original", "thumbnail", "info", "upload", "browse", "other")
# Hits take well under a millisecond, renders tens to hundreds: buckets for both.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Seconds at most between a request and its figures reaching the metrics (and the other workers).
FLUSH_S = 1.0
RENDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics(ServiceEvents):
    """The metrics of DESIGN.md §Metrics, and the service's events counted into them."""

    def __init__(self) -> None:
        self._shared_files = multiprocess_mode()
        # Multiprocess values live in files, not in a registry; else one registry per app.
        self.registry = None if self._shared_files else CollectorRegistry()
        registry = self.registry
        self.requests = Counter("thumbserver_requests_total", "Requests answered, by kind and status.",
                                ("kind", "status"), registry=registry)
        self.renders = Counter("thumbserver_renders_total", "Thumbnails rendered, by output format.",
                               ("format",), registry=registry)
        self.render_seconds = Histogram("thumbserver_render_duration_seconds", "Time a render took.",
                                        buckets=RENDER_BUCKETS, registry=registry)
        self.lookups = Counter("thumbserver_cache_lookups_total", "Result lookups by tier and result.",
                               ("tier", "result"), registry=registry)
        self.remembered_hits = Counter("thumbserver_remembered_hits_total",
                                       "Thumbnail hits the HTTP protocol answered from a remembered response "
                                       "(counted in thumbserver_requests_total too).", registry=registry)
        self.intermediates = Counter("thumbserver_intermediates_total",
                                     "Renders by how they got their decoded source: decoded or reused.",
                                     ("result",), registry=registry)
        self.rejections = Counter("thumbserver_render_rejections_total", "Renders refused, by reason.",
                                  ("reason",), registry=registry)
        self.renders_in_flight = Gauge("thumbserver_renders_in_flight", "Renders running or queued.",
                                       registry=registry, multiprocess_mode="livesum")
        self.cache_bytes = Gauge("thumbserver_cache_bytes", "Bytes held by a result tier.", ("tier",),
                                 registry=registry, multiprocess_mode="livesum")
        self.cache_entries = Gauge("thumbserver_cache_entries", "Entries held by a result tier.", ("tier",),
                                   registry=registry, multiprocess_mode="livesum")
        #: () -> (bytes, entries) of this process's memory tier, read at each flush.
        self.memory_tier: Callable[[], tuple[int, int]] | None = None
        # Per-request counts are tallied in plain Python and added to the counters at most every
        # FLUSH_S and before every exposition: prometheus-client takes a lock per increment, and
        # four of them per cache hit cost half as much as the hit itself (27 µs instead of 18 µs).
        # The request-duration histogram has no batched form in prometheus-client's interface, so
        # it is this process's own: cumulative bucket counts and sum per kind, written to a file
        # of the multiprocess folder at each flush and summed over the files at each scrape.
        self._requests: dict[tuple[str, int], int] = {}
        self._lookups: dict[tuple[str, str], int] = {}
        self._remembered = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self.durations = RequestDurations()
        if registry is not None:
            registry.register(self.durations)

    def request(self, kind: str, status: int, seconds: float) -> None:
        key = (kind, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        self.durations.observe(kind, seconds)
        self._flush_soon()

    def remembered_hit(self, status: int, seconds: float) -> None:
        """A thumbnail hit answered by the protocol (server/http/hits.py)."""
        self._remembered += 1
        self.request("thumbnail", status, seconds)

    def flush(self) -> None:
        """Add the tallies to the metrics (and to the multiprocess files)."""
        self._flush_handle = None
        if self._remembered:
            self.remembered_hits.inc(self._remembered)
            self._remembered = 0
        requests, self._requests = self._requests, {}
        lookups, self._lookups = self._lookups, {}
        for (kind, status), count in requests.items():
            self.requests.labels(kind, str(status)).inc(count)
        for (tier, result), count in lookups.items():
            self.lookups.labels(tier, result).inc(count)
        if self.memory_tier is not None:
            # At each flush, not only at a scrape: a scrape reaches one worker, and the livesum
            # must add the others' current sizes, not the sizes of their last scrape.
            memory_bytes, entries = self.memory_tier()
            self.cache_bytes.labels("memory").set(memory_bytes)
            self.cache_entries.labels("memory").set(entries)
        if self._shared_files:
            self.durations.write(os.environ["PROMETHEUS_MULTIPROC_DIR"])

    def _flush_soon(self) -> None:
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_handle = loop.call_later(FLUSH_S, self.flush)

    # -- ServiceEvents ------------------------------------------------------------------------

    def looked_up(self, tier: str, result: str) -> None:
        key = (tier, result)
        self._lookups[key] = self._lookups.get(key, 0) + 1
        self._flush_soon()

    def rendered(self, output_format: str, seconds: float) -> None:
        self.renders.labels(output_format).inc()
        self.render_seconds.observe(seconds)

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def in_flight(self, delta: int) -> None:
        self.renders_in_flight.inc(delta)

    def intermediate(self, result: str) -> None:
        self.intermediates.labels(result).inc()

    # -- exposition ---------------------------------------------------------------------------

    def exposition(self) -> Response:
        """The text exposition: every worker's values summed in multiprocess mode (the other
        workers' tallies reach their files within FLUSH_S)."""
        self.flush()
        if self._shared_files:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(RequestDurations.summed(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
        else:
            registry = self.registry
        body = generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    def process_stopped(self) -> None:
        """Flush, then drop this process's live gauges from the sums (a worker shutting down)."""
        self.flush()
        if self._shared_files:
            multiprocess.mark_process_dead(os.getpid())


class RequestDurations:
    """`thumbserver_request_duration_seconds`: a histogram kept as plain counts (no lock, no mmap
    write per request), exposed through prometheus-client's public collector interface."""

    FILE_PREFIX = "thumbserver_durations_"

    def __init__(self, tallies: dict[str, list] | None = None) -> None:
        # kind -> [count per bucket..., count above the last bucket, sum of seconds]
        self.tallies: dict[str, list] = tallies if tallies is not None else {}

    def observe(self, kind: str, seconds: float) -> None:
        tally = self.tallies.get(kind)
        if tally is None:
            tally = self.tallies[kind] = [0] * (len(REQUEST_BUCKETS) + 1) + [0.0]
        tally[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        tally[-1] += seconds

    def write(self, folder: str) -> None:
        """This process's totals into `folder` (a temporary file renamed into place)."""
        path = os.path.join(folder, f"{self.FILE_PREFIX}{os.getpid()}.json")
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as file:
            json.dump(self.tallies, file)
        os.replace(temporary, path)

    @classmethod
    def summed(cls, folder: str) -> RequestDurations:
        """The totals of every process that wrote into `folder` (dead ones included, as counters)."""
        total: dict[str, list] = {}
        for name in os.listdir(folder):
            if not (name.startswith(cls.FILE_PREFIX) and name.endswith(".json")):
                continue
            try:
                with open(os.path.join(folder, name)) as file:
                    tallies = json.load(file)
            except (OSError, ValueError):
                continue  # being replaced: the next scrape reads it
            for kind, tally in tallies.items():
                into = total.setdefault(kind, [0] * (len(REQUEST_BUCKETS) + 1) + [0.0])
                for index, value in enumerate(tally):
                    into[index] += value
        return cls(total)

    def collect(self):
        family = HistogramMetricFamily(
            "thumbserver_request_duration_seconds", "Time to answer a request.", labels=["kind"]
        )
        for kind, tally in sorted(self.tallies.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*REQUEST_BUCKETS, float("inf")), tally[:-1], strict=True):
                cumulative += count
                buckets.append((repr(bound) if bound != float("inf") else "+Inf", cumulative))
            family.add_metric([kind], buckets, tally[-1])
        yield family


class Observer:
    """The outermost ASGI layer: counts and times every HTTP request, and logs it when asked.

    `kind_of(scope)` names the request's kind; `request_facts(scope)` the thumbnail facts the
    handler left in the scope (cache outcome, render ms). Both run only after the response.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None,
        kind_of: Callable[[Scope], str],
        access_log: bool,
        stream=None,
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._kind_of = kind_of
        self._log = access_log
        self._stream = stream or sys.stdout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self._metrics is None and not self._log):
            return await self.app(scope, receive, send)
        if self._log:
            scope["thumbserver"] = {}  # the image handler notes the cache outcome here
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before its status line
        sent = 0

        log = self._log

        async def observed_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif log:  # body bytes are only for the log line (a zero-copy body names its count)
                sent += len(message.get("body", b"")) + message.get("count", 0)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            kind = self._kind_of(scope)
            if self._metrics is not None:
                self._metrics.request(kind, status, seconds)
            if self._log:
                self._write(scope, kind, status, sent, seconds)

    def _write(self, scope: Scope, kind: str, status: int, sent: int, seconds: float) -> None:
        facts = scope.get("thumbserver", {})
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        client = scope.get("client")
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": scope["method"],
            "path": raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else ""),
            "status": status,
            "bytes": sent if scope["method"] != "HEAD" else 0,
            "duration_ms": round(seconds * 1000, 3),
            "kind": kind,
            "cache": facts.get("cache"),
            "render_ms": facts.get("render_ms"),
            "client": client[0] if client else None,
        }
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._stream.flush()
