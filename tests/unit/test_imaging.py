"""server.imaging: the render pipeline, judged by decoding what it writes."""

from __future__ import annotations

import random
import time
import warnings
from io import BytesIO

from tests.support import images
import pytest
from PIL import EpsImagePlugin, Image, ImageFile, PsdImagePlugin

from server import imaging
from server.formats import FORMATS, OUTPUT_FORMATS
from server.imaging import (
    EncoderSettings,
    Geometry,
    ImageError,
    Rendered,
    RenderRequest,
    SourceLimits,
    SourceTooLarge,
    UndecodableImage,
    render_thumbnail,
)

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)
WHITE, RED, GREEN, BLUE = (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)


def request(
    width: int | None = 100,
    height: int | None = 100,
    fit: str = "contain",
    format: str | None = None,
    quality: int | None = None,
) -> RenderRequest:
    return RenderRequest(width=width, height=height, fit=fit, format=format, quality=quality, encoder=EncoderSettings())


def render(source: bytes, *, limits: SourceLimits = LIMITS, **spec: object) -> Rendered:
    return render_thumbnail(source, request(**spec), limits=limits)  # type: ignore[arg-type]


def decode(rendered: Rendered) -> Image.Image:
    """The output as a reader sees it; checks that the bytes are the format announced."""
    image = Image.open(BytesIO(rendered.data))
    assert image.format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}[rendered.format]
    assert image.size == (rendered.width, rendered.height)
    image.load()
    return image


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def corners(image: Image.Image) -> dict[str, tuple[int, ...]]:
    """RGB colour a little inside each corner (clear of resampling at the edges)."""
    rgb = image.convert("RGB")
    x0, y0 = rgb.width // 16, rgb.height // 16
    x1, y1 = rgb.width - 1 - x0, rgb.height - 1 - y0
    return {
        "top-left": rgb.getpixel((x0, y0)),
        "top-right": rgb.getpixel((x1, y0)),
        "bottom-left": rgb.getpixel((x0, y1)),
        "bottom-right": rgb.getpixel((x1, y1)),
    }


@pytest.fixture(scope="module")
def photo_24mp() -> bytes:
    """A 6000x4000 JPEG, made once per module: flat-ish so that it encodes quickly."""
    return images.jpeg_bytes((6000, 4000), image=images.gradient((6000, 4000)), quality=90)


class TestPlanGeometry:
    """plan_geometry: output size and crop for contain/cover/fill, never larger than the source."""

    @pytest.mark.parametrize(
        ("box", "expected"),
        [
            ((400, 400), (400, 300)),
            ((400, 100), (133, 100)),
            ((400, None), (400, 300)),
            ((None, 150), (200, 150)),
            ((2000, 2000), (800, 600)),  # larger than the source: the source's size
            ((None, 6000), (800, 600)),
            ((1000, 300), (400, 300)),
        ],
    )
    def test_contain_keeps_aspect_inside_the_box(self, box, expected):
        assert imaging.plan_geometry(800, 600, request(*box)) == Geometry(*expected, None)

    def test_cover_crops_the_overflow_around_the_centre(self):
        assert imaging.plan_geometry(800, 600, request(300, 300, "cover")) == Geometry(300, 300, (100, 0, 700, 600))
        assert imaging.plan_geometry(600, 800, request(300, 100, "cover")) == Geometry(300, 100, (0, 300, 600, 500))

    def test_cover_with_the_source_aspect_needs_no_crop(self):
        assert imaging.plan_geometry(800, 600, request(400, 300, "cover")) == Geometry(400, 300, None)

    def test_cover_larger_than_the_source_is_its_largest_crop_of_the_box_aspect(self):
        assert imaging.plan_geometry(1000, 500, request(800, 800, "cover")) == Geometry(500, 500, (250, 0, 750, 500))
        assert imaging.plan_geometry(800, 600, request(1600, 900, "cover")) == Geometry(800, 450, (0, 75, 800, 525))

    def test_fill_is_exactly_the_box(self):
        assert imaging.plan_geometry(800, 600, request(100, 300, "fill")) == Geometry(100, 300, None)

    def test_fill_larger_than_the_source_scales_the_box_down_uniformly(self):
        assert imaging.plan_geometry(800, 600, request(1600, 300, "fill")) == Geometry(800, 150, None)
        assert imaging.plan_geometry(800, 600, request(400, 1200, "fill")) == Geometry(200, 600, None)

    def test_sides_are_at_least_one_pixel(self):
        assert imaging.plan_geometry(10000, 1, request(100, None)) == Geometry(100, 1, None)
        assert imaging.plan_geometry(10000, 2, request(1, 1, "cover")) == Geometry(1, 1, (4999, 0, 5001, 2))


