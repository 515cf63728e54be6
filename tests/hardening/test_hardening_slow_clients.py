"""Slow clients against a real server: header tricklers and slow readers do not starve anyone,
and the uvicorn bounds of config.yaml's `server` section are really applied."""

from __future__ import annotations

import contextlib

import random
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.probe import (LoggedServer, budget, exchange, parse_response, peak_rss_mb, percentile, raw_request,
                   reset_peak_rss, rss_mb, write_config)

LARGE = random.Random(5).randbytes(48 * 1024 * 1024)
MEDIUM = LARGE[: 4 * 1024 * 1024]
SMALL = LARGE[:200_000]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("slow")
    root = work / "images"
    root.mkdir()
    (root / "large.jpg").write_bytes(LARGE)
    (root / "medium.jpg").write_bytes(MEDIUM)
    (root / "small.jpg").write_bytes(SMALL)
    with LoggedServer(write_config(work / "config.yaml"), root, log=work / "server.log") as live:
        yield live


class Trickler:
    """`count` connections that send a request head one byte per `interval` s, from one thread."""

    HEAD = b"GET /small.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: " + b"s" * 4000 + b"\r\n\r\n"

    def __init__(self, port: int, count: int, *, interval: float = 1.0) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.interval = interval
        self.sent = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        position = 0
        while not self._stop.is_set() and position < len(self.HEAD) - 4:  # never finish the head
            byte = self.HEAD[position : position + 1]
            for sock in self.sockets:
                try:
                    sock.send(byte)
                    self.sent += 1
                except OSError:
                    self.closed_by_server += 1
            position += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


@contextmanager
def slow_readers(port: int, target: bytes, count: int):
    """`count` connections that ask for `target` and then read almost nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(raw_request(target))
        sockets.append(sock)
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _normal_traffic(url: str, seconds: float, max_requests: int) -> tuple[list[float], list[int]]:
    latencies, statuses = [], []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=10) as http:
        for n in range(max_requests):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            response = http.get("/healthz" if n % 2 else "/small.jpg")
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status_code)
            if n % 2 == 0:
                assert response.content == SMALL
            time.sleep(0.02)
    return latencies, statuses


class TestHeaderTricklers:
    """Hundreds of connections trickling a request head leave other clients unaffected."""

    def test_three_hundred_tricklers(self, server: LoggedServer) -> None:
        seconds = budget(6, 60)
        with Trickler(server.port, 300) as trickler:
            time.sleep(1.5)
            latencies, statuses = _normal_traffic(server.url, seconds, max_requests=10_000)
            assert trickler.sent >= 300
        assert set(statuses) == {200}
        assert len(statuses) >= 20
        assert percentile(latencies, 0.99) < 0.25, sorted(latencies)[-5:]
        assert exchange(server.port, raw_request(b"/healthz")).status == 200


class TestSlowReaders:
    """Clients that stop reading a large original hold no more than a socket's buffers each."""

    @pytest.mark.parametrize(("name", "size"), [("large.jpg", len(LARGE)), ("medium.jpg", len(MEDIUM))])
    def test_slow_readers_do_not_starve_or_bloat(self, server: LoggedServer, name: str, size: int) -> None:
        count = budget(40, 200)
        reset_peak_rss(server.pid)
        before = rss_mb(server.pid)
        with slow_readers(server.port, f"/{name}".encode(), count) as sockets:
            time.sleep(1.0)
            latencies, statuses = _normal_traffic(server.url, budget(3, 20), max_requests=2_000)
            # Each reader got its status line: they are being served, just slowly.
            for sock in sockets[:5]:
                assert sock.recv(12).startswith(b"HTTP/1.1 200")
            growth = peak_rss_mb(server.pid) - before
        assert set(statuses) == {200}
        assert percentile(latencies, 0.99) < 0.25, sorted(latencies)[-5:]
        # Streaming with flow control keeps ~ a chunk and a transport buffer per reader; reading
        # whole files would cost `size` per reader (here 40 x 4 MB or 40 x 48 MB).
        assert growth < 2 + count * 1.0, f"{count} slow readers of {size >> 20} MB grew the peak RSS by {growth:.0f} MB"

    def test_a_slow_reader_gets_every_byte(self, server: LoggedServer) -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw_request(b"/medium.jpg"))
            received = bytearray()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                chunk = sock.recv(512 * 1024)
                if not chunk:
                    break
                received += chunk
                time.sleep(0.005)
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert body == MEDIUM


@pytest.fixture
def tight_server(tmp_path: Path):
    root = tmp_path / "images"
    root.mkdir()
    (root / "small.jpg").write_bytes(SMALL)
    config = write_config(tmp_path / "config.yaml", server={
        "limit_concurrency": 20, "timeout_keep_alive": 1, "h11_max_incomplete_event_size": 4096, "backlog": 64,
        "timeout_request_head": 1.5,
    })
    with LoggedServer(config, root, log=tmp_path / "server.log") as live:
        yield live


