"""Facts about a source for `/info` and the gallery: displayed size, format, frames, alpha,
orientation, a dominant colour and a BlurHash, from one small decode.

A JPEG is decoded at its smallest DCT scale (1/8) still covering `SAMPLE_SIDE`; other formats
decode once, then everything is computed on a copy at most `SAMPLE_SIDE` pixels a side, turned
upright, so the placeholder has the shape and orientation the page will show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from server.formats import format_for_decoder
from server.imaging.decode import SourceLimits, decoding, open_source, read_orientation, reduce_on_load
from server.imaging.errors import UndecodableImage
from server.imaging.geometry import displayed_size
from server.imaging.steps import normalize_mode, orient

#: Bump when what read_facts computes changes: the info's ETag and cache keys name it.
FACTS_VERSION = "1"
#: The side of the small copy the colour and BlurHash are computed on.
SAMPLE_SIDE = 64
#: The side of the copy the BlurHash is computed on (a 4x3 hash cannot tell more pixels apart).
BLURHASH_SIDE = 32
#: BlurHash components across and down (DESIGN.md §Info: 4x3).
BLURHASH_COMPONENTS = (4, 3)
# Semi-transparent pixels count by their opacity; a pixel more transparent than this not at all.
_MIN_ALPHA = 16


@dataclass(frozen=True, slots=True)
class Facts:
    """What a source is, as a page would display it."""

    width: int
    height: int
    format: str
    media_type: str
    frames: int
    animated: bool
    has_alpha: bool
    orientation: int
    dominant_color: str
    blurhash: str


def facts_peak(header: Image.Image, source_bytes: int) -> int:
    """The most memory `read_facts` holds for an opened (not yet loaded) source, at the decoder's
    scale, at 4 bytes a pixel, times 3 for the copies alive at once (decoded, mode-normalised,
    RGBA: as the thumbnail pipeline counts its overlap), plus the source's bytes."""
    width, height = header.size
    return width * height * 4 * 3 + source_bytes


def open_for_facts(data: bytes, limits: SourceLimits) -> tuple[Image.Image, tuple[int, int]]:
    """The source opened with its limits checked and (a JPEG) set to decode small; and its full
    stored size. Reads the header only."""
    header = open_source(data, limits)
    stored_size = header.size
    reduce_on_load(header, (SAMPLE_SIDE, SAMPLE_SIDE), 1)
    return header, stored_size


def read_facts(image: Image.Image, stored_size: tuple[int, int]) -> Facts:
    """The facts of a source opened by `open_for_facts`. Raises `ImageError`."""
    found = format_for_decoder(image.format)
    if found is None:  # open_source only lets the registry's decoders through
        raise UndecodableImage(f"decoder {image.format} has no format")
    with decoding():
        frames = max(1, int(getattr(image, "n_frames", 1)))
        orientation = read_orientation(image)
        image.load()
        has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
        sample = normalize_mode(image).convert("RGBA")
        sample.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.BOX)
        sample = orient(sample, orientation)
    width, height = displayed_size(stored_size, orientation)
    small = sample.copy()
    small.thumbnail((BLURHASH_SIDE, BLURHASH_SIDE), Image.Resampling.BOX)
    return Facts(
        width=width,
        height=height,
        format=found.name,
        media_type=found.media_type,
        frames=frames,
        animated=frames > 1,
        has_alpha=has_alpha,
        orientation=orientation,
        dominant_color=dominant_color(sample),
        blurhash=blurhash(_on_white(rgba_pixels(small)), small.width, small.height),
    )


def dominant_color(image: Image.Image) -> str:
    """`#rrggbb`: the average of the most populous of up to 8 colour clusters (median cut) of an
    RGBA image's visible pixels; white when no pixel is visible."""
    visible = [p[:3] for p in rgba_pixels(image) if p[3] >= _MIN_ALPHA]
    if not visible:
        return "#ffffff"
    strip = Image.new("RGB", (len(visible), 1))
    strip.putdata(visible)
    quantized = strip.quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    _count, index = max(quantized.getcolors(8) or [(1, 0)])
    red, green, blue = palette[3 * index : 3 * index + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"


def rgba_pixels(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """The pixels of an RGBA image, row by row."""
    data = image.tobytes()
    return list(zip(data[0::4], data[1::4], data[2::4], data[3::4], strict=True))


def _on_white(pixels: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int]]:
    """RGBA pixels composited on white, as a page's default background shows them."""
    return [
        (r, g, b) if a == 255 else tuple((c * a + 255 * (255 - a) + 127) // 255 for c in (r, g, b))  # type: ignore[misc]
        for r, g, b, a in pixels
    ]


# --- BlurHash (https://github.com/woltapp/blurhash/blob/master/Algorithm.md) ---------------------

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[value // 83 ** (length - 1 - i) % 83] for i in range(length))


def _to_linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    return int(v * 12.92 * 255 + 0.5) if v <= 0.0031308 else int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _sign_sqrt(value: float) -> float:
    return math.copysign(math.sqrt(abs(value)), value)


def blurhash(pixels: list[tuple[int, int, int]], width: int, height: int,
             components: tuple[int, int] = BLURHASH_COMPONENTS) -> str:
    """The BlurHash of `width` x `height` RGB `pixels` (row by row), as the reference encoder
    (woltapp/blurhash C/encode.c) computes it."""
    cx, cy = components
    if not (1 <= cx <= 9 and 1 <= cy <= 9) or len(pixels) != width * height or not pixels:
        raise ValueError("1..9 components and width x height pixels are needed")
    linear = [tuple(_to_linear(c) for c in p) for p in pixels]
    cos_x = [[math.cos(math.pi * i * x / width) for x in range(width)] for i in range(cx)]
    cos_y = [[math.cos(math.pi * j * y / height) for y in range(height)] for j in range(cy)]
    factors = []
    for j in range(cy):
        for i in range(cx):
            r = g = b = 0.0
            for y in range(height):
                row, weight_y = y * width, cos_y[j][y]
                for x in range(width):
                    basis = cos_x[i][x] * weight_y
                    lr, lg, lb = linear[row + x]
                    r, g, b = r + basis * lr, g + basis * lg, b + basis * lb
            scale = (1 if i == j == 0 else 2) / (width * height)
            factors.append((r * scale, g * scale, b * scale))
    dc, ac = factors[0], factors[1:]
    text = _base83((cx - 1) + (cy - 1) * 9, 1)
    if ac:
        quantised = max(0, min(82, math.floor(max(abs(c) for f in ac for c in f) * 166 - 0.5)))
        maximum = (quantised + 1) / 166
        text += _base83(quantised, 1)
    else:
        maximum = 1.0
        text += _base83(0, 1)
    text += _base83((_to_srgb(dc[0]) << 16) + (_to_srgb(dc[1]) << 8) + _to_srgb(dc[2]), 4)
    for factor in ac:
        r, g, b = (max(0, min(18, math.floor(_sign_sqrt(c / maximum) * 9 + 9.5))) for c in factor)
        text += _base83(r * 19 * 19 + g * 19 + b, 2)
    return text
