"""`render_thumbnail`: source bytes in, encoded thumbnail bytes out, as a visible list of steps.

    open_source -> read_facts -> decode_class -> decode_intermediate
        (scaled decode or draft + load -> orient -> normalize_mode -> strip_metadata)
    -> render_from: (crop_focus) -> resize -> apply_filters -> pad -> flatten -> encode

The intermediate depends only on the source and its class (intermediate.py), so a render process
may keep it and cut every other size and format of that source from it, with the same bytes.
An animated source whose thumbnail can animate takes animation.py's branch instead: the steps from
normalize_mode to flatten, once per frame, with no intermediate.

Only stdlib and Pillow: the caller runs `render_thumbnail` in a render worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from server.formats import FORMATS, OUTPUT_FORMATS
from server.imaging.animation import animated_frames, animation_format, render_animation, webp_animation_is_lossless
from server.imaging.decode import SourceLimits, decoding, open_source
from server.imaging.encode import EncoderSettings
from server.imaging.geometry import Box, box_problem
from server.imaging.intermediate import (
    Intermediate,
    ShareResize,
    decode_class,
    decode_intermediate,
    read_facts,
    thumbnail_from,
)
from server.imaging.steps import Effects

#: Bumped whenever the same request could give other bytes (a step changed): part of every key.
RENDERER_VERSION = "5"  # 4: modifiers and animations; 5: JPEG sources decoded at any M/8 (simplejpeg)


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
    reused: bool = False  # cut from a kept intermediate (no decode); the bytes are the same

    @property
    def media_type(self) -> str:
        return FORMATS[self.format].media_type


def render_thumbnail(source: bytes, request: RenderRequest, *, limits: SourceLimits) -> Rendered:
    """Render `source` as `request` describes: decode its intermediate, then cut the thumbnail
    (or, for an animation that stays animated, every frame).

    Raises UndecodableImage or SourceTooLarge for any bad input, and nothing else; size limits
    are checked from the header, before any pixel is decoded. Blocking: run it in a worker.
    """
    header = open_source(source, limits)
    frames = animated_frames(header, request.format, request.effects, limits, source)
    if frames > 1:
        return render_animated(header, source, request, frames)
    with decoding():
        facts = read_facts(header)
        intermediate = decode_intermediate(header, source, facts, decode_class(facts, request.box))
    return render_from(intermediate, request)


def render_animated(header: Image.Image, source: bytes, request: RenderRequest, frames: int) -> Rendered:
    """The animated thumbnail of `source`, opened as `header` (`frames` from `animated_frames`)."""
    output_format = animation_format(request.format, header.format) or "gif"
    data, (width, height) = render_animation(
        header, request.box, request.effects, frames, output_format=output_format,
        quality=request.quality_for(output_format), settings=request.encoder,
        # The source's own family, from a lossless animated WebP: keep it lossless.
        lossless=request.format is None and header.format == "WEBP" and webp_animation_is_lossless(source),
    )
    return Rendered(data=data, format=output_format, width=width, height=height)


def render_from(intermediate: Intermediate, request: RenderRequest, *, share: ShareResize | None = None) -> Rendered:
    """The still thumbnail `request` describes, cut from `intermediate` (fresh or kept: same bytes).
    `share`: how another process's resize of it may be reused (`Intermediate.resized`)."""
    data, output_format, thumbnail = thumbnail_from(
        intermediate, request.box, output=request.format, quality=request.quality, settings=request.encoder,
        effects=request.effects, share=share,
    )
    return Rendered(data=data, format=output_format, width=thumbnail.width, height=thumbnail.height)
