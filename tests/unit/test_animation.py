"""Animated GIF and WebP sources: every frame through the steps, timing and loop kept, and the
cases that give the first frame only (still, a still output format, the frame and pixel limits)."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image

from server.imaging import (
    Box,
    Effects,
    EncoderSettings,
    RenderRequest,
    SourceLimits,
    animated_frames,
    animation_peak,
    open_source,
    plan_geometry,
    render_thumbnail,
)
from server.imaging.animation import webp_animation_is_lossless
from tests.support import images
from tests.support.images import FRAME_COLOURS

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)
DURATIONS = [100, 200, 300, 400]


def render(source: bytes, width: int | None = 32, height: int | None = None, fit: str = "contain",
           format: str | None = None, limits: SourceLimits = LIMITS, **effects: object) -> Image.Image:
    request = RenderRequest(width, height, fit, format, None, EncoderSettings(), Effects(**effects))  # type: ignore[arg-type]
    rendered = render_thumbnail(source, request, limits=limits)
    image = Image.open(BytesIO(rendered.data))
    assert image.format.lower() == rendered.format
    assert image.size == (rendered.width, rendered.height)
    return image


def frames_of(image: Image.Image) -> list[tuple[Image.Image, int]]:
    """Every frame as a reader composites it (RGBA), with its duration."""
    found = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()  # WebP sets the frame's duration when it is loaded
        found.append((image.convert("RGBA"), image.info.get("duration")))
    return found


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


class TestAnimatedOutput:
    """GIF and WebP sources stay animated in GIF and WebP output: frames, durations, loop."""

    @pytest.mark.parametrize(
        ("source_format", "requested", "output"),
        [("gif", None, "gif"), ("webp", None, "webp"), ("gif", "webp", "webp"), ("webp", "gif", "gif"),
         ("gif", "gif", "gif"), ("webp", "webp", "webp")],
    )
    def test_every_frame_is_resized_and_timed(self, source_format: str, requested: str | None, output: str) -> None:
        source = images.numbered_animation(source_format, frames=4, size=(64, 48), durations=DURATIONS, loop=3)
        out = render(source, 32, None, format=requested)
        assert out.format.lower() == output
        assert out.size == (32, 24)
        assert out.info.get("loop") == 3
        frames = frames_of(out)
        assert [duration for _, duration in frames] == DURATIONS
        for index, (frame, _) in enumerate(frames):
            assert close_to(frame.getpixel((20, 16)), FRAME_COLOURS[index] + (255,))
            # The frame's number: a white 8x8 mark at x = 8i in the source, 4i here.
            assert close_to(frame.getpixel((4 * index + 2, 2)), (255, 255, 255, 255), 40)
            if index:
                assert not close_to(frame.getpixel((2, 2)), (255, 255, 255, 255), 40)

    def test_gif_disposal_is_kept(self) -> None:
        source = images.numbered_animation("gif", frames=3, transparent=True)
        out = render(source, 32)
        methods = []
        for index in range(out.n_frames):
            out.seek(index)
            methods.append(out.disposal_method)
        assert methods == [2, 2, 2]

    @pytest.mark.parametrize(("source_format", "format"), [("gif", "gif"), ("webp", "webp"), ("gif", "webp"),
                                                           ("webp", "gif")])
    def test_transparency_survives_in_every_frame(self, source_format: str, format: str) -> None:
        source = images.numbered_animation(source_format, frames=3, transparent=True)
        for index, (frame, _) in enumerate(frames_of(render(source, 32, format=format))):
            assert frame.getpixel((30, 20))[3] == 0, index
            assert close_to(frame.getpixel((12, 20)), FRAME_COLOURS[index] + (255,))

    def test_gif_without_loop_plays_once(self) -> None:
        out = render(images.numbered_animation("gif", frames=2, loop=None), 32)
        assert out.n_frames == 2 and "loop" not in out.info

    def test_cover_crop_and_filters_apply_to_every_frame(self) -> None:
        source = images.numbered_animation("gif", frames=4, size=(64, 48))
        out = render(source, 24, 24, "cover", focus=(0, 0), gray=True)
        frames = frames_of(out)
        assert out.size == (24, 24) and len(frames) == 4
        for index, (frame, _) in enumerate(frames):
            r, g, b, _ = frame.getpixel((20, 20))
            assert r == g == b
            expected = round(0.299 * FRAME_COLOURS[index][0] + 0.587 * FRAME_COLOURS[index][1]
                             + 0.114 * FRAME_COLOURS[index][2])
            assert abs(r - expected) <= 12

    def test_pad_gives_every_frame_the_box(self) -> None:
        source = images.numbered_animation("webp", frames=3, size=(64, 32))
        frames = frames_of(render(source, 40, 40, "pad", background="000000"))
        assert len(frames) == 3
        for index, (frame, _) in enumerate(frames):
            assert frame.size == (40, 40)
            assert close_to(frame.getpixel((20, 2)), (0, 0, 0, 255))
            assert close_to(frame.getpixel((30, 20)), FRAME_COLOURS[index] + (255,))


class TestFirstFrameOnly:
    """still, a still output format and the limits give one frame: the first."""

    @pytest.mark.parametrize("format", ["gif", "webp"])
    def test_still(self, format: str) -> None:
        out = render(images.numbered_animation(format), 32, still=True)
        assert getattr(out, "n_frames", 1) == 1
        assert close_to(out.convert("RGBA").getpixel((20, 16)), FRAME_COLOURS[0] + (255,))
        assert out.format == ("PNG" if format == "gif" else "WEBP")

    @pytest.mark.parametrize("format", ["png", "jpeg", "avif"])
    def test_still_output_formats(self, format: str) -> None:
        out = render(images.numbered_animation("gif"), 32, format=format)
        assert getattr(out, "n_frames", 1) == 1
        assert close_to(out.convert("RGB").getpixel((20, 16)), FRAME_COLOURS[0])

    def test_more_frames_than_the_limit(self) -> None:
        source = images.numbered_animation("gif", frames=4)
        limited = SourceLimits(LIMITS.max_pixels, LIMITS.max_bytes, max_frames=3)
        assert getattr(render(source, 32, limits=limited), "n_frames", 1) == 1
        at_limit = SourceLimits(LIMITS.max_pixels, LIMITS.max_bytes, max_frames=4)
        assert render(source, 32, limits=at_limit).n_frames == 4

    def test_all_frames_over_the_pixel_limit(self) -> None:
        source = images.numbered_animation("webp", frames=4, size=(64, 48))
        # One frame fits (64 * 48 = 3072), four do not.
        limited = SourceLimits(4 * 3072 - 1, LIMITS.max_bytes)
        out = render(source, 32, limits=limited)
        assert getattr(out, "n_frames", 1) == 1
        assert close_to(out.convert("RGBA").getpixel((20, 16)), FRAME_COLOURS[0] + (255,))
        assert render(source, 32, limits=SourceLimits(4 * 3072, LIMITS.max_bytes)).n_frames == 4

    @pytest.mark.parametrize("keep", [0.5, 0.75, 0.9])
    def test_truncated_animation_plays_the_frames_it_has(self, keep: float) -> None:
        source = images.numbered_animation("gif", frames=4)
        out = render(source[: int(len(source) * keep)], 32)
        assert 1 <= getattr(out, "n_frames", 1) < 4
        assert close_to(out.convert("RGBA").getpixel((20, 16)), FRAME_COLOURS[0] + (255,))


class TestPeak:
    """What an animation announces counts its frames; a still image adds nothing."""

    def test_frames_and_peak_from_the_header(self) -> None:
        source = images.numbered_animation("gif", frames=4, size=(64, 48))
        header = open_source(source, LIMITS)
        frames = animated_frames(header, None, Effects(), LIMITS)
        assert frames == 4
        geometry = plan_geometry(64, 48, Box(32, None, "contain"))
        assert animation_peak(geometry, frames) == 4 * 2 * 32 * 24 * 4
        assert animation_peak(geometry, 1) == 0
        assert animated_frames(header, None, Effects(still=True), LIMITS) == 1
        assert animated_frames(header, "png", Effects(), LIMITS) == 1


class TestLossless:
    """An animated WebP of lossless frames stays lossless when its family decides the output."""

    def test_lossless_source_gives_exact_pixels(self) -> None:
        source = images.numbered_animation("webp", frames=3, size=(64, 48))
        out = render(source, 64)  # no resize: the pixels must come back exactly
        for index, (frame, _) in enumerate(frames_of(out)):
            assert frame.getpixel((30, 30)) == FRAME_COLOURS[index] + (255,)
        data = images.to_bytes(Image.new("RGB", (1, 1)), "PNG")  # not a WebP: never lossless
        assert webp_animation_is_lossless(source) and not webp_animation_is_lossless(data)

    def test_requested_webp_is_lossy(self) -> None:
        source = images.numbered_animation("webp", frames=3, size=(64, 48))
        rendered = render_thumbnail(source, RenderRequest(64, None, "contain", "webp", 50), limits=LIMITS)
        assert b"ANMF" in rendered.data and not webp_animation_is_lossless(rendered.data)


class TestFramesLargerThanTheScreen:
    """A GIF whose later frame lies outside its logical screen is shown still, counted without
    Pillow's seek (which allocates that frame's canvas: 2.3 GB and 6 s for this 275-byte file,
    found by tests/fuzz/fuzz_render.py)."""

    # A 24x16 screen, a first frame, and a second frame of 11822x11822.
    HOSTILE = bytes.fromhex(
        "47494638396118001000810000000000ff000000000000000021ff0b4e45545343415045322e30030100000021f904090a0000002c000000001800100000083f0003081c485020808308131e2cc83080c287001a1684a85022418a092d0ec48850a3418e113d820ca971a44787204f9a1499922547952d4bc6b4b85226c7800021f904080a0000002c000000002e2e2e2e2e2e2e2e2e2e2e2e180010008100ff0000000000000000000008220001081c48b0a0c18308132a5cc8b0a1c38710234a9c48b1a2c58b18336adc6830200021f904080a0000002c0000000018001000810000ff00000000000000000008220001081c48b0a0c18308132a5cc8b0a1c38710234a9c48b1a2c58b18336adc683020003b"
    )

    def test_counted_like_pillow_for_real_animations(self) -> None:
        from server.imaging.animation import gif_frames

        for count in (2, 3, 7):
            data = images.gif_bytes(frames=[(40 * n, 0, 0) for n in range(count)])
            with Image.open(BytesIO(data)) as opened:
                assert gif_frames(data, 100) == opened.n_frames == count
        assert gif_frames(images.gif_bytes(frames=[(n, 0, 0) for n in range(5)]), 3) == 4  # "too many"

    def test_hostile_frame_is_still_and_cheap(self) -> None:
        import resource

        from server.imaging.animation import gif_frames

        assert gif_frames(self.HOSTILE, 100) == 1
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = render(self.HOSTILE, width=7, height=7)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert getattr(out, "n_frames", 1) == 1
        assert max(out.size) <= 7
        assert grown_mb < 50, f"peak RSS grew by {grown_mb:.0f} MB"
