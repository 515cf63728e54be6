"""Originals over a real uvicorn, with the zero-copy path (httptools) and without it (h11).

Bodies are compared byte for byte with the files; responses are read off raw sockets so that
pipelining, HEAD framing and a connection cut short are seen as the client sees them. A file
changed while it is being sent must never arrive as a complete 200.
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

import pytest

from tests.support.probe import LoggedServer, write_config

BIG = 3_000_000
HUGE = 20_000_000
MODES = ("httptools", "h11")


def _bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("zero-copy") / "images"
    root.mkdir()
    contents = {"big.jpg": _bytes(BIG, 1), "huge.jpg": _bytes(HUGE, 2), "small.jpg": _bytes(100, 3),
                "tail.jpg": _bytes(20_000, 4)}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return root, contents


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest, files, tmp_path_factory: pytest.TempPathFactory):
    root, _ = files
    work = tmp_path_factory.mktemp(f"zero-copy-{request.param}")
    config = write_config(work / "config.yaml", server={"http": request.param})
    with LoggedServer(config, root, log=work / "server.log") as live:
        live.mode = request.param
        yield live


class Connection:
    """A keep-alive HTTP/1.1 connection read by hand: one response at a time, framing checked."""

    def __init__(self, port: int, *, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer is not None:  # set before connecting: it bounds the window advertised
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = bytearray()
        self.closed = False

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def _fill(self, size: int = 256 * 1024) -> bool:
        try:
            chunk = self.sock.recv(size)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        return True

    def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed before a response head: {bytes(self.buffer)[:200]!r}"
        end = self.buffer.index(b"\r\n\r\n")
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    def body(self, length: int, *, piece: int = 256 * 1024, pause: float = 0.0) -> bytes:
        """Up to `length` bytes of body; fewer when the server closes or resets first."""
        while len(self.buffer) < length:
            if not self._fill(min(piece, length - len(self.buffer))):
                break
            if pause:
                time.sleep(pause)
        data = bytes(self.buffer[:length])
        del self.buffer[:length]
        return data

    def response(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        status, headers = self.head()
        length = 0 if method == "HEAD" or status == 304 else int(headers["content-length"])
        return status, headers, self.body(length)

    def close(self) -> None:
        self.sock.close()


def request(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class TestBodies:
    """200, 206, HEAD and 304 carry exactly the file's bytes, on both paths."""

    def test_whole_files(self, server: LoggedServer, files) -> None:
        _, contents = files
        connection = Connection(server.port)
        for name in ("big.jpg", "huge.jpg", "small.jpg", "tail.jpg", "big.jpg"):
            connection.send(request(f"/{name}"))
            status, headers, body = connection.response()
            assert status == 200 and int(headers["content-length"]) == len(contents[name])
            assert body == contents[name], name
            assert headers["content-type"] == "image/jpeg" and headers["etag"]
        connection.close()

    @pytest.mark.parametrize(("header", "start", "end"), [
        ("bytes=100-2000000", 100, 2_000_001),
        ("bytes=2999990-", 2_999_990, BIG),  # inside the held-back tail only
        ("bytes=-100000", BIG - 100_000, BIG),
        ("bytes=0-0", 0, 1),
        ("bytes=1000-2989999", 1000, 2_990_000),  # across the tail's start
    ])
    def test_single_ranges(self, server: LoggedServer, files, header: str, start: int, end: int) -> None:
        _, contents = files
        connection = Connection(server.port)
        connection.send(request("/big.jpg", f"Range: {header}"))
        status, headers, body = connection.response()
        assert status == 206
        assert headers["content-range"] == f"bytes {start}-{end - 1}/{BIG}"
        assert body == contents["big.jpg"][start:end]
        connection.close()

    def test_several_ranges_stay_multipart(self, server: LoggedServer, files) -> None:
        _, contents = files
        connection = Connection(server.port)
        connection.send(request("/big.jpg", "Range: bytes=0-9,2000000-2000009"))
        status, headers, body = connection.response()
        assert status == 206 and headers["content-type"].startswith("multipart/byteranges; boundary=")
        assert contents["big.jpg"][:10] in body and contents["big.jpg"][2_000_000:2_000_010] in body
        connection.close()

    def test_head_and_304_then_a_body_on_the_same_connection(self, server: LoggedServer, files) -> None:
        _, contents = files
        connection = Connection(server.port)
        connection.send(request("/big.jpg", method="HEAD"))
        status, headers, body = connection.response("HEAD")
        assert status == 200 and headers["content-length"] == str(BIG) and body == b""
        connection.send(request("/big.jpg", f"If-None-Match: {headers['etag']}"))
        status, not_modified, body = connection.response()
        assert status == 304 and not_modified["etag"] == headers["etag"] and body == b""
        connection.send(request("/big.jpg"))
        assert connection.response()[2] == contents["big.jpg"]
        connection.close()

    def test_pipelined_requests_each_get_their_own_bytes(self, server: LoggedServer, files) -> None:
        _, contents = files
        big = contents["big.jpg"]
        connection = Connection(server.port)
        connection.send(
            request("/huge.jpg"),
            request("/big.jpg", method="HEAD"),
            request("/big.jpg", "Range: bytes=10-99"),
            request("/small.jpg"),
            request("/big.jpg", "Range: bytes=5-2999999"),
            request("/big.jpg", "Connection: close"),
        )
        assert connection.response()[2] == contents["huge.jpg"]
        status, headers, body = connection.response("HEAD")
        assert (status, headers["content-length"], body) == (200, str(BIG), b"")
        assert connection.response()[2] == big[10:100]
        assert connection.response()[2] == contents["small.jpg"]
        assert connection.response()[2] == big[5:]
        status, headers, body = connection.response()
        assert status == 200 and body == big
        assert connection.body(1) == b"" and connection.closed  # closed as asked, nothing after
        connection.close()


