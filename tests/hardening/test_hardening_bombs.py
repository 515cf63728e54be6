"""Header-parsing bombs behind a real server: a 422 JSON answer within a second, bounded memory.

Each file holds a tiny image in a container of millions of structures (markers, chunks, strips,
scans, sub-blocks) that Pillow would walk in Python for seconds and hundreds of MB; the BigTIFF
whose strip offset is 2**64 - 1 used to answer 500 (an unmapped OverflowError). Memory is read
from /proc for the server and every process under it: renders run in render processes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support import images
from tests.support.probe import LoggedServer, exchange, proc_status, raw_request, reset_peak_rss

# Bounds the hardening issue sets for a refused bomb (not speed claims).
MAX_SECONDS = 1.0
MAX_GROWTH_MB = 50

BOMBS = {
    # The hardening issue's files.
    "strips.tif": images.tiff_strip_bomb,  # 1x2 px, 2,000,000 StripOffsets, 2 MB
    "markers.jpg": images.jpeg_marker_bomb,  # 1x1 px after 2.5 M empty APP1, 10 MB
    "chunks.png": images.png_chunk_bomb,  # 1x1 px, 830 k empty private chunks, 10 MB
    "overflow.tif": images.bigtiff_overflow,  # 1x1 BigTIFF, StripOffsets 2**64 - 1, 213 bytes
    "scans.jpg": images.jpeg_scan_bomb,  # 7000x7000 progressive, exactly 100 scans
    # The same kind of file in the other structures Pillow walks in Python.
    "tiles.tif": images.tiff_tile_bomb,
    "exif.tif": images.tiff_exif_bomb,
    "fill.jpg": images.jpeg_fill_bomb,
    "idat.png": images.png_idat_bomb,
    "trailing.png": images.png_trailing_chunk_bomb,
    "comment.gif": images.gif_comment_bomb,
    "runs.bmp": images.bmp_rle_bomb,
    "chunks.webp": images.webp_chunk_bomb,
}


def _process_tree(pid: int) -> list[int]:
    """`pid` and every process under it (the fork server, the render processes)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                pass  # a thread or process that just ended
    return found


def _memory(pids: list[int]) -> dict[int, tuple[float, float]]:
    """{pid: (VmRSS, VmHWM) in MB} of the processes still alive."""
    found = {}
    for pid in pids:
        try:
            status = proc_status(pid)
        except OSError:
            continue
        found[pid] = (status["VmRSS"] / 1024, status["VmHWM"] / 1024)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("bombs")
    root = work / "images"
    for name, build in BOMBS.items():
        images.write(root / name, build())
    images.write(root / "fine.jpg", images.jpeg_bytes((640, 480)))
    images.write(root / "broken.jpg", images.truncated(images.jpeg_bytes((640, 480), image=images.noise((640, 480)))))
    with LoggedServer(None, root, log=work / "server.log") as running:
        # Warm up every render process (imports, first render, first refusal) so that the peaks
        # measured later are the bombs' own.
        for _ in range(4):
            assert exchange(running.port, raw_request(b"/thumb/100x/fine.jpg")).status == 200
            assert exchange(running.port, raw_request(b"/thumb/100x/broken.jpg")).status == 422
        yield running


def _timed(server: LoggedServer, target: bytes):
    """The response to `target`, its time, and the largest growth of peak RSS of any process of
    the server's tree (a bomb is rendered in one process)."""
    pids = _process_tree(server.pid)
    for pid in pids:
        reset_peak_rss(pid)
    before = _memory(pids)
    started = time.monotonic()
    response = exchange(server.port, raw_request(target), timeout=30)
    elapsed = time.monotonic() - started
    after = _memory(pids)
    growth = max((after[pid][1] - before[pid][0] for pid in after.keys() & before.keys()), default=0.0)
    return response, elapsed, growth


class TestBombs:
    """Every bomb answers 422 JSON within a second, and no process of the server grows 50 MB."""

    @pytest.mark.parametrize("name", sorted(BOMBS))
    @pytest.mark.parametrize("spec", ["320x240", "50x50,cover,webp"])
    def test_refused_fast_and_small(self, server: LoggedServer, name: str, spec: str) -> None:
        response, elapsed, growth = _timed(server, f"/thumb/{spec}/{name}".encode())
        assert response is not None
        assert response.status == 422, (name, response.status, response.body)
        assert response.headers["content-type"] == "application/json"
        assert json.loads(response.body)
        assert elapsed < MAX_SECONDS, f"{name} took {elapsed:.2f} s"
        assert growth < MAX_GROWTH_MB, f"{name} raised a peak RSS by {growth:.0f} MB"

    def test_the_bigtiff_overflow_is_422_not_500(self, server: LoggedServer) -> None:
        response = exchange(server.port, raw_request(b"/thumb/64x64/overflow.tif"))
        assert response.status == 422
        assert b"Traceback" not in response.body
        assert "Traceback" not in server.log_text()
        assert "OverflowError" not in server.log_text()

    def test_the_refusal_says_why_without_internals(self, server: LoggedServer) -> None:
        response = exchange(server.port, raw_request(b"/thumb/64x64/markers.jpg"))
        assert response.status == 422
        assert b"too complex" in response.body
        assert b"PIL" not in response.body and b"APP" not in response.body

    def test_server_is_still_up(self, server: LoggedServer) -> None:
        assert server.process.poll() is None
        assert exchange(server.port, raw_request(b"/healthz")).status == 200
        assert exchange(server.port, raw_request(b"/thumb/100x/fine.jpg")).status == 200
        assert "Traceback" not in server.log_text()
