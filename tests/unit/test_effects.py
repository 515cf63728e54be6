"""Gravity, focal point, smart crop, pad and the filters: arithmetic and pixels whose right
answer the test image fixes (a bright subject in a known place, a known edge)."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image

from server.imaging import (
    GRAVITIES,
    Box,
    Effects,
    EncoderSettings,
    Geometry,
    Rendered,
    RenderRequest,
    SourceLimits,
    apply_filters,
    pad,
    plan_geometry,
    render_thumbnail,
    smart_focus,
)
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)
WHITE = (255, 255, 255)


def render(source: bytes, width: int | None, height: int | None, fit: str = "contain", format: str | None = "png",
           **effects: object) -> Image.Image:
    request = RenderRequest(width, height, fit, format, None, EncoderSettings(), Effects(**effects))  # type: ignore[arg-type]
    rendered: Rendered = render_thumbnail(source, request, limits=LIMITS)
    image = Image.open(BytesIO(rendered.data))
    image.load()
    assert image.size == (rendered.width, rendered.height)
    return image


def pixels(image: Image.Image) -> list[tuple[int, ...]] | list[int]:
    return list(image.get_flattened_data())


def png(image: Image.Image) -> bytes:
    return images.to_bytes(image, "PNG")


def bright(pixel: tuple[int, ...]) -> bool:
    return min(pixel[:3]) > 200


def subject_pixel(size: tuple[int, int], point: tuple[int, int]) -> tuple[int, int]:
    """Where a subject centred on `point` (thousandths) lands in an image of `size`, kept 8 px inside."""
    return (min(max(size[0] * point[0] // 1000, 8), size[0] - 9), min(max(size[1] * point[1] // 1000, 8), size[1] - 9))


class TestGravityGeometry:
    """A cover crop sits at the gravity's side of the axis it slides along; pure arithmetic."""

    @pytest.mark.parametrize(("gravity", "left"), [("w", 0), ("nw", 0), ("sw", 0), ("c", 100), ("n", 100),
                                                   ("s", 100), ("e", 200), ("ne", 200), ("se", 200)])
    def test_wide_source_slides_horizontally(self, gravity: str, left: int) -> None:
        geometry = plan_geometry(300, 100, Box(50, 50, "cover"), GRAVITIES[gravity])
        assert geometry == Geometry(50, 50, (left, 0, left + 100, 100))

    @pytest.mark.parametrize(("gravity", "top"), [("n", 0), ("ne", 0), ("nw", 0), ("c", 100), ("e", 100),
                                                  ("w", 100), ("s", 200), ("se", 200), ("sw", 200)])
    def test_tall_source_slides_vertically(self, gravity: str, top: int) -> None:
        geometry = plan_geometry(100, 300, Box(50, 50, "cover"), GRAVITIES[gravity])
        assert geometry == Geometry(50, 50, (0, top, 100, top + 100))

    def test_focal_point_centres_the_window_and_stays_inside(self) -> None:
        assert plan_geometry(400, 100, Box(100, 100, "cover"), (800, 300)).crop == (270, 0, 370, 100)
        assert plan_geometry(400, 100, Box(100, 100, "cover"), (990, 0)).crop == (300, 0, 400, 100)
        assert plan_geometry(400, 100, Box(100, 100, "cover"), (10, 0)).crop == (0, 0, 100, 100)

    def test_centre_is_the_plain_centre_crop(self) -> None:
        assert plan_geometry(301, 100, Box(50, 50, "cover")).crop == (100, 0, 200, 100)


