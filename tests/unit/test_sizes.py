"""Displayed sizes from a prefix of a source (server.imaging.sizes): right, or None, never a guess;
and the render-process job over a batch of files (server.thumbnails.sizes)."""

from __future__ import annotations

import os
import struct
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from server.imaging import SourceLimits
from server.imaging.sizes import PREFIX_BYTES, displayed_size_of
from server.thumbnails.sizes import displayed_sizes
from storage import FileStore
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)


def size_of(data: bytes, limits: SourceLimits = LIMITS) -> tuple[int, int] | None:
    """As the job calls it: the prefix, the file's length, and reads past the prefix."""
    return displayed_size_of(data[:PREFIX_BYTES], len(data), limits, lambda at, n: data[at : at + n])


def true_size(data: bytes) -> tuple[int, int]:
    with Image.open(BytesIO(data)) as image:
        image.load()
        return ImageOps.exif_transpose(image).size


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def before_iend(data: bytes, extra: bytes) -> bytes:
    assert data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND"
    return data[:-12] + extra + data[-12:]


BIG = images.noise((700, 500))


class TestRightOrNone:
    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_jpeg_orientations(self, orientation: int) -> None:
        data = images.jpeg_bytes((70, 30), orientation=orientation)
        assert size_of(data) == true_size(data)

    @pytest.mark.parametrize("make", [
        lambda: images.tiff_bytes((700, 500), image=BIG),  # larger than the prefix
        lambda: images.bmp_bytes((700, 500), image=BIG),
        lambda: images.avif_bytes((60, 40), orientation=6),
        lambda: images.webp_bytes((60, 40), orientation=8),
        lambda: images.png_bytes((700, 500), mode="RGB", orientation=7, image=BIG),
    ], ids=["tiff-large", "bmp-large", "avif-small", "webp-small", "png-large"])
    def test_formats(self, make) -> None:
        data = make()
        assert size_of(data) == true_size(data)

    def test_avif_past_the_prefix(self) -> None:
        data = images.avif_bytes((700, 500), orientation=6, image=BIG)
        assert len(data) > PREFIX_BYTES
        assert size_of(data) is None  # libavif wants the whole file: unknown, not guessed

    @pytest.mark.parametrize("make", [
        lambda: images.webp_bytes((700, 500), orientation=6, image=BIG, lossless=True),
        lambda: images.webp_bytes((701, 503), orientation=8, image=images.noise((701, 503)), quality=100),
        lambda: images.webp_bytes((700, 500), image=BIG, lossless=True),
        lambda: images.webp_bytes((699, 501), image=images.noise((699, 501)), quality=100),
        lambda: images.to_bytes(BIG, "WEBP", lossless=True, exif=images.exif_bytes(orientation=5),
                                save_all=True, append_images=[images.noise((700, 500), seed=1)]),
        lambda: images.to_bytes(BIG, "WEBP", lossless=True,
                                xmp=b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'),
    ], ids=["lossless-6", "lossy-8", "lossless-simple", "lossy-simple", "animated-5", "xmp-6"])
    def test_webp_past_the_prefix(self, make) -> None:
        data = make()
        assert len(data) > PREFIX_BYTES
        assert size_of(data) == true_size(data)

    def test_webp_claiming_past_the_prefix(self) -> None:
        data = images.webp_claiming(16_000, 16_000) + bytes(PREFIX_BYTES)
        assert size_of(data) is None  # over the pixel limit

    def test_png_xmp_orientation_after_the_image(self) -> None:
        xmp = b'XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
        data = before_iend(images.png_bytes((50, 20)), chunk(b"iTXt", xmp))
        assert true_size(data) == (20, 50)
        assert size_of(data) is None  # Pillow would read it only after decoding: unknown

    def test_png_harmless_text_after_the_image(self) -> None:
        data = before_iend(images.png_bytes((50, 20)), chunk(b"tEXt", b"Comment\x00hello"))
        assert size_of(data) == (50, 20)

    def test_over_the_pixel_limit(self) -> None:
        data = images.png_bytes((100, 100))
        assert size_of(data, SourceLimits(max_pixels=9_999, max_bytes=1 << 20)) is None

    def test_container_bomb_in_the_prefix(self) -> None:
        data = images.gif_with_many_frames(3)
        assert size_of(data) == (8, 8)
        bomb = images.jpeg_bytes((8, 8))
        bomb = bomb[:2] + b"\xff\xfe\x00\x02" * 5_000 + bomb[2:]  # 5,000 empty COM markers
        assert size_of(bomb) is None


class TestJob:
    def test_batch_through_the_store(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        images.write(root / "a.jpg", images.jpeg_bytes((40, 30), orientation=6))
        images.write(root / "b.png", b"garbage")
        images.write(root / "c.gif", images.gif_bytes(size=(9, 7)))
        changed = images.write(root / "d.jpg", images.jpeg_bytes((10, 10)))
        store = FileStore(str(root.resolve()), {"jpg", "png", "gif"})
        sources = [store.resolve(name) for name in ("a.jpg", "b.png", "c.gif", "d.jpg")]
        os.utime(changed, ns=(1, 1))  # another version than the one resolved: not reported
        assert displayed_sizes(store, sources, LIMITS, 5.0) == [(30, 40), None, (9, 7), None]

    def test_budget_spent_returns_what_was_found(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        for n in range(3):
            images.write(root / f"{n}.jpg", images.jpeg_bytes((12, 10)))
        store = FileStore(str(root.resolve()), {"jpg"})
        sources = [store.resolve(f"{n}.jpg") for n in range(3)]
        assert displayed_sizes(store, sources, LIMITS, 0.0) == [(12, 10)]  # at least one, then stops
