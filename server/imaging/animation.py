"""Animated thumbnails: every frame of a GIF or WebP through the same steps as a still image.

    animated_frames(image, ...)  how many frames a thumbnail shows (1: render it still)
    animation_peak(...)          what its frames hold in memory beyond the decoded canvas
    render_animation(image, ...) decode each frame, finish it (resize, crop, filters, pad,
                                 flatten), encode them all once with their durations and loop

Pillow composites each frame onto the canvas as it seeks (it applies the source's disposal),
so every frame arrives whole; the encoders then store only what changed. GIF output keeps each
frame's disposal method too; the WebP encoder chooses its own (libwebp's animation encoder does).
"""

from __future__ import annotations

from PIL import Image

from server.formats import FORMATS, format_for_decoder
from server.imaging.decode import SourceLimits, decoding, read_orientation, valid_icc_profile
from server.imaging.encode import EncoderSettings, encode_animation
from server.imaging.errors import ImageError
from server.imaging.geometry import Box, Geometry, displayed_size, plan_geometry
from server.imaging.steps import Effects, crop_focus, finish_frame, normalize_mode, orient

#: Bytes a pixel takes in each kept frame (RGBA), and how many copies of the frames are alive
#: at the peak: the finished frames, and the encoder's converted copy of each.
FRAME_BYTES, FRAME_COPIES = 4, 2


def animation_format(requested: str | None, source_format: str | None) -> str | None:
    """The format of an animated thumbnail of a `source_format` source (Pillow's decoder name),
    or None when it must be still: the requested format when it can animate, else the source's
    own (GIF -> GIF, WebP -> WebP). JPEG, PNG and AVIF output are always still."""
    source = format_for_decoder(source_format)
    if source is None or not source.animation:
        return None
    name = requested or source.name
    return name if FORMATS[name].animation else None


def animated_frames(image: Image.Image, requested: str | None, effects: Effects, limits: SourceLimits,
                    source: bytes | None = None) -> int:
    """How many frames a thumbnail of the opened `image` shows: every frame of an animated GIF
    or WebP whose output can animate, within `limits.max_frames` and with all frames' pixels
    within `limits.max_pixels`; else 1 (the first frame). Reads headers only, no pixels.

    A GIF's frames are counted from `source` by `gif_frames` when it is given: Pillow counts them
    by seeking, and a seek to a frame larger than the logical screen allocates that frame's
    canvas (a 280-byte GIF of a 24x16 screen and an 11822x11822 second frame took 565 MB)."""
    if effects.still or animation_format(requested, image.format) is None:
        return 1
    try:
        if image.format == "GIF" and source is not None:
            frames = gif_frames(source, limits.max_frames)
        else:
            with decoding():
                frames = getattr(image, "n_frames", 1)
    except ImageError:  # a broken later frame: the first one is still a thumbnail
        return 1
    width, height = image.size
    if frames < 2 or frames > limits.max_frames or frames * width * height > limits.max_pixels:
        return 1
    return frames


#: Blocks and sub-blocks `gif_frames` walks at most (a sub-block of image data is up to 255
#: bytes: a 100 MB GIF of full sub-blocks is ~400,000); past it, the GIF is shown still.
MAX_GIF_BLOCKS = 1_000_000


def gif_frames(data: bytes, max_frames: int) -> int:
    """The frames of a GIF, counted from its blocks without decoding: 1 (show the first frame
    only) when a frame lies outside the logical screen, when the file has more than
    `max_frames` frames (then max_frames + 1 is returned, so the caller sees "too many"), or
    when it is too long to walk."""
    if len(data) < 13:
        return 1
    screen_w, screen_h = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = steps = 0
    size = len(data)
    while pos < size and steps < MAX_GIF_BLOCKS:
        steps += 1
        introducer = data[pos]
        if introducer == 0x3B:  # trailer
            break
        if introducer == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif introducer == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if pos + 10 > size:
                break
            left, top, width, height = (int.from_bytes(data[pos + 1 + 2 * i : pos + 3 + 2 * i], "little")
                                        for i in range(4))
            if left + width > screen_w or top + height > screen_h:
                return 1  # Pillow would grow the canvas to it: not an animation to render
            frames += 1
            if frames > max_frames:
                return frames
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
        else:
            pos += 1  # a stray byte: Pillow skips it
            continue
        while pos < size and steps < MAX_GIF_BLOCKS:
            steps += 1
            length = data[pos]
            pos += 1 + length
            if length == 0:
                break
    if steps >= MAX_GIF_BLOCKS:
        return 1
    return max(frames, 1)


