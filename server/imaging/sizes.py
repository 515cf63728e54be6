"""Displayed sizes for the gallery's grid, from a bounded prefix of each source: no pixel decoded.

    displayed_size_of(prefix, total, limits, read_at)   (width, height) as shown, or None

The prefix (`PREFIX_BYTES`, or the whole file when smaller) goes through `open_source`, as every
source does: the container scan first (it follows only what the bytes hold, so a prefix is
scanned like a short file), then Pillow with the decoder allow-list and the pixel limit. The
size is the header's, turned as the EXIF orientation turns it, so it equals `/info`'s.

Where the prefix does not tell, two formats are read a little further, bounded:
- a PNG may keep its eXIf chunk after the image data: the chunks after IDAT are walked by their
  headers (8 bytes each, read with `read_at`, no more of them than the container scan allows);
  an eXIf chunk found there is read (at most `MAX_TRAILING_EXIF_BYTES`);
- a WebP's demuxer wants the whole file: its size is read as Pillow reads it before the demuxer
  (`WebPImagePlugin._get_size`: the first chunk's canvas or frame header), after the container
  scan of the prefix and the pixel limit; an extended one (VP8X) has its chunks walked by their
  headers to the EXIF and XMP chunks the demuxer would hand Pillow, and the orientation is read
  from them as `Image.getexif` reads it;
- otherwise the answer is None ("size unknown"), never a guess: the header lies past the prefix
  (a JPEG whose frame header follows large APP segments), libavif wants the whole file (AVIF),
  or a PNG has a text chunk that may hold an orientation (XMP, ImageMagick's raw EXIF profile)
  after its image data, which Pillow would read only after decoding.

A file whose header is sound but whose data is damaged gets its header's size: nothing is
decoded to find out.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from PIL import Image, PngImagePlugin

from server.imaging.decode import EXIF_ORIENTATION, TRANSPOSES, SourceLimits, decoding, open_source
from server.imaging.errors import ImageError
from server.imaging.geometry import displayed_size
from server.imaging.errors import SourceTooLarge
from server.imaging.scan import MAX_PNG_CHUNKS, MAX_WEBP_CHUNKS, PNG_BYTES_PER_CHUNK, scan_container

#: Bytes of a source read to learn its size: room for camera JPEGs' EXIF thumbnail, ICC profile
#: and XMP before the frame header, and the whole of most web images.
PREFIX_BYTES = 256 * 1024
#: The most an eXIf chunk after a PNG's image data may hold to be read (a real one: a few KB).
MAX_TRAILING_EXIF_BYTES = 256 * 1024
#: What one file's size-finding holds at once: its prefix, Pillow's header objects and an eXIf
#: chunk, with a margin (announced once per batch: files are done one after another).
SIZE_PEAK_BYTES = 4 * PREFIX_BYTES + MAX_TRAILING_EXIF_BYTES + (1 << 20)

# Text chunks whose keyword may carry an orientation that Pillow would read after loading.
_ORIENTING_KEYWORDS = (b"XML:com.adobe.xmp", b"Raw profile type exif")
_PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')  # as Image.getexif reads XMP

ReadAt = Callable[[int, int], bytes]


def displayed_size_of(prefix: bytes, total: int, limits: SourceLimits, read_at: ReadAt) -> tuple[int, int] | None:
    """The size a viewer shows a source as, from `prefix` (its first bytes) and, for a PNG's
    chunks after the image data, `read_at(offset, n)`; `total` is the file's length. None when
    the prefix does not tell, or the source is not one the server would render."""
    if total > limits.max_bytes or not prefix:
        return None
    whole = len(prefix) >= total
    if not whole and prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        try:
            with decoding():
                return _webp_size(prefix, total, limits, read_at)
        except ImageError:
            return None
    try:
        image = open_source(prefix, limits)
        with decoding():
            orientation = _orientation(image, prefix, total, read_at)
    except ImageError:
        return None
    if orientation is None:
        return None
    if orientation == 0:  # EXIF present but unreadable from what was read
        if not whole:
            return None
        orientation = 1  # as read_orientation: broken EXIF is ignored, as browsers do
    return displayed_size(image.size, orientation)


def _orientation(image: Image.Image, prefix: bytes, total: int, read_at: ReadAt) -> int | None:
    """1..8; 0 when EXIF is there but unreadable; None when it cannot be known without more."""
    if isinstance(image, PngImagePlugin.PngImageFile) and "exif" not in image.info:
        trailing = _png_trailing_exif(prefix, total, read_at)
        if trailing is None:
            return None
        if trailing:
            image.info["exif"] = b"Exif\x00\x00" + trailing  # as Pillow's chunk_eXIf stores it
    try:
        # The base class's getexif: PngImageFile's would load the pixels when "exif" is absent.
        orientation = Image.Image.getexif(image).get(EXIF_ORIENTATION, 1)
    except MemoryError:
        raise
    except Exception:
        return 0
    return orientation if orientation in TRANSPOSES else 1


def _png_trailing_exif(prefix: bytes, total: int, read_at: ReadAt) -> bytes | None:
    """The body of an eXIf chunk after the first IDAT (b"" when there is none), from the chunk
    headers to IEND; None when that cannot be known within the bounds, or a text chunk there
    may hold an orientation."""
    most = MAX_PNG_CHUNKS + total // PNG_BYTES_PER_CHUNK
    pos, chunks, after_image = 8, 0, False

    def read(offset: int, size: int) -> bytes:
        if offset + size <= len(prefix):
            return prefix[offset : offset + size]
        return read_at(offset, size)

    while pos + 12 <= total:
        chunks += 1
        if chunks > most:
            return None
        head = read(pos, 8)
        if len(head) != 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            return b""
        if kind == b"IDAT":
            after_image = True
        elif after_image and kind == b"eXIf":
            if length > MAX_TRAILING_EXIF_BYTES:
                return None
            body = read(pos + 8, length)
            return body if len(body) == length else None
        elif after_image and kind in _PNG_TEXT:
            keyword = read(pos + 8, min(length, 80)).partition(b"\x00")[0]
            if keyword in _ORIENTING_KEYWORDS:
                return None
        pos += 12 + length
    return b""  # the file ends without IEND: Pillow stops there too


def _webp_size(prefix: bytes, total: int, limits: SourceLimits, read_at: ReadAt) -> tuple[int, int] | None:
    """The displayed size of a WebP larger than `prefix`, as Pillow would find it."""
    scan_container(prefix, limits)
    chunk = prefix[12:16]
    if chunk == b"VP8 " and len(prefix) >= 30 and prefix[23:26] == b"\x9d\x01\x2a":
        width, height = (int.from_bytes(prefix[at : at + 2], "little") & 0x3FFF for at in (26, 28))
    elif chunk == b"VP8X" and len(prefix) >= 30:
        width, height = (int.from_bytes(prefix[at : at + 3], "little") + 1 for at in (24, 27))
    elif chunk == b"VP8L" and len(prefix) >= 25 and prefix[20] == 0x2F:
        bits = int.from_bytes(prefix[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        return None
    if not width or not height:
        return None
    if width * height > limits.max_pixels:
        raise SourceTooLarge.pixels(width, height, limits.max_pixels)
    if chunk != b"VP8X":  # the simple format: one image chunk, no metadata
        return (width, height)
    metadata = _webp_metadata(prefix, total, read_at)
    if metadata is None:
        return None
    return displayed_size((width, height), _orientation_of(*metadata))


def _webp_metadata(prefix: bytes, total: int, read_at: ReadAt) -> tuple[bytes, bytes] | None:
    """The first EXIF and XMP chunks' bodies (b"" when absent) of an extended WebP, from its
    chunk headers; None when they cannot be read within the bounds."""
    end = min(total, 8 + int.from_bytes(prefix[4:8], "little"))
    found = {b"EXIF": b"", b"XMP ": b""}
    pos, chunks = 12, 0
    while pos + 8 <= end:
        chunks += 1
        if chunks > MAX_WEBP_CHUNKS:
            return None
        head = prefix[pos : pos + 8] if pos + 8 <= len(prefix) else read_at(pos, 8)
        if len(head) != 8:
            return None
        kind, length = head[:4], int.from_bytes(head[4:8], "little")
        if kind in found and not found[kind]:
            if length > MAX_TRAILING_EXIF_BYTES:
                return None
            body = prefix[pos + 8 : pos + 8 + length] if pos + 8 + length <= len(prefix) else read_at(pos + 8, length)
            if len(body) != length:
                return None
            found[kind] = body
        pos += 8 + length + (length & 1)
    return found[b"EXIF"], found[b"XMP "]


def _orientation_of(exif_body: bytes, xmp: bytes) -> int:
    """1..8 from an EXIF block and an XMP packet, as `Image.getexif` reads them (broken EXIF: 1)."""
    exif = Image.Exif()
    if exif_body:
        try:
            exif.load(exif_body)
        except MemoryError:
            raise
        except Exception:
            return 1
    orientation = exif.get(EXIF_ORIENTATION)
    if orientation is None and xmp and (match := _XMP_ORIENTATION.search(xmp)):
        orientation = int(match[2])
    return orientation if orientation in TRANSPOSES else 1
