"""Decoding: identify a source with an allowed decoder, check its limits, read its orientation,
and ask the JPEG decoder for a reduced scale. Nothing here decodes a pixel before the checks."""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, JpegImagePlugin

from server.formats import DECODERS
from server.imaging.errors import SourceTooLarge, UndecodableImage
from server.imaging.geometry import displayed_size

# Exceptions Pillow's decoders raise on malformed input (fuzzing finds all of these).
# RuntimeError: libavif's "Failed to decode frame 0: Decoding of color planes failed" and
# "Missing or empty image item" on a corrupt AVIF (tests/fuzz/fuzz_render.py found it).
DECODE_ERRORS = (
    OSError, ValueError, SyntaxError, struct.error, EOFError, ZeroDivisionError, IndexError, KeyError, TypeError,
    RuntimeError,
)

# A progressive JPEG may repeat scans without limit, and each one costs a pass over every
# block whatever the box: 1,000 tiny scans make a 125 KB file take 6 s. Encoders write about
# 10 (libjpeg's default script) and rarely more than a few dozen.
MAX_JPEG_SCANS = 100

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



@contextmanager
def decoding() -> Iterator[None]:
    """Turn what Pillow raises on hostile input into ImageError; keep its bomb warning quiet.

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
    except DECODE_ERRORS as error:
        raise UndecodableImage(f"{type(error).__name__}: {error}") from error


def open_source(source: bytes, limits: SourceLimits) -> Image.Image:
    """Identify `source` with an allowed decoder and check it against `limits`.

    Reads the header only: no pixel is decoded, so a hostile size claim costs nothing. A JPEG
    with more than MAX_JPEG_SCANS scans is refused too, as its decode time is unbounded.
    """
    if len(source) > limits.max_bytes:
        raise SourceTooLarge(
            f"{len(source)} bytes > {limits.max_bytes}",
            public_message=f"The source image is larger than {limits.max_bytes} bytes.",
        )
    if not source:
        raise UndecodableImage("empty source", public_message="The source is empty.")
    with decoding():
        image = Image.open(BytesIO(source), formats=DECODERS)
    # SOS markers cannot occur inside entropy-coded data, so counting the bytes over-counts
    # only by chance matches in metadata: cheap, and conservative.
    # Only progressive JPEGs have more than one scan: a baseline photo skips the byte scan.
    if (
        isinstance(image, JpegImagePlugin.JpegImageFile)
        and image.info.get("progressive")
        and source.count(b"\xff\xda") > MAX_JPEG_SCANS
    ):
        raise UndecodableImage(f"JPEG with more than {MAX_JPEG_SCANS} scans")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise SourceTooLarge(
            f"{width}x{height} pixels > {limits.max_pixels}",
            public_message=f"The source image is larger than {limits.max_pixels} pixels.",
        )
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
        return orientation if orientation in TRANSPOSES else 1
    except DECODE_ERRORS:
        return 1  # broken EXIF is ignored, as browsers do



def reduce_on_load(image: Image.Image, size: tuple[int, int], orientation: int) -> Image.Image:
    """Ask the JPEG decoder for the smallest 1/2, 1/4 or 1/8 scale still covering `size`.

    `size` is in displayed orientation; the decoder works before rotation, so the axes swap
    for orientations 5-8. Must run before load(). Other formats are returned untouched.
    libjpeg scales in the DCT domain: a 24 MP photo for a 320 px box decodes at 750x500.
    """
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        image.draft(image.mode, displayed_size(size, orientation))
    return image

