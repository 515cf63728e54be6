"""server.imaging.scan: container bombs are refused before Pillow walks them, real files of every
format pass; the decode guard maps whatever Pillow raises; valid_icc_profile keeps sane profiles.

Files are generated (tests/support/images.py): valid bases from Pillow, hostile variants by bytes.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable
from io import BytesIO

import pytest
from PIL import Image

from server.imaging import (
    ContainerBomb,
    ImageError,
    RenderRequest,
    SourceLimits,
    SourceTooLarge,
    UndecodableImage,
    render_thumbnail,
    scan_container,
    valid_icc_profile,
)
from server.imaging import decode, scan
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)
#: The scan's own budget on a 10 MB hostile file or a 24 MP photo (best of 3 runs).
SCAN_SECONDS = 0.05
#: What a refused render may take at most (the issue's bound).
RENDER_SECONDS = 1.0


def render(source: bytes, *, limits: SourceLimits = LIMITS):
    request = RenderRequest(width=64, height=64, fit="contain", format=None, quality=None)
    return render_thumbnail(source, request, limits=limits)


def best_of_three(function: Callable[[], object]) -> float:
    """The shortest of three runs of `function`, in seconds (it may raise ImageError)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        try:
            function()
        except ImageError:
            pass
        best = min(best, time.perf_counter() - started)
    return best


# name: (builder, what the scan raises). Built once, on first use.
ISSUE_BOMBS: dict[str, tuple[Callable[[], bytes], type[ImageError]]] = {
    "tiff-1x2-2M-strip-offsets": (images.tiff_strip_bomb, ContainerBomb),
    "jpeg-1x1-2.5M-empty-app1": (images.jpeg_marker_bomb, ContainerBomb),
    "png-1x1-830k-private-chunks": (images.png_chunk_bomb, ContainerBomb),
    "bigtiff-strip-offset-2**64-1": (images.bigtiff_overflow, UndecodableImage),
    "jpeg-7000x7000-100-scans": (images.jpeg_scan_bomb, ContainerBomb),
}
OTHER_BOMBS: dict[str, tuple[Callable[[], bytes], type[ImageError]]] = {
    "tiff-32x32-2M-tile-offsets": (images.tiff_tile_bomb, ContainerBomb),
    "tiff-exif-ifd-4M-values": (images.tiff_exif_bomb, ContainerBomb),
    "tiff-200k-pages": (images.tiff_page_bomb, ContainerBomb),
    "jpeg-8MB-fill-bytes": (images.jpeg_fill_bomb, ContainerBomb),
    "png-800k-empty-idat": (images.png_idat_bomb, ContainerBomb),
    "png-800k-chunks-after-image": (images.png_trailing_chunk_bomb, ContainerBomb),
    "gif-4M-comment-sub-blocks": (images.gif_comment_bomb, ContainerBomb),
    "bmp-rle-4M-runs-past-the-row": (images.bmp_rle_bomb, ContainerBomb),
    "webp-800k-unknown-chunks": (images.webp_chunk_bomb, ContainerBomb),
}
BOMBS = {**ISSUE_BOMBS, **OTHER_BOMBS}


@functools.cache
def bomb(name: str) -> bytes:
    return BOMBS[name][0]()


def stuffed_scan_data(stuffing: int = 5_000_000) -> bytes:
    """A 1 MP progressive JPEG with 10 MB of 0xFF00 in its first scan's data, then 200 SOS pairs:
    the worst case of the scan walk (a 0xFF at every other byte)."""
    data = images.jpeg_bytes((1000, 1000), progressive=True)
    first = data.index(b"\xff\xda")
    (length,) = struct.unpack_from(">H", data, first + 2)
    end = first + 2 + length
    return data[:end] + b"\xff\x00" * stuffing + b"\xff\xda\x00\x02" * 200 + data[end:]


