"""Thumbnails rendered in process, no HTTP: the Pillow floor and the libvips (pyvips) peer.

Run as a script by the Python of the venv that holds the engine (stdlib plus Pillow or pyvips
only; it imports nothing else from the harness)::

    python render_loop.py --engine pillow --dir D --pattern p%05d.jpg --count 3000 \\
        --width 320 [--height 512] --threads 2 --seconds 10 --warmup 2 [--srcset 160x,jpeg ...]

With ``--srcset``, every name is rendered once per spec (``WIDTHx,FORMAT``), each from scratch
(open, draft, resize, encode: what a server without intermediates does), and ``images`` counts
thumbnails.

Threads pull distinct file names from one counter and render until the time is up; the last
line printed is JSON: ``images``, ``seconds``, ``p50_ms``, ``p99_ms``, ``peak_rss`` (bytes,
this process's VmHWM), ``reused_names``, ``sizes`` (every distinct output size), ``version``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import threading
import time
from pathlib import Path

UNBOUNDED = 100_000  # a side the box does not constrain
JPEG_QUALITY = 82  # the server's default thumbnails.quality.jpeg
WEBP_QUALITY, WEBP_METHOD = 80, 4  # the server's defaults for WebP
REDUCING_GAP = 2.0  # as the server's resize (and Pillow's thumbnail()) use


def main() -> None:
    args = _parse_args()
    if args.nice:
        os.nice(args.nice)
    render = ENGINES[args.engine]()
    names = _Names(Path(args.dir), args.pattern, args.count, variants=_variants(args))
    box = (args.width, args.height or UNBOUNDED)
    sizes: set[tuple[int, int]] = set()
    _hammer(render, names, box, sizes, threads=args.threads, seconds=args.warmup)
    start, cpu = time.monotonic(), os.times()
    latencies = _hammer(render, names, box, sizes, threads=args.threads, seconds=args.seconds)
    elapsed, cpu_end = time.monotonic() - start, os.times()
    print(json.dumps({
        "images": len(latencies),
        "seconds": elapsed,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
        "peak_rss": _peak_rss(),
        "reused_names": names.reused,
        "cpu_seconds": (cpu_end.user + cpu_end.system) - (cpu.user + cpu.system),
        "sizes": sorted(sizes),
        "version": render.version,
    }))


class _Names:
    """Thread-safe source of distinct paths; counts those handed out again after wrapping."""

    def __init__(self, directory: Path, pattern: str, count: int,
                 variants: list[tuple[int | None, str]] | None = None) -> None:
        self._directory, self._pattern, self._count = directory, pattern, count
        self._counter = itertools.count()  # next() on it is atomic under the GIL
        self._variants = variants or [(None, "jpeg")]
        self.reused = 0

    def next(self) -> tuple[str, int | None, str]:
        """(path, width or None for the run's box, output format)."""
        index, variant = divmod(next(self._counter), len(self._variants))
        if index >= self._count:
            self.reused += 1
        width, output = self._variants[variant]
        return str(self._directory / (self._pattern % (index % self._count))), width, output


def _variants(args: argparse.Namespace) -> list[tuple[int | None, str]] | None:
    if not args.srcset:
        return None
    return [(int(spec.split("x")[0]), spec.split(",")[1]) for spec in args.srcset]


def _hammer(render, names: _Names, box: tuple[int, int], sizes: set[tuple[int, int]], *,
            threads: int, seconds: float) -> list[float]:
    """Render from ``threads`` threads until ``seconds`` pass; return every render's duration.

    Each output's size is added to ``sizes`` (set.add is atomic under the GIL).
    """
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    def work() -> None:
        mine = []
        while time.monotonic() < deadline:
            began = time.monotonic()
            path, width, output = names.next()
            _, size = render(path, box if width is None else (width, UNBOUNDED), output)
            mine.append(time.monotonic() - began)
            sizes.add(size)
        latencies.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies


class PillowRender:
    """The server's cold path with nothing around it: open, draft-decode, resize, encode.

    The steps and settings the server's JPEG path uses (draft to the output size, one Lanczos
    pass with reducing_gap 2, baseline JPEG at the default quality), minus HTTP, cache,
    orientation and metadata handling, which cost next to nothing on these sources.
    """

    def __init__(self) -> None:
        import PIL
        from PIL import Image

        self._image = Image
        self.version = f"Pillow {PIL.__version__}"

    def __call__(self, path: str, box: tuple[int, int], output: str = "jpeg") -> tuple[bytes, tuple[int, int]]:
        with self._image.open(path) as image:
            target = contain(image.size, box)
            image.draft("RGB", target)
            small = image.convert("RGB").resize(
                target, self._image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
        out = io.BytesIO()
        if output == "webp":  # the server's defaults: quality 80, method 4
            small.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
        else:
            small.save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue(), small.size


class VipsRender:
    """imgproxy's engine as imgproxy drives it: one libvips thread per render, no op cache."""

    def __init__(self) -> None:
        os.environ.setdefault("VIPS_CONCURRENCY", "1")
        import pyvips

        pyvips.cache_set_max(0)
        self._vips = pyvips
        self.version = f"pyvips {pyvips.__version__}, libvips {_vips_version(pyvips)}"

    def __call__(self, path: str, box: tuple[int, int], output: str = "jpeg") -> tuple[bytes, tuple[int, int]]:
        image = self._vips.Image.thumbnail(path, box[0], height=box[1], size="down")
        if output == "webp":
            return image.write_to_buffer(".webp", Q=WEBP_QUALITY), (image.width, image.height)
        return image.write_to_buffer(".jpg", Q=JPEG_QUALITY), (image.width, image.height)


ENGINES = {"pillow": PillowRender, "pyvips": VipsRender}


def contain(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of ``size``'s aspect ratio inside ``box``, never upscaled.

    Rounded half up in integers, as the server plans its contain geometry.
    """
    width, height = size
    box_w, box_h = min(box[0], width), min(box[1], height)
    if box_w * height <= box_h * width:  # the width binds
        return box_w, max(1, (2 * height * box_w + width) // (2 * width))
    return max(1, (2 * width * box_h + height) // (2 * height)), box_h


def _vips_version(pyvips) -> str:
    return ".".join(str(pyvips.version(i)) for i in range(3))


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--pattern", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority by this much")
    parser.add_argument("--srcset", nargs="+", metavar="SPEC", help="WIDTHx,FORMAT per thumbnail of every name")
    return parser.parse_args()


if __name__ == "__main__":
    main()
