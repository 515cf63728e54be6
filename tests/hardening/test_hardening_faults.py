"""Faults on disk and in the process: files deleted, replaced or unreadable at the worst moment,
the image root vanishing and coming back, and SIGTERM in the middle of requests."""

from __future__ import annotations

import functools
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import images
from tests.support.metrics import service_state
import server.http.originals
import storage.files
from tests.support.app import client_for
from tests.support.probe import LoggedServer, exchange, parse_response, raw_request, write_config

SMALL = random.Random(11).randbytes(100_000)  # read whole (below originals.WHOLE_READ_BYTES)
LARGE = random.Random(12).randbytes(24 * 1024 * 1024)  # streamed


def _red_and_blue() -> tuple[bytes, bytes]:
    """Two BMPs of exactly the same byte size: a same-size in-place rewrite is possible."""
    red, blue = images.bmp_bytes((64, 48), color="red"), images.bmp_bytes((64, 48), color="blue")
    assert len(red) == len(blue)
    return red, blue


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite `path` without replacing its inode, and move its mtime on (as any write does,
    here made explicit so a coarse filesystem clock cannot hide the change)."""
    mtime_ns = path.stat().st_mtime_ns
    with open(path, "r+b") as file:
        file.truncate(0)
        file.write(data)
    os.utime(path, ns=(mtime_ns + 1_000_000_000, mtime_ns + 1_000_000_000))


async def _cache_entries(http: httpx.AsyncClient) -> int:
    return int(service_state((await http.get("/metrics")).text)["cache_entries"])


class _PatchedInRenders(storage.files.FileStore):
    """A FileStore whose `read` runs with `storage.files.<name>` replaced by `replacement(real, ...)`.

    Thumbnails' sources are read in the render processes, which a monkeypatch in the test's
    process does not reach: the store carries the patch there (it pickles, as `replacement` must).
    """

    def __init__(self, store: storage.files.FileStore, name: str, replacement) -> None:
        super().__init__(store.root, store.extensions)
        self._name, self._replacement = name, replacement

    def read(self, source, *, max_bytes: int) -> bytes:
        real = getattr(storage.files, self._name)
        setattr(storage.files, self._name, functools.partial(self._replacement, real))
        try:
            return super().read(source, max_bytes=max_bytes)
        finally:
            setattr(storage.files, self._name, real)


def _patch_renders(http, name: str, replacement) -> None:
    service = http.app.state.thumbnails
    service.originals = _PatchedInRenders(service.originals, name, replacement)


class _Count:
    """A count that every process sees: one byte in a file per `append`."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def append(self, _: object) -> None:
        with open(self._path, "ab") as file:
            file.write(b".")

    def __len__(self) -> int:
        return self._path.stat().st_size if self._path.exists() else 0


def _delete_first(real, source, **options):
    os.unlink(source.path)
    return real(source, **options)


class TestDeletedBetweenStatAndOpen:
    """A file deleted after `resolve` and before it is opened is a plain 404, and nothing is cached."""

    @pytest.mark.parametrize(("size", "opener"), [(len(SMALL), "read_source"), (len(LARGE), "open_regular")])
    async def test_original(self, make_settings, image_root: Path, monkeypatch, size: int, opener: str) -> None:
        path = image_root / "gone.jpg"
        path.write_bytes(LARGE[:size])
        real = getattr(storage.files, opener)

        def delete_first(*args, **kwargs):
            path.unlink(missing_ok=True)
            return real(*args, **kwargs)

        monkeypatch.setattr(storage.files, opener, delete_first)
        async with client_for(make_settings()) as http:
            response = await http.get("/gone.jpg")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}

    async def test_thumbnail(self, make_settings, image_root: Path) -> None:
        images.write(image_root / "gone.jpg", images.jpeg_bytes((64, 48)))
        async with client_for(make_settings()) as http:
            _patch_renders(http, "read_source", _delete_first)
            response = await http.get("/thumb/32x/gone.jpg")
            assert response.status_code == 404
            assert await _cache_entries(http) == 0


