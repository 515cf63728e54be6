"""Repeated thumbnail hits answered by the HTTP protocol (server/http/hits.py), against a real
uvicorn: the same bytes as the usual path, and never an answer the usual path would not give."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import images
from tests.support.live import LiveServer
from tests.support.probe import LoggedServer

ORIGIN = "https://pages.example"
THUMB = "/thumb/200x150/photo.jpg"


def exchange(port: int, *requests: bytes, methods: list[str] | None = None,
             pipelined: bool = False) -> list[tuple[bytes, dict, bytes]]:
    """Send `requests` on one connection, each once the previous answer is read (or all at
    once, `pipelined`), and read their answers: (status line, headers, body)."""
    methods = methods or ["GET"] * len(requests)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        if pipelined:
            connection.sendall(b"".join(requests))
        buffer = b""
        answers = []
        for raw, method in zip(requests, methods, strict=True):
            if not pipelined:
                connection.sendall(raw)
            while b"\r\n\r\n" not in buffer:
                chunk = connection.recv(65536)
                assert chunk, f"connection closed after {len(answers)} responses"
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            status, *lines = head.split(b"\r\n")
            headers: dict[bytes, bytes] = {}
            for line in lines:
                name, _, value = line.partition(b": ")
                assert name not in headers, f"header {name!r} twice"
                headers[name] = value
            length = 0 if method == "HEAD" or b" 304 " in status else int(headers[b"content-length"])
            while len(buffer) < length:
                chunk = connection.recv(65536)
                assert chunk, "connection closed inside a body"
                buffer += chunk
            answers.append((status, headers, buffer[:length]))
            buffer = buffer[length:]
        return answers


def request(path: str, *extra: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# A header the fast path declines (it announces a body) and that changes nothing in the answer.
USUAL_WAY = "Content-Length: 0"


def remembered(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    found = re.search(r"^thumbserver_remembered_hits_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def without_date(answer: tuple[bytes, dict, bytes]) -> tuple[bytes, dict, bytes]:
    status, headers, body = answer
    assert b"date" in headers
    return status, {name: value for name, value in headers.items() if name != b"date"}, body


@pytest.fixture
def server(tmp_path: Path, root: Path) -> Iterator[LiveServer]:
    config = tmp_path / "config.yaml"
    config.write_text(f"http:\n  cors_origins: ['{ORIGIN}']\nthumbnails:\n  auto_formats: [webp]\n")
    with LiveServer(config, root) as live:
        yield live


def warm(server: LiveServer, *headers: str) -> None:
    """A render, then a memory hit through ASGI: the second one is remembered."""
    exchange(server.port, request(THUMB, *headers), request(THUMB, *headers))


@pytest.mark.parametrize("headers", [
    (),
    ("Accept: image/webp,*/*",),
    (f"Origin: {ORIGIN}",),
    ("Origin: https://elsewhere.example", "Accept: image/avif,image/webp"),
])
def test_the_same_bytes_either_way(server: LiveServer, headers: tuple[str, ...]) -> None:
    warm(server, *headers)
    before = remembered(server)
    usual, fast = exchange(server.port, request(THUMB, *headers, USUAL_WAY), request(THUMB, *headers))
    assert remembered(server) == before + 1
    assert without_date(fast) == without_date(usual)
    status, head, body = fast
    assert status == b"HTTP/1.1 200 OK"
    assert Image.open(BytesIO(body)).size == (200, 150)
    assert head[b"content-length"] == str(len(body)).encode()
    if any(line.startswith("Origin: " + ORIGIN) for line in headers):
        assert head[b"access-control-allow-origin"] == ORIGIN.encode()
    if any("webp" in line for line in headers):
        assert head[b"content-type"] == b"image/webp"


def test_conditional_and_head_requests(server: LiveServer) -> None:
    warm(server)
    etag = exchange(server.port, request(THUMB))[0][1][b"etag"].decode()
    asks = [(f"If-None-Match: {etag}",), ('If-None-Match: "other"',),
            ("If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT",), ()]
    for method in ("GET", "HEAD"):
        for headers in asks:
            before = remembered(server)
            usual, fast = exchange(
                server.port, request(THUMB, *headers, USUAL_WAY, method=method), request(THUMB, *headers, method=method),
                methods=[method, method])
            assert remembered(server) == before + 1, (method, headers)
            assert without_date(fast) == without_date(usual), (method, headers)
            not_modified = headers and ("other" not in headers[0])
            assert fast[0] == (b"HTTP/1.1 304 Not Modified" if not_modified else b"HTTP/1.1 200 OK")
            assert (fast[2] == b"") == (method == "HEAD" or bool(not_modified))


def test_pipelined_requests_keep_their_order(server: LiveServer) -> None:
    warm(server)
    other = "/thumb/100x100/photo.jpg"
    # Remembered hits first (answered at once), then an original (through ASGI), and
    # remembered ones queued behind it: every answer in its place.
    hits = remembered(server)
    answers = exchange(server.port, request(THUMB), request(THUMB, method="HEAD"), request("/photo.jpg"),
                       request(THUMB), request(other), request(THUMB, method="HEAD"),
                       methods=["GET", "HEAD", "GET", "GET", "GET", "HEAD"], pipelined=True)
    assert remembered(server) >= hits + 2
    sizes = [Image.open(BytesIO(answers[index][2])).size for index in (0, 2, 3, 4)]
    assert sizes == [(200, 150), (640, 480), (200, 150), (100, 75)]
    for index in (1, 5):
        assert answers[index][0] == b"HTTP/1.1 200 OK" and answers[index][2] == b""
        assert answers[index][1][b"etag"] == answers[0][1][b"etag"]


def test_a_replaced_source_is_never_answered_from_memory(server: LiveServer, root: Path) -> None:
    warm(server)
    first = exchange(server.port, request(THUMB))[0]
    photo = root / "photo.jpg"
    before = photo.stat()
    # Other pixels, the same size and mtime, renamed into place: only the inode and ctime tell.
    replacement = images.jpeg_bytes((640, 480), image=images.marked((640, 480), base="red", mark="blue"))
    replacement = replacement[: before.st_size].ljust(before.st_size, b"\0")
    staged = root / "staged.tmp"
    staged.write_bytes(replacement)
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(staged, photo)
    hits = remembered(server)
    second = exchange(server.port, request(THUMB))[0]
    assert remembered(server) == hits
    assert second[1][b"etag"] != first[1][b"etag"]
    assert second[2] != first[2]
    photo.unlink()
    gone = exchange(server.port, request(THUMB))[0]
    assert gone[0] == b"HTTP/1.1 404 Not Found"
    assert gone[1][b"content-type"] == b"application/json"


def test_an_evicted_entry_is_not_kept_alive(tmp_path: Path, root: Path) -> None:
    images.write(root / "other.jpg", images.jpeg_bytes((640, 480), image=images.textured((640, 480), seed=3)))
    config = tmp_path / "config.yaml"
    # Room for about one thumbnail in memory: each new one evicts the other.
    config.write_text("cache:\n  max_bytes: 10000\n  shared: none\n")
    with LiveServer(config, root) as server:
        warm(server)
        first = exchange(server.port, request(THUMB))[0]
        assert remembered(server) == 1
        exchange(server.port, *[request("/thumb/200x150/other.jpg")] * 3)
        again = exchange(server.port, request(THUMB))[0]
        assert without_date(again) == without_date(first)
        assert remembered(server) == 2  # the other's third request; this one went the usual way


def test_revalidations_with_nothing_in_memory(tmp_path: Path, root: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cache:\n  max_bytes: 1\n")  # memory tier off: the thumbnail lives in the disk tier
    with LiveServer(config, root) as server:
        etag = exchange(server.port, request(THUMB))[0][1][b"etag"].decode()
        ask = f"If-None-Match: {etag}"
        exchange(server.port, request(THUMB, ask))  # a 304 from the validators alone: remembered
        usual, fast, changed = exchange(server.port, request(THUMB, ask, USUAL_WAY), request(THUMB, ask),
                                        request(THUMB, 'If-None-Match: "other"'))
        assert remembered(server) == 1
        assert fast[0] == b"HTTP/1.1 304 Not Modified"
        assert without_date(fast) == without_date(usual)
        assert changed[0] == b"HTTP/1.1 200 OK"  # read from the disk tier, the usual way
        assert Image.open(BytesIO(changed[2])).size == (200, 150)


@pytest.mark.parametrize("log", ["json", "text"])
def test_every_hit_is_logged_when_a_log_is_on(tmp_path: Path, root: Path, log: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"server:\n  access_log: {log}\n")
    with LoggedServer(config, root, log=tmp_path / "server.log") as server:
        answers = exchange(server.port, *[request(THUMB)] * 4)
        assert [status for status, _head, _body in answers] == [b"HTTP/1.1 200 OK"] * 4
        assert remembered(server) == 0
        time.sleep(0.3)
        output = server.log_text()
    assert output.count(THUMB) == 4, output