class TestConfiguredBounds:
    """limit_concurrency, timeout_keep_alive, timeout_request_head and the head size reach the server."""

    def test_limit_concurrency_answers_503_beyond_it(self, tight_server: LoggedServer) -> None:
        with Trickler(tight_server.port, 25, interval=0.5):
            time.sleep(0.5)
            response = exchange(tight_server.port, raw_request(b"/small.jpg"))
        assert response is not None and response.status == 503
        # Once the tricklers are gone (the server notices their close within moments), all is well.
        deadline = time.monotonic() + 5
        while (after := exchange(tight_server.port, raw_request(b"/small.jpg"))).status != 200:
            assert time.monotonic() < deadline, after.status
            time.sleep(0.1)
        assert after.body == SMALL

    def test_head_trickled_past_its_deadline_gets_408(self, tight_server: LoggedServer) -> None:
        with socket.create_connection(("127.0.0.1", tight_server.port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /small.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            try:
                for _ in range(40):
                    sock.sendall(b"X: y\r\n")  # a few bytes every 0.1 s: small, but never done
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408")
        assert 1.0 <= time.monotonic() - started < 4.5

    def test_connection_that_sends_nothing_is_closed(self, tight_server: LoggedServer) -> None:
        with socket.create_connection(("127.0.0.1", tight_server.port), timeout=10) as sock:
            started = time.monotonic()
            assert sock.recv(65536).startswith(b"HTTP/1.1 408")
            assert sock.recv(1) == b""
        assert time.monotonic() - started < 3

    def test_idle_keep_alive_is_closed(self, tight_server: LoggedServer) -> None:
        with socket.create_connection(("127.0.0.1", tight_server.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            while (response := parse_response(received)) is None or not response.complete:
                received += sock.recv(65536)
            assert response.status == 200
            started = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server
            assert time.monotonic() - started < 3

    def test_one_body_byte_cannot_hold_a_connection(self, tight_server: LoggedServer) -> None:
        """A declared body left unread after the response: the connection is closed, not held."""
        with socket.create_connection(("127.0.0.1", tight_server.port), timeout=5) as sock:
            sock.sendall(b"GET /small.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
            received = b""
            while (response := parse_response(received)) is None or not response.complete:
                chunk = sock.recv(65536)
                assert chunk, "closed before the response"
                received += chunk
            assert response.status == 200 and response.body == SMALL
            started = time.monotonic()
            try:
                sock.sendall(b"x")
                assert sock.recv(1) == b""  # closed by the server
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed even earlier
            assert time.monotonic() - started < 3

    def test_many_body_holders_do_not_lock_out_a_client(self, tight_server: LoggedServer) -> None:
        """limit_concurrency (20 here) of one-byte-body sockets, then a fresh client gets its 200."""
        holders = []
        try:
            for _ in range(40):
                sock = socket.create_connection(("127.0.0.1", tight_server.port), timeout=5)
                sock.sendall(b"GET /small.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
                holders.append(sock)
            for sock in holders:
                with contextlib.suppress(OSError):
                    sock.recv(65536)
                    sock.sendall(b"x")
            response = exchange(tight_server.port, raw_request(b"/small.jpg"))
            assert response is not None and response.status == 200
        finally:
            for sock in holders:
                sock.close()

    def test_websocket_upgrade_reaches_no_websocket_stack(self, tight_server: LoggedServer) -> None:
        request = (b"GET /small.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        response = exchange(tight_server.port, request)
        # A plain HTTP answer (uvicorn with ws: none logs "Unsupported upgrade request" and goes on).
        assert response is not None and response.status == 200 and response.body == SMALL
        assert "upgrade" not in {key.lower() for key in response.headers}

    @pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read the listen backlog")
    def test_backlog(self, tight_server: LoggedServer) -> None:
        listing = subprocess.run(["ss", "-ltnH", f"sport = :{tight_server.port}"], capture_output=True, text=True,
                                 timeout=10).stdout.split()
        assert listing[2] == "64", listing  # Send-Q of a listening socket is its backlog

    def test_incomplete_head_is_bounded(self, tight_server: LoggedServer) -> None:
        with socket.create_connection(("127.0.0.1", tight_server.port), timeout=5) as sock:
            sock.sendall(b"GET /small.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            try:
                for _ in range(20):
                    sock.sendall(b"X-Filler: " + b"f" * 500 + b"\r\n")  # 10 KB, never finished
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before we were done: what is asserted is the answer
            assert sock.recv(65536).startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))  # h11: 400; httptools (server.protocol): 431
