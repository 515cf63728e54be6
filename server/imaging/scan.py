"""A structural scan of a source's container, run on the raw bytes before Pillow parses them.

Pillow walks a container in Python inside `Image.open` and `load`, one step per JPEG marker, PNG
chunk, TIFF strip, GIF sub-block or BMP run, and keeps something of most. A file with a 1x2
image and millions of such structures costs seconds and hundreds of MB before any limit on
pixels or bytes can help: 2,000,000 StripOffsets in a 2 MB TIFF took 7-11 s and +476 MB.
`scan_container` walks the same structures with early exit at the limits below, chosen well
above what real files hold, and decodes no pixel.

Only what a limit needs is parsed. A file the scan cannot follow (truncated, corrupt, another
layout) is left to Pillow, which refuses it itself: the scan refuses too many structures
(`ContainerBomb`) and, for TIFF, offsets past the end of the file or past 2**63, which Pillow
would only fail on later (or crash on: OverflowError).

Each walk is linear in the structures it visits, and stops at the first limit passed: well under
50 ms on a 10 MB hostile file or a 24 MP photo (tests/unit/test_scan.py measures it).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from server.imaging.errors import ContainerBomb, SourceTooLarge, UndecodableImage

if TYPE_CHECKING:
    from server.imaging.decode import SourceLimits

# --- JPEG -------------------------------------------------------------------------------------
# Pillow walks SOI..first SOS in Python: ~3.6 µs a marker (2.5 M empty APP1 took 9 s, +332 MB)
# and 1.5 µs a fill byte (8 MB of 0xFF took 12 s).

#: Markers from SOI to the first scan. Camera files have < 30 (APP0/1/2/13/14, DQT, SOF, 4 DHT,
#: DRI); an ICC profile at its 16 MiB maximum is 255 APP2 segments.
MAX_JPEG_HEADER_MARKERS = 1_000
#: Bytes of those segments; Pillow keeps each APP segment. Above the largest real payloads: a
#: 16 MiB ICC profile, or a phone's portrait photo with its depth map and original image in
#: extended XMP (several MB).
MAX_JPEG_HEADER_BYTES = 32 * 1024 * 1024
#: Fill (0xFF) and stray bytes between those segments, each a step of Pillow's walk (~25 ms).
MAX_JPEG_STRAY_BYTES = 16 * 1024
#: Scans in one file: encoders write about 10 (libjpeg's default script) and rarely more than a
#: few dozen; 1,000 tiny scans made a 125 KB file take 6 s.
MAX_JPEG_SCANS = 100
#: Scans x megapixels (at least 1): libjpeg walks every block of a scan's components once per
#: scan, ~1.1 ms per scan per megapixel (7000x7000 greyscale with 100 scans: 5.2 s). 1,000 allows
#: 20 scans at 50 MP (the default pixel limit) and bounds degenerate scans near 1 s.
JPEG_SCAN_BUDGET = 1_000
_MEGAPIXEL = 1_000_000
#: 0xFF bytes in the scans' data: this many, plus one per JPEG_SCAN_BYTES_PER_FF bytes. Coded data
#: holds about one per 256 bytes (10 MB photo: 25,000); 10 MB of 0xFF00 stuffing holds 5 M, each
#: a step of the scan walk.
MAX_JPEG_SCAN_FF = 1_000_000
JPEG_SCAN_BYTES_PER_FF = 32
_SCAN_WINDOW = 64 * 1024

_JPEG_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xDE})
# Sequential DCT frames (Huffman, extended, arithmetic): when the first scan holds every component,
# libjpeg decodes in single-scan mode and stops at a second scan ("Didn't expect more than one
# scan"), so such a file needs no walk of its scans: a 10 MB photo saves ~10 ms.
_JPEG_SEQUENTIAL = frozenset({0xC0, 0xC1, 0xC9})
_JPEG_STANDALONE = frozenset({0x01, 0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)})  # no length
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
_FILL = re.compile(rb"\xff+")
# In entropy-coded data a marker is 0xFF followed by anything but a stuffed 0x00, a restart
# (0xD0..0xD7) or more fill: one C-level search per marker, linear in bytes.
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

# --- PNG --------------------------------------------------------------------------------------
# Pillow reads every chunk in Python, ~3 µs an IDAT and ~8 µs any other (830 k empty private
# chunks took 6.4 s; 800 k after IDAT 6.9 s).

#: Chunks before the first IDAT. Real files have < 50 (IHDR, PLTE, tRNS, colour chunks, pHYs, a
#: few text chunks, eXIf, acTL/fcTL).
MAX_PNG_HEADER_CHUNKS = 1_000
#: Chunks in the whole file: this many, plus one per PNG_BYTES_PER_CHUNK bytes. libpng writes
#: 8 KiB IDATs and Pillow 64 KiB, so real files stay far below; a 10 MB file may hold 3,441.
MAX_PNG_CHUNKS = 1_000
PNG_BYTES_PER_CHUNK = 4096

# --- TIFF -------------------------------------------------------------------------------------

#: Entries in one IFD: TIFF, EXIF, GPS, DNG and GeoTIFF define ~300 tags, each once per IFD;
#: real IFDs hold < 100.
MAX_TIFF_ENTRIES = 1_000
#: IFDs (pages) in the chain. Pillow reads only the first for a thumbnail; scanned books run to
#: hundreds of pages.
MAX_TIFF_PAGES = 1_000
#: Strips or tiles whatever the geometry: Pillow makes one tile of each strip of an uncompressed
#: file and loads them one by one in Python (~5 µs each). libtiff's 8 KiB strips make < 13,000
#: in 100 MB; one row per strip of a 10,000-row planar RGB image, 30,000.
MAX_TIFF_BLOCKS = 100_000
#: Numeric values in one IFD outside the strip and tile arrays: Pillow makes a Python object of
#: each value it reads (of every tag of the EXIF and GPS IFDs). The largest standard arrays, a
#: 16-bit ColorMap or TransferFunction, hold 3 x 65,536.
MAX_TIFF_VALUES = 262_144

_TIFF_STRIPS = (273, 279)  # StripOffsets, StripByteCounts
_TIFF_TILES = (324, 325)  # TileOffsets, TileByteCounts
_TIFF_SUB_IFDS = (34665, 34853, 40965)  # EXIF, GPS, Interoperability: Pillow loads each in full
# Pillow's signatures, the swapped ones included; it reads BigTIFF only when byte 2 is 0x2B.
_TIFF_PREFIXES = (b"MM\x00*", b"II*\x00", b"MM*\x00", b"II\x00*", b"MM\x00+", b"II+\x00")
#: Bytes per value and struct code of each field type (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE,
#: UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD, LONG8, SLONG8, IFD8). None: not an
#: integer. Pillow skips fields of any other type.
_TIFF_TYPES: dict[int, tuple[int, str | None]] = {
    1: (1, "B"), 2: (1, None), 3: (2, "H"), 4: (4, "L"), 5: (8, None), 6: (1, "b"), 7: (1, None),
    8: (2, "h"), 9: (4, "l"), 10: (8, None), 11: (4, None), 12: (8, None), 13: (4, "L"),
    16: (8, "Q"), 17: (8, "q"), 18: (8, "Q"),
}
_TIFF_BYTES = frozenset({1, 2, 7})  # read as one bytes or str object, not value by value
_OVERFLOW = 2**63

# --- GIF, WebP, BMP ---------------------------------------------------------------------------

#: Steps of Pillow's Python walk before the first image: extensions, their sub-blocks and stray
#: bytes (~0.3-0.9 µs each; 4 M one-byte comment sub-blocks took 3.6 s, +345 MB). Real files have
#: a loop extension, a graphic control, perhaps XMP (a 100 KB packet is ~1,300 "sub-blocks").
MAX_GIF_HEADER_BLOCKS = 10_000
#: Top-level RIFF chunks: libwebp's demuxer indexes each (in C: 800 k empty chunks, 0.14 s and
#: +34 MB). An animation has one per frame: 20,000 frames is 11 minutes at 30 fps.
MAX_WEBP_CHUNKS = 20_000
#: RLE-compressed BMP data per pixel and per row, plus a constant: a run of one pixel is 2 bytes,
#: an end of line 2, a delta 4. Pillow decodes RLE in Python, ~2 µs a run, and a run past the
#: end of a row adds nothing: 4 M of them after a 1x2 image took 8.8 s.
BMP_RLE_BYTES_PER_PIXEL = 4
BMP_RLE_BYTES_PER_ROW = 4
BMP_RLE_SLACK = 1024


def scan_container(data: bytes, limits: SourceLimits) -> None:
    """Refuse `data` when its container holds more structures than any real image needs.

    Raises ContainerBomb (an UndecodableImage) past a limit, UndecodableImage for TIFF offsets
    outside the file, SourceTooLarge for a TIFF over `limits.max_pixels` (Pillow would build
    its strip list before the pixel check). Returns None for anything it cannot follow: Pillow
    decides. Reads only `data`; linear in the structures it visits.
    """
    scanner = _scanner_for(data)
    if scanner is not None:
        scanner(data, limits)


def _scanner_for(data: bytes) -> Callable[[bytes, SourceLimits], None] | None:
    """The scanner of the format Pillow will recognise `data` as (by the same signatures)."""
    if data.startswith(b"\xff\xd8\xff"):
        return _scan_jpeg
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _scan_png
    if data[:4] in _TIFF_PREFIXES:
        return _scan_tiff
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _scan_gif
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _scan_webp
    if data[:2] == b"BM":
        return _scan_bmp
    return None  # AVIF: libavif parses its boxes in C


# --- JPEG -------------------------------------------------------------------------------------


class _JpegHeader(NamedTuple):
    first_scan: int  # where the first SOS marker is
    frame: tuple[int, int]  # width and height of the (last) frame header
    single_scan: bool  # a sequential frame whose first scan holds every component


def _scan_jpeg(data: bytes, limits: SourceLimits) -> None:
    """Markers before the first scan as Pillow walks them; then, for a frame that may hold
    several scans, its scans against its size."""
    header = _jpeg_header(data)
    if header is None or header.single_scan:
        return
    width, height = header.frame
    if width * height <= limits.max_pixels:  # else the pixel limit refuses it
        _check_jpeg_scans(data, header.first_scan, header.frame)


def _jpeg_header(data: bytes) -> _JpegHeader | None:
    """Walk SOI..first SOS as Pillow does, a step per marker and per stray byte; None when there
    is no scan or a marker Pillow does not know (it refuses the file)."""
    size = len(data)
    pos = 2  # after SOI
    markers = segment_bytes = stray = 0
    frame, frame_marker, components = (0, 0), 0, 0
    while True:
        fill_at = data.find(b"\xff", pos)
        if fill_at < 0:
            return None
        # Bounded: a run longer than the stray budget is refused without reading it all.
        fill_end = _FILL.match(data, fill_at, fill_at + MAX_JPEG_STRAY_BYTES + 2).end()  # type: ignore[union-attr]
        stray += fill_at - pos + fill_end - fill_at - 1
        if stray > MAX_JPEG_STRAY_BYTES:
            raise ContainerBomb(f"JPEG: over {MAX_JPEG_STRAY_BYTES} fill or stray bytes before the first scan")
        if fill_end >= size:
            return None
        marker, pos = data[fill_end], fill_end + 1
        if marker == 0x00:  # an escaped 0xFF outside a scan: Pillow skips it
            stray += 1
            continue
        if marker < 0xC0:
            return None
        markers += 1
        if markers > MAX_JPEG_HEADER_MARKERS:
            raise ContainerBomb(f"JPEG: over {MAX_JPEG_HEADER_MARKERS} markers before the first scan")
        if marker in _JPEG_STANDALONE:
            continue
        if pos + 2 > size:
            return None
        (length,) = struct.unpack_from(">H", data, pos)
        segment_bytes += length
        if segment_bytes > MAX_JPEG_HEADER_BYTES:
            raise ContainerBomb(f"JPEG: over {MAX_JPEG_HEADER_BYTES} bytes of segments before the first scan")
        if marker in _JPEG_SOF and pos + 8 <= size:
            height, width, components = struct.unpack_from(">HHB", data, pos + 3)
            frame, frame_marker = (width, height), marker
        if marker == _JPEG_SOS:
            in_scan = data[pos + 2] if pos + 3 <= size else 0
            return _JpegHeader(fill_end - 1, frame, frame_marker in _JPEG_SEQUENTIAL and in_scan == components)
        pos += max(length, 2)  # Pillow reads a length below 2 as an empty segment


def _check_jpeg_scans(data: bytes, first_scan: int, frame: tuple[int, int]) -> None:
    """Walk the markers from the first scan to EOI, skipping entropy-coded data, and refuse more
    scans than MAX_JPEG_SCANS or than JPEG_SCAN_BUDGET allows for `frame`.

    A byte count of SOS would over-count (APP or COM segments between scans, a Motion Photo's
    video after EOI) and costs as much as the walk: ~10 ms for a 10 MB photo.
    """
    width, height = frame
    allowed = max(1, min(MAX_JPEG_SCANS, JPEG_SCAN_BUDGET * _MEGAPIXEL // max(width * height, _MEGAPIXEL)))
    candidates = MAX_JPEG_SCAN_FF + len(data) // JPEG_SCAN_BYTES_PER_FF
    size = len(data)
    pos, scans, markers = first_scan, 0, 0
    while pos + 1 < size:
        marker = data[pos + 1]
        markers += 1
        if markers > MAX_JPEG_HEADER_MARKERS:
            raise ContainerBomb(f"JPEG: over {MAX_JPEG_HEADER_MARKERS} markers between scans")
        if marker == _JPEG_EOI:
            return
        if marker in _JPEG_STANDALONE:
            pos += 2
        else:
            if pos + 4 > size:
                return
            (length,) = struct.unpack_from(">H", data, pos + 2)
            pos += 2 + max(length, 2)
            if marker == _JPEG_SOS:
                scans += 1
                if scans > allowed:
                    raise ContainerBomb(f"JPEG: over {allowed} scans for {width}x{height} pixels")
        found, candidates = _next_jpeg_marker(data, pos, candidates)
        if found is None:
            return
        pos = found


def _next_jpeg_marker(data: bytes, pos: int, candidates: int) -> tuple[int | None, int]:
    """(The next marker at or after `pos`, or None; `candidates` less the 0xFF bytes passed).

    Searched a window at a time: each 0xFF is a step of the search (~15 ns), and stuffing, fill
    or restarts can make every other byte one, so their number is bounded, not the bytes.
    """
    size = len(data)
    while pos < size:
        end = min(size, pos + _SCAN_WINDOW)
        found = _MARKER_AFTER_SCAN.search(data, pos, end + 1)  # +1: a marker may straddle `end`
        stop = found.start() if found else end
        candidates -= data.count(b"\xff", pos, stop)
        if candidates < 0:
            raise ContainerBomb("JPEG: more 0xFF bytes in scan data than a real file holds")
        if found:
            return stop, candidates
        pos = end
    return None, candidates


# --- PNG --------------------------------------------------------------------------------------


def _scan_png(data: bytes, limits: SourceLimits) -> None:
    """Chunk headers by their lengths, to IEND or to where Pillow stops reading (the second
    frame of an animation)."""
    size = len(data)
    most = MAX_PNG_CHUNKS + size // PNG_BYTES_PER_CHUNK
    pos, chunks = 8, 0
    in_header, animated, seen_actl = True, False, False
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > most:
            raise ContainerBomb(f"PNG: over {most} chunks in {size} bytes")
        if kind == b"IEND":
            return
        if kind == b"IDAT":
            in_header = False
        elif in_header:
            if chunks > MAX_PNG_HEADER_CHUNKS:
                raise ContainerBomb(f"PNG: over {MAX_PNG_HEADER_CHUNKS} chunks before the image data")
            if kind == b"acTL" and pos + 12 <= size:
                (frames,) = struct.unpack_from(">I", data, pos + 8)
                # As Pillow reads acTL: a second one makes the file a still image.
                animated = not seen_actl and 1 < frames <= 2**31
                seen_actl = True
        elif kind == b"fcTL" and animated:
            return
        pos += 12 + length


# --- TIFF -------------------------------------------------------------------------------------


class _Tiff:
    """Reads IFDs of a classic or BigTIFF file held in `data`; nothing is copied."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.endian = "<" if data[:2] == b"II" else ">"
        self.big = data[2] == 0x2B  # as Pillow decides: "MM\x00+" is read as classic TIFF
        self.pointer = "Q" if self.big else "L"

    def first_ifd(self) -> int | None:
        at = 8 if self.big else 4
        if len(self.data) < at + (8 if self.big else 4):
            return None
        return self._unpack(self.pointer, at)

    def read_ifd(self, offset: int) -> tuple[dict[int, tuple[int, int, int]], int] | None:
        """({tag: (type, count, position of its values)}, next IFD offset); None if outside the
        file. As in Pillow, fields of unknown type, with no value or with values outside the
        file are left out, and the first of a repeated tag that is kept wins."""
        bounds = self._bounds(offset)
        if bounds is None:
            return None
        start, end = bounds
        data, big = self.data, self.big
        entry_size, inline = (20, 8) if big else (12, 4)
        layout = self.endian + ("HHQ" if big else "HHL")
        entries: dict[int, tuple[int, int, int]] = {}
        for at in range(start, end, entry_size):
            tag, kind, values = struct.unpack_from(layout, data, at)
            if tag in entries or kind not in _TIFF_TYPES or not values:
                continue
            position = at + entry_size - inline
            if values * _TIFF_TYPES[kind][0] > inline:
                position = self._unpack(self.pointer, position)
            if self.in_file((kind, values, position)):
                entries[tag] = (kind, values, position)
        return entries, self._following(end)

    def next_ifd(self, offset: int) -> int | None:
        """The offset of the IFD after the one at `offset` (0: none); None if outside the file."""
        bounds = self._bounds(offset)
        return None if bounds is None else self._following(bounds[1])

    def _bounds(self, offset: int) -> tuple[int, int] | None:
        """Where the entries of the IFD at `offset` start and end; None if outside the file."""
        count_size, entry_size = (8, 20) if self.big else (2, 12)
        if offset + count_size > len(self.data):
            return None
        count = self._unpack("Q" if self.big else "H", offset)
        if count > MAX_TIFF_ENTRIES:
            raise ContainerBomb(f"TIFF: {count} entries in one IFD > {MAX_TIFF_ENTRIES}")
        start = offset + count_size
        end = start + count * entry_size
        return (start, end) if end <= len(self.data) else None

    def _following(self, end: int) -> int:
        return self._unpack(self.pointer, end) if end + (8 if self.big else 4) <= len(self.data) else 0

    def in_file(self, entry: tuple[int, int, int]) -> bool:
        kind, count, position = entry
        return position + count * _TIFF_TYPES[kind][0] <= len(self.data)

    def integers(self, entry: tuple[int, int, int]) -> tuple[int, ...] | None:
        """The values of an entry of `read_ifd` if they are integers, else None."""
        kind, count, position = entry
        code = _TIFF_TYPES[kind][1]
        return None if code is None else struct.unpack_from(f"{self.endian}{count}{code}", self.data, position)

    def first(self, entries: dict[int, tuple[int, int, int]], tag: int, default: int | None = None) -> int | None:
        """The first value of an integer tag, else `default`."""
        entry = entries.get(tag)
        values = None if entry is None else self.integers((entry[0], 1, entry[2]))
        return default if values is None else values[0]

    def _unpack(self, code: str, at: int) -> int:
        return struct.unpack_from(self.endian + code, self.data, at)[0]


