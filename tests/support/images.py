"""Deterministic test images, generated in memory.

Plain functions, no pytest: any test module may import them. Every image is small (unless asked
otherwise), built from fixed arithmetic or a seeded generator, and never downloaded. Encoders
return `bytes`; `write(path, data)` puts them on disk for tests that need a file.

The `*_claiming` functions build tiny hostile files whose headers promise a huge canvas; the
other hostile helpers (`eps_bytes`, `psd_bytes`, …) are files that must never be decoded.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageCms, PngImagePlugin

Size = tuple[int, int]
Color = str | int | tuple[int, ...]

EXIF_ORIENTATION = 0x0112


# --- pixels -------------------------------------------------------------------------------


def gradient(size: Size, mode: str = "RGB") -> Image.Image:
    """A smooth, non-flat image: red grows left to right, green top to bottom, blue constant.

    High-bit-depth modes get a full-range horizontal ramp instead: 0..65535 for the integer
    modes ("I;16", "I;16B", "I"), 0.0..1.0 for "F".
    """
    width, height = size
    if mode in ("I;16", "I;16B", "I", "F"):
        return _ramp(size, mode)
    red = Image.linear_gradient("L").rotate(90).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    green = Image.linear_gradient("L")
    blue = Image.new("L", (256, 256), 96)
    rgb = Image.merge("RGB", (red, green, blue)).resize((width, height), Image.Resampling.BILINEAR)
    return rgb.convert(mode) if mode != "RGB" else rgb


def _ramp(size: Size, mode: str) -> Image.Image:
    width, height = size
    top = max(1, width - 1)
    if mode == "F":
        row = [x / top for x in range(width)]
        image = Image.new("F", size)
        image.putdata(row * height)
        return image
    row = [x * 65535 // top for x in range(width)]
    image = Image.new("I", size)
    image.putdata(row * height)
    return image if mode == "I" else image.convert(mode)


def noise(size: Size, *, seed: int = 0) -> Image.Image:
    """Seeded RGB noise: the worst case for an encoder."""
    width, height = size
    data = random.Random(seed).randbytes(width * height * 3)
    return Image.frombytes("RGB", size, data)


def textured(size: Size, *, seed: int = 0, amount: float = 0.25) -> Image.Image:
    """A gradient with `amount` of seeded noise blended in: encodes like a photograph."""
    return Image.blend(gradient(size), noise(size, seed=seed), amount)


def marked(size: Size, *, base: Color = "blue", mark: Color = "red", mode: str = "RGB") -> Image.Image:
    """A flat `base` image whose top-left quarter is `mark`: shows where a corner ends up."""
    width, height = size
    image = Image.new(mode, size, base)
    image.paste(mark, (0, 0, max(1, width // 4), max(1, height // 4)))
    return image


def _pixels(size: Size, mode: str, color: Color | None, image: Image.Image | None) -> Image.Image:
    if image is not None:
        return image
    if color is not None:
        return Image.new(mode, size, color)
    return gradient(size, mode)


# --- metadata -----------------------------------------------------------------------------


def srgb_profile() -> bytes:
    """An sRGB ICC profile, as bytes to embed."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_profile(*, lab: tuple[int, int, int] = (88, -79, 81)) -> bytes:
    """A minimal ICC v2 CMYK output profile that maps EVERY CMYK value to one Lab colour.

    The default Lab is sRGB green. A CMYK image converted through this profile turns green,
    whatever its pixels; a conversion that ignores the profile keeps the pixels' own colours.
    Hand-built because Pillow can only create RGB/Lab profiles and tests never download files.
    """
    lightness, a, b = lab
    pcs_colour = bytes([round(lightness * 255 / 100), a + 128, b + 128])

    def s15f16(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    identity = b"".join(s15f16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    grid_points = 2
    lut8 = (
        b"mft1" + bytes(4) + bytes([4, 3, grid_points, 0]) + identity
        + bytes(range(256)) * 4  # input curves: identity
        + pcs_colour * grid_points**4  # CLUT: every corner is the same colour
        + bytes(range(256)) * 3  # output curves: identity
    )
    d50 = s15f16(0.9642) + s15f16(1.0) + s15f16(0.8249)
    tags = [(b"A2B0", lut8), (b"wtpt", b"XYZ " + bytes(4) + d50)]

    data_start = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    data = b""
    for signature, body in tags:
        data += bytes(-(data_start + len(data)) % 4)
        table += signature + struct.pack(">II", data_start + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", data_start + len(data)) + bytes(4) + struct.pack(">I", 0x02100000)
        + b"prtr" + b"CMYK" + b"Lab " + bytes(12) + b"acsp" + bytes(24) + bytes(4) + d50
        + bytes(4) + bytes(16) + bytes(28)
    )
    return header + table + data


def exif_bytes(*, orientation: int | None = None, comment: str | None = None) -> bytes:
    """An EXIF block with the given Orientation (and ImageDescription), as Pillow writes it."""
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    if comment is not None:
        exif[0x010E] = comment
    return exif.tobytes()


# --- encoders -----------------------------------------------------------------------------


def to_bytes(image: Image.Image, format: str, **params: object) -> bytes:
    """`image` saved as `format` with Pillow's `params`."""
    buffer = BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    """Write `data` to `path` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _metadata(*, icc: bool | bytes, orientation: int | None, exif: bool = False) -> dict[str, object]:
    params: dict[str, object] = {}
    if icc:
        params["icc_profile"] = icc if isinstance(icc, bytes) else srgb_profile()
    if orientation is not None or exif:
        params["exif"] = exif_bytes(orientation=orientation, comment="secret camera serial")
    return params


def jpeg_bytes(
    size: Size = (64, 48),
    *,
    orientation: int | None = None,
    color: Color | None = None,
    mode: str = "RGB",
    quality: int = 90,
    icc: bool | bytes = False,
    exif: bool = False,
    comment: bytes | None = None,
    progressive: bool = False,
    image: Image.Image | None = None,
) -> bytes:
    """A JPEG (mode "RGB", "L" or "CMYK"); `icc=True` embeds sRGB, or pass profile bytes."""
    params = _metadata(icc=icc, orientation=orientation, exif=exif)
    if comment is not None:
        params["comment"] = comment
    pixels = _pixels(size, mode, color, image)
    return to_bytes(pixels, "JPEG", quality=quality, progressive=progressive, **params)


def png_bytes(
    size: Size = (64, 48),
    *,
    mode: str = "RGBA",
    color: Color | None = None,
    icc: bool | bytes = False,
    text: dict[str, str] | None = None,
    transparency: int | tuple[int, ...] | bytes | None = None,
    orientation: int | None = None,
    image: Image.Image | None = None,
) -> bytes:
    """A PNG in any mode Pillow writes (incl. "I;16", "1", "P"), with optional tEXt chunks."""
    params = _metadata(icc=icc, orientation=orientation)
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        params["pnginfo"] = info
    if transparency is not None:
        params["transparency"] = transparency
    return to_bytes(_pixels(size, mode, color, image), "PNG", **params)


def gif_bytes(
    frames: Sequence[Color] = ("red", "lime", "blue"),
    *,
    size: Size = (32, 24),
    transparent: bool = False,
) -> bytes:
    """An animated GIF: one flat frame per colour. `transparent` clears the first frame's right half."""
    images = [Image.new("RGBA", size, colour) for colour in frames]
    if transparent:
        width, height = size
        images[0].paste((0, 0, 0, 0), (width // 2, 0, width, height))
    return to_bytes(images[0], "GIF", save_all=True, append_images=images[1:], duration=100, loop=0, disposal=2)


def gif_with_many_frames(count: int, *, size: Size = (8, 8)) -> bytes:
    """A GIF of `count` frames built by byte repetition (fast even for 10,000 frames).

    Frame 0 is palette index 0 (red); every later frame is index 1 (blue).
    """
    width, height = size
    palette = bytes([255, 0, 0, 0, 0, 255])  # 2 colours: red, blue
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + palette

    def frame(index: int) -> bytes:
        # LZW with 2-bit minimum code size: clear code (4) before every two pixels keeps the
        # table from growing, so every code stays 3 bits wide; 5 ends the stream.
        codes = []
        for n in range(width * height):
            if n % 2 == 0:
                codes.append(4)
            codes.append(index)
        codes.append(5)
        packed = sum(code << (3 * n) for n, code in enumerate(codes))  # GIF packs LSB first
        raw = packed.to_bytes((3 * len(codes) + 7) // 8, "little")
        blocks = b"".join(bytes([len(raw[i : i + 255])]) + raw[i : i + 255] for i in range(0, len(raw), 255))
        control = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 100 ms, no transparency
        descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        return control + descriptor + b"\x02" + blocks + b"\x00"

    return header + frame(0) + frame(1) * (count - 1) + b"\x3b"


def webp_bytes(
    size: Size = (64, 48),
    *,
    mode: str = "RGB",
    color: Color | None = None,
    frames: Sequence[Color] | None = None,
    lossless: bool = False,
    quality: int = 90,
    icc: bool | bytes = False,
    orientation: int | None = None,
    image: Image.Image | None = None,
) -> bytes:
    """A WebP ("RGB" or "RGBA"); `frames` makes an animated one with one flat frame per colour."""
    params = _metadata(icc=icc, orientation=orientation)
    if frames:
        images = [Image.new(mode, size, colour) for colour in frames]
        return to_bytes(
            images[0], "WEBP", save_all=True, append_images=images[1:], duration=100, lossless=lossless, **params
        )
    return to_bytes(_pixels(size, mode, color, image), "WEBP", lossless=lossless, quality=quality, **params)


def avif_bytes(
    size: Size = (64, 48),
    *,
    mode: str = "RGB",
    color: Color | None = None,
    icc: bool | bytes = False,
    orientation: int | None = None,
    image: Image.Image | None = None,
) -> bytes:
    """An AVIF ("RGB" or "RGBA"), encoded at the fastest speed."""
    params = _metadata(icc=icc, orientation=orientation)
    return to_bytes(_pixels(size, mode, color, image), "AVIF", quality=90, speed=10, **params)


def tiff_bytes(
    size: Size = (64, 48),
    *,
    mode: str = "RGB",
    color: Color | None = None,
    icc: bool | bytes = False,
    image: Image.Image | None = None,
) -> bytes:
    """A TIFF in any mode Pillow writes: "RGB", "RGBA", "CMYK", "I;16", "I;16B", "F", "1"…"""
    params = _metadata(icc=icc, orientation=None)
    return to_bytes(_pixels(size, mode, color, image), "TIFF", **params)


def bmp_bytes(
    size: Size = (64, 48),
    *,
    mode: str = "RGB",
    color: Color | None = None,
    image: Image.Image | None = None,
) -> bytes:
    """A BMP ("RGB", "L", "P" or "1")."""
    return to_bytes(_pixels(size, mode, color, image), "BMP")


# --- hostile files ------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose IHDR (valid CRC) claims width x height RGB, with one row of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + bytes(3 * min(width, 16)))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_text_bomb(decompressed: int = 4_000_000) -> bytes:
    """A valid 8x8 PNG with a zTXt chunk of a few KB that inflates to `decompressed` bytes."""
    plain = png_bytes((8, 8), mode="RGB")
    ztxt = _png_chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(bytes(decompressed)))
    after_ihdr = 8 + 25  # signature, then the IHDR chunk (13 bytes of data, 12 of framing)
    return plain[:after_ihdr] + ztxt + plain[after_ihdr:]


def gif_claiming(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame claim width x height (no pixel data to match)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def bmp_claiming(width: int, height: int) -> bytes:
    """A 54-byte BMP whose info header claims width x height at 24 bits, with no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def tiff_claiming(width: int, height: int) -> bytes:
    """A small uncompressed TIFF whose ImageWidth/ImageLength tags are patched to width x height."""
    data = bytearray(to_bytes(Image.new("L", (4, 4), 128), "TIFF"))
    assert data[:4] == b"II*\x00", "Pillow writes little-endian TIFF"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for n in range(count):
        entry = ifd + 2 + 12 * n
        tag, _kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            struct.pack_into("<HHII", data, entry, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small baseline JPEG whose SOF0 segment is patched to claim width x height."""
    data = bytearray(jpeg_bytes((16, 16), color="gray"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A WebP with a VP8X header claiming a width x height canvas around a 16x16 lossy frame."""
    frame = webp_bytes((16, 16), color="gray")
    vp8 = frame[12:]  # the "VP8 " chunk of a simple lossy file
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + canvas
    body = b"WEBP" + vp8x + vp8
    return b"RIFF" + struct.pack("<I", len(body)) + body


def truncated(data: bytes, *, keep: float = 0.5) -> bytes:
    """The first `keep` fraction of `data`."""
    return data[: int(len(data) * keep)]


def eps_bytes() -> bytes:
    """A minimal Encapsulated PostScript file: must never reach Ghostscript."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n%%EndComments\n"
        b"newpath 0 0 moveto 100 100 lineto stroke\nshowpage\n%%EOF\n"
    )


def pdf_bytes() -> bytes:
    """The start of a PDF file."""
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def psd_bytes(size: Size = (64, 48)) -> bytes:
    """A Photoshop header (8BPS, version 1, 3 channels, 8-bit RGB) and empty sections."""
    width, height = size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + bytes(3 * width * height)


def html_bytes() -> bytes:
    """An HTML page, as served by mistake under an image name."""
    return b"<!doctype html><html><head><title>x</title></head><body><script>alert(1)</script></body></html>\n"


# --- header-parsing bombs: tiny pixel counts, millions of container structures ---------------

#: Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED,
#: SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD, LONG8, SLONG8, IFD8).
TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def tiff_header_size(*, bigtiff: bool = False) -> int:
    """Where `tiff_with_tags` puts the pixels: right after the header."""
    return 16 if bigtiff else 8


def tiff_with_tags(tags: dict[int, tuple[int, bytes]], *, pixels: bytes = b"", bigtiff: bool = False) -> bytes:
    """A little-endian TIFF (or BigTIFF) built by hand, for files Pillow refuses to write.

    Layout: header, `pixels` (at `tiff_header_size()`), out-of-line tag values, then the one IFD.
    `tags` maps a tag to (field type, its values packed little-endian); the count is derived.
    """
    header_size = tiff_header_size(bigtiff=bigtiff)
    inline = 8 if bigtiff else 4
    body = bytearray(pixels)
    entries = []
    for tag in sorted(tags):
        kind, values = tags[tag]
        count = len(values) // TIFF_TYPE_SIZES[kind]
        if len(values) <= inline:
            field = values.ljust(inline, b"\x00")
        else:
            field = struct.pack("<Q" if bigtiff else "<I", header_size + len(body))
            body += values + bytes(len(values) % 2)  # values start on a word boundary
        entries.append(struct.pack("<HHQ" if bigtiff else "<HHI", tag, kind, count) + field)
    ifd_offset = header_size + len(body)
    if bigtiff:
        header = b"II+\x00" + struct.pack("<HHQ", 8, 0, ifd_offset)
        ifd = struct.pack("<Q", len(entries)) + b"".join(entries) + struct.pack("<Q", 0)
    else:
        header = b"II*\x00" + struct.pack("<I", ifd_offset)
        ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return header + bytes(body) + ifd


def _tiff_grey_tags(width: int, height: int, **tags: tuple[int, bytes]) -> dict[int, tuple[int, bytes]]:
    """The tags of an uncompressed 8-bit greyscale image, plus `tags` (keyed "t273"…)."""
    base = {
        256: (4, struct.pack("<I", width)), 257: (4, struct.pack("<I", height)), 258: (3, struct.pack("<H", 8)),
        259: (3, struct.pack("<H", 1)), 262: (3, struct.pack("<H", 1)), 277: (3, struct.pack("<H", 1)),
    }
    return {**base, **{int(name[1:]): value for name, value in tags.items()}}


def tiff_strip_bomb(strips: int = 2_000_000) -> bytes:
    """A ~2 MB uncompressed 1x2 TIFF, RowsPerStrip=1, with `strips` StripOffsets (BYTE values).

    The image needs 2 strips; Pillow makes one tile of every offset and walks them in Python.
    """
    pixels_at = tiff_header_size()
    tags = _tiff_grey_tags(
        1, 2,
        t273=(1, bytes([pixels_at, pixels_at + 1]) * (strips // 2)),
        t278=(3, struct.pack("<H", 1)),
        t279=(3, struct.pack("<HH", 1, 1)),
    )
    return tiff_with_tags(tags, pixels=b"\x40\xc0")


def tiff_tile_bomb(tiles: int = 2_000_000) -> bytes:
    """An uncompressed 32x32 TIFF of 16x16 tiles (4 needed) listing `tiles` TileOffsets, all to
    one tile of pixels."""
    pixels_at = tiff_header_size()
    tags = _tiff_grey_tags(
        32, 32,
        t322=(3, struct.pack("<H", 16)), t323=(3, struct.pack("<H", 16)),
        t324=(4, struct.pack("<I", pixels_at) * tiles), t325=(4, struct.pack("<I", 256) * tiles),
    )
    return tiff_with_tags(tags, pixels=bytes(range(256)))


def bigtiff_overflow() -> bytes:
    """A ~200-byte 1x1 BigTIFF whose one StripOffsets value is 2**64 - 1."""
    tags = _tiff_grey_tags(
        1, 1, t273=(16, struct.pack("<Q", 2**64 - 1)), t278=(4, struct.pack("<I", 1)), t279=(16, struct.pack("<Q", 1)),
    )
    return tiff_with_tags(tags, pixels=b"\x80", bigtiff=True)


def jpeg_marker_bomb(markers: int = 2_500_000) -> bytes:
    """A ~10 MB JPEG: `markers` empty APP1 segments between SOI and a 1x1 image's own segments."""
    image = jpeg_bytes((1, 1), color="gray")
    return image[:2] + b"\xff\xe1\x00\x02" * markers + image[2:]


def png_chunk_bomb(chunks: int = 830_000) -> bytes:
    """A ~10 MB PNG: `chunks` empty private ancillary chunks (valid CRCs) after a 1x1 image's IHDR."""
    image = png_bytes((1, 1), mode="RGB")
    after_ihdr = 8 + 25
    return image[:after_ihdr] + _png_chunk(b"prVt", b"") * chunks + image[after_ihdr:]


def progressive_jpeg_scans(data: bytes) -> list[bytes]:
    """The scans of a JPEG, each from its SOS marker to the next scan or the EOI (a byte search:
    SOS never occurs inside entropy-coded data, so this is exact for Pillow's files)."""
    starts = []
    at = data.find(b"\xff\xda")
    while at >= 0:
        starts.append(at)
        at = data.find(b"\xff\xda", at + 2)
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data) - 2])]


def jpeg_scan_bomb(size: Size = (7000, 7000), scans: int = 100, *, mode: str = "L") -> bytes:
    """A decodable progressive JPEG of `size` with exactly `scans` scans: Pillow's own file, its
    smallest refinement scan repeated (libjpeg accepts, and walks every block once per scan)."""
    data = jpeg_bytes(size, color="gray" if mode == "L" else (128, 128, 128), mode=mode, progressive=True, quality=50)
    own = progressive_jpeg_scans(data)
    assert len(own) <= scans, f"Pillow wrote {len(own)} scans"
    smallest = min(own[1:], key=len)
    return data[:-2] + smallest * (scans - len(own)) + data[-2:]


def jpeg_fill_bomb(fill: int = 8_000_000) -> bytes:
    """A 1x1 JPEG with `fill` 0xFF fill bytes after its APP0 segment: Pillow steps over each."""
    image = jpeg_bytes((1, 1), color="gray")
    (app0,) = struct.unpack(">H", image[4:6])
    return image[: 4 + app0] + b"\xff" * fill + image[4 + app0 :]


def png_idat_bomb(chunks: int = 800_000) -> bytes:
    """A 1x1 PNG whose image data is preceded by `chunks` empty IDAT chunks."""
    image = png_bytes((1, 1), mode="RGB")
    at = image.index(b"IDAT") - 4
    return image[:at] + _png_chunk(b"IDAT", b"") * chunks + image[at:]


def png_trailing_chunk_bomb(chunks: int = 800_000) -> bytes:
    """A 1x1 PNG with `chunks` empty private chunks between its image data and IEND."""
    image = png_bytes((1, 1), mode="RGB")
    at = image.index(b"IEND") - 4
    return image[:at] + _png_chunk(b"prVt", b"") * chunks + image[at:]


def png_rechunked(data: bytes, *, idat: int = 8192) -> bytes:
    """`data` (a PNG) with its image data split into `idat`-byte IDAT chunks, as libpng writes."""
    pos, head, parts, tail = 8, [], [], []
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunk = data[pos : pos + 12 + length]
        if kind == b"IDAT":
            parts.append(chunk[8:-4])
        elif parts:
            tail.append(chunk)
        else:
            head.append(chunk)
        pos += 12 + length
    pixels = b"".join(parts)
    idats = [_png_chunk(b"IDAT", pixels[n : n + idat]) for n in range(0, len(pixels), idat)]
    return data[:8] + b"".join(head + idats + tail)


def apng_bytes(frames: Sequence[Color], *, size: Size = (8, 8)) -> bytes:
    """An animated PNG, one flat frame per colour (each frame is an fcTL and an fdAT chunk)."""
    images = [Image.new("RGB", size, colour) for colour in frames]
    return to_bytes(images[0], "PNG", save_all=True, append_images=images[1:], duration=40)


def gif_comment_bomb(blocks: int = 4_000_000) -> bytes:
    """A 1x1 GIF with a comment of `blocks` one-byte sub-blocks before its image."""
    image = gif_bytes(("red",), size=(1, 1))
    at = image.index(b"\x21\xf9")  # the frame's graphic control extension
    return image[:at] + b"\x21\xfe" + b"\x01x" * blocks + b"\x00" + image[at:]


def bmp_rle8_bytes(rows: Sequence[bytes]) -> bytes:
    """A bottom-up RLE8 BMP of 2 palette colours (0 black, 1 white) whose `rows` are given top
    first, each as encoded (count, index) runs; an end of line is appended to each. The width is
    the first row's pixel count."""
    width = sum(rows[0][0::2])
    runs = b"".join(row + b"\x00\x00" for row in reversed(rows)) + b"\x00\x01"
    info = struct.pack("<IiiHHIIiiII", 40, width, len(rows), 1, 8, 1, len(runs), 2835, 2835, 2, 0)
    palette = bytes([0, 0, 0, 0, 255, 255, 255, 0])
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(runs), 0, 0, offset) + info + palette + runs


def bmp_rle_bomb(runs: int = 4_000_000) -> bytes:
    """A 1x2 RLE8 BMP followed by `runs` runs past the end of its row: Pillow's Python RLE
    decoder reads each and adds nothing."""
    return bmp_rle8_bytes([b"\x01\x01", b"\x01\x00" + b"\x01\x01" * runs])


def tiff_tiled_bytes(size: Size = (40, 24), *, tile: int = 16) -> bytes:
    """An uncompressed greyscale TIFF in `tile` x `tile` tiles (Pillow writes strips only),
    pixel (x, y) = (x * 5 + y * 3) % 256, edge tiles padded as the format wants."""
    width, height = size
    across, down = -(-width // tile), -(-height // tile)
    pixels = bytearray()
    for ty in range(down):
        for tx in range(across):
            for y in range(ty * tile, ty * tile + tile):
                pixels += bytes(((x * 5 + y * 3) % 256 if x < width and y < height else 0) for x in range(tx * tile, tx * tile + tile))
    at, tiles = tiff_header_size(), across * down
    tags = _tiff_grey_tags(
        width, height,
        t322=(3, struct.pack("<H", tile)), t323=(3, struct.pack("<H", tile)),
        t324=(4, b"".join(struct.pack("<I", at + n * tile * tile) for n in range(tiles))),
        t325=(4, struct.pack("<I", tile * tile) * tiles),
    )
    return tiff_with_tags(tags, pixels=bytes(pixels))


def tiff_exif_bomb(values: int = 4_000_000) -> bytes:
    """A 1x1 TIFF whose EXIF IFD holds one SHORT tag of `values` values: Pillow makes a tuple of
    them all when it loads the EXIF IFD after decoding."""
    at = tiff_header_size()
    placeholder = b"EXIF"
    tags = _tiff_grey_tags(1, 1, t273=(4, struct.pack("<I", at)), t279=(4, struct.pack("<I", 1)), t34665=(4, placeholder))
    head = tiff_with_tags(tags, pixels=b"\x80")
    exif_at = len(head)
    array_at = exif_at + 2 + 12 + 4
    exif = struct.pack("<HHHII", 1, 0x9286, 3, values, array_at) + struct.pack("<I", 0) + b"\x01\x00" * values
    return head.replace(placeholder, struct.pack("<I", exif_at), 1) + exif


def tiff_page_bomb(pages: int = 200_000) -> bytes:
    """A 4x4 TIFF followed by a chain of `pages` one-entry IFDs."""
    data = bytearray(tiff_bytes((4, 4), mode="L"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    start = len(data)
    struct.pack_into("<I", data, ifd + 2 + 12 * count, start)
    page_size = 2 + 12 + 4

    def page(n: int) -> bytes:
        following = start + (n + 1) * page_size if n + 1 < pages else 0
        return struct.pack("<HHHII", 1, 256, 4, 1, 4) + struct.pack("<I", following)

    return bytes(data) + b"".join(page(n) for n in range(pages))


def webp_chunk_bomb(chunks: int = 800_000) -> bytes:
    """A 16x16 WebP (VP8X) with `chunks` empty unknown chunks after its image."""
    image = webp_bytes((16, 16), color="gray", icc=True)
    body = image[8:] + b"XTRA\x00\x00\x00\x00" * chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- images whose right crop, filter or animation is known (the features of issue 12) --------


def subject_at(size: Size, point: tuple[float, float], *, subject: int = 16, base: Color = (20, 20, 40)) -> Image.Image:
    """A dark image with a white `subject` px square centred on `point` (fractions of the sides),
    kept inside the image: where a gravity or focal point should keep it."""
    width, height = size
    image = Image.new("RGB", size, base)
    left = min(max(round(point[0] * width) - subject // 2, 0), width - subject)
    top = min(max(round(point[1] * height) - subject // 2, 0), height - subject)
    image.paste((255, 255, 255), (left, top, left + subject, top + subject))
    return image


def detail_on_flat(size: Size, box: tuple[int, int, int, int], *, seed: int = 0) -> Image.Image:
    """A flat grey image with seeded noise inside `box` (left, top, right, bottom): the one
    detailed region a smart crop should find."""
    image = Image.new("RGB", size, (128, 128, 128))
    image.paste(noise((box[2] - box[0], box[3] - box[1]), seed=seed), box[:2])
    return image


def step_edge(size: Size, *, low: int = 0, high: int = 255) -> Image.Image:
    """Greyscale RGB: `low` left of the vertical centre line, `high` right of it (a known edge)."""
    width, height = size
    image = Image.new("RGB", size, (low,) * 3)
    image.paste((high,) * 3, (width // 2, 0, width, height))
    return image


#: Frame colours of `numbered_animation`: far apart, so each survives GIF palettes and lossy WebP.
FRAME_COLOURS = ((230, 30, 30), (30, 200, 30), (30, 30, 230), (230, 200, 30), (200, 30, 200), (30, 200, 200))


def numbered_animation(
    format: str,
    *,
    frames: int = 4,
    size: Size = (64, 48),
    durations: Sequence[int] = (100, 200, 300, 400, 500, 600),
    loop: int | None = 3,
    transparent: bool = False,
) -> bytes:
    """An animated GIF or WebP: frame i is FRAME_COLOURS[i] with a white 8x8 mark at x = 8 * i
    (its number), shown durations[i] ms; `transparent` clears the right quarter of every frame."""
    width, height = size
    pictures = []
    for index in range(frames):
        picture = Image.new("RGBA", size, FRAME_COLOURS[index % len(FRAME_COLOURS)] + (255,))
        picture.paste((255, 255, 255, 255), (8 * index, 0, 8 * index + 8, 8))
        if transparent:
            picture.paste((0, 0, 0, 0), (width * 3 // 4, 0, width, height))
        pictures.append(picture)
    params: dict[str, object] = {"save_all": True, "append_images": pictures[1:], "duration": list(durations[:frames])}
    if loop is not None:
        params["loop"] = loop
    if format.upper() == "GIF":
        params["disposal"] = 2 if transparent else 1
        return to_bytes(pictures[0], "GIF", **params)
    params["lossless"] = True
    data = to_bytes(pictures[0], "WEBP", **params)
    # libwebp leaves the VP8X alpha flag clear when it crops the transparency off every frame
    # (see server/imaging/encode.py); the source must say it has alpha, as real ones do.
    return data[:20] + bytes([data[20] | 0x10]) + data[21:] if transparent else data