class TestGravityPixels:
    """For every gravity, a subject at that gravity's point survives the crop; at the opposite
    gravity, when the window slides along that axis, it does not."""

    @pytest.mark.parametrize("shape", [(300, 100), (100, 300)], ids=["wide", "tall"])
    @pytest.mark.parametrize("gravity", list(GRAVITIES))
    def test_subject_is_kept(self, gravity: str, shape: tuple[int, int]) -> None:
        point = GRAVITIES[gravity]
        source = png(images.subject_at(shape, (point[0] / 1000, point[1] / 1000)))
        out = render(source, 60, 60, "cover", focus=point).convert("RGB")
        assert out.size == (60, 60)
        assert bright(out.getpixel(subject_pixel(out.size, point)))
        opposite = (1000 - point[0], 1000 - point[1])
        slides = point[0] if shape[0] > shape[1] else point[1]
        if slides != 500:
            away = render(source, 60, 60, "cover", focus=opposite).convert("RGB")
            assert not any(bright(p) for p in pixels(away))

    def test_focal_point_puts_the_subject_in_the_middle(self) -> None:
        source = png(images.subject_at((400, 100), (0.8, 0.3)))
        out = render(source, 100, 100, "cover", focus=(800, 300)).convert("RGB")
        assert bright(out.getpixel((50, 30)))
        assert not bright(out.getpixel((10, 30))) and not bright(out.getpixel((90, 30)))


class TestSmartCrop:
    """g:smart keeps the one detailed region of an otherwise flat image, wherever it is."""

    @pytest.mark.parametrize("left", [10, 60, 300, 520])
    def test_detail_is_inside_the_crop(self, left: int) -> None:
        source = images.detail_on_flat((600, 200), (left, 60, left + 70, 140))
        focus = smart_focus(source, plan_geometry(600, 200, Box(100, 100, "cover")), (600, 200))
        crop = plan_geometry(600, 200, Box(100, 100, "cover"), focus).crop
        assert crop is not None and crop[0] <= left and left + 70 <= crop[2]
        out = render(png(source), 100, 100, "cover", smart=True).convert("L")
        # The crop is 200x200 of the source shown at half size: the 70 px patch is 35x35 px of
        # noise; the flat grey around it stays exactly 128.
        assert sum(1 for v in out.tobytes() if abs(v - 128) > 2) >= 35 * 35

    def test_vertical_detail(self) -> None:
        source = images.detail_on_flat((200, 600), (60, 450, 140, 530))
        focus = smart_focus(source, plan_geometry(200, 600, Box(100, 100, "cover")), (200, 600))
        assert focus[0] == 500
        top = plan_geometry(200, 600, Box(100, 100, "cover"), focus).crop[1]  # type: ignore[index]
        assert top <= 450 and top + 200 >= 530

    def test_flat_image_stays_centred(self) -> None:
        flat = Image.new("RGB", (600, 200), (90, 90, 90))
        assert smart_focus(flat, plan_geometry(600, 200, Box(100, 100, "cover")), (600, 200)) == (500, 500)


class TestPad:
    """pad: contain, then the exact box, margins in the background or transparent."""

    def test_margins_are_the_background(self) -> None:
        source = png(Image.new("RGB", (200, 100), (255, 0, 0)))
        out = render(source, 100, 100, "pad", background="00ff00").convert("RGB")
        assert out.size == (100, 100)
        assert out.getpixel((50, 5)) == (0, 255, 0) and out.getpixel((50, 94)) == (0, 255, 0)
        assert out.getpixel((50, 50)) == (255, 0, 0)

    @pytest.mark.parametrize("format", ["png", "webp"])
    def test_margins_are_transparent_where_the_format_has_alpha(self, format: str) -> None:
        out = render(png(Image.new("RGB", (200, 100), (255, 0, 0))), 100, 100, "pad", format).convert("RGBA")
        assert out.getpixel((50, 5))[3] == 0
        assert out.getpixel((50, 50))[3] == 255

    def test_jpeg_margins_are_white(self) -> None:
        out = render(png(Image.new("RGB", (200, 100), (255, 0, 0))), 100, 100, "pad", "jpeg").convert("RGB")
        assert all(v > 245 for v in out.getpixel((50, 5)))

    def test_small_source_is_centred_not_scaled(self) -> None:
        out = render(png(Image.new("RGB", (50, 30), (255, 0, 0))), 100, 100, "pad", background="0000ff").convert("RGB")
        assert out.size == (100, 100)
        assert out.getpixel((25, 35)) == (255, 0, 0) and out.getpixel((74, 64)) == (255, 0, 0)
        assert out.getpixel((24, 50)) == (0, 0, 255) and out.getpixel((75, 50)) == (0, 0, 255)
        assert out.getpixel((50, 34)) == (0, 0, 255) and out.getpixel((50, 65)) == (0, 0, 255)

    def test_transparent_source_keeps_its_alpha_on_a_background(self) -> None:
        picture = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
        out = render(png(picture), 200, 100, "pad", background="00ff00").convert("RGBA")
        assert out.getpixel((10, 50)) == (0, 255, 0, 255)
        assert out.getpixel((100, 50))[3] == 0

    def test_bg_flattens_alpha_for_jpeg(self) -> None:
        picture = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
        out = render(png(picture), 40, 40, "contain", "jpeg", background="0000ff").convert("RGB")
        assert out.getpixel((20, 20))[2] > 240 and out.getpixel((20, 20))[0] < 15

    def test_pad_step_without_canvas_is_the_identity(self) -> None:
        picture = Image.new("RGB", (10, 10))
        assert pad(picture, Geometry(10, 10, None), "ffffff") is picture