class TestBombsOfTheIssue:
    """Each file of the hardening issue is refused by the scan and by render_thumbnail, fast."""

    @pytest.mark.parametrize("name", ISSUE_BOMBS)
    def test_the_scan_refuses_it(self, name: str) -> None:
        with pytest.raises(ISSUE_BOMBS[name][1]):
            scan_container(bomb(name), LIMITS)

    @pytest.mark.parametrize("name", ISSUE_BOMBS)
    def test_a_render_refuses_it_within_a_second(self, name: str) -> None:
        source = bomb(name)
        started = time.perf_counter()
        with pytest.raises(UndecodableImage) as caught:
            render(source)
        assert time.perf_counter() - started < RENDER_SECONDS
        assert caught.value.public_message and "PIL" not in caught.value.public_message

    def test_the_bombs_are_what_the_issue_describes(self) -> None:
        assert len(bomb("tiff-1x2-2M-strip-offsets")) < 2_100_000
        assert 9_000_000 < len(bomb("jpeg-1x1-2.5M-empty-app1")) < 11_000_000
        assert 9_000_000 < len(bomb("png-1x1-830k-private-chunks")) < 11_000_000
        assert len(bomb("bigtiff-strip-offset-2**64-1")) < 256
        scans = bomb("jpeg-7000x7000-100-scans")
        assert Image.open(BytesIO(scans)).size == (7000, 7000)
        assert len(images.progressive_jpeg_scans(scans)) == 100

    def test_the_refusal_names_the_structure(self) -> None:
        with pytest.raises(ContainerBomb) as caught:
            scan_container(bomb("jpeg-1x1-2.5M-empty-app1"), LIMITS)
        assert caught.value.public_message == "The source's structure is too complex to decode."
        assert "markers" in str(caught.value)


class TestOtherBombs:
    """The same kind of file in every format Pillow walks in Python is refused the same way."""

    @pytest.mark.parametrize("name", OTHER_BOMBS)
    def test_the_scan_refuses_it(self, name: str) -> None:
        with pytest.raises(OTHER_BOMBS[name][1]):
            scan_container(bomb(name), LIMITS)

    @pytest.mark.parametrize("name", OTHER_BOMBS)
    def test_a_render_refuses_it_within_a_second(self, name: str) -> None:
        source = bomb(name)
        started = time.perf_counter()
        with pytest.raises(UndecodableImage):
            render(source)
        assert time.perf_counter() - started < RENDER_SECONDS


def _mpo_bytes() -> bytes:
    frames = [Image.new("RGB", (48, 32), colour) for colour in ("red", "blue")]
    return images.to_bytes(frames[0], "MPO", save_all=True, append_images=frames[1:])


def _tiff_pages() -> bytes:
    pages = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    return images.to_bytes(pages[0], "TIFF", save_all=True, append_images=pages[1:])


# name: (builder, its size). Small, so a 64x64 contain thumbnail keeps the size.
REAL_FILES: dict[str, tuple[Callable[[], bytes], tuple[int, int]]] = {
    "jpeg-baseline-exif-icc": (lambda: images.jpeg_bytes((64, 48), exif=True, icc=True, orientation=1), (64, 48)),
    "jpeg-progressive": (lambda: images.jpeg_bytes((64, 48), progressive=True), (64, 48)),
    "jpeg-cmyk": (lambda: images.jpeg_bytes((40, 30), mode="CMYK"), (40, 30)),
    "jpeg-comment": (lambda: images.jpeg_bytes((40, 30), comment=b"\xff\xda" * 100), (40, 30)),
    "mpo-two-frames": (_mpo_bytes, (48, 32)),
    "png-text-chunks": (lambda: images.png_bytes((64, 48), text={f"k{n}": "v" * 100 for n in range(40)}), (64, 48)),
    "png-1k-idat-chunks": (lambda: images.png_rechunked(images.png_bytes((60, 60), image=images.noise((60, 60))), idat=1024), (60, 60)),
    "png-16-bit": (lambda: images.png_bytes((50, 40), mode="I;16"), (50, 40)),
    "apng-2000-frames": (lambda: images.apng_bytes(["red", "blue"] * 1000), (8, 8)),
    "tiff-strips": (lambda: images.tiff_bytes((64, 48), icc=True), (64, 48)),
    "tiff-deflate-strips": (lambda: images.to_bytes(images.gradient((60, 500)), "TIFF", compression="tiff_deflate"), (60, 500)),
    "tiff-tiles": (images.tiff_tiled_bytes, (40, 24)),
    "tiff-pages": (_tiff_pages, (40, 30)),
    "tiff-16-bit": (lambda: images.tiff_bytes((30, 20), mode="I;16"), (30, 20)),
    "bigtiff": (lambda: images.to_bytes(images.gradient((40, 30)), "TIFF", big_tiff=True), (40, 30)),
    "webp-lossy": (lambda: images.webp_bytes((64, 48), icc=True), (64, 48)),
    "webp-lossless": (lambda: images.webp_bytes((64, 48), lossless=True), (64, 48)),
    "webp-animated": (lambda: images.webp_bytes((32, 24), frames=["red", "lime", "blue"]), (32, 24)),
    "gif-animated": (lambda: images.gif_bytes(size=(32, 24)), (32, 24)),
    "gif-10000-frames": (lambda: images.gif_with_many_frames(10_000), (8, 8)),
    "bmp": (lambda: images.bmp_bytes((64, 48)), (64, 48)),
    "bmp-rle8": (lambda: images.bmp_rle8_bytes([b"\x04\x01\x04\x00", b"\x02\x00\x06\x01"]), (8, 2)),
    "avif": (lambda: images.avif_bytes((64, 48)), (64, 48)),
}


