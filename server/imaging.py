"""Thumbnail rendering: source bytes in, encoded thumbnail bytes out. No HTTP here.

`render_thumbnail` runs a short pipeline of plain functions, each usable alone::

    open_source -> read_orientation -> plan_geometry -> reduce_on_load -> (load)
        -> orient -> normalize_mode -> strip_metadata -> resize -> flatten -> encode

Errors::

    ImageError              .public_message is safe to show a client
    ├── UndecodableImage    corrupt, truncated, empty, not an image, or a refused decoder
    └── SourceTooLarge      over SourceLimits.max_bytes or .max_pixels (checked before decoding)

Only stdlib and Pillow are imported: the caller runs `render_thumbnail` in a worker thread.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import NamedTuple

from PIL import Image, ImageCms, JpegImagePlugin

RENDERER_VERSION = "1"

FORMATS = ("jpeg", "png", "webp", "avif")
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif"}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif"}
FITS = ("contain", "cover", "fill")

# Used when RenderRequest.qualities lacks a format (the config normally supplies all three).
DEFAULT_QUALITIES = {"jpeg": 82, "webp": 80, "avif": 60}

# The only decoders a source may reach. Anything else (EPS/PS -> Ghostscript, PDF, PSD, the
# exotic plugins) is refused by Image.open itself, whatever the file is called.
DECODERS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "TIFF", "BMP")

# Output family when the request names no format, by Pillow's name for the decoder.
# MPO is how Pillow reports multi-picture JPEGs straight from many cameras.
SOURCE_FAMILIES = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "png", "WEBP": "webp", "AVIF": "avif"}

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
SWAPS_AXES = frozenset({5, 6, 7, 8})

# Resize in one pass when the shrink is small; above this ratio Pillow first box-reduces by an
# integer factor, then resamples. 2.0 is Pillow's own choice for thumbnail().
REDUCING_GAP = 2.0

# ICC header bytes 16..20 name the colour space the profile describes.
PROFILE_SPACES = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}


# --- errors -------------------------------------------------------------------------------


class ImageError(Exception):
    """A source that cannot be made into a thumbnail.

    `str(error)` is the internal detail for logs; `public_message` is safe to show a client
    (no paths, no Pillow internals).
    """

    public_message = "The source cannot be made into a thumbnail."

    def __init__(self, detail: str, *, public_message: str | None = None) -> None:
        super().__init__(detail)
        if public_message is not None:
            self.public_message = public_message


class UndecodableImage(ImageError):
    """Corrupt, truncated, empty, not an image, or in a format whose decoder is not allowed."""

    public_message = "The source is not an image that can be decoded."


class SourceTooLarge(ImageError):
    """Over the byte or pixel limit; raised before any pixel is decoded."""

    public_message = "The source image is too large."


# --- requests and results ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceLimits:
    max_pixels: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """What to render. Sides are final pixel sizes (already multiplied by dpr).

    width/height: the box; None leaves that side free (contain only). format None means the
    source's family. quality None means qualities[format]; PNG ignores quality.
    """

    width: int | None
    height: int | None
    fit: str
    format: str | None
    quality: int | None
    qualities: Mapping[str, int]

    def __post_init__(self) -> None:
        # A malformed request is a caller bug, not a bad image: plain ValueError.
        if self.width is None and self.height is None:
            raise ValueError("at least one of width and height is required")
        if any(side is not None and side < 1 for side in (self.width, self.height)):
            raise ValueError("width and height must be at least 1")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}")
        if self.fit != "contain" and (self.width is None or self.height is None):
            raise ValueError(f"{self.fit} needs both width and height")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError("quality must be within 1..100")


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


class Geometry(NamedTuple):
    """Output size, and the part of the (oriented) source it shows: (left, top, right, bottom)."""

    width: int
    height: int
    crop: tuple[int, int, int, int] | None


# --- the pipeline --------------------------------------------------------------------------


def render_thumbnail(source: bytes, request: RenderRequest, *, limits: SourceLimits) -> Rendered:
    """Render `source` as `request` describes.

    Raises UndecodableImage or SourceTooLarge for any bad input, and nothing else; size limits
    are checked from the header, before any pixel is decoded. Blocking: run it in a worker thread.
    """
    image = open_source(source, limits)
    with _decoding():
        orientation = read_orientation(image)
        source_size = displayed_size(image.size, orientation)
        geometry = plan_geometry(*source_size, request)
        reduce_on_load(image, decode_size(geometry, source_size), orientation)
        # The source is already in memory: hand it to the decoder in one block rather than
        # 64 KiB ones, so the GIL is released and re-taken once per image, not ~100 times
        # (each re-take may wait for the event loop's thread).
        image.decodermaxblock = max(image.decodermaxblock, len(source))
        image.load()
        pixels = normalize_mode(orient(image, orientation))
    icc_profile = strip_metadata(pixels)
    output_format = choose_format(request.format, image.format, pixels.mode)
    thumbnail = flatten(resize(pixels, geometry, source_size), output_format)
    data = encode(thumbnail, output_format, quality=quality_for(request, output_format), icc_profile=icc_profile)
    return Rendered(data=data, format=output_format, width=thumbnail.width, height=thumbnail.height)


@contextmanager
def _decoding() -> Iterator[None]:
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
    with _decoding():
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


def displayed_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size of a `size` image once `orientation` is applied."""
    width, height = size
    return (height, width) if orientation in SWAPS_AXES else (width, height)