def transition_width(image: Image.Image, row: int | None = None) -> int:
    """Columns of a dark|light edge image whose value is neither the dark nor the light level."""
    grey = image.convert("L")
    y = grey.height // 2 if row is None else row
    return sum(1 for x in range(grey.width) if 12 < grey.getpixel((x, y)) < 243)


class TestFilters:
    """Blur widens a known edge with sigma; sharpen overshoots it; gray makes R=G=B."""

    def test_blur_width_grows_with_sigma(self) -> None:
        source = png(images.step_edge((200, 40)))
        widths = [transition_width(render(source, 200, None, blur=sigma)) for sigma in (0, 10, 20, 40)]
        assert widths[0] == 0
        assert widths[1] < widths[2] < widths[3]
        assert 4 <= widths[2] <= 12  # +-2.5 sigma of a Gaussian step: about 10 px at sigma 2

    def test_blur_at_2x_has_the_same_relative_profile(self) -> None:
        source = png(images.step_edge((400, 40)))
        at_1x = transition_width(render(source, 200, None, blur=30))
        at_2x = transition_width(render(source, 400, None, blur=60))  # what blur:3 @2x asks for
        assert 1.6 <= at_2x / at_1x <= 2.4

    def test_sharpen_overshoots_both_sides(self) -> None:
        source = png(images.step_edge((200, 40), low=64, high=192))
        plain = render(source, 200, None).convert("L")
        sharp = render(source, 200, None, sharpen=15).convert("L")
        row = [sharp.getpixel((x, 20)) for x in range(200)]
        assert min(pixels(plain)) == 64 and max(pixels(plain)) == 192
        assert min(row) < 54 and max(row) > 202
        assert row[10] == 64 and row[190] == 192  # far from the edge nothing changes

    @pytest.mark.parametrize("format", ["png", "jpeg", "gif"])
    def test_gray_gives_equal_channels(self, format: str) -> None:
        out = render(png(images.gradient((80, 60))), 40, None, format=format, gray=True).convert("RGB")
        assert all(r == g == b for r, g, b in pixels(out))
        assert len(set(pixels(out))) > 8

    def test_gray_keeps_alpha(self) -> None:
        picture = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
        picture.paste((0, 0, 255, 255), (0, 0, 10, 20))
        out = apply_filters(picture, Effects(gray=True))
        assert out.mode == "LA"
        assert out.getpixel((15, 5))[1] == 0 and out.getpixel((5, 5))[1] == 255


class TestRequestValidation:
    """A focus or smart crop with a fit that does not crop is a caller bug: ValueError."""

    @pytest.mark.parametrize("effects", [Effects(focus=(0, 0)), Effects(smart=True)])
    @pytest.mark.parametrize("fit", ["contain", "fill", "pad"])
    def test_focus_needs_cover(self, effects: Effects, fit: str) -> None:
        with pytest.raises(ValueError, match="cover"):
            RenderRequest(10, 10, fit, None, None, EncoderSettings(), effects)