class TestRequestValidation:
    """RenderRequest refuses contradictions: those are caller bugs, not bad images."""

    @pytest.mark.parametrize(
        "spec",
        [
            {"width": None, "height": None},
            {"width": 0},
            {"fit": "stretch"},
            {"fit": "cover", "height": None},
            {"fit": "fill", "width": None},
            {"format": "tiff"},
            {"quality": 0},
            {"quality": 101},
        ],
    )
    def test_invalid_request_raises_value_error(self, spec):
        with pytest.raises(ValueError):
            request(**spec)


class TestOutputSize:
    """render_thumbnail writes an image of exactly the planned size."""

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ({"width": 100, "height": 100}, (100, 75)),
            ({"width": 100, "height": None}, (100, 75)),
            ({"width": None, "height": 60}, (80, 60)),
            ({"width": 100, "height": 100, "fit": "cover"}, (100, 100)),
            ({"width": 100, "height": 20, "fit": "fill"}, (100, 20)),
            ({"width": 1000, "height": 1000}, (320, 240)),
            ({"width": 1000, "height": 500, "fit": "cover"}, (320, 160)),
        ],
    )
    def test_size_follows_the_fit(self, spec, expected):
        rendered = render(images.jpeg_bytes((320, 240)), **spec)
        assert decode(rendered).size == expected

    def test_cover_shows_the_centre(self):
        # Left and right thirds red, centre blue: a square cover keeps only the centre.
        source = Image.new("RGB", (300, 100), "red")
        source.paste("blue", (100, 0, 200, 100))
        out = decode(render(images.png_bytes(image=source), width=50, height=50, fit="cover"))
        assert all(close_to(colour, BLUE) for colour in corners(out).values())

    def test_unchanged_size_is_not_resampled(self):
        source = images.png_bytes((40, 30), mode="RGB", image=images.noise((40, 30)))
        out = decode(render(source, width=40, height=30, format="png"))
        assert out.tobytes() == Image.open(BytesIO(source)).tobytes()


class TestOrientation:
    """EXIF orientation is applied before sizing, then dropped."""

    # Where the stored image's top-left corner is seen once the orientation is applied.
    MARK_SEEN_AT = {
        1: "top-left",
        2: "top-right",
        3: "bottom-right",
        4: "bottom-left",
        5: "top-left",
        6: "top-right",
        7: "bottom-right",
        8: "bottom-left",
    }

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_marked_corner_lands_where_the_orientation_says(self, orientation):
        stored = images.marked((160, 120), base="blue", mark="red")
        out = decode(render(images.jpeg_bytes(image=stored, orientation=orientation), width=80, height=80))
        assert out.size == ((60, 80) if orientation >= 5 else (80, 60))
        seen = corners(out)
        assert close_to(seen.pop(self.MARK_SEEN_AT[orientation]), RED, 40)
        assert all(close_to(colour, BLUE, 40) for colour in seen.values())

    @pytest.mark.parametrize("encode", [images.jpeg_bytes, images.png_bytes, images.webp_bytes, images.avif_bytes])
    def test_landscape_tagged_6_gives_a_portrait_thumbnail(self, encode):
        source = encode((160, 120), image=images.marked((160, 120), base="blue", mark="red"), orientation=6)
        out = decode(render(source, width=300, height=None, format="png"))
        assert out.size == (120, 160)
        assert close_to(corners(out)["top-right"], RED, 40)

    def test_box_refers_to_the_displayed_image(self):
        out = decode(render(images.jpeg_bytes((400, 100), orientation=8), width=50, height=None))
        assert out.size == (50, 200)

    def test_orientation_tag_is_gone(self):
        out = decode(render(images.jpeg_bytes((160, 120), orientation=6), width=80, height=80))
        assert imaging.EXIF_ORIENTATION not in out.getexif()


