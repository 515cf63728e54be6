"""JPEG decoded at any M/8 scale (simplejpeg), with orientation, ICC and CMYK handled as before."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from server.imaging import RenderRequest, SourceLimits, UndecodableImage, render_thumbnail
from server.imaging.decode import decoding, open_source
from server.imaging.geometry import Box
from server.imaging.intermediate import DRAFT, SCALED, class_size, decode_class, decode_intermediate, read_facts
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)


def intermediate_of(data: bytes, box: Box):
    header = open_source(data, LIMITS)
    with decoding():
        facts = read_facts(header)
        return facts, decode_intermediate(header, data, facts, decode_class(facts, box))


def render(data: bytes, width: int, height: int | None = None, fit: str = "contain", format: str = "png") -> Image.Image:
    request = RenderRequest(width=width, height=height, fit=fit, format=format, quality=None)
    return Image.open(BytesIO(render_thumbnail(data, request, limits=LIMITS).data))


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(first.convert("RGB"), second.convert("RGB"))).mean) / 3


class TestSizes:
    """The decode is the smallest M/8 covering the box, at libjpeg's rounded-up size."""

    @pytest.mark.parametrize(("width", "eighths", "decoded"), [
        (512, 3, (720, 480)), (240, 1, (240, 160)), (241, 2, (480, 320)), (700, 3, (720, 480)),
        (721, 4, (960, 640)), (1000, 5, (1200, 800)), (1920, 8, (1920, 1280)),
    ])
    def test_2mp(self, width, eighths, decoded) -> None:
        data = images.jpeg_bytes((1920, 1280), image=images.textured((1920, 1280)))
        facts, intermediate = intermediate_of(data, Box(width, None, "contain"))
        assert facts.decoder == SCALED
        assert decode_class(facts, Box(width, None, "contain")) == eighths
        assert intermediate.image.size == decoded
        assert render(data, width).width == min(width, 1920)

    def test_odd_sizes_round_up(self) -> None:
        data = images.jpeg_bytes((1001, 333))
        _, intermediate = intermediate_of(data, Box(100, None, "contain"))
        assert intermediate.image.size == (126, 42)  # ceil(1001/8), ceil(333/8)

    def test_same_pixels_as_pillow_at_a_power_of_two(self) -> None:
        data = images.jpeg_bytes((1920, 1280), image=images.textured((1920, 1280)))
        _, intermediate = intermediate_of(data, Box(240, None, "contain"))
        pillow = Image.open(BytesIO(data))
        pillow.draft("RGB", (240, 160))
        pillow.load()
        assert pillow.size == intermediate.image.size == (240, 160)
        assert mean_difference(pillow, intermediate.image) < 1.0


class TestOrientation:
    """Every EXIF orientation is applied after the scaled decode, as for Pillow's."""

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_mark_ends_where_pillow_puts_it(self, orientation) -> None:
        pixels = images.marked((1600, 800))
        data = images.jpeg_bytes((1600, 800), image=pixels, orientation=orientation)
        facts, intermediate = intermediate_of(data, Box(200, None, "contain"))
        assert facts.decoder == SCALED
        reference = ImageOps.exif_transpose(Image.open(BytesIO(data)))
        out = render(data, 200)
        assert out.size == (200, 200 * reference.height // reference.width)
        assert mean_difference(out, reference.resize(out.size, Image.Resampling.LANCZOS)) < 4.0


class TestColour:
    """ICC profiles are kept, greyscale stays grey, CMYK goes through Pillow as before."""

    def test_icc_profile_kept(self) -> None:
        profile = images.srgb_profile()
        data = images.jpeg_bytes((800, 600), icc=profile)
        facts, intermediate = intermediate_of(data, Box(100, None, "contain"))
        assert facts.decoder == SCALED and intermediate.icc_profile == profile
        assert render(data, 100, format="jpeg").info.get("icc_profile") == profile

    def test_grey_jpeg(self) -> None:
        data = images.jpeg_bytes((800, 600), mode="L", image=images.gradient((800, 600), "L"))
        facts, intermediate = intermediate_of(data, Box(300, None, "contain"))
        assert facts.decoder == SCALED and intermediate.image.mode == "L"
        assert intermediate.image.size == (300, 225)
        out = render(data, 300, format="jpeg")
        assert out.mode == "L"
        reference = Image.open(BytesIO(data)).resize(out.size, Image.Resampling.LANCZOS)
        assert mean_difference(out, reference) < 3.0

    def test_progressive(self) -> None:
        data = images.jpeg_bytes((800, 600), progressive=True, color="orange")
        facts, intermediate = intermediate_of(data, Box(100, None, "contain"))
        assert facts.decoder == SCALED and intermediate.image.size == (100, 75)
        assert mean_difference(render(data, 100), Image.new("RGB", (100, 75), "orange")) < 3.0

    def test_cmyk_falls_back_to_pillow_with_its_profile(self) -> None:
        data = images.jpeg_bytes((800, 600), mode="CMYK", color=(0, 0, 0, 0), icc=images.cmyk_profile())
        facts, intermediate = intermediate_of(data, Box(100, None, "contain"))
        assert facts.decoder == DRAFT
        assert intermediate.image.size == class_size(facts, 1) == (100, 75)
        assert intermediate.image.mode == "RGB" and intermediate.icc_profile is None
        red, green, blue = render(data, 100).convert("RGB").getpixel((50, 37))
        assert green > 150 and red < 100 and blue < 100  # the profile's green, not CMYK white

    def test_truncated_source_is_undecodable(self) -> None:
        data = images.truncated(images.jpeg_bytes((800, 600), image=images.textured((800, 600))))
        with pytest.raises(UndecodableImage):
            render(data, 100)
