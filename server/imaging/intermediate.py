"""Intermediates: a source decoded once per size class, from which every thumbnail of it is cut.

    read_facts(header)               what the header says, enough to pick a class (no pixel decoded)
    decode_class(facts, box)         the class a thumbnail needs: eighths of the source's stored size
    decode_intermediate(...)         decode at that class, orient, normalise, take the ICC profile
    thumbnail_from(intermediate, …)  resize, flatten, encode: the rest of a render

The class depends only on the source and the box, and the intermediate only on the source and the
class, so a thumbnail's bytes are the same whether its intermediate was just decoded or kept from
an earlier render (in another process too): ETags stay strong. A srcset of one 6000x4000 photo at
160..640 px shares the 1/8 intermediate (750x500), at 960 and 1280 px the 2/8 one (1500x1000).

Classes are M/8 of the stored size, M in 1..8 (libjpeg-turbo scales in the DCT domain by any M/8):

- JPEG in YCbCr, RGB or greyscale: decoded by simplejpeg (libjpeg-turbo) at the smallest M/8 whose
  size covers the box's need; ceil(side * M / 8) per side, as libjpeg computes it.
- JPEG that simplejpeg does not take (CMYK, YCCK) or rejects: Pillow's draft, 1/8, 1/4, 1/2 or 1.
- Every other format: decoded whole (class 8).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from PIL import Image, JpegImagePlugin

try:
    import simplejpeg
except ImportError:  # a declared dependency; without it every JPEG takes Pillow's draft
    simplejpeg = None

from server.imaging.decode import read_orientation, webp_is_lossless
from server.imaging.encode import EncoderSettings, choose_format, encode
from server.imaging.geometry import Box, Geometry, decode_size, displayed_size, plan_geometry
from server.formats import format_for_decoder
from server.imaging.steps import Effects, crop_focus, finish_resized, normalize_mode, orient, resize, strip_metadata

#: How an intermediate is decoded (SourceFacts.decoder).
SCALED, DRAFT, FULL = "scaled", "draft", "full"
#: Pillow JPEG modes simplejpeg decodes to the same pixels Pillow would (CMYK and YCCK stay Pillow's).
_SCALED_MODES = {"RGB": "RGB", "L": "GRAY"}


class SourceFacts(NamedTuple):
    """What a source's header says that decides its classes: no pixel needed.

    `stored_size` is as coded (before EXIF orientation); `orientation` is read for JPEG only (the
    one format whose class depends on it before decoding); `decoder` is SCALED, DRAFT or FULL.
    """

    stored_size: tuple[int, int]
    orientation: int
    decoder: str
    #: GIF, or an animated WebP: its thumbnails may animate, so they are not cut from intermediates.
    may_animate: bool = False

    @property
    def displayed_size(self) -> tuple[int, int]:
        return displayed_size(self.stored_size, self.orientation)


@dataclass(frozen=True, slots=True, eq=False)
class Intermediate:
    """A source decoded at one class: upright, in a mode every step handles, metadata stripped.

    Never modified once made (the steps after it make new images), so one may serve many renders.
    It remembers its last resizes (`resized`, at most RESIZED_BYTES): a srcset asks each width in
    two formats, which start from the same resized pixels, so the second skips the resize.
    """

    image: Image.Image
    source_size: tuple[int, int]  # the whole source, as displayed
    source_format: str | None  # Pillow's name ("JPEG", "PNG"…)
    icc_profile: bytes | None
    lossless_webp: bool
    _resized: OrderedDict[Geometry, Image.Image] = field(default_factory=OrderedDict, repr=False)

    #: The resized images one intermediate keeps: a 1280 px and a 960 px one of a 3:2 photo.
    RESIZED_BYTES = 8 * 1024 * 1024

    @property
    def nbytes(self) -> int:
        """The pixels' bytes in Pillow's memory: Pillow keeps one byte a pixel for L, four for LA,
        RGB and RGBA."""
        return _pixel_bytes(self.image)

    @property
    def kept_bytes(self) -> int:
        """What keeping it holds (what a memory tier counts): its pixels and its kept resizes."""
        return self.nbytes + sum(_pixel_bytes(image) for image in self._resized.values())

    def resized(self, geometry: Geometry, share: ShareResize | None = None) -> Image.Image:
        """The `resize` step to `geometry`, done once: the same pixels every time (never modify
        them). `share(geometry, make)`, when given, returns what `make()` returns, or the same
        pixels made by another process (the machine's tier)."""
        found = self._resized.get(geometry)
        if found is not None:
            self._resized.move_to_end(geometry)
            return found
        if share is None or self._resizes_nothing(geometry):
            image = resize(self.image, geometry, self.source_size)
        else:
            image = share(geometry, lambda: resize(self.image, geometry, self.source_size))
        if image is not self.image and _pixel_bytes(image) <= self.RESIZED_BYTES:
            self._resized[geometry] = image
            while sum(_pixel_bytes(kept) for kept in self._resized.values()) > self.RESIZED_BYTES:
                self._resized.popitem(last=False)
        return image

    def _resizes_nothing(self, geometry: Geometry) -> bool:
        crop = geometry.crop or (0, 0, *self.source_size)
        return self.image.size == self.source_size and (crop[2] - crop[0], crop[3] - crop[1]) == (
            geometry.width, geometry.height)


#: `share(geometry, make)`: `make()`'s image, or the same pixels another process made.
ShareResize = Callable[[Geometry, Callable[[], Image.Image]], Image.Image]


def _pixel_bytes(image: Image.Image) -> int:
    return image.width * image.height * (1 if image.mode == "L" else 4)


def read_facts(header: Image.Image) -> SourceFacts:
    """The facts of an opened, not yet decoded source (`open_source`'s image)."""
    if isinstance(header, JpegImagePlugin.JpegImageFile):
        decoder = SCALED if header.mode in _SCALED_MODES and simplejpeg is not None else DRAFT
        return SourceFacts(header.size, read_orientation(header), decoder)
    registered = format_for_decoder(header.format)
    # WebP says in its header whether it is animated; a GIF would have to be scanned frame by frame.
    may_animate = registered is not None and registered.animation and (
        header.format != "WEBP" or bool(getattr(header, "is_animated", False)))
    return SourceFacts(header.size, 1, FULL, may_animate)


def decode_class(facts: SourceFacts, box: Box) -> int:
    """M, in eighths of the stored size, of the intermediate a thumbnail in `box` is cut from.

    The smallest that covers what the box needs (`decode_size`): never less, so nothing is
    upscaled; at most 8 (the whole source).
    """
    if facts.decoder == FULL:
        return 8
    shown = facts.displayed_size
    need = displayed_size(decode_size(plan_geometry(*shown, box), shown), facts.orientation)  # as stored
    width, height = facts.stored_size
    if facts.decoder == DRAFT:
        # Pillow's draft rule (JpegImagePlugin.draft): the largest of 8, 4, 2, 1 not above the
        # ratio of both sides.
        ratio = min(width // max(1, need[0]), height // max(1, need[1]))
        scale = next(scale for scale in (8, 4, 2, 1) if ratio >= scale)
        return 8 // scale
    for eighths in range(1, 8):
        if scaled_side(width, eighths) >= need[0] and scaled_side(height, eighths) >= need[1]:
            return eighths
    return 8


def scaled_side(side: int, eighths: int) -> int:
    """libjpeg's size of a `side` px side decoded at `eighths`/8: rounded up."""
    return -(-side * eighths // 8)


def class_size(facts: SourceFacts, eighths: int) -> tuple[int, int]:
    """The stored size of `facts`' intermediate at class `eighths` (known before decoding)."""
    width, height = facts.stored_size
    if facts.decoder == DRAFT:
        scale = 8 // eighths
        return -(-width // scale), -(-height // scale)
    return scaled_side(width, eighths), scaled_side(height, eighths)


def decode_intermediate(header: Image.Image, source: bytes, facts: SourceFacts, eighths: int) -> Intermediate:
    """`source` (opened as `header` by `open_source`) decoded at class `eighths`.

    Run inside `decoding()`. The scaled decoder falls back to Pillow's draft on any error of its
    own, which gives the draft's size for that class: a source that fails there fails the same way
    on every render, so a class still has one intermediate.
    """
    image = _decode_scaled(header, source, facts, eighths) if facts.decoder == SCALED else None
    if image is None:
        if facts.decoder != FULL:
            header.draft(header.mode, _draft_request(facts, eighths))
        # The source is already in memory: hand it to the decoder in one block rather than
        # 64 KiB ones, so the GIL is released and re-taken once per image, not ~100 times.
        header.decodermaxblock = max(header.decodermaxblock, len(source))
        header.load()
        image = header
    orientation = facts.orientation if facts.decoder != FULL else read_orientation(header)
    pixels = normalize_mode(orient(image, orientation))
    if pixels is header:
        pixels = header.copy()  # drop the file object and the decoder's state, keep the pixels
    icc_profile = strip_metadata(pixels)
    return Intermediate(
        image=pixels,
        source_size=displayed_size(facts.stored_size, orientation),
        source_format=header.format,
        icc_profile=icc_profile,
        lossless_webp=header.format == "WEBP" and webp_is_lossless(source),
    )


def _draft_request(facts: SourceFacts, eighths: int) -> tuple[int, int]:
    """The size to ask Pillow's draft for so that it decodes class `eighths` (DRAFT facts), or the
    smallest power-of-two scale covering the SCALED class (the fallback of a scaled decode)."""
    width, height = facts.stored_size
    if facts.decoder == DRAFT:
        scale = 8 // eighths  # draft takes the largest scale s with side // request >= s
        return max(1, width // scale), max(1, height // scale)
    return class_size(facts, eighths)


def _decode_scaled(header: Image.Image, source: bytes, facts: SourceFacts, eighths: int) -> Image.Image | None:
    """The JPEG decoded by libjpeg-turbo at `eighths`/8, as a Pillow image; None on any refusal."""
    assert simplejpeg is not None  # read_facts says SCALED only when it is there
    width, height = class_size(facts, eighths)
    try:
        array = simplejpeg.decode_jpeg(
            source, colorspace=_SCALED_MODES[header.mode], min_width=width, min_height=height, strict=True
        )
    except MemoryError:
        raise
    except Exception:  # whatever it refuses (arithmetic coding, a warning in strict mode…) goes to Pillow
        return None
    if array.shape[1] != width or array.shape[0] != height:
        return None
    image = Image.fromarray(array[:, :, 0] if header.mode == "L" else array, header.mode)
    if "icc_profile" in header.info:  # read by Pillow from the APP2 markers, as for its own decode
        image.info["icc_profile"] = header.info["icc_profile"]
    return image


def thumbnail_from(intermediate: Intermediate, box: Box, *, output: str | None, quality: int | None,
                   settings: EncoderSettings, effects: Effects = Effects(),
                   share: ShareResize | None = None) -> tuple[bytes, str, Image.Image]:
    """The encoded thumbnail in `box` cut from `intermediate`: (bytes, format, image encoded).

    `output` None means the source's family; `quality` None the settings' default for the format.
    A smart crop reads the intermediate's pixels, which depend only on the source and the class:
    the crop, like the rest, is the same whether the intermediate was kept or fresh. `share`: see
    `Intermediate.resized`.
    """
    pixels = intermediate.image
    source_size = intermediate.source_size
    geometry = plan_geometry(*source_size, box)
    if effects.smart or effects.focus is not None:
        geometry = plan_geometry(*source_size, box, crop_focus(pixels, geometry, source_size, effects))
    output_format = choose_format(output, intermediate.source_format, pixels.mode)
    thumbnail = finish_resized(intermediate.resized(geometry, share), geometry, effects, output_format)
    data = encode(
        thumbnail,
        output_format,
        quality=quality if quality is not None else settings.quality(output_format),
        icc_profile=intermediate.icc_profile,
        settings=settings,
        # The source's own family, from a lossless WebP: keep it lossless.
        lossless=output is None and intermediate.lossless_webp,
    )
    return data, output_format, thumbnail
