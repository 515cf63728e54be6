"""HTTP abuse: range floods, malformed ranges and validators, huge heads and bodies. Never a 5xx."""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.probe import LoggedServer, exchange, peak_rss_mb, raw_request, reset_peak_rss, rss_mb, write_config

BODY = random.Random(3).randbytes(300_000)
FAST = 2.0  # seconds; generous on a busy 2-core machine


@pytest.fixture
def photo(image_root: Path) -> Path:
    path = image_root / "photo.jpg"
    path.write_bytes(BODY)
    return path


def _multipart_parts(response: httpx.Response) -> list[bytes]:
    boundary = response.headers["content-type"].split("boundary=")[1].encode()
    parts = []
    for chunk in response.content.split(b"--" + boundary)[1:-1]:
        parts.append(chunk.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n"))
    return parts


class TestRangeAbuse:
    """Floods and nonsense in Range answer a fast 200, 206 or 416, and a 206 has the right bytes."""

    async def test_a_thousand_ranges_are_ignored(self, client: httpx.AsyncClient, photo: Path) -> None:
        header = "bytes=" + ",".join(f"{2 * n}-{2 * n}" for n in range(1000))
        started = time.monotonic()
        response = await client.get("/photo.jpg", headers={"Range": header})
        assert time.monotonic() - started < FAST
        assert response.status_code == 200
        assert response.content == BODY

    async def test_a_thousand_overlapping_ranges_are_ignored(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=" + ",".join(["0-299999"] * 1000)})
        assert response.status_code == 200
        assert len(response.content) == len(BODY)

    async def test_overlapping_ranges_are_merged(self, client: httpx.AsyncClient, photo: Path) -> None:
        # 100 ranges (the most honoured) that all overlap: one part, not 100 copies of the file.
        header = "bytes=" + ",".join(f"{n}-{1000 + n}" for n in range(100))
        response = await client.get("/photo.jpg", headers={"Range": header})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes 0-1099/{len(BODY)}"
        assert response.content == BODY[:1100]

    async def test_disjoint_ranges_are_multipart_and_sorted(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=500-599,0-9,-10"})
        assert response.status_code == 206
        assert _multipart_parts(response) == [BODY[:10], BODY[500:600], BODY[-10:]]

    @pytest.mark.parametrize(
        "header",
        ["bytes=100-0", "bytes=abc", "bytes=", "bytes", "items=0-1", "bytes=--1", "bytes=0-1-2", "bytes=1-2;3",
         "bytes=\u00b2-3".encode("latin-1"), "bytes=0x10-0x20", "bytes=-", "bytes=,,,", "bytes=0-1,,2-3x", " bytes = 0 - 1 ",
         "bytes=0-1," + "x" * 60_000, "bytes=" + "9" * 5000 + "-1"],
    )
    async def test_malformed_is_ignored(self, client: httpx.AsyncClient, photo: Path, header: str | bytes) -> None:
        started = time.monotonic()
        response = await client.get("/photo.jpg", headers={"Range": header})
        assert time.monotonic() - started < FAST
        assert response.status_code == 200
        assert response.content == BODY

    @pytest.mark.parametrize("header", ["bytes=300000-", "bytes=99999999999999999999999999-", "bytes=-0",
                                        "bytes=400000-500000,300000-"])
    async def test_unsatisfiable(self, client: httpx.AsyncClient, photo: Path, header: str) -> None:
        response = await client.get("/photo.jpg", headers={"Range": header})
        assert response.status_code == 416
        assert response.headers["content-range"] == f"bytes */{len(BODY)}"

    async def test_end_beyond_the_file_is_clamped(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=299990-" + "9" * 40})
        assert response.status_code == 206
        assert response.content == BODY[299990:]

    @pytest.mark.parametrize("if_range", ['W/"x"', "garbage", "", '"' * 5000, "Mon, 32 Foo 1999 99:99:99 GMT"])
    async def test_if_range_that_does_not_match_sends_everything(
        self, client: httpx.AsyncClient, photo: Path, if_range: str
    ) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=0-9", "If-Range": if_range})
        assert response.status_code == 200
        assert response.content == BODY


class TestValidatorAbuse:
    """Huge or nonsensical validators are answered fast and correctly."""

    async def test_long_if_none_match_list(self, client: httpx.AsyncClient, photo: Path) -> None:
        etag = (await client.head("/photo.jpg")).headers["etag"]
        others = ", ".join(f'"{n:x}"' for n in range(5000))
        started = time.monotonic()
        assert (await client.get("/photo.jpg", headers={"If-None-Match": others})).status_code == 200
        assert (await client.get("/photo.jpg", headers={"If-None-Match": others + ", " + etag})).status_code == 304
        assert time.monotonic() - started < FAST

    @pytest.mark.parametrize("date", ["yesterday", "", "Sun, 06 Nov 1994 08:49:37", "Sun, 99 Nov 1994 08:49:37 GMT",
                                      "9" * 4000, "Sun, 06 Nov 99999 08:49:37 GMT", "\x00"])
    async def test_bad_if_modified_since_is_ignored(self, client: httpx.AsyncClient, photo: Path, date: str) -> None:
        response = await client.get("/photo.jpg", headers={"If-Modified-Since": date})
        assert response.status_code == 200

    @pytest.mark.parametrize("accept", ["image/webp;q=nan", "image/webp;q=inf", "image/webp;q=-1", "," * 10_000,
                                        "image/" + "a" * 10_000, "image/webp;q=1e999"])
    async def test_odd_accept_on_a_thumbnail(self, client: httpx.AsyncClient, image_root: Path, accept: str) -> None:
        from tests.support import images

        images.write(image_root / "small.jpg", images.jpeg_bytes((64, 48)))
        response = await client.get("/thumb/32x/small.jpg", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"] in ("image/jpeg", "image/webp")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("http-abuse")
    root = work / "images"
    root.mkdir()
    (root / "photo.jpg").write_bytes(BODY)
    with LoggedServer(write_config(work / "config.yaml"), root, log=work / "server.log") as server:
        yield server


def _head_with(extra: bytes, target: bytes = b"/photo.jpg") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + b"\r\n"


class TestRequestHeads:
    """Big request heads over a real socket: a fast 200 or 4xx, bounded memory, never a 5xx."""

    @pytest.mark.parametrize(
        "extra",
        [
            b"X-Big: " + b"a" * 64 * 1024 + b"\r\n",
            b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 50) for n in range(1000)),
            b"Cookie: " + b"c=1; " * 13_000 + b"\r\n",
            b"Range: bytes=" + b",".join(b"%d-%d" % (n, n) for n in range(8000)) + b"\r\n",
        ],
        ids=["one-64k-header", "1000-headers", "64k-cookie", "64k-range"],
    )
    def test_64k_heads(self, live: LoggedServer, extra: bytes) -> None:
        started = time.monotonic()
        response = exchange(live.port, _head_with(extra))
        assert time.monotonic() - started < FAST
        assert response is not None
        assert response.status in (200, 400, 413, 431)
        if response.status == 200:
            assert response.body == BODY

    def test_megabyte_heads_are_refused_in_bounded_memory(self, live: LoggedServer) -> None:
        """The request-head bound (h11_max_incomplete_event_size, either parser): a 1 MB head is a 4xx."""
        head = _head_with(b"X-Big: " + b"a" * 1024 * 1024 + b"\r\n")
        reset_peak_rss(live.pid)
        before = rss_mb(live.pid)
        statuses: list[int | None] = []

        def send() -> None:
            response = exchange(live.port, head, timeout=20)
            statuses.append(None if response is None else response.status)

        threads = [threading.Thread(target=send) for _ in range(50)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert time.monotonic() - started < 20
        # A reset (None) is what a server may do to a client still sending a refused head.
        assert all(status is None or 400 <= status < 500 for status in statuses), statuses
        assert any(status is not None for status in statuses)
        # 50 MB of heads were sent; buffering them would show here.
        assert peak_rss_mb(live.pid) - before < 30

    @pytest.mark.parametrize(
        "extra",
        [b"Content-Length: 99999999999999\r\n", b"Content-Length: 1073741824\r\n"],
        ids=["100TB", "1GB"],
    )
    def test_get_with_a_huge_content_length_is_answered_at_once(self, live: LoggedServer, extra: bytes) -> None:
        started = time.monotonic()
        response = exchange(live.port, _head_with(extra), timeout=10)
        assert time.monotonic() - started < FAST
        assert response is not None
        assert response.status in (200, 400, 413)
        if response.status == 200:
            assert response.body == BODY

    @pytest.mark.parametrize(
        "extra",
        [b"Content-Length: -1\r\n", b"Content-Length: abc\r\n", b"Content-Length: 1\r\nContent-Length: 2\r\n",
         b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip, identity\r\n",
         b"Host: a\r\nHost: b\r\n", b"X-Bad\x00Name: 1\r\n", b"X-Bad: \x00\r\n", b" Folded: 1\r\n",
         b"X-Bad: a\rb\r\n"],
    )
    def test_malformed_framing_is_a_400(self, live: LoggedServer, extra: bytes) -> None:
        response = exchange(live.port, _head_with(extra), timeout=5)
        assert response is not None
        assert 400 <= response.status < 500 or response.status == 200, response.status

    def test_endless_chunked_body_on_a_get(self, live: LoggedServer) -> None:
        """A GET whose chunked body never ends is answered, and the server does not wait for the body."""
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(_head_with(b"Transfer-Encoding: chunked\r\n") + b"10\r\n" + b"x" * 16 + b"\r\n")
            started = time.monotonic()
            data = b""
            while b"\r\n\r\n" not in data and time.monotonic() - started < FAST:
                data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200")

    def test_pipelined_small_requests_are_all_answered(self, live: LoggedServer) -> None:
        """100 small requests in one write (HTTP/1.1 pipelining): 20 KB in a read, every head small."""
        one = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: " + b"u" * 150 + b"\r\n\r\n"
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(one * 100)
            data = b""
            deadline = time.monotonic() + 10
            while data.count(b"HTTP/1.1 ") < 100 and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert data.count(b"HTTP/1.1 200 ") == 100, data[:300]

    @pytest.mark.parametrize("target", [b"\\photo.jpg", b"Xphoto.jpg", b"*photo.jpg"])
    def test_target_without_leading_slash_is_not_an_original(self, live: LoggedServer, target: bytes) -> None:
        response = exchange(live.port, raw_request(target))
        assert response is not None and response.status in (400, 404)

    def test_still_healthy(self, live: LoggedServer) -> None:
        assert exchange(live.port, raw_request(b"/healthz")).status == 200
        assert "Traceback" not in live.log_text()
