"""The benchmark corpus: real photographs scaled to camera sizes, cached on disk.

The photographs come out of the scikit-image wheel on PyPI (``skimage/data``), which is
downloaded once with ``pip download --no-deps`` and read as a zip; nothing of scikit-image is
installed or imported. From each photo the corpus makes:

- ``base/24mp-<name>.jpg``: 6000x4000, quality 90, with grain so the entropy (and the file
  size, 6-7 MB) is a camera's rather than that of a smooth upscale;
- ``base/2mp-<name>.jpg``: 1920x1280, same recipe;
- ``base/rgba-<name>.png``: 2000x2000 RGBA, a photo under a radial alpha vignette;
- ``original.jpg``: one JPEG of about 2 MB, for serving originals.

Cold scenarios need a distinct URL per request with identical work, so ``24mp/`` and ``2mp/``
hold thousands of hard links (``p00000.jpg``...) cycling over the base photos. Hard links cost a
directory entry each and share one page-cache copy, as a real photo library in RAM would.

The corpus lives in ``bench/.corpus`` and is rebuilt only when :data:`RECIPE` changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

PHOTOS = ("coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png")
# Standard deviation of the per-channel Gaussian grain, in 8-bit levels. Chosen so that a
# 24 MP frame at q90 weighs 6-7 MB, like a camera's JPEG of a detailed scene.
GRAIN_SIGMA = 8
ORIGINAL_SIZE = (3300, 2200)  # about 2 MB at q90 with grain
# printf-style name of the n-th hard link; wrk's Lua script formats the same pattern.
LINK_PATTERN = "p%05d.jpg"
# Bump when anything above or below changes what lands on disk.
RECIPE = f"v1 photos={','.join(PHOTOS)} grain={GRAIN_SIGMA} original={ORIGINAL_SIZE}"


@dataclass(frozen=True)
class Corpus:
    """Paths inside a built corpus. ``root`` is what servers serve."""

    root: Path
    names_24mp: int
    names_2mp: int

    @property
    def dir_24mp(self) -> Path:
        return self.root / "24mp"

    @property
    def dir_2mp(self) -> Path:
        return self.root / "2mp"

    @property
    def original(self) -> Path:
        return self.root / "original.jpg"

    @property
    def hit_source(self) -> Path:
        """The 24 MP photo whose 320 px thumbnail is the cache-hit subject."""
        return self.root / "hit.jpg"

    def relative(self, path: Path) -> str:
        """The URL path of ``path`` below the root, ``/``-separated, no leading slash."""
        return path.relative_to(self.root).as_posix()


def ensure_corpus(root: Path, *, names_24mp: int, names_2mp: int) -> Corpus:
    """Return the corpus at ``root``, building what is missing or out of date.

    Building takes about a minute (downloading the wheel, rendering the 24 MP frames);
    afterwards only the hard-link directories are topped up to the requested counts.
    """
    root = root.resolve()  # servers get it in configs written elsewhere
    corpus = Corpus(root, names_24mp, names_2mp)
    manifest = root / "manifest.json"
    if not _manifest_matches(manifest):
        _build_bases(root)
        manifest.write_text(json.dumps({"recipe": RECIPE}) + "\n")
    _link_names(corpus.dir_24mp, sorted((root / "base").glob("24mp-*.jpg")), names_24mp)
    _link_names(corpus.dir_2mp, sorted((root / "base").glob("2mp-*.jpg")), names_2mp)
    return corpus


def describe(corpus: Corpus) -> str:
    """One line on what the corpus holds, for the report header."""
    base = corpus.root / "base"

    def span(pattern: str) -> str:
        sizes = [p.stat().st_size / 1e6 for p in base.glob(pattern)]
        return f"{min(sizes):.1f}-{max(sizes):.1f} MB" if sizes else "none"

    return (f"{len(PHOTOS)} photos from scikit-image; 24 MP JPEG q90 {span('24mp-*.jpg')} "
            f"({corpus.names_24mp} names), 2 MP JPEG {span('2mp-*.jpg')} "
            f"({corpus.names_2mp} names), 2000x2000 RGBA PNG {span('rgba-*.png')}, "
            f"original.jpg {corpus.original.stat().st_size / 1e6:.2f} MB")


def _manifest_matches(manifest: Path) -> bool:
    try:
        return json.loads(manifest.read_text()).get("recipe") == RECIPE
    except (OSError, ValueError):
        return False


def _build_bases(root: Path) -> None:
    base = root / "base"
    base.mkdir(parents=True, exist_ok=True)
    photos = _read_photos(root / "wheel")
    for name, photo in photos.items():
        stem = Path(name).stem
        print(f"corpus: rendering {stem} (24 MP, 2 MP, RGBA PNG)", flush=True)
        _save_jpeg(_camera_frame(photo, (6000, 4000)), base / f"24mp-{stem}.jpg")
        _save_jpeg(_camera_frame(photo, (1920, 1280)), base / f"2mp-{stem}.jpg")
        _rgba_square(photo, 2000).save(base / f"rgba-{stem}.png")
    first = next(iter(photos.values()))
    _save_jpeg(_camera_frame(first, ORIGINAL_SIZE), root / "original.jpg")
    _replace_link(base / f"24mp-{Path(PHOTOS[0]).stem}.jpg", root / "hit.jpg")


def _read_photos(wheel_dir: Path) -> dict[str, Image.Image]:
    """Decode :data:`PHOTOS` straight out of the scikit-image wheel's zip."""
    wheel = _download_wheel(wheel_dir)
    photos = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in PHOTOS:
            with archive.open(f"skimage/data/{name}") as member:
                photos[name] = Image.open(member).convert("RGB")
    return photos