class TestMetadata:
    """Everything but the ICC profile is stripped."""

    def test_exif_and_comment_are_stripped_from_jpeg(self):
        source = images.jpeg_bytes((64, 48), exif=True, comment=b"made by a secret tool")
        assert b"secret" in source
        rendered = render(source, width=32, height=None)
        out = decode(rendered)
        assert not out.getexif()
        assert "exif" not in out.info and "comment" not in out.info
        assert b"secret" not in rendered.data

    @pytest.mark.parametrize("format", ["png", "webp", "avif"])
    def test_exif_and_text_are_stripped_from_other_formats(self, format):
        source = images.png_bytes((64, 48), mode="RGB", text={"Comment": "secret text"}, orientation=1)
        rendered = render(source, width=32, height=None, format=format)
        out = decode(rendered)
        assert not out.getexif()
        assert not {"exif", "xmp", "Comment"} & out.info.keys()
        assert b"secret" not in rendered.data

    @pytest.mark.parametrize(
        ("encode", "format"),
        [
            (images.jpeg_bytes, "jpeg"),
            (images.jpeg_bytes, "png"),
            (images.jpeg_bytes, "webp"),
            (images.jpeg_bytes, "avif"),
            (images.png_bytes, None),
            (images.webp_bytes, None),
        ],
    )
    def test_icc_profile_is_kept(self, encode, format):
        profile = images.srgb_profile()
        out = decode(render(encode((64, 48), icc=profile), width=32, height=None, format=format))
        assert out.info.get("icc_profile") == profile

    def test_profile_of_the_wrong_colour_space_is_not_written(self):
        # An RGB profile on greyscale pixels is a broken file; webp widens grey to RGB, where a
        # Gray profile would be just as wrong.
        grey_with_rgb_profile = images.jpeg_bytes((64, 48), mode="L", icc=True)
        out = decode(render(grey_with_rgb_profile, width=32, height=None, format="jpeg"))
        assert out.mode == "L"
        assert "icc_profile" not in out.info


class TestModes:
    """Every source mode becomes 8-bit L, RGB or their alpha forms, with the right values."""

    def test_cmyk_jpeg_becomes_rgb(self):
        source = images.jpeg_bytes((64, 48), mode="CMYK", color=(0, 255, 255, 0))  # red ink mix
        out = decode(render(source, width=32, height=None))
        assert out.mode == "RGB"
        assert close_to(out.getpixel((16, 12)), RED, 30)

    def test_cmyk_with_a_profile_is_converted_through_it_and_the_profile_dropped(self):
        # This profile maps every CMYK value to green: a naive conversion would give white.
        source = images.jpeg_bytes((64, 48), mode="CMYK", color=(0, 0, 0, 0), icc=images.cmyk_profile())
        out = decode(render(source, width=32, height=None))
        assert out.mode == "RGB"
        assert close_to(out.getpixel((16, 12)), GREEN, 30)
        assert "icc_profile" not in out.info

    def test_cmyk_tiff_becomes_rgb_jpeg(self):
        rendered = render(images.tiff_bytes((64, 48), mode="CMYK", color=(255, 255, 0, 0)), width=32, height=None)
        assert rendered.format == "jpeg"
        assert close_to(decode(rendered).getpixel((16, 12)), BLUE, 40)

    @pytest.mark.parametrize(
        "source",
        [
            images.png_bytes((256, 8), mode="I;16"),
            images.tiff_bytes((256, 8), mode="I;16"),
            images.tiff_bytes((256, 8), mode="I;16B"),
            images.tiff_bytes((256, 8), mode="I"),
            images.tiff_bytes((256, 8), mode="F"),
        ],
        ids=["png-I;16", "tiff-I;16", "tiff-I;16B", "tiff-I", "tiff-F"],
    )
    def test_high_bit_depth_is_scaled_not_clipped(self, source):
        # A full-range ramp: black on the left, white on the right, mid-grey in the middle.
        out = decode(render(source, width=256, height=None, format="png"))
        assert out.mode == "L"
        assert out.getpixel((0, 4)) <= 2
        assert out.getpixel((255, 4)) >= 253
        assert 120 <= out.getpixel((128, 4)) <= 136

    def test_greyscale_stays_greyscale_for_jpeg_and_png(self):
        source = images.jpeg_bytes((64, 48), mode="L")
        assert decode(render(source, width=32, height=None)).mode == "L"
        assert decode(render(source, width=32, height=None, format="png")).mode == "L"

    @pytest.mark.parametrize("format", ["webp", "avif"])
    def test_greyscale_is_widened_for_webp_and_avif(self, format):
        out = decode(render(images.png_bytes((64, 48), mode="L", color=200), width=32, height=None, format=format))
        assert out.mode == "RGB"
        assert close_to(out.getpixel((16, 12)), (200, 200, 200), 6)

    def test_one_bit_becomes_greyscale(self):
        out = decode(render(images.bmp_bytes((64, 48), mode="1", color=1), width=32, height=None, format="png"))
        assert out.mode == "L"
        assert out.getpixel((16, 12)) == 255

    def test_palette_becomes_rgb(self):
        out = decode(render(images.png_bytes((64, 48), mode="P", color=None), width=32, height=None))
        assert out.mode == "RGB"

    def test_palette_with_transparency_becomes_rgba(self):
        palette_image = Image.new("P", (64, 48), 0)
        palette_image.putpalette([255, 0, 0, 0, 0, 255])
        palette_image.paste(1, (32, 0, 64, 48))
        source = images.png_bytes(image=palette_image, transparency=1)
        out = decode(render(source, width=64, height=None))
        assert out.mode == "RGBA"
        assert out.getpixel((8, 24)) == (255, 0, 0, 255)
        assert out.getpixel((56, 24))[3] == 0

    def test_greyscale_with_alpha_flattens_to_greyscale_jpeg(self):
        source = images.png_bytes((64, 48), mode="LA", color=(0, 0))
        out = decode(render(source, width=32, height=None, format="jpeg"))
        assert out.mode == "L"
        assert out.getpixel((16, 12)) >= 250