class _RewritingFile:
    """A file from `open_regular` whose first read happens just after someone rewrote it."""

    def __init__(self, file, path: Path, data: bytes, rewrites: list[int]) -> None:
        self._file, self._path, self._data, self._rewrites = file, path, data, rewrites

    def read(self, size: int = -1) -> bytes:
        _rewrite_in_place(self._path, self._data)
        self._rewrites.append(1)
        return self._file.read(size)

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()


class _RewrittenOnce:
    """`open_regular` whose file is rewritten with `data` just before its first read, once in all."""

    def __init__(self, path: Path, data: bytes, rewrites: _Count) -> None:
        self.path, self.data, self.rewrites = path, data, rewrites

    def __call__(self, real, source, **options):
        file, st = real(source, **options)
        return (_RewritingFile(file, self.path, self.data, self.rewrites) if not self.rewrites else file), st


class _AlwaysRewritten:
    """`open_regular` whose file is rewritten just before every read, blue and red in turn."""

    def __init__(self, path: Path, blue: bytes, red: bytes, rewrites: _Count) -> None:
        self.path, self.blue, self.red, self.rewrites = path, blue, red, rewrites

    def __call__(self, real, source, **options):
        file, st = real(source, **options)
        data = self.blue if len(self.rewrites) % 2 == 0 else self.red
        return _RewritingFile(file, self.path, data, self.rewrites), st


class TestReplacedWhileRead:
    """A source written to while it is read never yields a thumbnail or a 200 of mixed versions."""

    async def test_thumbnail_of_a_source_rewritten_during_the_read(self, make_settings, image_root: Path,
                                                                   tmp_path: Path) -> None:
        red, blue = _red_and_blue()
        path = images.write(image_root / "flip.bmp", red)
        rewrites = _Count(tmp_path / "rewrites")
        async with client_for(make_settings()) as http:
            plain = http.app.state.thumbnails.originals
            _patch_renders(http, "open_regular", _RewrittenOnce(path, blue, rewrites))
            response = await http.get("/thumb/16x,png/flip.bmp")
            assert response.status_code == 200
            # The red read was refused; the retry saw the new identity and rendered blue.
            assert Image.open(io.BytesIO(response.content)).convert("RGB").getpixel((8, 6)) == (0, 0, 255)
            assert len(rewrites) == 1
            assert await _cache_entries(http) == 1
            http.app.state.thumbnails.originals = plain
            again = await http.get("/thumb/16x,png/flip.bmp")
            assert again.headers["etag"] == response.headers["etag"] and again.content == response.content

    async def test_thumbnail_of_a_source_that_keeps_changing(self, make_settings, image_root: Path,
                                                             tmp_path: Path) -> None:
        red, blue = _red_and_blue()
        path = images.write(image_root / "flip.bmp", red)
        rewrites = _Count(tmp_path / "rewrites")
        async with client_for(make_settings()) as http:
            _patch_renders(http, "open_regular", _AlwaysRewritten(path, blue, red, rewrites))
            response = await http.get("/thumb/16x,png/flip.bmp")
            assert response.status_code == 503
            assert int(response.headers["retry-after"]) >= 1
            assert await _cache_entries(http) == 0
        assert len(rewrites) == 2  # tried, and tried once more from a fresh stat

    @pytest.mark.parametrize("size", [len(SMALL), 600_000])
    async def test_original_of_a_source_rewritten_during_the_read(self, make_settings, image_root: Path,
                                                                  monkeypatch, size: int) -> None:
        path = image_root / "flip.jpg"
        path.write_bytes(LARGE[:size])
        new = bytes(reversed(LARGE[:size]))
        real = storage.files.open_regular
        rewrites: list[int] = []

        def rewritten_once(source, **options):
            file, st = real(source, **options)
            return (_RewritingFile(file, path, new, rewrites) if not rewrites else file), st

        monkeypatch.setattr(storage.files, "open_regular", rewritten_once)
        async with client_for(make_settings()) as http:
            if size > server.http.originals.WHOLE_READ_BYTES:
                # Streamed: the change shows after the status line, so the transfer must fail.
                # (httpx's ASGI transport re-raises what the app raised after the status line.)
                with pytest.raises(storage.files.SourceChanged):
                    await http.get("/flip.jpg")
            else:
                response = await http.get("/flip.jpg")
                assert response.status_code == 200
                assert response.content == new  # read again from a fresh stat, whole