def plan_geometry(src_w: int, src_h: int, request: RenderRequest) -> Geometry:
    """Output size and crop for a `src_w` x `src_h` (displayed) source. Never upscales.

    contain: the largest size inside the box with the source's aspect ratio (a free side is
    unbounded), at most the source's size. cover: exactly the box, showing the largest centred
    part of the source with the box's aspect ratio; when that part is smaller than the box it
    is returned as is (a crop, not scaled up). fill: exactly the box, aspect ratio not kept;
    a box larger than the source on either side is first scaled down uniformly until both
    sides fit. Every side is at least 1 px.
    """
    box_w, box_h = request.width, request.height
    if request.fit == "cover":
        assert box_w is not None and box_h is not None
        return _plan_cover(src_w, src_h, box_w, box_h)
    if request.fit == "fill":
        assert box_w is not None and box_h is not None
        if box_w <= src_w and box_h <= src_h:
            return Geometry(box_w, box_h, None)
        if box_w * src_h > box_h * src_w:  # width is the side that overflows most
            return Geometry(src_w, max(1, _div_round(box_h * src_w, box_w)), None)
        return Geometry(max(1, _div_round(box_w * src_h, box_h)), src_h, None)
    # contain: scale by the tighter side, never above 1.
    fits_w = box_w is None or box_w >= src_w
    fits_h = box_h is None or box_h >= src_h
    if fits_w and fits_h:
        return Geometry(src_w, src_h, None)
    if box_h is None or (box_w is not None and box_w * src_h <= box_h * src_w):
        assert box_w is not None
        return Geometry(box_w, max(1, _div_round(src_h * box_w, src_w)), None)
    return Geometry(max(1, _div_round(src_w * box_h, src_h)), box_h, None)


def _plan_cover(src_w: int, src_h: int, box_w: int, box_h: int) -> Geometry:
    if src_w * box_h > src_h * box_w:  # source wider than the box: keep its height
        crop_w, crop_h = max(1, _div_round(src_h * box_w, box_h)), src_h
    else:
        crop_w, crop_h = src_w, max(1, _div_round(src_w * box_h, box_w))
    left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    crop = (left, top, left + crop_w, top + crop_h)
    if crop_w < box_w or crop_h < box_h:
        return Geometry(crop_w, crop_h, crop)
    return Geometry(box_w, box_h, None if crop == (0, 0, src_w, src_h) else crop)


