"""g:smart against libvips' `smartcrop(interesting="attention")` on the same images.

Not part of the server or its tests: pyvips is a bench-only tool. Run it from a separate venv
that has pyvips, pyvips-binary and Pillow, with this checkout on the path:

    python3 -m venv /tmp/vips-venv && /tmp/vips-venv/bin/pip install pyvips pyvips-binary pillow
    PYTHONPATH=. /tmp/vips-venv/bin/python bench/smart_crop_compare.py

For each image and a square cover crop it prints where each method puts the window, whether
the window holds the known subject (synthetic images, where the right answer is known), the
windows' overlap (intersection over union) and each method's time for the choice alone.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pyvips
from PIL import Image, ImageDraw

from server.imaging import Box, plan_geometry, smart_focus

REPO = Path(__file__).resolve().parents[1]


def detail_on_flat(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    image = Image.new("RGB", size, (128, 128, 128))
    rng = random.Random(1)
    patch = Image.frombytes("RGB", (box[2] - box[0], box[3] - box[1]),
                            bytes(rng.randrange(256) for _ in range(3 * (box[2] - box[0]) * (box[3] - box[1]))))
    image.paste(patch, box[:2])
    return image


def flat_subject(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """A smooth disc of skin tone on a smooth dark gradient: little edge energy anywhere."""
    image = Image.linear_gradient("L").resize(size).convert("RGB").point(lambda v: v // 4)
    ImageDraw.Draw(image).ellipse(box, fill=(224, 172, 140))
    return image


def saturated_on_texture(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """A saturated red disc on grey noise everywhere: detail is the background, the subject is colour."""
    rng = random.Random(2)
    grey = Image.frombytes("L", size, bytes(rng.randrange(60, 200) for _ in range(size[0] * size[1])))
    image = grey.convert("RGB")
    ImageDraw.Draw(image).ellipse(box, fill=(230, 20, 20))
    return image


def cases() -> list[tuple[str, Image.Image, tuple[int, int, int, int] | None]]:
    found: list[tuple[str, Image.Image, tuple[int, int, int, int] | None]] = []
    for left in (20, 250, 500, 780):
        box = (left, 100, left + 100, 200)
        found.append((f"detail-on-flat x={left}", detail_on_flat((900, 300), box), box))
    for top in (20, 700):
        box = (100, top, 200, top + 100)
        found.append((f"detail-on-flat y={top}", detail_on_flat((300, 900), box), box))
    for left in (40, 700):
        box = (left, 90, left + 120, 210)
        found.append((f"flat skin disc x={left}", flat_subject((900, 300), box), box))
        found.append((f"red disc on noise x={left}", saturated_on_texture((900, 300), box), box))
    for name in ("landscape.jpg", "portrait.jpg", "hills.webp"):
        image = Image.open(REPO / "examples" / "images" / name)
        image.load()
        found.append((name, image.convert("RGB"), None))
    return found


def ours(image: Image.Image, box: Box) -> tuple[tuple[int, int, int, int], float]:
    started = time.perf_counter()
    centred = plan_geometry(*image.size, box)
    crop = plan_geometry(*image.size, box, smart_focus(image, centred, image.size)).crop
    elapsed = time.perf_counter() - started
    return crop or (0, 0, *image.size), elapsed


def vips(image: Image.Image, crop_size: tuple[int, int]) -> tuple[tuple[int, int, int, int], float]:
    data = image.tobytes()
    source = pyvips.Image.new_from_memory(data, image.width, image.height, 3, "uchar")
    started = time.perf_counter()
    out = source.smartcrop(*crop_size, interesting="attention")
    elapsed = time.perf_counter() - started
    left, top = -out.get("xoffset"), -out.get("yoffset")
    return (left, top, left + crop_size[0], top + crop_size[1]), elapsed


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def holds(window: tuple[int, int, int, int], subject: tuple[int, int, int, int]) -> str:
    inside = window[0] <= subject[0] and subject[2] <= window[2] and window[1] <= subject[1] and subject[3] <= window[3]
    return "yes" if inside else "NO"


def main() -> None:
    print(f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}; box 200x200 cover")
    print(f"{'image':28} {'size':>9} {'ours':>22} {'vips attention':>22} {'ours ok':>7} {'vips ok':>7} "
          f"{'IoU':>5} {'ours ms':>7} {'vips ms':>7}")
    for name, image, subject in cases():
        box = Box(200, 200, "cover")
        mine, my_time = ours(image, box)
        crop_size = (mine[2] - mine[0], mine[3] - mine[1])
        theirs, their_time = vips(image, crop_size)
        ok_mine = holds(mine, subject) if subject else "-"
        ok_theirs = holds(theirs, subject) if subject else "-"
        print(f"{name:28} {image.width:>4}x{image.height:<4} {str(mine):>22} {str(theirs):>22} {ok_mine:>7} "
              f"{ok_theirs:>7} {iou(mine, theirs):5.2f} {my_time * 1000:7.2f} {their_time * 1000:7.2f}")


if __name__ == "__main__":
    main()
