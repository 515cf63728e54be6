"""Encoding: the output format, its quality and the encoder settings, then the bytes.

`EncoderSettings` names every setting that changes the encoded bytes, so the result key (and
the ETag) can include all of them: change one and every cached thumbnail gets a new name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO

from PIL import Image

from server.formats import DEFAULT_QUALITIES, format_for_decoder
from server.imaging.errors import UndecodableImage
from server.imaging.steps import profile_space

# ICC header bytes 16..20 name the colour space the profile describes.
PROFILE_SPACES = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """Everything besides the pixels that decides an encoder's output bytes.

    `qualities` are the defaults per format when a URL names none (`thumbnails.quality`);
    the rest are fixed for speed today but named here so that changing one changes every key.
    `metadata` is the policy of what survives: only the ICC profile.
    """

    qualities: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_QUALITIES))
    jpeg_progressive: bool = False
    jpeg_optimize: bool = False
    png_compress_level: int = 6
    webp_method: int = 4
    avif_speed: int = 8
    metadata: str = "icc"

    def quality(self, output_format: str) -> int:
        return self.qualities.get(output_format, DEFAULT_QUALITIES.get(output_format, 80))

    def describe(self) -> str:
        """A canonical text of every setting, for result keys: equal settings, equal text."""
        qualities = ",".join(f"{name}={value}" for name, value in sorted(self.qualities.items()))
        return (
            f"q[{qualities}];jpeg:prog={int(self.jpeg_progressive)},opt={int(self.jpeg_optimize)};"
            f"png:z={self.png_compress_level};webp:m={self.webp_method};avif:s={self.avif_speed};"
            f"meta={self.metadata}"
        )

    def params(self, output_format: str, quality: int) -> dict[str, object]:
        """Pillow's `save()` arguments for `output_format` at `quality`."""
        return {
            "jpeg": {"quality": quality, "optimize": self.jpeg_optimize, "progressive": self.jpeg_progressive},
            "png": {"compress_level": self.png_compress_level},
            "webp": {"quality": quality, "method": self.webp_method},
            "avif": {"quality": quality, "speed": self.avif_speed},
            "gif": {},
        }[output_format]


def choose_format(requested: str | None, source_format: str | None, mode: str) -> str:
    """The output format: `requested`, else the source's family (TIFF, BMP: jpeg, png with alpha).

    `source_format` is Pillow's decoder name, so the family follows the content, not the file name.
    """
    if requested is not None:
        return requested
    source = format_for_decoder(source_format)
    if source is not None and source.family is not None:
        return source.family
    return "png" if mode in ("LA", "RGBA") else "jpeg"


def encode(
    image: Image.Image,
    output_format: str,
    *,
    quality: int,
    icc_profile: bytes | None,
    settings: EncoderSettings | None = None,
    lossless: bool = False,
) -> bytes:
    """`image` encoded as `output_format`, tuned for speed; writes no metadata but `icc_profile`.

    The profile is written only when its colour space matches the pixels (an RGB profile on a
    greyscale JPEG, or a Gray one on widened RGB, would be wrong). Raises UndecodableImage when
    the format cannot hold the image (e.g. WebP beyond 16383 px).
    """
    params = (settings or EncoderSettings()).params(output_format, quality)
    if lossless and output_format == "webp":
        params["lossless"] = True  # a lossless source stays lossless (pixel art, screenshots)
    if icc_profile and profile_space(icc_profile) == PROFILE_SPACES.get(image.mode):
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


def encode_animation(
    frames: list[Image.Image],
    output_format: str,
    *,
    durations: list[int],
    disposals: list[int],
    loop: int | None,
    quality: int,
    icc_profile: bytes | None,
    settings: EncoderSettings | None = None,
    lossless: bool = False,
) -> bytes:
    """`frames` (all one size) as one animated GIF or WebP, each shown its duration (ms).

    `loop`: the source's loop count (0: forever); None (a GIF without one) plays once. GIF
    keeps each frame's `disposals` method; WebP's encoder picks its own. Frames are brought to
    one mode (RGBA when any has alpha) so the encoder converts them alike.
    """
    mode = "RGBA" if any(frame.mode in ("LA", "RGBA") for frame in frames) else "RGB"
    frames = [frame if frame.mode == mode else frame.convert(mode) for frame in frames]
    params = (settings or EncoderSettings()).params(output_format, quality)
    # One frame left (a truncated source): Pillow's single-frame writers take plain values.
    one = len(frames) == 1
    params.update(save_all=True, append_images=frames[1:], duration=durations[0] if one else durations)
    if output_format == "gif":
        params["disposal"] = disposals[0] if one else disposals
        if loop is not None:
            params["loop"] = loop
    else:
        params["loop"] = 1 if loop is None else loop
        if lossless:
            params["lossless"] = True
        if icc_profile and profile_space(icc_profile) == PROFILE_SPACES[mode]:
            params["icc_profile"] = icc_profile
    buffer = BytesIO()
    try:
        frames[0].save(buffer, output_format.upper(), **params)
    except (OSError, ValueError, TypeError) as error:
        raise UndecodableImage(
            f"{output_format} animation encoder: {error}",
            public_message=f"The animation cannot be encoded as {output_format.upper()}.",
        ) from error
    if output_format == "webp" and mode == "RGBA":
        return _with_webp_alpha_flag(buffer.getvalue())
    return buffer.getvalue()


#: The VP8X chunk's flags byte (RIFF header 12 bytes + chunk header 8) and its alpha bit.
VP8X_FLAGS_OFFSET, VP8X_ALPHA = 20, 0x10


def _with_webp_alpha_flag(data: bytes) -> bytes:
    """`data` with the VP8X "has alpha" flag set.

    libwebp's animation encoder crops each frame to the rectangle that is not transparent, so
    a frame whose transparent part is on the canvas's edge is stored without alpha, the canvas
    around it being transparent by definition; it then leaves the flag clear, and readers that
    trust it (Pillow) show those parts black. The canvas does have transparency: say so.
    """
    if data[12:16] != b"VP8X" or data[VP8X_FLAGS_OFFSET] & VP8X_ALPHA:
        return data
    return data[:VP8X_FLAGS_OFFSET] + bytes([data[VP8X_FLAGS_OFFSET] | VP8X_ALPHA]) + data[VP8X_FLAGS_OFFSET + 1:]
