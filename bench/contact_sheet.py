"""A contact sheet of the modifiers (gravity, focal point, smart crop, pad, filters, animation
frames), every cell rendered THROUGH the server: the ASGI app in process, over httpx, with the
render pool and caches as in production. For a human to look at, not a test.

    .venv/bin/python bench/contact_sheet.py [OUT.png]      (default: contact_sheet.png)

Sources are synthetic where the right answer must be obvious (a labelled 3x3 grid for gravity,
one patch of detail on a flat field for g:smart, a hard edge for the filters, numbered frames
for the animation) plus the repository's examples/images (a photo, a logo, an animated GIF).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFont

from server.app import create_app
from server.config import load_settings

REPO = Path(__file__).resolve().parents[1]
CELL, LABEL, GAP = 132, 16, 10
FONT = ImageFont.load_default(size=12)
GRID_COLOURS = ["#c0392b", "#d35400", "#f1c40f", "#27ae60", "#16a085", "#2980b9", "#8e44ad", "#2c3e50", "#7f8c8d"]
GRID_NAMES = ["NW", "N", "NE", "W", "C", "E", "SW", "S", "SE"]
FRAME_COLOURS = ["#e74c3c", "#2ecc71", "#3498db", "#f1c40f", "#9b59b6", "#1abc9c"]


def labelled_grid(size: tuple[int, int]) -> Image.Image:
    """A 3x3 grid of coloured cells named by compass point: which cells a crop keeps is readable."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    big = ImageFont.load_default(size=min(width, height) // 6)
    for index, (name, colour) in enumerate(zip(GRID_NAMES, GRID_COLOURS, strict=True)):
        column, row = index % 3, index // 3
        box = (column * width // 3, row * height // 3, (column + 1) * width // 3, (row + 1) * height // 3)
        draw.rectangle(box, fill=colour)
        draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), name, fill="white", font=big, anchor="mm")
    return image


def detail_on_flat() -> Image.Image:
    """A flat field with one textured, outlined object right of centre."""
    image = Image.new("RGB", (900, 300), (150, 160, 170))
    draw = ImageDraw.Draw(image)
    for n in range(0, 120, 8):
        draw.line((640 + n, 80, 760 - n, 220), fill=(30 + n, 40, 90), width=3)
    draw.ellipse((660, 110, 740, 190), outline="black", width=4)
    return image


def edge() -> Image.Image:
    image = Image.new("RGB", (240, 160), (40, 40, 40))
    ImageDraw.Draw(image).rectangle((120, 0, 240, 160), fill=(220, 220, 220))
    ImageDraw.Draw(image).ellipse((150, 40, 210, 100), fill=(200, 40, 40))
    return image


def numbered_gif() -> bytes:
    frames = []
    for index, colour in enumerate(FRAME_COLOURS):
        frame = Image.new("RGB", (160, 120), colour)
        ImageDraw.Draw(frame).text((80, 60), str(index + 1), fill="white", font=ImageFont.load_default(size=60),
                                   anchor="mm")
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:],
                   duration=[100 * (n + 1) for n in range(len(frames))], loop=0)
    return buffer.getvalue()


def make_root(root: Path) -> None:
    labelled_grid((600, 200)).save(root / "wide.png")
    labelled_grid((200, 600)).save(root / "tall.png")
    detail_on_flat().save(root / "detail.png")
    edge().save(root / "edge.png")
    (root / "numbered.gif").write_bytes(numbered_gif())
    Image.new("RGB", (60, 40), (200, 40, 40)).save(root / "small.png")
    for name in ("landscape.jpg", "logo.png", "bounce.gif"):
        shutil.copy(REPO / "examples" / "images" / name, root / name)