def animation_peak(geometry: Geometry, frames: int) -> int:
    """The bytes an animation of `frames` frames of `geometry` keeps beyond its decoded canvas
    (0 for a still image): every finished frame waits for the encoder, which converts each once."""
    if frames < 2:
        return 0
    width, height = geometry.canvas or (geometry.width, geometry.height)
    return FRAME_BYTES * FRAME_COPIES * width * height * frames


def webp_animation_is_lossless(source: bytes) -> bool:
    """Whether an animated WebP's first frame is VP8L (lossless), from its RIFF chunks: VP8X,
    then ANIM and other chunks, then ANMF frames whose data starts after a 16-byte header."""
    if source[:4] != b"RIFF" or source[8:12] != b"WEBP":
        return False
    offset = 12
    for _ in range(64):  # a real file has a handful of chunks before its first frame
        fourcc = source[offset : offset + 4]
        if len(source) < offset + 8:
            return False
        if fourcc == b"ANMF":
            frame = offset + 8 + 16
            while source[frame : frame + 4] in (b"ALPH",):  # lossy frames may start with alpha
                size = int.from_bytes(source[frame + 4 : frame + 8], "little")
                frame += 8 + size + (size & 1)
            return source[frame : frame + 4] == b"VP8L"
        size = int.from_bytes(source[offset + 4 : offset + 8], "little")
        offset += 8 + size + (size & 1)
    return False


def render_animation(
    image: Image.Image, box: Box, effects: Effects, frames: int, *, output_format: str, quality: int,
    settings: EncoderSettings, lossless: bool = False,
) -> tuple[bytes, tuple[int, int]]:
    """`frames` frames of the opened `image`, each through finish_frame, encoded as one
    `output_format` (animation_format's choice) animation; returns its bytes and size.
    `lossless`: a WebP output is lossless (its source's frames were).

    A frame that fails to decode after the first ends the animation there (a truncated file
    plays what it has, as browsers do).
    """
    with decoding():
        orientation = read_orientation(image)
        icc_profile = valid_icc_profile(image.info.get("icc_profile"))
        loop = image.info.get("loop")
    source_size = displayed_size(image.size, orientation)
    geometry = plan_geometry(*source_size, box)
    finished: list[Image.Image] = []
    durations: list[int] = []
    disposals: list[int] = []
    canvas = image.size
    for index in range(frames):
        try:
            with decoding():
                image.seek(index)
                if image.size != canvas:
                    # A later frame larger than the canvas grows it (Pillow follows the file): the
                    # pixel limit was checked against the first frame's size, so stop here.
                    break
                image.load()
                pixels = normalize_mode(orient(image, orientation))
        except ImageError:
            if index == 0:
                raise
            break
        if index == 0:  # one crop for every frame, so the animation does not wander
            geometry = plan_geometry(*source_size, box, crop_focus(pixels, geometry, source_size, effects))
        frame = finish_frame(pixels, geometry, source_size, effects, output_format)
        finished.append(frame.copy() if frame is image else frame)  # the canvas changes at the next seek
        durations.append(int(image.info.get("duration", 0) or 0))
        disposals.append(int(getattr(image, "disposal_method", 0) or 0))
    data = encode_animation(
        finished, output_format, durations=durations, disposals=disposals, loop=loop,
        quality=quality, icc_profile=icc_profile, settings=settings, lossless=lossless,
    )
    return data, finished[0].size