@pytest.fixture
def live_root(tmp_path: Path):
    root = tmp_path / "images"
    root.mkdir()
    (root / "large.jpg").write_bytes(LARGE)
    images.write(root / "photo.jpg", images.jpeg_bytes((200, 150)))
    images.write(root / "big.png", images.png_bytes((2500, 2000), mode="RGB"))
    return root


@pytest.fixture
def live(live_root: Path, tmp_path: Path):
    with LoggedServer(write_config(tmp_path / "config.yaml"), live_root, log=tmp_path / "server.log") as server:
        yield server


def _start_download(port: int, target: bytes, first: int) -> tuple[socket.socket, bytearray]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(raw_request(target))
    received = bytearray()
    while len(received) < first:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return sock, received


def _finish_download(sock: socket.socket, received: bytearray, *, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    with sock:
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(1024 * 1024)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)


class TestOriginalsChangingMidTransfer:
    """Over a real socket: a large original never ends as a complete 200 of the wrong bytes."""

    def test_replaced_by_rename_sends_the_old_version_whole(self, live: LoggedServer, live_root: Path) -> None:
        sock, received = _start_download(live.port, b"/large.jpg", 1024 * 1024)
        replacement = live_root / "large.jpg.new"
        replacement.write_bytes(bytes(reversed(LARGE)))
        os.replace(replacement, live_root / "large.jpg")
        response = parse_response(_finish_download(sock, received))
        assert response.status == 200 and response.complete
        assert response.body == LARGE
        assert exchange(live.port, raw_request(b"/large.jpg")).body == bytes(reversed(LARGE))

    @pytest.mark.parametrize("new_size", [len(LARGE), len(LARGE) // 2, len(LARGE) * 2])
    def test_rewritten_in_place_is_cut_short(self, live: LoggedServer, live_root: Path, new_size: int) -> None:
        sock, received = _start_download(live.port, b"/large.jpg", 1024 * 1024)
        _rewrite_in_place(live_root / "large.jpg", (bytes(reversed(LARGE)) * 2)[:new_size])
        response = parse_response(_finish_download(sock, received))
        assert response.status == 200
        assert not response.complete, "a 200 of mixed versions was completed"
        assert len(response.body) < len(LARGE)
        assert exchange(live.port, raw_request(b"/healthz")).status == 200


class TestRootVanishes:
    """The image root disappearing answers 404s (nothing stale from the cache) until it is back."""

    def test_root_goes_and_comes_back(self, live: LoggedServer, live_root: Path) -> None:
        thumb = exchange(live.port, raw_request(b"/thumb/50x/photo.jpg"))
        assert thumb.status == 200
        parked = live_root.with_name("parked")
        live_root.rename(parked)
        try:
            for target in (b"/photo.jpg", b"/thumb/50x/photo.jpg", b"/large.jpg", b"/thumb/60x/photo.jpg"):
                response = exchange(live.port, raw_request(target))
                assert response.status == 404, target
            live_root.mkdir()  # an empty root in its place
            assert exchange(live.port, raw_request(b"/photo.jpg")).status == 404
            assert exchange(live.port, raw_request(b"/healthz")).status == 200
            live_root.rmdir()
        finally:
            parked.rename(live_root)
        back = exchange(live.port, raw_request(b"/thumb/50x/photo.jpg"))
        assert back.status == 200 and back.headers["etag"] == thumb.headers["etag"]
        assert exchange(live.port, raw_request(b"/photo.jpg")).status == 200


class TestGracefulShutdown:
    """SIGTERM lets in-flight requests finish, then the process exits cleanly."""

    def test_in_flight_download_and_render_finish(self, live: LoggedServer) -> None:
        sock, received = _start_download(live.port, b"/large.jpg", 256 * 1024)
        renders = []
        for width in range(300, 310):  # 10 distinct misses: some run, some wait in the queue
            render = socket.create_connection(("127.0.0.1", live.port), timeout=30)
            render.sendall(raw_request(f"/thumb/{width}x,png/big.png".encode()))
            renders.append((width, render))
        time.sleep(0.05)
        os.kill(live.pid, signal.SIGTERM)
        time.sleep(0.3)
        # New connections are refused once shutdown has begun.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", live.port), timeout=2).close()
        download = parse_response(_finish_download(sock, received))
        assert download.status == 200 and download.complete and download.body == LARGE
        for width, render in renders:
            rendered = parse_response(_finish_download(render, bytearray()))
            assert rendered.status == 200 and rendered.complete, width
            assert Image.open(io.BytesIO(rendered.body)).width == width
        # uvicorn re-raises the signal it caught once it is done: killed by SIGTERM, or exit 0.
        assert live.process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Traceback" not in live.log_text()


def _can_drop_capabilities() -> bool:
    if shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                            "--bounding-set=-dac_override,-dac_read_search", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture
def unreadable_root():
    """A root nobody but its owner may read parts of; made outside pytest's 0700 tmp folders."""
    base = Path(tempfile.mkdtemp(prefix="ts-perm-"))
    base.chmod(0o755)
    root = base / "images"
    photo = images.jpeg_bytes((64, 48))
    for folder, mode in (("open", 0o755), ("locked", 0o000), ("unlistable", 0o711), ("noexec", 0o644)):
        (root / folder).mkdir(parents=True)
        (root / folder / "a.jpg").write_bytes(photo)
        (root / folder).chmod(mode)
    root.chmod(0o755)
    images.write(root / "readable.jpg", photo).chmod(0o644)
    images.write(root / "secret.jpg", photo).chmod(0o000)
    images.write(root / "writeonly.jpg", photo).chmod(0o200)
    try:
        yield base, root
    finally:
        for folder in root.iterdir():
            folder.chmod(0o755)
        shutil.rmtree(base)


class TestPermissions:
    """Unreadable files and folders are 404 (never 401, 403-by-accident or 500), read as a non-root user."""

    @pytest.mark.skipif(os.geteuid() == 0 and not _can_drop_capabilities(),
                        reason="running as root and cannot drop CAP_DAC_OVERRIDE: permission bits would not bind")
    def test_unreadable_is_404(self, unreadable_root) -> None:
        base, root = unreadable_root
        prefix = []
        if os.geteuid() == 0:
            # Root reads everything whatever the mode bits because of two capabilities: drop them
            # and the owner's bits bind. Staying root (not `nobody`) keeps the checkout and the
            # venv readable wherever they live, a 0700 folder under /root included.
            prefix = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                      "--bounding-set=-dac_override,-dac_read_search"]
        log = base / "server.log"
        with LoggedServer(None, root, log=log, prefix=prefix) as live:
            expected = {
                b"/readable.jpg": 200, b"/open/a.jpg": 200, b"/unlistable/a.jpg": 200,
                b"/secret.jpg": 404, b"/writeonly.jpg": 404, b"/locked/a.jpg": 404, b"/noexec/a.jpg": 404,
            }
            for target, status in expected.items():
                for route in (b"", b"/thumb/32x"):
                    response = exchange(live.port, raw_request(route + target))
                    assert response.status == status, (route + target, response.status, response.body)
            assert "Traceback" not in live.log_text()

    async def test_unreadable_by_access_check_is_404(self, make_settings, image_root: Path, monkeypatch) -> None:
        """The same rule in process: what os.access denies is a 404 for originals and thumbnails."""
        images.write(image_root / "denied.jpg", images.jpeg_bytes((64, 48)))
        real_access = os.access
        monkeypatch.setattr(storage.files.os, "access",
                            lambda path, mode, **kw: False if str(path).endswith("denied.jpg") else real_access(path, mode, **kw))
        async with client_for(make_settings()) as http:
            assert (await http.get("/denied.jpg")).status_code == 404
            assert (await http.get("/thumb/32x/denied.jpg")).status_code == 404