ROWS: list[tuple[str, list[tuple[str, str]]]] = [
    ("gravity, wide source: cover 100x100", [("source", "/thumb/120x/wide.png")]
     + [(f"g:{g}", f"/thumb/100x100,cover,g:{g}/wide.png") for g in ("nw", "n", "ne", "w", "c", "e", "sw", "s", "se")]),
    ("gravity, tall source: cover 100x100", [("source", "/thumb/x120/tall.png")]
     + [(f"g:{g}", f"/thumb/100x100,cover,g:{g}/tall.png") for g in ("nw", "n", "ne", "w", "c", "e", "sw", "s", "se")]),
    ("focal point and smart crop", [
        ("source", "/thumb/120x/detail.png"),
        ("cover (centre)", "/thumb/120x120,cover/detail.png"),
        ("g:smart", "/thumb/120x120,cover,g:smart/detail.png"),
        ("fp:0.9:0.5", "/thumb/120x120,cover,fp:0.9:0.5/detail.png"),
        ("photo", "/thumb/120x/landscape.jpg"),
        ("photo cover", "/thumb/60x120,cover/landscape.jpg"),
        ("photo g:smart", "/thumb/60x120,cover,g:smart/landscape.jpg"),
        ("photo fp:0.1:0.5", "/thumb/60x120,cover,fp:0.1:0.5/landscape.jpg"),
        ("photo fp:0.9:0.5", "/thumb/60x120,cover,fp:0.9:0.5/landscape.jpg"),
    ]),
    ("pad (checkerboard = transparent)", [
        ("logo pad png", "/thumb/120x120,pad,png/logo.png"),
        ("logo pad,bg:203040", "/thumb/120x120,pad,bg:203040/logo.png"),
        ("logo pad jpeg", "/thumb/120x120,pad,jpeg/logo.png"),
        ("photo pad,bg:000000", "/thumb/120x120,pad,bg:000000/landscape.jpg"),
        ("60x40 src, pad bg:ffcc00", "/thumb/120x120,pad,bg:ffcc00/small.png"),
    ]),
    ("filters (after resizing)", [
        ("edge", "/thumb/120x/edge.png"),
        ("blur:1", "/thumb/120x,blur:1/edge.png"),
        ("blur:4", "/thumb/120x,blur:4/edge.png"),
        ("sharpen:2", "/thumb/120x,sharpen:2/edge.png"),
        ("gray", "/thumb/120x,gray/edge.png"),
        ("photo", "/thumb/120x/landscape.jpg"),
        ("photo blur:3", "/thumb/120x,blur:3/landscape.jpg"),
        ("blur:3 @2x (shown 1/2)", "/thumb/120x@2x,blur:3/landscape.jpg"),
        ("photo sharpen:1", "/thumb/120x,sharpen:1/landscape.jpg"),
        ("photo gray", "/thumb/120x,gray/landscape.jpg"),
    ]),
]
#: Animations whose every frame is laid out: (label, URL).
ANIMATIONS = [
    ("numbered.gif -> 100x,gif (frame: ms)", "/thumb/100x,gif/numbered.gif"),
    ("numbered.gif -> 100x100,cover,g:w,gray,webp", "/thumb/100x100,cover,g:w,gray,webp/numbered.gif"),
    ("bounce.gif -> 100x80,pad,bg:eeeeee,webp", "/thumb/100x80,pad,bg:eeeeee,webp/bounce.gif"),
]


def checkerboard(size: tuple[int, int]) -> Image.Image:
    board = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(board)
    for y in range(0, size[1], 8):
        for x in range(0, size[0], 8):
            if (x // 8 + y // 8) % 2:
                draw.rectangle((x, y, x + 7, y + 7), fill=(204, 204, 204))
    return board


def on_board(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    board = checkerboard(rgba.size).convert("RGBA")
    return Image.alpha_composite(board, rgba).convert("RGB")


def frames_of(data: bytes) -> list[tuple[Image.Image, int]]:
    image = Image.open(io.BytesIO(data))
    frames = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        frames.append((on_board(image), image.info.get("duration", 0)))
    return frames


async def fetch_all(root: Path) -> dict[str, tuple[bytes, str]]:
    """Every URL of the sheet, fetched from the app (bytes and media type); any non-200 stops."""
    settings = load_settings(None, environ={}, overrides={"storage": {"root": str(root)},
                                                           "cache": {"shared": "none"}})
    app = create_app(settings)
    results: dict[str, tuple[bytes, str]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sheet") as client:
            urls = [url for _, cells in ROWS for _, url in cells] + [url for _, url in ANIMATIONS]
            for url in urls:
                response = await client.get(url)
                if response.status_code != 200:
                    raise SystemExit(f"{url}: {response.status_code} {response.text}")
                results[url] = (response.content, response.headers["content-type"])
    return results


def build(results: dict[str, tuple[bytes, str]]) -> Image.Image:
    rows_height = len(ROWS) * (LABEL + CELL + 2 * LABEL + GAP)
    animation_rows = [frames_of(results[url][0]) for _, url in ANIMATIONS]
    anim_height = sum(LABEL + max(f.height for f, _ in frames) + LABEL + GAP for frames in animation_rows)
    width = GAP + 10 * (CELL + GAP)
    sheet = Image.new("RGB", (width, rows_height + anim_height + GAP), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    y = GAP
    for title, cells in ROWS:
        draw.text((GAP, y), title, fill="black", font=FONT)
        y += LABEL
        for column, (label, url) in enumerate(cells):
            data, media_type = results[url]
            image = on_board(Image.open(io.BytesIO(data)))
            size = f"{image.width}x{image.height} {media_type.removeprefix('image/')}"
            if image.width > CELL or image.height > CELL:  # an @2x result, shown at its CSS size
                image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
            x = GAP + column * (CELL + GAP)
            sheet.paste(image, (x + (CELL - image.width) // 2, y + (CELL - image.height) // 2))
            draw.text((x, y + CELL + 2), label, fill="#333", font=FONT)
            draw.text((x, y + CELL + 2 + LABEL), size, fill="#777", font=FONT)
        y += CELL + 2 * LABEL + GAP
    for (title, url), frames in zip(ANIMATIONS, animation_rows, strict=True):
        media_type = results[url][1]
        draw.text((GAP, y), f"{title}: {len(frames)} frames, {media_type}", fill="black", font=FONT)
        y += LABEL
        x = GAP
        for index, (frame, duration) in enumerate(frames):
            sheet.paste(frame, (x, y))
            draw.text((x, y + frame.height + 2), f"#{index + 1}: {duration} ms", fill="#333", font=FONT)
            x += frame.width + GAP
        y += max(f.height for f, _ in frames) + LABEL + GAP
    return sheet


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("contact_sheet.png")
    with tempfile.TemporaryDirectory(prefix="contact-sheet-") as folder:
        root = Path(folder)
        make_root(root)
        results = asyncio.run(fetch_all(root))
    build(results).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