class TestRealFilesPass:
    """Files of every format, with the structures real encoders write, pass the scan and render."""

    @pytest.mark.parametrize("name", REAL_FILES)
    def test_passes_the_scan_and_renders(self, name: str) -> None:
        build, size = REAL_FILES[name]
        source = build()
        assert scan_container(source, LIMITS) is None
        rendered = render(source)
        expected = size if max(size) <= 64 else (round(size[0] * 64 / max(size)), round(size[1] * 64 / max(size)))
        assert (rendered.width, rendered.height) == expected

    def test_unknown_formats_are_left_to_pillow(self) -> None:
        assert scan_container(images.pdf_bytes(), LIMITS) is None
        assert scan_container(b"\xff\xd8", LIMITS) is None
        with pytest.raises(UndecodableImage):
            render(images.pdf_bytes())


class TestJpegLimits:
    """Markers before the first scan, and scans against the frame's megapixels."""

    def test_a_megapixel_with_100_scans_renders(self) -> None:
        source = images.jpeg_scan_bomb((1000, 1000), 100)
        assert scan_container(source, LIMITS) is None
        assert (render(source).width, render(source).height) == (64, 64)

    def test_101_scans_are_refused_whatever_the_size(self) -> None:
        with pytest.raises(ContainerBomb, match="over 100 scans"):
            scan_container(images.jpeg_scan_bomb((100, 100), 101), LIMITS)

    def test_a_24_megapixel_frame_has_41_scans(self) -> None:
        # 1,000 scan-megapixels / 24 MP: 41 scans. libjpeg writes 10 (6 for greyscale).
        assert scan_container(images.jpeg_scan_bomb((6000, 4000), 10), LIMITS) is None
        assert scan_container(images.jpeg_scan_bomb((6000, 4000), 41), LIMITS) is None
        with pytest.raises(ContainerBomb, match="over 41 scans for 6000x4000"):
            scan_container(images.jpeg_scan_bomb((6000, 4000), 42), LIMITS)

    def test_a_baseline_file_is_not_walked_as_libjpeg_stops_at_a_second_scan(self) -> None:
        image = images.jpeg_bytes((7000, 7000), color="gray", mode="L", quality=50)
        (scan_data,) = images.progressive_jpeg_scans(image)
        repeated = image[:-2] + scan_data * 99 + image[-2:]
        assert scan_container(repeated, LIMITS) is None
        started = time.perf_counter()
        with pytest.raises(UndecodableImage):
            render(repeated)
        assert time.perf_counter() - started < RENDER_SECONDS

    def test_sos_bytes_outside_scans_are_not_counted(self) -> None:
        source = images.jpeg_bytes((64, 48), progressive=True)
        comment = b"\xff\xfe" + struct.pack(">H", 2 + 400) + b"\xff\xda" * 200
        between_scans = source[:-2] + comment + source[-2:]
        after_the_image = source + b"\xff\xda\x00\x08" * 500  # e.g. a Motion Photo's video
        for data in (between_scans, after_the_image):
            assert scan_container(data, LIMITS) is None
            assert render(data).width == 64

    def test_markers_before_the_first_scan(self) -> None:
        image = images.jpeg_bytes((8, 8))
        within = image[:2] + b"\xff\xfe\x00\x02" * 900 + image[2:]
        assert scan_container(within, LIMITS) is None
        assert render(within).width == 8
        with pytest.raises(ContainerBomb, match="markers"):
            scan_container(image[:2] + b"\xff\xfe\x00\x02" * 1000 + image[2:], LIMITS)

    def test_bytes_of_segments_before_the_first_scan(self) -> None:
        image = images.jpeg_bytes((8, 8))
        segment = b"\xff\xe2\xff\xff" + bytes(0xFFFD)
        assert scan_container(image[:2] + segment * 100 + image[2:], LIMITS) is None  # 6.5 MB
        with pytest.raises(ContainerBomb, match="bytes of segments"):
            scan_container(image[:2] + segment * 600 + image[2:], LIMITS)  # 39 MB

    def test_stray_bytes_before_the_first_scan(self) -> None:
        image = images.jpeg_bytes((8, 8))
        assert scan_container(image[:2] + b"\xff" * 1000 + image[2:], LIMITS) is None
        with pytest.raises(ContainerBomb, match="stray"):
            scan_container(image[:2] + b"\xff" * 20_000 + image[2:], LIMITS)

    def test_0xff_dense_scan_data_is_refused(self) -> None:
        with pytest.raises(ContainerBomb, match="0xFF"):
            scan_container(stuffed_scan_data(), LIMITS)

    def test_a_claim_over_the_pixel_limit_stays_too_large(self) -> None:
        with pytest.raises(SourceTooLarge):
            render(images.jpeg_claiming(50000, 50000))


