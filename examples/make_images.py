"""Regenerate the bundled example images (deterministic; run from the repo root).

    .venv/bin/python examples/make_images.py
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).parent / "images"


def landscape(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like scene: sky gradient, sun, hills and grain, so JPEG sizes are realistic."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(90 + 120 * t), int(150 + 70 * t), int(235 - 60 * t)))
    draw.ellipse([width * 0.7, height * 0.1, width * 0.82, height * 0.1 + width * 0.12], fill=(255, 236, 150))
    for layer, colour in enumerate([(70, 120, 60), (50, 100, 45), (35, 80, 35)]):
        base = height * (0.55 + 0.12 * layer)
        points = [(0, height)]
        for x in range(0, width + 20, 20):
            points.append((x, base + 40 * math.sin(x / (90 + 40 * layer) + seed + layer) + rng.uniform(-6, 6)))
        points.append((width, height))
        draw.polygon(points, fill=colour)
    grain = Image.effect_noise(size, 18).convert("RGB")
    return Image.blend(image, grain, 0.08).filter(ImageFilter.SMOOTH)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    landscape((1600, 1067), seed=1).save(OUT / "landscape.jpg", quality=85)

    # An upright portrait scene stored turned a quarter to the left, with EXIF orientation 6
    # ("turn right to view"), as cameras write it: viewers and thumbnails show it upright.
    upright = landscape((900, 1200), seed=2)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(OUT / "portrait.jpg", quality=85, exif=exif)

    logo = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle([40, 40, 560, 360], radius=60, fill=(30, 110, 200, 230))
    draw.ellipse([200, 100, 400, 300], fill=(255, 200, 40, 255))
    logo.save(OUT / "logo.png", optimize=True)

    landscape((1024, 683), seed=3).save(OUT / "hills.webp", quality=80)

    frames = []
    for i in range(8):
        frame = Image.new("P", (240, 240), 0)
        frame.putpalette([255, 255, 255, 220, 40, 40] + [0, 0, 0] * 254)
        ImageDraw.Draw(frame).ellipse([20 + i * 20, 90, 80 + i * 20, 150], fill=1)
        frames.append(frame)
    frames[0].save(OUT / "bounce.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


if __name__ == "__main__":
    main()