def _scan_tiff(data: bytes, limits: SourceLimits) -> None:
    """The first IFD's strips or tiles against its geometry, its EXIF/GPS IFDs, the page chain."""
    tiff = _Tiff(data)
    offset = tiff.first_ifd()
    if offset is None:
        return
    if offset >= _OVERFLOW:
        raise UndecodableImage(f"TIFF: first IFD at {offset}, past 2**63")
    first = tiff.read_ifd(offset)
    if first is None:
        raise UndecodableImage(f"TIFF: first IFD at {offset} is outside the {len(data)}-byte file")
    entries, following = first
    _check_tiff_values(tiff, entries, skip=(*_TIFF_STRIPS, *_TIFF_TILES))
    _check_tiff_blocks(tiff, entries, limits)
    for tag in _TIFF_SUB_IFDS:
        _check_tiff_sub_ifd(tiff, tiff.first(entries, tag))
    _check_tiff_pages(tiff, offset, following)


def _check_tiff_blocks(tiff: _Tiff, entries: dict[int, tuple[int, int, int]], limits: SourceLimits) -> None:
    """Strip and tile arrays no longer than the geometry needs (twice, plus 16: sloppy writers
    round differently; a bomb is off by orders of magnitude), and pointing inside the file.

    Both kinds are checked when both are present: Pillow reads strips, libtiff tiles.
    """
    width, height = tiff.first(entries, 256), tiff.first(entries, 257)
    if not width or not height:
        return  # Pillow refuses it
    if width * height > limits.max_pixels:
        raise SourceTooLarge.pixels(width, height, limits.max_pixels)
    planes = max(tiff.first(entries, 277, 1) or 1, 1) if tiff.first(entries, 284, 1) == 2 else 1
    rows = min(tiff.first(entries, 278) or height, height)
    tile_width, tile_height = tiff.first(entries, 322) or width, tiff.first(entries, 323) or height
    for (offsets, counts), needed in (
        (_TIFF_STRIPS, -(-height // rows) * planes),
        (_TIFF_TILES, -(-width // tile_width) * -(-height // tile_height) * planes),
    ):
        allowed = min(2 * needed + 16, MAX_TIFF_BLOCKS)
        for tag in (offsets, counts):
            if tag in entries and entries[tag][1] > allowed:
                raise ContainerBomb(f"TIFF: {entries[tag][1]} values in tag {tag}, {needed} needed for {width}x{height}")
        if offsets in entries:
            values = tiff.integers(entries[offsets])
            if values is None or max(values) >= len(tiff.data):
                raise UndecodableImage(f"TIFF: image data outside the {len(tiff.data)}-byte file")
        if counts in entries:
            values = tiff.integers(entries[counts])
            if values is not None and max(values) >= _OVERFLOW:
                raise UndecodableImage("TIFF: a byte count past 2**63")


def _check_tiff_values(tiff: _Tiff, entries: dict[int, tuple[int, int, int]], *, skip: tuple[int, ...] = ()) -> None:
    """At most MAX_TIFF_VALUES numeric values in the IFD."""
    total = 0
    for tag, (kind, count, _) in entries.items():
        if kind not in _TIFF_BYTES and tag not in skip:
            total += count
    if total > MAX_TIFF_VALUES:
        raise ContainerBomb(f"TIFF: {total} values in one IFD > {MAX_TIFF_VALUES}")


def _check_tiff_sub_ifd(tiff: _Tiff, offset: int | None) -> None:
    """An EXIF, GPS or Interoperability IFD, which Pillow loads in full after decoding."""
    if offset is None or offset >= len(tiff.data):
        return  # Pillow skips it
    found = tiff.read_ifd(offset)
    if found is None:
        return
    entries, _ = found
    _check_tiff_values(tiff, entries)
    interop = tiff.first(entries, 40965)
    if interop is not None and interop != offset and interop < len(tiff.data):
        inner = tiff.read_ifd(interop)
        if inner is not None:
            _check_tiff_values(tiff, inner[0])


def _check_tiff_pages(tiff: _Tiff, first: int, following: int) -> None:
    """At most MAX_TIFF_PAGES IFDs in the chain; a loop or a pointer out of the file ends it."""
    seen, pages = {first}, 1
    while following and following not in seen:  # Pillow ends the chain at a loop too
        if following >= _OVERFLOW:
            raise UndecodableImage(f"TIFF: IFD at {following}, past 2**63")
        pages += 1
        if pages > MAX_TIFF_PAGES:
            raise ContainerBomb(f"TIFF: over {MAX_TIFF_PAGES} pages")
        seen.add(following)
        found = tiff.next_ifd(following)
        if found is None:
            return
        following = found


# --- GIF, WebP, BMP ---------------------------------------------------------------------------


def _scan_gif(data: bytes, limits: SourceLimits) -> None:
    """Extensions, their sub-blocks and stray bytes up to the first image descriptor."""
    size = len(data)
    if size < 13:
        return
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    steps = 0
    while pos < size:
        steps += 1
        if steps > MAX_GIF_HEADER_BLOCKS:
            raise ContainerBomb(f"GIF: over {MAX_GIF_HEADER_BLOCKS} blocks before the first image")
        introducer = data[pos]
        if introducer in (0x2C, 0x3B):  # an image (its data is the C decoder's) or the end
            return
        if introducer != 0x21:
            pos += 1  # a stray byte: Pillow skips it, one step each
            continue
        pos += 2  # introducer and label
        while pos < size:
            steps += 1
            if steps > MAX_GIF_HEADER_BLOCKS:
                raise ContainerBomb(f"GIF: over {MAX_GIF_HEADER_BLOCKS} blocks before the first image")
            length = data[pos]
            pos += 1 + length
            if length == 0:
                break


def _scan_webp(data: bytes, limits: SourceLimits) -> None:
    """Top-level RIFF chunks (an animation's frames are one chunk each)."""
    size = min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    pos, chunks = 12, 0
    while pos + 8 <= size:
        chunks += 1
        if chunks > MAX_WEBP_CHUNKS:
            raise ContainerBomb(f"WebP: over {MAX_WEBP_CHUNKS} chunks")
        (length,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8 + length + (length & 1)


def _scan_bmp(data: bytes, limits: SourceLimits) -> None:
    """RLE data no longer than its pixels can need."""
    if len(data) < 54:
        return
    (offset,) = struct.unpack_from("<I", data, 10)
    header, width, height, _, _, compression = struct.unpack_from("<IiiHHI", data, 14)
    if header < 40 or compression not in (1, 2):  # RLE8, RLE4
        return
    rows = abs(height)
    most = BMP_RLE_BYTES_PER_PIXEL * abs(width) * rows + BMP_RLE_BYTES_PER_ROW * rows + BMP_RLE_SLACK
    if len(data) - offset > most:
        raise ContainerBomb(f"BMP: {len(data) - offset} bytes of RLE data for {width}x{height} pixels")