class TestSlowReaders:
    """A client that reads slowly or not at all holds neither the loop nor a thread."""

    def test_stalled_readers_do_not_stall_others(self, server: LoggedServer, files) -> None:
        _, contents = files
        threads_before = proc_status_threads(server.pid)
        stalled = []
        for _ in range(8):
            connection = Connection(server.port, receive_buffer=16 * 1024)
            connection.send(request("/huge.jpg"))
            status, _ = connection.head()
            assert status == 200
            stalled.append(connection)
        # Every stalled response is mid-body; others are answered in full meanwhile.
        fresh = Connection(server.port)
        for _ in range(3):
            fresh.send(request("/big.jpg"))
            assert fresh.response()[2] == contents["big.jpg"]
        fresh.close()
        if server.mode == "httptools":
            # sendfile from the loop: no thread read any of it (h11 reads chunks in threads,
            # which go back to the pool while the client stalls).
            assert proc_status_threads(server.pid) < threads_before + len(stalled)
        # The slow readers then get every byte, in order.
        for connection in stalled:
            assert connection.body(HUGE, piece=1024 * 1024) == contents["huge.jpg"]
            connection.close()

    def test_a_slow_reader_gets_identical_bytes(self, server: LoggedServer, files) -> None:
        _, contents = files
        connection = Connection(server.port, receive_buffer=32 * 1024)
        connection.send(request("/huge.jpg"))
        status, _ = connection.head()
        assert status == 200
        start = connection.body(2_000_000, piece=64 * 1024, pause=0.001)
        rest = connection.body(HUGE - len(start), piece=1024 * 1024)
        assert start + rest == contents["huge.jpg"]
        connection.close()


def proc_status_threads(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("Threads:")[1].split()[0])


class TestChangedWhileSent:
    """A file truncated or rewritten while its body is sent never completes the response."""

    def _started(self, server: LoggedServer, path: Path) -> tuple[Connection, int]:
        connection = Connection(server.port, receive_buffer=16 * 1024)
        connection.send(request(f"/{path.name}"))
        status, headers = connection.head()
        assert status == 200
        length = int(headers["content-length"])
        assert len(connection.body(1_000_000, piece=64 * 1024)) == 1_000_000
        return connection, length

    def test_truncated_mid_send_is_cut_short(self, server: LoggedServer, files) -> None:
        root, _ = files
        path = root / f"truncated-{server.port}.jpg"
        path.write_bytes(_bytes(HUGE, 5))
        connection, length = self._started(server, path)
        os.truncate(path, 1_500_000)
        received = 1_000_000 + len(connection.body(length))
        assert received < length, "a truncated file was sent as a complete 200"
        assert connection.closed
        connection.close()

    def test_rewritten_in_place_mid_send_is_cut_short(self, server: LoggedServer, files) -> None:
        root, _ = files
        path = root / f"rewritten-{server.port}.jpg"
        path.write_bytes(_bytes(HUGE, 6))
        connection, length = self._started(server, path)
        time.sleep(0.01)  # a later mtime than the one the headers describe, on coarse clocks too
        with open(path, "r+b") as file:  # same size, other bytes: only the mtime tells
            file.write(_bytes(HUGE, 7))
        received = 1_000_000 + len(connection.body(length))
        assert received < length, "a file rewritten during the send was sent as a complete 200"
        assert connection.closed
        connection.close()

    def test_the_server_serves_on_afterwards(self, server: LoggedServer, files) -> None:
        _, contents = files
        connection = Connection(server.port)
        connection.send(request("/big.jpg"))
        assert connection.response()[2] == contents["big.jpg"]
        connection.close()


class TestPipelinedHeadTimeout:
    """A pipelined head that times out while the previous body is still being sent is not
    answered inside that body: the body arrives whole, then the connection closes."""

    def test_no_408_spliced_into_a_body(self, files, tmp_path: Path) -> None:
        root, contents = files
        config = write_config(tmp_path / "config.yaml", server={"timeout_request_head": 0.5})
        with LoggedServer(config, root, log=tmp_path / "server.log") as server:
            connection = Connection(server.port, receive_buffer=16 * 1024)
            connection.send(request("/huge.jpg"), b"GET /small.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            status, headers = connection.head()
            assert status == 200
            time.sleep(1.5)  # the second head's deadline passes while the huge body is stalled
            assert connection.body(HUGE, piece=1024 * 1024) == contents["huge.jpg"]
            assert connection.body(1) == b"" and connection.closed
            connection.close()