class TestPngLimits:
    """Chunks before the image data, and chunks in the file against its size."""

    @staticmethod
    def with_private_chunks(count: int, *, after_image: bool = False) -> bytes:
        image = images.png_bytes((8, 8))
        at = image.index(b"IEND" if after_image else b"IDAT") - 4
        return image[:at] + images._png_chunk(b"prVt", b"") * count + image[at:]

    def test_chunks_before_the_image_data(self) -> None:
        assert scan_container(self.with_private_chunks(990), LIMITS) is None
        with pytest.raises(ContainerBomb, match="before the image data"):
            scan_container(self.with_private_chunks(1000), LIMITS)

    def test_chunks_after_the_image_data(self) -> None:
        within = self.with_private_chunks(990, after_image=True)
        assert scan_container(within, LIMITS) is None
        assert render(within).width == 8
        with pytest.raises(ContainerBomb, match="chunks in"):
            scan_container(self.with_private_chunks(1000, after_image=True), LIMITS)

    def test_an_animation_is_read_to_its_second_frame_only(self) -> None:
        # Pillow stops at the second frame's fcTL, and so does the scan: 2,000 frames pass.
        source = images.apng_bytes(["red", "blue"] * 1000)
        assert source.count(b"fdAT") > 1000 + len(source) // scan.PNG_BYTES_PER_CHUNK
        assert scan_container(source, LIMITS) is None

    def test_a_second_actl_makes_it_a_still_image_whose_chunks_count(self) -> None:
        source = images.apng_bytes(["red", "blue"] * 1000)
        actl = source.index(b"acTL") - 4
        doubled = source[:actl] + source[actl : actl + 20] + source[actl:]
        with pytest.raises(ContainerBomb):
            scan_container(doubled, LIMITS)


