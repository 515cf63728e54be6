"""`render_thumbnail`: source bytes in, encoded thumbnail bytes out, as a visible list of steps.

    open_source -> read_orientation -> plan_geometry -> reduce_on_load -> (load)
        -> orient -> normalize_mode -> strip_metadata -> (crop_focus) -> resize -> apply_filters
        -> pad -> flatten -> encode

An animated source whose thumbnail can animate takes animation.py's branch instead: the same
steps from normalize_mode to flatten, once per frame.

Only stdlib and Pillow: the caller runs `render_thumbnail` in a render worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.formats import FORMATS, OUTPUT_FORMATS
from server.imaging.decode import (
    SourceLimits,
    decoding,
    open_source,
    read_orientation,
    reduce_on_load,
    webp_is_lossless,
)
from server.imaging.animation import animated_frames, animation_format, render_animation, webp_animation_is_lossless
from server.imaging.encode import EncoderSettings, choose_format, encode
from server.imaging.geometry import Box, box_problem, decode_size, displayed_size, plan_geometry
from server.imaging.steps import Effects, crop_focus, finish_frame, normalize_mode, orient, strip_metadata

#: Bumped whenever the same request could give other bytes (a step changed): part of every key.
RENDERER_VERSION = "4"


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """What to render. Sides are final pixel sizes (already multiplied by dpr).

    width/height: the box; None leaves that side free (contain only). format None means the
    source's family. quality None means the encoder settings' default for the format. effects:
    gravity or focal point (cover only), background, filters, still.
    """

    width: int | None
    height: int | None
    fit: str
    format: str | None
    quality: int | None
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    effects: Effects = Effects()

    def __post_init__(self) -> None:
        # A malformed request is a caller bug, not a bad image: plain ValueError.
        problem = box_problem(self.width, self.height, self.fit)
        if problem is not None:
            raise ValueError(problem)
        if self.format is not None and self.format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {OUTPUT_FORMATS}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError("quality must be within 1..100")
        if (self.effects.focus is not None or self.effects.smart) and self.fit != "cover":
            raise ValueError("a focus or smart crop needs fit cover")

    @property
    def box(self) -> Box:
        return Box(self.width, self.height, self.fit)

    def quality_for(self, output_format: str) -> int:
        """The URL's quality, else the configured default for `output_format`."""
        return self.quality if self.quality is not None else self.encoder.quality(output_format)


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def media_type(self) -> str:
        return FORMATS[self.format].media_type


def render_thumbnail(source: bytes, request: RenderRequest, *, limits: SourceLimits) -> Rendered:
    """Render `source` as `request` describes.

    Raises UndecodableImage or SourceTooLarge for any bad input, and nothing else; size limits
    are checked from the header, before any pixel is decoded. Blocking: run it in a worker.
    """
    image = open_source(source, limits)
    frames = animated_frames(image, request.format, request.effects, limits)
    if frames > 1:
        output_format = animation_format(request.format, image.format) or "gif"
        data, (width, height) = render_animation(
            image, request.box, request.effects, frames, output_format=output_format,
            quality=request.quality_for(output_format), settings=request.encoder,
            lossless=request.format is None and image.format == "WEBP" and webp_animation_is_lossless(source),
        )
        return Rendered(data=data, format=output_format, width=width, height=height)
    with decoding():
        orientation = read_orientation(image)
        source_size = displayed_size(image.size, orientation)
        geometry = plan_geometry(*source_size, request.box)
        reduce_on_load(image, decode_size(geometry, source_size), orientation)
        # The source is already in memory: hand it to the decoder in one block rather than
        # 64 KiB ones, so the GIL is released and re-taken once per image, not ~100 times
        # (each re-take may wait for the event loop's thread).
        image.decodermaxblock = max(image.decodermaxblock, len(source))
        image.load()
        pixels = normalize_mode(orient(image, orientation))
    icc_profile = strip_metadata(pixels)
    output_format = choose_format(request.format, image.format, pixels.mode)
    geometry = plan_geometry(*source_size, request.box, crop_focus(pixels, geometry, source_size, request.effects))
    thumbnail = finish_frame(pixels, geometry, source_size, request.effects, output_format)
    data = encode(
        thumbnail,
        output_format,
        quality=request.quality_for(output_format),
        icc_profile=icc_profile,
        settings=request.encoder,
        # The source's own family, from a lossless WebP: keep it lossless.
        lossless=request.format is None and image.format == "WEBP" and webp_is_lossless(source),
    )
    return Rendered(data=data, format=output_format, width=thumbnail.width, height=thumbnail.height)
