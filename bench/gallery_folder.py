"""The gallery on a 20,000-file folder: the first listing and page views, wall time and the
server's peak memory, through a real `thumbserver serve` (one worker) on 127.0.0.1.

    .venv/bin/python bench/gallery_folder.py [--files 20000] [--views 20] [--empty]

Prints one line per step. The folder is built in a temporary directory and removed afterwards:
every file a hard link to one camera-like JPEG (3000 x 2000, EXIF orientation 6, ~1 MB), so
that each page's sizes job reads and parses real headers (from the page cache: the disk's
speed is not measured); `--empty` makes empty files instead (the listing alone, as before
sizes were shown). Peak memory is the server process's VmHWM (its high-water resident set)
from /proc, before and after each step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import images  # noqa: E402
from tests.support.live import LiveServer  # noqa: E402

SIZE = "2000 × 3000"  # the photo's displayed size (3000 x 2000 turned by orientation 6)


def high_water_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--empty", action="store_true", help="empty files: the listing alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ts-gallery-bench-") as folder:
        root = Path(folder) / "images"
        big = root / "big"
        big.mkdir(parents=True)
        started = time.perf_counter()
        photo = None
        if not args.empty:
            photo = images.write(Path(folder) / "photo.jpg", images.jpeg_bytes(
                (3000, 2000), orientation=6, quality=85, image=images.textured((3000, 2000), seed=1)))
        for n in range(args.files):
            name = big / f"photo {n:05d} – vacances.jpg"
            name.touch() if photo is None else name.hardlink_to(photo)
        what = "empty files" if photo is None else f"links to one {photo.stat().st_size // 1024} KB JPEG"
        print(f"built {args.files} files ({what}) in {time.perf_counter() - started:.1f} s")
        env = {"THUMBSERVER_BROWSE_ENABLED": "true", "THUMBSERVER_METRICS_ENABLED": "false"}
        with LiveServer(None, root, env=env) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            assert server.process is not None
            pid = server.process.pid
            client.get("/")  # the app warm, the root listed
            base = high_water_kb(pid)
            print(f"server started: peak RSS {base / 1024:.1f} MB")

            started = time.perf_counter()
            first = client.get("/big/")
            first_s = time.perf_counter() - started
            assert first.status_code == 200, first.status_code
            expected = 0 if args.empty else 200
            assert first.text.count(SIZE) == expected, first.text.count(SIZE)
            after_first = high_water_kb(pid)
            pages = -(-args.files // 200)
            print(f"first listing + page 1 (list {args.files} files, sort, find 200 sizes, render 200 cells): "
                  f"{first_s * 1000:.0f} ms, {len(first.content) / 1024:.0f} KB of HTML, "
                  f"peak RSS {after_first / 1024:.1f} MB (+{(after_first - base) / 1024:.1f} MB)")

            seen = [1 + (view * 37) % pages for view in range(1, args.views + 1)]
            for label, numbers in (("pages not seen before: a sizes job each", seen),
                                   ("the same pages again: sizes memoised", seen)):
                times = []
                for page in numbers:
                    started = time.perf_counter()
                    response = client.get(f"/big/?page={page}")
                    times.append(time.perf_counter() - started)
                    assert response.status_code == 200 and response.text.count(SIZE) == expected
                print(f"page views ({args.views}, {label}): median {statistics.median(times) * 1000:.1f} ms, "
                      f"max {max(times) * 1000:.1f} ms, peak RSS {high_water_kb(pid) / 1024:.1f} MB")

            etag = first.headers["etag"]
            times = []
            for _ in range(args.views):
                started = time.perf_counter()
                response = client.get("/big/", headers={"if-none-match": etag})
                times.append(time.perf_counter() - started)
                assert response.status_code == 304
            print(f"revalidations (304): median {statistics.median(times) * 1000:.1f} ms")

            (big / "zz added.jpg").touch()  # the folder changes: listed once more
            started = time.perf_counter()
            assert client.get("/big/").status_code == 200
            print(f"after one file added (listed again): {(time.perf_counter() - started) * 1000:.0f} ms, "
                  f"peak RSS {high_water_kb(pid) / 1024:.1f} MB")


if __name__ == "__main__":
    main()