class TestTiffLimits:
    """Strips and tiles against the geometry, IFD sizes, values, pages and offsets."""

    def test_strips_may_be_twice_what_the_geometry_needs_plus_16(self) -> None:
        assert scan_container(images.tiff_strip_bomb(strips=20), LIMITS) is None
        with pytest.raises(ContainerBomb, match="2 needed for 1x2"):
            scan_container(images.tiff_strip_bomb(strips=22), LIMITS)

    def test_a_geometry_needing_too_many_strips(self) -> None:
        def tall(height: int) -> bytes:
            at = images.tiff_header_size()
            tags = images._tiff_grey_tags(
                1, height, t273=(4, b"".join(struct.pack("<I", at + n) for n in range(height))),
                t278=(3, struct.pack("<H", 1)), t279=(4, struct.pack("<I", 1) * height),
            )
            return images.tiff_with_tags(tags, pixels=bytes(height))

        assert scan_container(tall(50_000), LIMITS) is None
        with pytest.raises(ContainerBomb):
            scan_container(tall(scan.MAX_TIFF_BLOCKS + 1), LIMITS)

    def test_pages(self) -> None:
        assert scan_container(images.tiff_page_bomb(pages=scan.MAX_TIFF_PAGES - 1), LIMITS) is None
        with pytest.raises(ContainerBomb, match="pages"):
            scan_container(images.tiff_page_bomb(pages=scan.MAX_TIFF_PAGES), LIMITS)

    def test_values_of_the_exif_ifd(self) -> None:
        within = images.tiff_exif_bomb(values=1000)
        assert scan_container(within, LIMITS) is None
        assert render(within).width == 1
        with pytest.raises(ContainerBomb, match="values in one IFD"):
            scan_container(images.tiff_exif_bomb(values=scan.MAX_TIFF_VALUES + 1), LIMITS)

    def test_entries_of_one_ifd(self) -> None:
        source = bytearray(images.tiff_bytes((4, 4), mode="L"))
        (ifd,) = struct.unpack_from("<I", source, 4)
        struct.pack_into("<H", source, ifd, scan.MAX_TIFF_ENTRIES + 1)
        with pytest.raises(ContainerBomb, match="entries in one IFD"):
            scan_container(bytes(source) + bytes(12 * scan.MAX_TIFF_ENTRIES), LIMITS)

    def test_offsets_outside_the_file_or_past_2_63(self) -> None:
        source = bytearray(images.tiff_bytes((4, 4), mode="L"))
        outside = bytes(source[:4]) + struct.pack("<I", len(source) + 100) + bytes(source[8:])
        with pytest.raises(UndecodableImage, match="outside"):
            scan_container(outside, LIMITS)
        big = images.bigtiff_overflow()
        with pytest.raises(UndecodableImage, match="outside"):
            scan_container(big, LIMITS)
        past = big[:8] + struct.pack("<Q", 2**64 - 1) + big[16:]
        with pytest.raises(UndecodableImage, match="2\\*\\*63"):
            scan_container(past, LIMITS)

    def test_over_the_pixel_limit_before_pillow_builds_its_strips(self) -> None:
        with pytest.raises(SourceTooLarge) as caught:
            scan_container(images.tiff_claiming(50000, 50000), LIMITS)
        assert caught.value.public_message == "The source image is larger than 50000000 pixels."


class TestGifWebpBmpLimits:
    """Blocks before a GIF's first image, WebP chunks, BMP run-length data."""

    def test_gif_sub_blocks_before_the_first_image(self) -> None:
        within = images.gif_comment_bomb(blocks=5_000)
        assert scan_container(within, LIMITS) is None
        assert render(within).width == 1
        with pytest.raises(ContainerBomb, match="GIF"):
            scan_container(images.gif_comment_bomb(blocks=scan.MAX_GIF_HEADER_BLOCKS), LIMITS)

    def test_webp_chunks(self) -> None:
        assert scan_container(images.webp_chunk_bomb(chunks=1_000), LIMITS) is None
        with pytest.raises(ContainerBomb, match="WebP"):
            scan_container(images.webp_chunk_bomb(chunks=scan.MAX_WEBP_CHUNKS), LIMITS)

    def test_bmp_run_length_data_bounded_by_its_pixels(self) -> None:
        # 1x2 pixels: 4 x 2 + 4 x 2 + 1024 bytes of runs at most.
        assert scan_container(images.bmp_rle_bomb(runs=500), LIMITS) is None
        with pytest.raises(ContainerBomb, match="RLE"):
            scan_container(images.bmp_rle_bomb(runs=600), LIMITS)


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """A 24 MP photograph-like image in the formats whose scan reads the whole file."""
    photo = images.textured((6000, 4000))
    png = images.to_bytes(photo, "PNG", compress_level=0)  # the scan reads chunk headers only
    return {
        "jpeg": images.to_bytes(photo, "JPEG", quality=90),
        "jpeg-progressive": images.to_bytes(photo, "JPEG", quality=90, progressive=True),
        "png-8k-idat": images.png_rechunked(png, idat=8192),
        "tiff": images.to_bytes(photo, "TIFF"),
    }


