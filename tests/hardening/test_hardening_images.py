"""Hostile source images behind a real server: a fast 4xx, bounded memory, and the server stays up.

The files are generated here (never downloaded). A fake `gs` first on the server's PATH records
any call: Pillow would run Ghostscript for PostScript/EPS, and it must never get the chance.
"""

from __future__ import annotations

import io
import os
import random
import stat
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.support import images
from tests.support.probe import LoggedServer, exchange, peak_rss_mb, raw_request, reset_peak_rss, rss_mb

# Pillow's own bomb threshold: it only warns between 1x and 2x of it.
PILLOW_LIMIT = int(1024 * 1024 * 1024 // 4 // 3)
# Generous on a loaded 2-core machine; a decoded 50000x50000 canvas would take minutes and 7.5 GB.
MAX_SECONDS = 3.0
MAX_PEAK_GROWTH_MB = 100


def _polyglot_jpeg() -> bytes:
    """A real JPEG carrying HTML and script in a comment and after its end: sniffers see HTML."""
    script = b"<html><body><script>alert(document.domain)</script></body></html>"
    return images.jpeg_bytes((48, 32), comment=script) + script


def _zero_second_half(data: bytes) -> bytes:
    half = len(data) // 2
    return data[:half] + bytes(len(data) - half)


def _between(factor: float) -> int:
    """A square side whose area is `factor` times Pillow's limit."""
    return int((PILLOW_LIMIT * factor) ** 0.5) + 1


UNDECODABLE = {
    "empty.jpg": b"",
    "random.jpg": random.Random(7).randbytes(4096),
    "text.jpg": b"just some text, not an image\n" * 40,
    "page.jpg": images.html_bytes(),
    "postscript.jpg": images.eps_bytes(),
    "photoshop.jpg": images.psd_bytes(),
    "document.jpg": images.pdf_bytes(),
    "truncated.jpg": images.truncated(images.jpeg_bytes((400, 300), image=images.noise((400, 300)))),
    "truncated.png": images.truncated(images.png_bytes((400, 300), mode="RGB", image=images.noise((400, 300)))),
    "textbomb.png": images.png_text_bomb(),
    # libavif reports a corrupt file with RuntimeError (found by tests/fuzz/fuzz_render.py).
    "broken.avif": _zero_second_half(images.avif_bytes((64, 48))),
}
CLAIMING = {
    "claim.png": images.png_claiming(50000, 50000),
    "claim.gif": images.gif_claiming(50000, 50000),
    "claim.webp": images.webp_claiming(50000, 50000),
    "claim.tif": images.tiff_claiming(50000, 50000),
    "claim.jpg": images.jpeg_claiming(50000, 50000),
    "claim.bmp": images.bmp_claiming(50000, 50000),
}
for _factor in (1.01, 1.5, 1.99):
    _side = _between(_factor)
    CLAIMING[f"x{_factor}.png"] = images.png_claiming(_side, _side)
    CLAIMING[f"x{_factor}.gif"] = images.gif_claiming(_side, _side)
    CLAIMING[f"x{_factor}.tif"] = images.tiff_claiming(_side, _side)
    CLAIMING[f"x{_factor}.jpg"] = images.jpeg_claiming(_side, _side)
    CLAIMING[f"x{_factor}.webp"] = images.webp_claiming(_side, _side)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("hostile")
    root = work / "images"
    for name, data in {**UNDECODABLE, **CLAIMING}.items():
        images.write(root / name, data)
    images.write(root / "frames.gif", images.gif_with_many_frames(10_000))
    images.write(root / "polyglot.jpg", _polyglot_jpeg())
    images.write(root / "fine.jpg", images.jpeg_bytes((640, 480)))

    fake_bin = work / "bin"
    fake_bin.mkdir()
    called = work / "ghostscript-was-called"
    gs = fake_bin / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> {called}\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = {"PATH": f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    with LoggedServer(None, root, log=work / "server.log", env=env) as server:
        # Warm up (imports, the first render) so later peaks measure the hostile files only.
        assert exchange(server.port, raw_request(b"/thumb/100x/fine.jpg")).status == 200
        yield server, called


def _timed(server: LoggedServer, target: bytes):
    reset_peak_rss(server.pid)
    before = rss_mb(server.pid)
    started = time.monotonic()
    response = exchange(server.port, raw_request(target), timeout=30)
    elapsed = time.monotonic() - started
    return response, elapsed, peak_rss_mb(server.pid) - before


class TestHostileThumbnails:
    """Every hostile source answers 422 fast, with bounded memory, and nothing crashes."""

    @pytest.mark.parametrize("name", sorted({**UNDECODABLE, **CLAIMING}))
    @pytest.mark.parametrize("spec", ["320x240", "50x50,cover,webp"])
    def test_refused_fast_and_small(self, hostile, name: str, spec: str) -> None:
        server, _ = hostile
        response, elapsed, growth = _timed(server, f"/thumb/{spec}/{name}".encode())
        assert response is not None
        assert response.status == 422, (name, response.status, response.body)
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
        assert elapsed < MAX_SECONDS, f"{name} took {elapsed:.2f} s"
        assert growth < MAX_PEAK_GROWTH_MB, f"{name} raised the peak RSS by {growth:.0f} MB"

    def test_claims_are_tiny_files(self) -> None:
        assert all(len(data) < 2048 for data in CLAIMING.values())

    def test_ten_thousand_frames_give_the_first_frame(self, hostile) -> None:
        server, _ = hostile
        response, elapsed, growth = _timed(server, b"/thumb/8x8,png/frames.gif")
        assert response.status == 200
        image = Image.open(io.BytesIO(response.body)).convert("RGB")
        assert image.getpixel((4, 4)) == (255, 0, 0)  # frame 0 is red, every later one blue
        assert elapsed < MAX_SECONDS and growth < MAX_PEAK_GROWTH_MB

    def test_ghostscript_is_never_run(self, hostile) -> None:
        server, called = hostile
        for spec in ("320x240", "320x240,png", "10x10,cover"):
            for name in ("postscript.jpg", "document.jpg", "photoshop.jpg"):
                assert exchange(server.port, raw_request(f"/thumb/{spec}/{name}".encode())).status == 422
        assert not called.exists(), called.read_text()

    def test_server_is_still_up(self, hostile) -> None:
        server, _ = hostile
        assert server.process.poll() is None
        assert exchange(server.port, raw_request(b"/healthz")).status == 200
        assert exchange(server.port, raw_request(b"/thumb/100x/fine.jpg")).status == 200
        assert "Traceback" not in server.log_text()


class TestHostileOriginals:
    """Originals are bytes with an image type and nosniff: HTML named .jpg is never served as HTML."""

    @pytest.mark.parametrize("name", ["page.jpg", "polyglot.jpg", "postscript.jpg", "random.jpg"])
    def test_served_as_an_image_never_as_html(self, hostile, name: str) -> None:
        server, _ = hostile
        response = exchange(server.port, raw_request(f"/{name}".encode()))
        assert response.status == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"].startswith("inline;")

    def test_polyglot_thumbnail_loses_the_script(self, hostile) -> None:
        server, _ = hostile
        response = exchange(server.port, raw_request(b"/thumb/24x,jpeg/polyglot.jpg"))
        assert response.status == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert b"<script" not in response.body and b"<html" not in response.body

    def test_html_thumbnail_is_a_json_error(self, hostile) -> None:
        server, _ = hostile
        response = exchange(server.port, raw_request(b"/thumb/24x/page.jpg"))
        assert response.status == 422
        assert response.headers["content-type"] == "application/json"
        assert b"<script" not in response.body