class TestAlpha:
    """Alpha is flattened on white for JPEG only; other formats keep it, without dark fringes."""

    @pytest.fixture
    def half_transparent(self) -> bytes:
        """Left half opaque red, right half fully transparent black."""
        image = Image.new("RGBA", (200, 100), (255, 0, 0, 255))
        image.paste((0, 0, 0, 0), (100, 0, 200, 100))
        return images.png_bytes(image=image)

    def test_jpeg_flattens_on_white(self, half_transparent):
        out = decode(render(half_transparent, width=100, height=None, format="jpeg"))
        assert out.mode == "RGB"
        assert close_to(out.getpixel((90, 25)), WHITE, 4)
        assert close_to(out.getpixel((10, 25)), RED, 4)

    @pytest.mark.parametrize("format", ["png", "webp", "avif"])
    def test_alpha_is_kept(self, half_transparent, format):
        out = decode(render(half_transparent, width=100, height=None, format=format))
        assert out.mode == "RGBA"
        assert out.getpixel((90, 25))[3] <= 4
        assert out.getpixel((10, 25))[3] >= 250

    def test_no_dark_fringe_on_transparent_edges(self, half_transparent):
        out = decode(render(half_transparent, width=37, height=None, format="png"))
        edge = [out.getpixel((x, 10)) for x in range(out.width) if 0 < out.getpixel((x, 10))[3] < 255]
        assert edge, "the resize should blend the edge"
        assert all(r >= 250 and g <= 5 and b <= 5 for r, g, b, _ in edge)

    def test_tiff_with_alpha_defaults_to_png(self):
        rendered = render(images.tiff_bytes((64, 48), mode="RGBA"), width=32, height=None)
        assert rendered.format == "png"
        assert decode(rendered).mode == "RGBA"