class TestScanSpeed:
    """Each walk stays well under 50 ms on a 24 MP photo and on a 10 MB hostile file."""

    @pytest.mark.parametrize("name", ["jpeg", "jpeg-progressive", "png-8k-idat", "tiff"])
    def test_a_24_megapixel_photo(self, photos: dict[str, bytes], name: str) -> None:
        assert best_of_three(lambda: scan_container(photos[name], LIMITS)) < SCAN_SECONDS

    @pytest.mark.parametrize("name", sorted(BOMBS))
    def test_a_bomb(self, name: str) -> None:
        source = bomb(name)
        assert best_of_three(lambda: scan_container(source, LIMITS)) < SCAN_SECONDS

    def test_0xff_dense_scan_data(self) -> None:
        source = stuffed_scan_data()
        assert len(source) > 10_000_000
        assert best_of_three(lambda: scan_container(source, LIMITS)) < SCAN_SECONDS


class TestDecodeGuard:
    """Whatever Pillow raises on hostile input is UndecodableImage; MemoryError and ours pass."""

    @pytest.mark.parametrize("error", [OverflowError("int too large"), AssertionError(), RecursionError(), LookupError()])
    def test_any_exception_is_undecodable(self, error: Exception) -> None:
        with pytest.raises(UndecodableImage) as caught, decode.decoding():
            raise error
        assert type(error).__name__ in str(caught.value)

    @pytest.mark.parametrize("error", [MemoryError(), ContainerBomb("x"), SourceTooLarge("y")])
    def test_memory_errors_and_image_errors_pass_unchanged(self, error: BaseException) -> None:
        with pytest.raises(type(error)) as caught, decode.decoding():
            raise error
        assert caught.value is error

    def test_without_the_scan_the_overflow_is_undecodable_not_a_crash(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(decode, "scan_container", lambda data, limits: None)
        with pytest.raises(UndecodableImage, match="OverflowError"):
            render(images.bigtiff_overflow())

    def test_overflow_is_still_listed_for_importers(self) -> None:
        assert OverflowError in decode.DECODE_ERRORS


class TestValidIccProfile:
    """A profile is kept when it is small, whole, and LittleCMS reads it."""

    def test_srgb_is_kept(self) -> None:
        profile = images.srgb_profile()
        assert valid_icc_profile(profile) is profile

    def test_a_hand_built_cmyk_profile_is_kept(self) -> None:
        profile = images.cmyk_profile()
        assert valid_icc_profile(profile) is profile

    @pytest.mark.parametrize("profile", [None, b"", b"\x00" * 127])
    def test_missing_or_shorter_than_its_header(self, profile: bytes | None) -> None:
        assert valid_icc_profile(profile) is None

    def test_over_64_kb(self) -> None:
        profile = images.srgb_profile()
        padded = struct.pack(">I", 64 * 1024 + 4) + profile[4:] + bytes(64 * 1024 + 4 - len(profile))
        assert valid_icc_profile(padded) is None

    def test_declared_size_not_its_length(self) -> None:
        profile = images.srgb_profile()
        assert valid_icc_profile(profile + b"\x00\x00\x00\x00") is None
        assert valid_icc_profile(struct.pack(">I", len(profile) + 1) + profile[4:]) is None

    def test_unparseable(self) -> None:
        garbage = struct.pack(">I", 512) + bytes(range(256)) * 2
        assert valid_icc_profile(garbage[:512]) is None
