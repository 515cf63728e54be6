"""The machine's intermediate tier: what one render process decoded, another cuts from, with the
same bytes; bounded; a torn or foreign file is a miss, never other pixels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from server.imaging import RenderRequest, SourceLimits
from server.imaging.decode import decoding, open_source
from server.imaging.intermediate import decode_class, decode_intermediate, read_facts
from server.imaging.pipeline import render_from, render_thumbnail
from server.thumbnails.intermediates import HostIntermediates
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)
KEY = ("photo.jpg", 123, 456, "f" * 32)


def intermediate_of(data: bytes, width: int):
    header = open_source(data, LIMITS)
    with decoding():
        facts = read_facts(header)
        eighths = decode_class(facts, RenderRequest(width=width, height=None, fit="contain", format=None,
                                                     quality=None).box)
        return decode_intermediate(header, data, facts, eighths), eighths


@pytest.fixture
def host(tmp_path: Path) -> HostIntermediates:
    return HostIntermediates(str(tmp_path / "shm"), 64 * 1024 * 1024)


class TestRoundTrip:
    """An intermediate read back gives the thumbnail a fresh decode gives, byte for byte."""

    @pytest.mark.parametrize("make", [
        lambda: images.jpeg_bytes((1600, 1200), image=images.textured((1600, 1200)), icc=True, orientation=6),
        lambda: images.png_bytes((300, 200), mode="RGBA"),
        lambda: images.png_bytes((300, 200), mode="LA"),
        lambda: images.jpeg_bytes((800, 600), mode="L"),
    ])
    def test_same_bytes(self, host: HostIntermediates, make) -> None:
        data = make()
        fresh, eighths = intermediate_of(data, 150)
        host.put(KEY, eighths, fresh)
        kept = host.get(KEY, eighths)
        assert kept is not None
        assert kept.image.tobytes() == fresh.image.tobytes() and kept.image.mode == fresh.image.mode
        assert (kept.source_size, kept.source_format, kept.icc_profile) == (
            fresh.source_size, fresh.source_format, fresh.icc_profile)
        for output in ("jpeg", "webp", "png"):
            request = RenderRequest(width=150, height=None, fit="contain", format=output, quality=None)
            assert render_from(kept, request).data == render_thumbnail(data, request, limits=LIMITS).data

    def test_other_key_or_class_is_a_miss(self, host: HostIntermediates) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 100)
        host.put(KEY, eighths, fresh)
        assert host.get(KEY[:3] + ("0" * 32,), eighths) is None
        assert host.get(KEY, eighths + 1) is None


class TestDamage:
    """A file that is not what its key wrote is a miss."""

    def test_torn_file(self, host: HostIntermediates) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 100)
        host.put(KEY, eighths, fresh)
        path = host._path(KEY, eighths)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) - 10])
        assert host.get(KEY, eighths) is None

    def test_file_of_another_key_under_the_name(self, host: HostIntermediates) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 100)
        other = ("other.jpg", 1, 2, "0" * 32)
        host.put(other, eighths, fresh)
        os.replace(host._path(other, eighths), host._path(KEY, eighths))
        assert host.get(KEY, eighths) is None

    def test_garbage(self, host: HostIntermediates) -> None:
        Path(host._path(KEY, 1)).write_bytes(b"\xff" * 100)
        assert host.get(KEY, 1) is None


class TestBound:
    """The folder stays within its bytes: the least recently used files go first."""

    def test_oldest_removed(self, tmp_path: Path) -> None:
        image = Image.new("RGB", (100, 100), (1, 2, 3))  # 30,000 bytes of pixels
        from server.imaging.intermediate import Intermediate

        one = Intermediate(image=image, source_size=(100, 100), source_format="PNG", icc_profile=None,
                           lossless_webp=False)
        host = HostIntermediates(str(tmp_path / "shm"), 100_000)
        for n in range(5):
            host.put(("k", n), 8, one)
            os.utime(host._path(("k", n), 8), ns=(n * 10**9, n * 10**9))
        names = os.listdir(host.folder)
        assert sum(os.path.getsize(os.path.join(host.folder, name)) for name in names) <= 100_000
        assert host.get(("k", 4), 8) is not None
        assert host.get(("k", 0), 8) is None

    def test_larger_than_the_bound_is_not_kept(self, tmp_path: Path) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 700)
        host = HostIntermediates(str(tmp_path / "shm"), 1000)
        host.put(KEY, eighths, fresh)
        assert host.get(KEY, eighths) is None and os.listdir(host.folder) == []