def _div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def decode_size(geometry: Geometry, source_size: tuple[int, int]) -> tuple[int, int]:
    """The smallest whole-source size from which `geometry` can be cut without upscaling.

    For a crop this is the source scaled so the cropped part has the output's size, which is
    larger than the output itself.
    """
    src_w, src_h = source_size
    if geometry.crop is None:
        return geometry.width, geometry.height
    left, top, right, bottom = geometry.crop
    return (
        -(-src_w * geometry.width // (right - left)),  # ceiling division
        -(-src_h * geometry.height // (bottom - top)),
    )


def reduce_on_load(image: Image.Image, size: tuple[int, int], orientation: int) -> Image.Image:
    """Ask the JPEG decoder for the smallest 1/2, 1/4 or 1/8 scale still covering `size`.

    `size` is in displayed orientation; the decoder works before rotation, so the axes swap
    for orientations 5-8. Must run before load(). Other formats are returned untouched.
    libjpeg scales in the DCT domain: a 24 MP photo for a 320 px box decodes at 750x500.
    """
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        image.draft(image.mode, displayed_size(size, orientation))
    return image


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned upright for EXIF `orientation` (the tag itself goes with strip_metadata)."""
    transpose = TRANSPOSES.get(orientation)
    return image if transpose is None else image.transpose(transpose)


def normalize_mode(image: Image.Image) -> Image.Image:
    """`image` as 8-bit L, LA, RGB or RGBA, the modes every later step handles.

    Transparency (a palette or tRNS colour) becomes an alpha channel; CMYK goes to RGB through
    its ICC profile when it has one; 16-bit and 32-bit integers are scaled (65535 -> 255) and
    float is taken as 0.0-1.0. Any ICC profile left in `image.info` describes the result.
    """
    mode = image.mode
    if mode in ("L", "RGB", "1"):
        if "transparency" in image.info:
            return image.convert("RGBA" if mode == "RGB" else "LA")
        return image if mode != "1" else image.convert("L")
    if mode in ("LA", "RGBA"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode == "I" or mode.startswith("I;16"):
        # convert("L") would clip at 255 instead of scaling; +0.5 rounds (point truncates).
        return image.convert("I").point(lambda value: value * (1 / 257) + 0.5).convert("L")
    if mode == "F":
        return image.point(lambda value: value * 255).convert("L")  # F -> L rounds and clips
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")  # La, RGBa, RGBX, YCbCr…


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    profile = image.info.get("icc_profile")
    if profile and _profile_space(profile) == b"CMYK":
        try:
            rgb = ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(BytesIO(profile)), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: Pillow's plain conversion below is better than no image
        else:
            assert rgb is not None
            rgb.info.pop("icc_profile", None)  # the pixels are sRGB now, the untagged default
            return rgb
    rgb = image.convert("RGB")
    rgb.info.pop("icc_profile", None)
    return rgb


def _profile_space(profile: bytes) -> bytes:
    return profile[16:20] if len(profile) >= 128 else b""


def strip_metadata(image: Image.Image) -> bytes | None:
    """Drop all of `image`'s metadata (EXIF, XMP, comments, text chunks); return its ICC profile.

    Pillow's encoders copy some of `image.info` into their output unasked (a JPEG comment, a
    PNG ICC profile), so the dict is emptied rather than relying on save() arguments.
    """
    profile = image.info.get("icc_profile") or None
    image.info = {}
    return profile


def choose_format(requested: str | None, source_format: str | None, mode: str) -> str:
    """The output format: `requested`, else the source's family (TIFF, BMP: jpeg, png with alpha).

    `source_format` is Pillow's decoder name, so the family follows the content, not the file name.
    """
    if requested is not None:
        return requested
    family = SOURCE_FAMILIES.get(source_format or "")
    if family is not None:
        return family
    return "png" if mode in ("LA", "RGBA") else "jpeg"


def resize(image: Image.Image, geometry: Geometry, source_size: tuple[int, int]) -> Image.Image:
    """`image` cut and scaled to `geometry`, which was planned for a `source_size` source.

    `image` may be a reduced-scale decode of that source (reduce_on_load), so the crop box is
    scaled to the pixels at hand; crop and resample are one Lanczos pass. Pillow premultiplies
    alpha while resampling, so transparent edges get no dark fringe.
    """
    crop = geometry.crop or (0, 0, *source_size)
    size = (geometry.width, geometry.height)
    if image.size == source_size and (crop[2] - crop[0], crop[3] - crop[1]) == size:
        return image if geometry.crop is None else image.crop(crop)  # pixel-exact: no resampling
    scale_x, scale_y = image.width / source_size[0], image.height / source_size[1]
    box = (crop[0] * scale_x, crop[1] * scale_y, crop[2] * scale_x, crop[3] * scale_y)
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)


def flatten(image: Image.Image, output_format: str) -> Image.Image:
    """`image` in a mode `output_format` stores.

    JPEG has no alpha: alpha is flattened onto white. WebP and AVIF get RGB(A) for greyscale,
    as their encoders would convert anyway; the explicit mode lets encode() see that a Gray
    ICC profile no longer fits.
    """
    mode = image.mode
    if output_format == "jpeg" and mode in ("LA", "RGBA"):
        background = Image.new(mode[:-1], image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        return background
    if output_format in ("webp", "avif") and mode in ("L", "LA"):
        return image.convert("RGB" if mode == "L" else "RGBA")
    return image


def quality_for(request: RenderRequest, output_format: str) -> int:
    """The URL's quality, else the configured default for `output_format`."""
    if request.quality is not None:
        return request.quality
    return request.qualities.get(output_format, DEFAULT_QUALITIES.get(output_format, 80))


def encode(image: Image.Image, output_format: str, *, quality: int, icc_profile: bytes | None) -> bytes:
    """`image` encoded as `output_format`, tuned for speed; writes no metadata but `icc_profile`.

    The profile is written only when its colour space matches the pixels (an RGB profile on a
    greyscale JPEG, or a Gray one on widened RGB, would be wrong). Raises UndecodableImage when
    the format cannot hold the image (e.g. WebP beyond 16383 px).
    """
    params: dict[str, object] = {
        "jpeg": {"quality": quality, "optimize": False, "progressive": False},
        "png": {"compress_level": 6},
        "webp": {"quality": quality, "method": 4},
        "avif": {"quality": quality, "speed": 8},
    }[output_format]
    if icc_profile and _profile_space(icc_profile) == PROFILE_SPACES.get(image.mode):
        params["icc_profile"] = icc_profile
    buffer = BytesIO()
    try:
        image.save(buffer, output_format.upper(), **params)
    except (OSError, ValueError) as error:
        raise UndecodableImage(
            f"{output_format} encoder: {error}",
            public_message=f"The image cannot be encoded as {output_format.upper()}.",
        ) from error
    return buffer.getvalue()
