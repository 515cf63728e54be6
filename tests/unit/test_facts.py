"""server.imaging.facts: BlurHash against the reference encoder's output, the dominant colour,
and the facts of sources whose right answer is known."""

from __future__ import annotations

import math
import random

import pytest
from PIL import Image

from server.imaging import SourceLimits
from server.imaging.facts import blurhash, dominant_color, open_for_facts, read_facts
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)


def _pixels(name: str) -> tuple[int, int, list[tuple[int, int, int]]]:
    """The test images of the vectors below, rebuilt from their names (RGB, row by row)."""
    if name == "solid_red_8x8":
        return 8, 8, [(255, 0, 0)] * 64
    if name == "h_gradient_32x16":
        return 32, 16, [(x * 8, 128, 255 - x * 8) for y in range(16) for x in range(32)]
    if name == "v_gradient_20x30":
        return 20, 30, [(y * 8, 255 - y * 8, 64) for y in range(30) for x in range(20)]
    if name == "checker_24x24":
        return 24, 24, [((x // 4 + y // 4) % 2 * 255,) * 3 for y in range(24) for x in range(24)]
    if name == "noise_seed1_17x11":
        rng = random.Random(1)
        return 17, 11, [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(17 * 11)]
    if name == "rings_32x32":
        return 32, 32, [(int(127.5 + 127.5 * math.sin(math.hypot(x - 16, y - 16) / 2)), x * 8, y * 8)
                        for y in range(32) for x in range(32)]
    raise KeyError(name)


# Computed by the reference implementation, woltapp/blurhash C/encode.c (blurHashForPixels),
# compiled unchanged and fed the pixels above. (A 2x2-quadrant image is left out: there the
# reference's single-precision cosf puts one AC component on the other side of a quantisation
# step; compiled in double precision it agrees with this encoder on that image too.)
REFERENCE_VECTORS = [
    ((4, 3), "solid_red_8x8", "LfTI:j|cfQ|c|csUfQsUfQfQfQfQ"),
    ((4, 3), "h_gradient_32x16", "L.H1y277w%XAs;WrjufRfQfQfQfQ"),
    ((4, 3), "v_gradient_20x30", "L:G0KKoxfQox8nX6fQX6x;j@fQj@"),
    ((4, 3), "checker_24x24", "L6Lqe9~qfQ~q~q9FfQ4nfQfQfQfQ"),
    ((4, 3), "noise_seed1_17x11", "LFHek8[M*j?K^}OUt1X4.5N#TaOc"),
    ((4, 3), "rings_32x32", "LxK0+~qRxqr^sxe.W:fOw$WqWpWq"),
    ((1, 1), "h_gradient_32x16", "00H1y2"),
    ((1, 1), "checker_24x24", "00Lqe9"),
    ((3, 4), "v_gradient_20x30", "T:G0KKoxfQ8nX6fQx;j@fQXjfjfQ"),
    ((3, 4), "noise_seed1_17x11", "TFHek8[M*j^}OUt1.5N#Ta_Mwcw5"),
    ((9, 9), "checker_24x24",
     "|YLqe9xufQxufQxufQxufQxuRjfQM{fQIUM{%MfQfQfQfQfQfQfQfQfQfQxuM{fQM{fQD%M{%MfQfQfQfQfQfQfQfQfQfQxuIUfQD%fQ009F?b"
     "fQfQM{fQM{fQ9FIU-;fQxu%MfQ%MfQ?b-;D%fQfQfQfQfQfQfQfQfQfQ"),
]


class TestBlurHash:
    """The encoder gives the reference implementation's hashes."""

    @pytest.mark.parametrize(("components", "name", "expected"), REFERENCE_VECTORS)
    def test_reference_vectors(self, components: tuple[int, int], name: str, expected: str) -> None:
        width, height, pixels = _pixels(name)
        assert blurhash(pixels, width, height, components) == expected

    def test_length_follows_components(self) -> None:
        width, height, pixels = _pixels("rings_32x32")
        assert len(blurhash(pixels, width, height, (4, 3))) == 4 + 2 + 2 * (4 * 3 - 1)

    @pytest.mark.parametrize("components", [(0, 3), (10, 1)])
    def test_components_out_of_range(self, components: tuple[int, int]) -> None:
        with pytest.raises(ValueError):
            blurhash([(0, 0, 0)], 1, 1, components)


class TestDominantColor:
    """The colour covering most of the visible image, as #rrggbb."""

    def test_solid(self) -> None:
        assert dominant_color(Image.new("RGBA", (20, 10), (18, 52, 86, 255))) == "#123456"

    def test_majority_wins(self) -> None:
        image = Image.new("RGBA", (10, 10), (0, 0, 255, 255))
        image.paste((250, 200, 0, 255), (0, 0, 7, 10))  # 70 % yellow
        assert dominant_color(image) == "#fac800"

    def test_transparent_pixels_do_not_count(self) -> None:
        image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # 80 % invisible red
        image.paste((0, 128, 0, 255), (0, 0, 2, 10))
        assert dominant_color(image) == "#008000"


class TestReadFacts:
    """Facts of sources whose answer is known."""

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_displayed_size_for_every_orientation(self, orientation: int) -> None:
        data = images.jpeg_bytes((120, 40), orientation=orientation)
        facts = read_facts(*open_for_facts(data, LIMITS))
        assert facts.orientation == orientation
        assert (facts.width, facts.height) == ((40, 120) if orientation >= 5 else (120, 40))

    def test_large_jpeg_is_sampled_small(self) -> None:
        data = images.jpeg_bytes((2000, 1000), color=(10, 200, 30))
        header, stored = open_for_facts(data, LIMITS)
        assert stored == (2000, 1000)
        assert header.size[0] <= 2000 // 8 + 1  # the DCT's 1/8 scale, before any pixel is decoded
        facts = read_facts(header, stored)
        assert (facts.width, facts.height) == (2000, 1000)

    def test_animated_gif(self) -> None:
        facts = read_facts(*open_for_facts(images.gif_bytes(("red", "lime", "blue")), LIMITS))
        assert (facts.format, facts.frames, facts.animated, facts.media_type) == ("gif", 3, True, "image/gif")

    def test_alpha(self) -> None:
        facts = read_facts(*open_for_facts(images.png_bytes((16, 16), mode="RGBA", color=(0, 0, 0, 0)), LIMITS))
        assert facts.has_alpha is True
        opaque = read_facts(*open_for_facts(images.png_bytes((16, 16), mode="RGB", color="red"), LIMITS))
        assert opaque.has_alpha is False
        assert opaque.dominant_color == "#ff0000"

    def test_solid_png_blurhash(self) -> None:
        facts = read_facts(*open_for_facts(images.png_bytes((64, 64), mode="RGB", color=(255, 0, 0)), LIMITS))
        # The size flag of 4x3 components and the reference vector's DC of solid red ("TI:j").
        assert facts.blurhash[0] == "L" and facts.blurhash[2:6] == "TI:j"
        assert facts.blurhash == blurhash([(255, 0, 0)] * 32 * 32, 32, 32)  # sampled at 32 x 32
