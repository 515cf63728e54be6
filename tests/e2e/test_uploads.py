"""POST /thumb/{spec} through a real uvicorn: thumbnails of uploads, and bodies refused while they
arrive, seen from raw sockets (what was sent, and when the server answered and closed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import select
import socket
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import images
from tests.support.live import LiveServer
from tests.support.probe import parse_response, raw_request, write_config

MAX_BYTES = 400_000
PHOTO = images.jpeg_bytes((640, 480), image=images.textured((640, 480)))
KEY, SALT = "943b421c9eb07c83", "520f986b998545b4"


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def read_until_closed(sock: socket.socket, *, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    received = bytearray()
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("uploads")
    root = work / "images"
    root.mkdir()
    config = write_config(work / "config.yaml", cache={"shared": "none"},
                          uploads={"enabled": True, "max_bytes": MAX_BYTES},
                          limits={"render_workers": 1, "render_queue": 0})
    with LiveServer(config, root) as live:
        yield live


class TestUploads:
    """Raw and multipart bodies give the thumbnail, sized and typed, never cached."""

    def test_raw_and_multipart(self, server: LiveServer) -> None:
        raw = httpx.post(f"{server.url}/thumb/320x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
        form = httpx.post(f"{server.url}/thumb/100x100,cover,webp", files={"file": ("a.jpg", PHOTO, "image/jpeg")})
        for response, size, kind in ((raw, (320, 240), "JPEG"), (form, (100, 100), "WEBP")):
            assert response.status_code == 200
            image = decode(response.content)
            assert (image.format, image.size) == (kind, size)
            assert response.headers["content-length"] == str(len(response.content))
            assert response.headers["cache-control"] == "no-store"
        assert form.headers["content-type"] == "image/webp"

    def test_refusals(self, server: LiveServer) -> None:
        url = f"{server.url}/thumb/64x"
        wrong = httpx.post(url, content=b"hello", headers={"Content-Type": "text/plain"})
        truncated = httpx.post(url, content=images.truncated(PHOTO), headers={"Content-Type": "image/jpeg"})
        get = httpx.get(url)
        assert (wrong.status_code, truncated.status_code, get.status_code) == (415, 422, 405)
        assert get.headers["allow"] == "POST"
        for response in (wrong, truncated, get):
            assert response.headers["content-type"] == "application/json" and "detail" in response.json()

    def test_declared_oversize_is_413_before_the_body(self, server: LiveServer) -> None:
        head = raw_request(b"/thumb/64x", method=b"POST", headers=[
            (b"Content-Type", b"image/jpeg"), (b"Content-Length", str(MAX_BYTES + 1).encode())])
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head)  # the head only: not a byte of the body is ever sent
            received = read_until_closed(sock)
        response = parse_response(received)
        assert response is not None and response.status == 413 and response.complete
        assert response.headers["connection"] == "close"
        assert response.body == f'{{"detail":"The upload is larger than {MAX_BYTES} bytes."}}'.encode()

    def test_chunked_oversize_is_413_while_it_arrives(self, server: LiveServer) -> None:
        """A chunked body sent 16 KiB at a time: the server answers and closes after reading about
        max_bytes, long before the 100 x max_bytes the client meant to send."""
        planned, chunk = 100 * MAX_BYTES, 16 * 1024
        head = raw_request(b"/thumb/64x", method=b"POST", headers=[
            (b"Content-Type", b"image/jpeg"), (b"Transfer-Encoding", b"chunked")])
        sent, received = 0, bytearray()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head)
            while sent < planned:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # the server has answered (or closed)
                try:
                    sock.sendall(f"{chunk:x}\r\n".encode() + bytes(chunk) + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += chunk
                time.sleep(0.005)  # slowly: the server reads each chunk as it comes
            received += read_until_closed(sock)
        response = parse_response(bytes(received))
        assert response is not None and response.status == 413
        assert sent < planned // 10, f"sent {sent} bytes before the answer"

    def test_full_queue_is_503(self, server: LiveServer) -> None:
        """One render slot (1 worker, no queue): an upload whose body is still arriving holds it."""
        body = PHOTO
        head = raw_request(b"/thumb/64x", method=b"POST", headers=[
            (b"Content-Type", b"image/jpeg"), (b"Content-Length", str(len(body)).encode())])
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as held:
            held.sendall(head + body[:1000])
            refused = None
            for _ in range(100):  # until the server has started reading the held upload
                response = httpx.post(f"{server.url}/thumb/64x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
                if response.status_code == 503:
                    refused = response
                    break
                time.sleep(0.05)
            held.sendall(body[1000:])
            finished = parse_response(read_until_closed(held))
        assert refused is not None and refused.headers["retry-after"] == "1"
        assert finished is not None and finished.status == 200 and decode(finished.body).size == (64, 48)


class TestSignedAndOff:
    """Signed URLs cover the upload URL; with uploads off, POST is 405."""

    def test_signed(self, tmp_path: Path, root: Path) -> None:
        config = write_config(tmp_path / "config.yaml", cache={"shared": "none"}, uploads={"enabled": True},
                              security={"keys": [KEY], "salts": [SALT]})
        digest = hmac.new(bytes.fromhex(KEY), bytes.fromhex(SALT) + b"/64x", hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        jpeg = {"Content-Type": "image/jpeg"}
        with LiveServer(config, root) as live:
            good = httpx.post(f"{live.url}/thumb/{signature}/64x", content=PHOTO, headers=jpeg)
            unsigned = httpx.post(f"{live.url}/thumb/64x", content=PHOTO, headers=jpeg)
        assert good.status_code == 200 and decode(good.content).size == (64, 48)
        assert unsigned.status_code == 403 and unsigned.json() == {"detail": "Forbidden"}

    def test_off(self, tmp_path: Path, root: Path) -> None:
        config = write_config(tmp_path / "config.yaml", cache={"shared": "none"})
        with LiveServer(config, root) as live:
            response = httpx.post(f"{live.url}/thumb/64x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