def _download_wheel(wheel_dir: Path) -> Path:
    """Return a scikit-image wheel in ``wheel_dir``, downloading one if none is there."""
    found = sorted(wheel_dir.glob("scikit_image-*.whl"))
    if found:
        return found[-1]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    print("corpus: pip download --no-deps scikit-image", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "--dest", str(wheel_dir), "scikit-image"],
        check=True,
    )
    return sorted(wheel_dir.glob("scikit_image-*.whl"))[-1]


def _camera_frame(photo: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Crop ``photo`` to the aspect of ``size``, scale it there and add sensor-like grain."""
    frame = ImageOps.fit(photo, size, Image.Resampling.BICUBIC)
    return _add_grain(frame)


def _add_grain(image: Image.Image) -> Image.Image:
    noise = Image.merge("RGB", [Image.effect_noise(image.size, GRAIN_SIGMA) for _ in "RGB"])
    # effect_noise is centred on 128: add it and shift back so the mean is unchanged.
    return ImageChops.add(image, noise, scale=1.0, offset=-128)


def _rgba_square(photo: Image.Image, side: int) -> Image.Image:
    """A grainy ``side``-pixel square of ``photo`` whose alpha fades out towards the corners."""
    square = _camera_frame(photo, (side, side))
    mask = Image.new("L", (side, side), 0)
    inset = side // 10
    ImageDraw.Draw(mask).ellipse((inset, inset, side - inset, side - inset), fill=255)
    square.putalpha(mask.filter(ImageFilter.GaussianBlur(side // 20)))
    return square


def _save_jpeg(image: Image.Image, path: Path) -> None:
    """Write atomically so an interrupted build never leaves a truncated photo behind."""
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".jpg", delete=False) as tmp:
        image.save(tmp, "JPEG", quality=90)
    os.replace(tmp.name, path)


def _replace_link(source: Path, link: Path) -> None:
    link.unlink(missing_ok=True)
    os.link(source, link)


def _link_names(directory: Path, bases: list[Path], count: int) -> None:
    """Make ``directory/p00000.jpg``... hard links, cycling over ``bases``, up to ``count``.

    Existing links are re-pointed only when their inode no longer matches (after a rebuild).
    """
    directory.mkdir(parents=True, exist_ok=True)
    inodes = [base.stat().st_ino for base in bases]
    for index in range(count):
        link = directory / (LINK_PATTERN % index)
        wanted = index % len(bases)
        try:
            if link.stat().st_ino == inodes[wanted]:
                continue
        except FileNotFoundError:
            pass
        _replace_link(bases[wanted], link)
