"""The one registry of image formats: every other module reads it, none repeats it.

Modelled on imgproxy's `imagetype/defs.go`: a format is registered once with its name, file
extensions, media type, the Pillow decoders that read it and what it supports. The spec grammar,
configuration validation, OpenAPI content, the decoder allow-list, `flatten` and the encoders'
default qualities all derive from `FORMATS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageFormat:
    """One format. `output`: a thumbnail may be encoded in it. `family`: the output format of a
    thumbnail of such a source when the request names none (None: by the image's alpha)."""

    name: str
    extensions: tuple[str, ...]
    media_type: str
    decoders: tuple[str, ...]
    alpha: bool
    animation: bool
    output: bool
    default_quality: int | None
    family: str | None

    @property
    def extension(self) -> str:
        """The extension written on thumbnails of this format."""
        return self.extensions[0]


FORMATS: dict[str, ImageFormat] = {
    f.name: f
    for f in (
        # MPO is how Pillow reports the multi-picture JPEGs many cameras write.
        ImageFormat("jpeg", ("jpg", "jpeg"), "image/jpeg", ("JPEG", "MPO"), False, False, True, 82, "jpeg"),
        ImageFormat("png", ("png",), "image/png", ("PNG",), True, False, True, None, "png"),
        ImageFormat("webp", ("webp",), "image/webp", ("WEBP",), True, True, True, 80, "webp"),
        ImageFormat("avif", ("avif",), "image/avif", ("AVIF",), True, False, True, 60, "avif"),
        # A still GIF's thumbnail is a PNG (no 256-colour limit); an animated one stays a GIF.
        ImageFormat("gif", ("gif",), "image/gif", ("GIF",), True, True, True, None, "png"),
        ImageFormat("tiff", ("tif", "tiff"), "image/tiff", ("TIFF",), True, False, False, None, None),
        ImageFormat("bmp", ("bmp",), "image/bmp", ("BMP",), False, False, False, None, None),
    )
}

#: Formats a thumbnail can be encoded in, in the grammar's order.
OUTPUT_FORMATS: tuple[str, ...] = tuple(f.name for f in FORMATS.values() if f.output)

#: Formats whose quality is configurable (`thumbnails.quality.<name>`), with their defaults.
DEFAULT_QUALITIES: dict[str, int] = {
    f.name: f.default_quality for f in FORMATS.values() if f.default_quality is not None
}

#: Every file extension a source may have, lowercase, no dot.
EXTENSIONS: tuple[str, ...] = tuple(ext for f in FORMATS.values() for ext in f.extensions)

#: The only Pillow decoders a source may reach (an allow-list: never Ghostscript, PDF, PSD…).
#: MPO is opened by the JPEG plugin, so only the names Image.open accepts in `formats=` are listed.
DECODERS: tuple[str, ...] = tuple(d for f in FORMATS.values() for d in f.decoders if d != "MPO")

_BY_EXTENSION = {ext: f for f in FORMATS.values() for ext in f.extensions}
_BY_DECODER = {d: f for f in FORMATS.values() for d in f.decoders}
_BY_MEDIA_TYPE = {f.media_type: f for f in FORMATS.values()}


def format_for_media_type(media_type: str) -> ImageFormat | None:
    """The format whose media type is `media_type`, or None."""
    return _BY_MEDIA_TYPE.get(media_type)


def format_for_extension(extension: str) -> ImageFormat | None:
    """The format a file extension (any case, no dot) names, or None."""
    return _BY_EXTENSION.get(extension.lower())


def format_for_decoder(decoder: str | None) -> ImageFormat | None:
    """The format of an image Pillow opened with `decoder` (its `Image.format`), or None."""
    return _BY_DECODER.get(decoder or "")


def media_type_for_name(name: str) -> str:
    """The media type of a file called `name`, by its extension."""
    found = format_for_extension(name.rpartition(".")[2])
    return found.media_type if found is not None else "application/octet-stream"