class TestAnimation:
    """Animated sources made still (a still output format, or too many frames) give their first
    frame, without visiting the others. Animated output: tests/unit/test_animation.py."""

    def test_gif_gives_its_first_frame(self):
        out = decode(render(images.gif_bytes(["red", "lime", "blue"]), width=16, height=None, format="png"))
        assert close_to(out.convert("RGB").getpixel((8, 6)), RED, 0)

    def test_gif_first_frame_keeps_its_transparency(self):
        out = decode(render(images.gif_bytes(["red", "blue"], transparent=True), width=32, height=None, format="png"))
        assert out.mode == "RGBA"
        assert out.getpixel((4, 4)) == (255, 0, 0, 255)
        assert out.getpixel((28, 4))[3] == 0

    def test_gif_of_ten_thousand_frames_gives_the_first(self):
        out = decode(render(images.gif_with_many_frames(10_000), width=8, height=None))
        assert out.convert("RGB").getpixel((4, 4)) == RED

    def test_later_frames_are_never_decoded(self):
        # Frames after the first are cut off mid-stream: only reading them could fail.
        source = images.gif_with_many_frames(50)
        out = decode(render(source[: len(source) * 2 // 3], width=8, height=None))
        assert out.convert("RGB").getpixel((4, 4)) == RED

    def test_animated_webp_gives_its_first_frame(self):
        rendered = render(images.webp_bytes((32, 24), frames=["red", "blue"], lossless=True), width=16, height=None)
        assert rendered.format == "webp"
        assert close_to(decode(rendered).convert("RGB").getpixel((8, 6)), RED, 8)


class TestFormats:
    """The output format is the requested one, else the source's family, judged by content."""

    @pytest.mark.parametrize(
        ("source", "family"),
        [
            (images.jpeg_bytes(), "jpeg"),
            (images.png_bytes(mode="RGB"), "png"),
            (images.gif_bytes(), "gif"),
            (images.gif_bytes(["red"]), "png"),
            (images.webp_bytes(), "webp"),
            (images.avif_bytes(), "avif"),
            (images.tiff_bytes(mode="RGB"), "jpeg"),
            (images.bmp_bytes(), "jpeg"),
            (images.bmp_bytes(mode="P"), "jpeg"),
        ],
        ids=["jpeg", "png", "gif-animated", "gif-still", "webp", "avif", "tiff", "bmp", "bmp-palette"],
    )
    def test_source_family_is_the_default(self, source, family):
        rendered = render(source, width=32, height=None)
        assert rendered.format == family
        decode(rendered)

    def test_multi_picture_jpeg_is_a_jpeg(self):
        # Many cameras write MPO: a JPEG with a second picture appended. Pillow names it "MPO".
        source = images.to_bytes(images.gradient((64, 48)), "MPO", save_all=True, append_images=[images.noise((64, 48))])
        assert Image.open(BytesIO(source)).format == "MPO"
        rendered = render(source, width=32, height=None)
        assert rendered.format == "jpeg"
        assert decode(rendered).size == (32, 24)

    @pytest.mark.parametrize("format", OUTPUT_FORMATS)
    def test_requested_format_is_written(self, format):
        rendered = render(images.png_bytes(), width=32, height=None, format=format)
        assert rendered.format == format
        assert rendered.media_type == FORMATS[format].media_type
        assert decode(rendered).size == (32, 24)

    @pytest.mark.parametrize("format", ["jpeg", "webp", "avif"])
    def test_quality_from_the_request_wins(self, format):
        source = images.jpeg_bytes((200, 150), image=images.textured((200, 150)))
        low = render(source, width=200, height=None, format=format, quality=10)
        high = render(source, width=200, height=None, format=format, quality=95)
        default = render(source, width=200, height=None, format=format)
        assert len(low.data) < len(default.data) < len(high.data)

    def test_jpeg_is_baseline(self):
        out = decode(render(images.jpeg_bytes((64, 48), progressive=True), width=32, height=None))
        assert "progressive" not in out.info and "progression" not in out.info

    def test_every_output_format_has_an_extension_media_type_and_decoder(self):
        for name in OUTPUT_FORMATS:
            found = FORMATS[name]
            assert found.extension and found.media_type.startswith("image/") and found.decoders


class TestReduceOnLoad:
    """Large JPEGs are decoded at a reduced scale: never all 24 MP for a small box."""

    def test_24mp_photo_decodes_at_one_eighth_for_a_320_box(self, photo_24mp):
        image = imaging.open_source(photo_24mp, LIMITS)
        imaging.reduce_on_load(image, (320, 213), 1)
        image.load()
        assert image.size == (750, 500)

    def test_render_never_sees_more_than_the_reduced_decode(self, photo_24mp, monkeypatch):
        seen = []
        original = imaging.resize

        def spy(image, geometry, source_size):
            seen.append(image.size)
            return original(image, geometry, source_size)

        monkeypatch.setattr(imaging.steps, "resize", spy)
        # A still's resize is made (once per size) by its intermediate.
        monkeypatch.setattr(imaging.intermediate, "resize", spy)
        out = decode(render(photo_24mp, width=320, height=None, format="jpeg"))
        assert out.size == (320, 213)
        assert seen == [(750, 500)]

    def test_cover_decodes_enough_to_cut_the_box_from(self):
        geometry = imaging.plan_geometry(6000, 4000, request(320, 320, "cover"))
        assert imaging.decode_size(geometry, (6000, 4000)) == (480, 320)

    def test_axes_swap_for_rotated_orientations(self):
        # Stored 4000x1000, displayed 1000x4000: a 250x1000 need is 1000x250 before rotation.
        source = images.jpeg_bytes((4000, 1000), color="gray", orientation=6)
        image = imaging.open_source(source, LIMITS)
        imaging.reduce_on_load(image, (250, 1000), 6)
        image.load()
        assert image.size == (1000, 250)

    def test_reduced_decode_still_covers_the_need(self):
        image = imaging.open_source(images.jpeg_bytes((1000, 1000), color="gray"), LIMITS)
        imaging.reduce_on_load(image, (300, 300), 1)
        image.load()
        assert image.size == (500, 500)

    def test_other_formats_are_untouched(self):
        image = imaging.open_source(images.png_bytes((800, 600)), LIMITS)
        imaging.reduce_on_load(image, (100, 75), 1)
        image.load()
        assert image.size == (800, 600)


def random_bytes() -> bytes:
    return random.Random(7).randbytes(4096)


def progressive_scan_bomb() -> bytes:
    """A small progressive JPEG whose smallest scan is repeated 200 times."""
    data = images.jpeg_bytes((256, 256), color="gray", progressive=True, quality=50)
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"] + [len(data) - 2]
    scans = [data[a:b] for a, b in zip(starts, starts[1:])]
    return data[:-2] + min(scans[1:], key=len) * 200 + data[-2:]


class TestHostileSources:
    """Bad input raises UndecodableImage or SourceTooLarge at once, and nothing else."""

    @pytest.mark.parametrize(
        "source",
        [
            b"",
            random_bytes(),
            b"just some text, not an image\n" * 10,
            images.html_bytes(),
            images.eps_bytes(),
            images.pdf_bytes(),
            images.psd_bytes(),
            images.truncated(images.jpeg_bytes((400, 300), image=images.noise((400, 300)))),
            images.truncated(images.png_bytes((400, 300), mode="RGB", image=images.noise((400, 300)))),
            images.truncated(images.webp_bytes((400, 300), image=images.noise((400, 300)))),
            images.truncated(images.tiff_bytes((400, 300)), keep=0.3),
            images.jpeg_bytes()[:20],
            images.png_text_bomb(),
            progressive_scan_bomb(),
        ],
        ids=[
            "empty", "random", "text", "html", "eps", "pdf", "psd", "truncated-jpeg", "truncated-png",
            "truncated-webp", "truncated-tiff", "jpeg-header-only", "png-text-bomb", "jpeg-scan-bomb",
        ],
    )
    def test_undecodable(self, source):
        started = time.perf_counter()
        with pytest.raises(UndecodableImage) as caught:
            render(source, width=100, height=100)
        assert time.perf_counter() - started < 1.0
        assert caught.value.public_message
        assert "PIL" not in caught.value.public_message

    def test_refused_decoders_are_never_even_opened(self, monkeypatch):
        def forbidden(self):
            raise AssertionError(f"{type(self).__name__} was asked to open the source")

        monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", forbidden)
        monkeypatch.setattr(PsdImagePlugin.PsdImageFile, "_open", forbidden)
        for source in (images.eps_bytes(), images.psd_bytes()):
            with pytest.raises(UndecodableImage):
                render(source)

    @pytest.mark.parametrize(
        "claiming",
        [
            images.png_claiming,
            images.gif_claiming,
            images.bmp_claiming,
            images.tiff_claiming,
            images.jpeg_claiming,
            images.webp_claiming,
        ],
    )
    def test_header_claiming_50000_squared_is_too_large(self, claiming):
        source = claiming(50000, 50000)
        assert len(source) < 2048
        started = time.perf_counter()
        with pytest.raises(SourceTooLarge):
            render(source)
        assert time.perf_counter() - started < 1.0

    @pytest.mark.parametrize(
        "claiming",
        [images.png_claiming, images.gif_claiming, images.bmp_claiming, images.tiff_claiming, images.jpeg_claiming],
    )
    def test_pixel_limit_is_checked_before_decoding(self, claiming):
        # These files hold no pixels for their claim: decoding them would fail as undecodable.
        with pytest.raises(SourceTooLarge):
            render(claiming(300, 200), limits=SourceLimits(max_pixels=300 * 200 - 1, max_bytes=10**6))

    def test_pixel_limit_is_inclusive(self):
        rendered = render(images.webp_bytes((300, 200)), limits=SourceLimits(max_pixels=300 * 200, max_bytes=10**6))
        assert rendered.format == "webp"

    def test_over_max_bytes_is_too_large(self):
        source = images.jpeg_bytes((64, 48))
        with pytest.raises(SourceTooLarge) as caught:
            render(source, limits=SourceLimits(max_pixels=10**6, max_bytes=len(source) - 1))
        assert caught.value.public_message

    def test_pillow_bomb_warning_does_not_escape(self):
        # 100 MP is between Pillow's warning and error thresholds; our limit refuses it first.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(SourceTooLarge):
                render(images.png_claiming(10000, 10000))
            with pytest.raises(UndecodableImage):  # allowed by us, then found to hold no pixels
                render(images.png_claiming(10000, 10000), limits=SourceLimits(max_pixels=10**9, max_bytes=10**6))

    def test_pillow_globals_are_left_alone(self):
        with pytest.raises(ImageError):
            render(images.truncated(images.png_bytes((64, 48))))
        assert Image.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False

    def test_errors_share_the_base_class(self):
        assert issubclass(UndecodableImage, ImageError)
        assert issubclass(SourceTooLarge, ImageError)


class TestIccProfiles:
    """A profile that does not parse or is over 64 KB never reaches a thumbnail."""

    @pytest.mark.parametrize("format", ["jpeg", "webp", "avif"])
    def test_a_megabyte_of_junk_profile_is_dropped(self, format):
        # A tiny PNG whose compressed iCCP chunk inflates to 1 MB: the thumbnail stays tiny.
        source = images.to_bytes(Image.new("RGB", (4, 4), "red"), "PNG", icc_profile=b"\0" * 1_000_000)
        assert len(source) < 5_000
        rendered = render(source, width=4, height=None, format=format)
        assert len(rendered.data) < 5_000
        assert decode(rendered).info.get("icc_profile") in (None, b"")

    def test_a_real_profile_is_kept(self):
        from PIL import ImageCms

        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        source = images.to_bytes(Image.new("RGB", (8, 8), "red"), "PNG", icc_profile=srgb)
        assert decode(render(source, width=8, height=None, format="png")).info.get("icc_profile") == srgb


class TestFamilyFidelity:
    """What the source's own family promises: transparency and losslessness survive."""

    def test_16_bit_grey_with_a_trns_colour_keeps_its_transparency(self):
        # As PngSuite's tbwn0g16.png: 16-bit greyscale, one grey level transparent.
        grey = Image.new("I;16", (32, 32), 20_000)
        for x in range(16):
            for y in range(32):
                grey.putpixel((x, y), 5_000)
        source = images.to_bytes(grey, "PNG", transparency=5_000)
        out = decode(render(source, width=32, height=None))
        assert out.mode in ("LA", "RGBA")
        assert out.getpixel((4, 4))[-1] == 0 and out.getpixel((28, 4))[-1] == 255

    def test_a_lossless_webp_stays_lossless(self):
        checker = Image.new("RGB", (16, 16))
        for x in range(16):
            for y in range(16):
                checker.putpixel((x, y), (255, 0, 0) if (x + y) % 2 else (0, 0, 255))
        source = images.to_bytes(checker, "WEBP", lossless=True)
        rendered = render(source, width=16, height=None)
        assert rendered.format == "webp" and rendered.data[12:16] == b"VP8L"
        assert decode(rendered).convert("RGB").tobytes() == checker.tobytes()  # pixel-exact

    def test_a_lossy_webp_stays_lossy(self):
        source = images.to_bytes(images.textured((64, 48)), "WEBP", quality=80)
        assert render(source, width=32, height=None).data[12:16] != b"VP8L"
