"""Decoding: scan a source's container, identify it with an allowed decoder, check its limits,
read its orientation, and ask the JPEG decoder for a reduced scale. Nothing here decodes a pixel
before the checks."""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageCms, JpegImagePlugin

from server.formats import DECODERS
from server.imaging.errors import ImageError, SourceTooLarge, UndecodableImage
from server.imaging.geometry import displayed_size
from server.imaging.scan import scan_container

# Exceptions Pillow's decoders are known to raise on malformed input (fuzzing finds these).
# RuntimeError: libavif's "Failed to decode frame 0: Decoding of color planes failed" and
# "Missing or empty image item" on a corrupt AVIF (tests/fuzz/fuzz_render.py found it).
# OverflowError: a BigTIFF strip offset of 2**64 - 1, given to seek(). The list is not the guard:
# `decoding()` maps every Exception but MemoryError, as hostile input reaches anything.
DECODE_ERRORS = (
    OSError, ValueError, SyntaxError, struct.error, EOFError, ZeroDivisionError, IndexError, KeyError, TypeError,
    RuntimeError, OverflowError,
)

#: ICC profiles a thumbnail may carry: a display or camera profile is 0.5-4 KB (sRGB 3 KB);
#: larger ones are printer LUTs that only a CMYK conversion needs (it reads image.info itself).
MAX_ICC_PROFILE_BYTES = 64 * 1024
ICC_HEADER_BYTES = 128

EXIF_ORIENTATION = 0x0112
TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class SourceLimits:
    max_pixels: int
    max_bytes: int
    max_frames: int = 100  # frames of an animated thumbnail; more: its first frame only



@contextmanager
def decoding() -> Iterator[None]:
    """Turn whatever Pillow raises on hostile input into ImageError; keep its bomb warning quiet.

    Every Exception becomes UndecodableImage (hostile input reaches exceptions no list foresees:
    OverflowError, AssertionError…) but MemoryError and our own ImageErrors, which pass as they are.

    The pixel limit is ours (checked in open_source), so Pillow's DecompressionBombWarning
    between 1x and 2x Image.MAX_IMAGE_PIXELS is noise. Above 2x Pillow raises, which is
    SourceTooLarge too: the effective limit is min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS).
    catch_warnings swaps process-wide state (Python < 3.14): with renders in several threads,
    that one warning may slip through or its ignore filter outlive a render. Neither changes
    a result, and Pillow's global limits stay untouched.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except Image.DecompressionBombError as error:
        raise SourceTooLarge(str(error)) from error
    except (ImageError, MemoryError):
        raise
    except Exception as error:  # hostile input reaches exceptions no list foresees (OverflowError)
        raise UndecodableImage(f"{type(error).__name__}: {error}") from error


def open_source(source: bytes, limits: SourceLimits) -> Image.Image:
    """Identify `source` with an allowed decoder and check it against `limits`.

    Reads the header only: no pixel is decoded, so a hostile size claim costs nothing. Before
    Pillow sees it, `scan_container` refuses a container with more structures than any real
    image holds (markers, chunks, strips, scans: see scan.py), as Pillow walks them in Python.
    """
    if len(source) > limits.max_bytes:
        raise SourceTooLarge(
            f"{len(source)} bytes > {limits.max_bytes}",
            public_message=f"The source image is larger than {limits.max_bytes} bytes.",
        )
    if not source:
        raise UndecodableImage("empty source", public_message="The source is empty.")
    with decoding():
        scan_container(source, limits)
        image = Image.open(BytesIO(source), formats=DECODERS)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise SourceTooLarge.pixels(width, height, limits.max_pixels)
    return image


def read_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8) of an opened source; 1 when absent or unreadable.

    Decodes the pixels of every source but JPEG: PNG may keep its EXIF after the image data,
    and only JPEG gains from staying undecoded until reduce_on_load.
    """
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        # Load here, outside the EXIF guard below, so a truncated file is not mistaken for
        # bad EXIF and then half-loaded in silence.
        image.load()
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except MemoryError:
        raise
    except Exception:  # broken EXIF is ignored, as browsers do, however Pillow fails on it
        return 1
    return orientation if orientation in TRANSPOSES else 1


def valid_icc_profile(profile: bytes | None) -> bytes | None:
    """`profile` when a thumbnail may carry it, else None.

    None when it is over MAX_ICC_PROFILE_BYTES, shorter than its 128-byte header, when the size
    the header declares (bytes 0..4, big-endian) is not its length, or when LittleCMS cannot
    open it (it reads the header and tag table, and each tag only when a transform needs it):
    ~5 µs for a 64 KB profile.
    """
    if not profile or not ICC_HEADER_BYTES <= len(profile) <= MAX_ICC_PROFILE_BYTES:
        return None
    if int.from_bytes(profile[:4], "big") != len(profile):
        return None
    try:
        ImageCms.ImageCmsProfile(BytesIO(profile))
    except MemoryError:
        raise
    except Exception:  # PyCMSError, OSError… whatever LittleCMS says about a broken profile
        return None
    return profile



def reduce_on_load(image: Image.Image, size: tuple[int, int], orientation: int) -> Image.Image:
    """Ask the JPEG decoder for the smallest 1/2, 1/4 or 1/8 scale still covering `size`.

    `size` is in displayed orientation; the decoder works before rotation, so the axes swap
    for orientations 5-8. Must run before load(). Other formats are returned untouched.
    libjpeg scales in the DCT domain: a 24 MP photo for a 320 px box decodes at 750x500.
    """
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        image.draft(image.mode, displayed_size(size, orientation))
    return image


def webp_is_lossless(source: bytes) -> bool:
    """Whether a WebP file's image is VP8L (lossless), from its RIFF chunks: the simple format
    starts with the image chunk, the extended one (VP8X) lists ICCP/ANIM/ALPH/EXIF… first."""
    if source[:4] != b"RIFF" or source[8:12] != b"WEBP":
        return False
    offset = 12
    for _ in range(64):  # a real file has a handful of chunks before its image
        fourcc = source[offset : offset + 4]
        if fourcc == b"VP8L":
            return True
        if fourcc in (b"VP8 ", b"ANMF", b"") or len(source) < offset + 8:
            return False
        size = int.from_bytes(source[offset + 4 : offset + 8], "little")
        offset += 8 + size + (size & 1)
    return False
