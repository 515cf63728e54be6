"""Seed corpora for the fuzz harnesses, generated (never downloaded): `python -m tests.support.fuzz_seeds DIR`.

Writes DIR/render/ (small images of every allowed decoder, each behind the 4-byte request
header fuzz_render.py expects) and DIR/spec/ (specs from the README's grammar).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support import images

SPECS = ["320x240", "320x", "x240", "320x240,cover,webp", "320x240@2x,q70", "small", "small,avif", "100x100@1.5x",
         "640x,fill", "x100,png,q1", "320x240,contain,jpeg,q100", "4096x4096", "1x1@4x", "wide,cover"]


def render_seeds() -> dict[str, bytes]:
    size = (24, 16)
    sources = {
        "jpeg": images.jpeg_bytes(size, orientation=6),
        "jpeg-progressive": images.jpeg_bytes(size, progressive=True),
        "jpeg-cmyk": images.jpeg_bytes(size, mode="CMYK"),
        "png-rgba": images.png_bytes(size, mode="RGBA"),
        "png-palette": images.png_bytes(size, mode="P", transparency=0),
        "png-16bit": images.png_bytes(size, mode="I;16"),
        "gif": images.gif_bytes(size=size, transparent=True),
        "webp": images.webp_bytes(size),
        "webp-animated": images.webp_bytes(size, frames=["red", "blue"]),
        "tiff": images.tiff_bytes(size, mode="CMYK"),
        "tiff-float": images.tiff_bytes(size, mode="F"),
        "bmp": images.bmp_bytes(size, mode="P"),
        "avif": images.avif_bytes(size),
    }
    seeds = {}
    for name, data in sources.items():
        for n, header in enumerate((b"\x02\x02\x00\x00", b"\x03\x00\x01\x02", b"\x01\x04\x02\x03")):
            seeds[f"{name}-{n}"] = header + data
    return seeds


def write_corpora(directory: Path) -> tuple[Path, Path]:
    render, spec = directory / "render", directory / "spec"
    render.mkdir(parents=True, exist_ok=True)
    spec.mkdir(parents=True, exist_ok=True)
    for name, data in render_seeds().items():
        (render / name).write_bytes(data)
    for n, text in enumerate(SPECS):
        # fuzz_spec.py reads one bool (the settings) and then the text.
        (spec / f"spec-{n}").write_bytes(b"\x00" + text.encode())
        (spec / f"spec-strict-{n}").write_bytes(b"\x01" + text.encode())
    return render, spec


if __name__ == "__main__":
    print(*write_corpora(Path(sys.argv[1])))
