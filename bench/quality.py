"""Quality of the render pipeline against a full-decode reference, per thumbnail size.

    .venv/bin/python bench/quality.py [--sources N]

For each base photo of the corpus (24 MP and 2 MP) and each width, three images:

- reference: the whole JPEG decoded at full size, one Lanczos resize to the width (float-free
  Pillow, the best a resampler can do from all the pixels);
- today's pipeline (before issue 14): Pillow's draft (1/2, 1/4, 1/8, the largest covering the
  box), then the same Lanczos resize with reducing_gap 2;
- ours: the server's render (the M/8 intermediate, then the same resize), as PNG so no encoder
  loss is measured.

Printed: PSNR (dB, over RGB) of each against the reference, and which decode scale each used.
Higher is closer to the reference; above ~40 dB differences are invisible.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from server.imaging import RenderRequest, SourceLimits, render_thumbnail  # noqa: E402
from server.imaging.decode import open_source  # noqa: E402
from server.imaging.geometry import Box  # noqa: E402
from server.imaging.intermediate import class_size, decode_class, read_facts  # noqa: E402

WIDTHS = {"24mp": (160, 320, 640, 960, 1280), "2mp": (160, 320, 512, 640, 960)}
LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)


def psnr(first: Image.Image, second: Image.Image) -> float:
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    mse = sum(rms * rms for rms in ImageStat.Stat(difference).rms) / 3
    return float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)


def draft_render(data: bytes, width: int) -> tuple[Image.Image, str]:
    image = Image.open(io.BytesIO(data))
    full = image.size
    height = max(1, (2 * full[1] * width + full[0]) // (2 * full[0]))
    image.draft("RGB", (width, height))
    scale = f"1/{full[0] // image.size[0]}" if image.size != full else "1"
    small = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return small, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=5, help="base photos per size (of 5)")
    args = parser.parse_args()
    base = BENCH_DIR / ".corpus" / "base"
    print("| source | width | draft scale | PSNR draft (today) dB | M/8 scale | PSNR ours dB | ours − today dB |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    totals: dict[str, list[float]] = {}
    for kind, widths in WIDTHS.items():
        for path in sorted(base.glob(f"{kind}-*.jpg"))[: args.sources]:
            data = path.read_bytes()
            full = Image.open(io.BytesIO(data)).convert("RGB")
            facts = read_facts(open_source(data, LIMITS))
            for width in widths:
                height = max(1, (2 * full.height * width + full.width) // (2 * full.width))
                reference = full.resize((width, height), Image.Resampling.LANCZOS)
                today, scale = draft_render(data, width)
                request = RenderRequest(width=width, height=None, fit="contain", format="png", quality=None)
                ours = Image.open(io.BytesIO(render_thumbnail(data, request, limits=LIMITS).data))
                eighths = decode_class(facts, Box(width, None, "contain"))
                before, after = psnr(today, reference), psnr(ours, reference)
                totals.setdefault(f"{kind} {width}", []).append(after - before)
                print(f"| {path.name} | {width} | {scale} | {before:.2f} | {eighths}/8 "
                      f"({class_size(facts, eighths)[0]} px) | {after:.2f} | {after - before:+.2f} |")
    print()
    print("| size | mean ours − today dB |")
    print("|---|--:|")
    for key, values in totals.items():
        print(f"| {key} | {sum(values) / len(values):+.2f} |")


if __name__ == "__main__":
    main()
