"""The pixel steps of a render, each a plain function from image to image, testable alone:
orient -> normalize_mode -> strip_metadata -> (smart_focus) -> resize -> apply_filters -> pad
-> flatten. `finish_frame` runs the ones after decoding, once per frame of an animation."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageCms, ImageFilter, ImageMath, ImageOps

from server.formats import FORMATS
from server.imaging.decode import TRANSPOSES, valid_icc_profile
from server.imaging.geometry import CENTRE, Geometry

#: g:smart looks for detail on a grey copy whose longer side is at most this many pixels: enough
#: to tell a subject from a flat background; the search on it is cheap, the shrink costs most.
SMART_SIDE = 96
#: Unsharp mask strength (percent of the difference added back) and threshold (none).
SHARPEN_PERCENT = 100


@dataclass(frozen=True, slots=True)
class Effects:
    """What a thumbnail does besides its box, fit and format: the URL's g:, fp:, bg:, filters, still.

    focus: where a cover crop centres, thousandths of the displayed source's sides (None: the
    centre); smart: find that point from the pixels instead (`smart_focus`). background:
    "rrggbb" for pad's margins and for flattening alpha (None: transparent where the output
    has alpha, else white). blur, sharpen: Gaussian sigma in tenths of an output pixel,
    dpr already applied (0: none). gray: luminance only. still: an animation's first frame only.
    """

    focus: tuple[int, int] | None = None
    smart: bool = False
    background: str | None = None
    blur: int = 0
    sharpen: int = 0
    gray: bool = False
    still: bool = False


# Resize in one pass when the shrink is small; above this ratio Pillow first box-reduces by an
# integer factor, then resamples. 2.0 is Pillow's own choice for thumbnail().
REDUCING_GAP = 2.0


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned upright for EXIF `orientation` (the tag itself goes with strip_metadata)."""
    transpose = TRANSPOSES.get(orientation)
    return image if transpose is None else image.transpose(transpose)


def normalize_mode(image: Image.Image) -> Image.Image:
    """`image` as 8-bit L, LA, RGB or RGBA, the modes every later step handles.

    Transparency (a palette or tRNS colour) becomes an alpha channel; CMYK goes to RGB through
    its ICC profile when it has one; 16-bit and 32-bit integers are scaled (65535 -> 255) and
    float is taken as 0.0-1.0. Any ICC profile left in `image.info` describes the result.
    """
    mode = image.mode
    if mode in ("L", "RGB", "1"):
        if "transparency" in image.info:
            return image.convert("RGBA" if mode == "RGB" else "LA")
        return image if mode != "1" else image.convert("L")
    if mode in ("LA", "RGBA"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode == "I" or mode.startswith("I;16"):
        wide = image.convert("I")
        # convert("L") would clip at 255 instead of scaling; +0.5 rounds (point truncates).
        grey = wide.point(lambda value: value * (1 / 257) + 0.5).convert("L")
        transparent = image.info.get("transparency")
        if isinstance(transparent, int):
            # A 16-bit tRNS colour: the pixels equal to it, at full depth, are the transparent ones.
            alpha = ImageMath.lambda_eval(lambda values: (values["v"] != transparent) * 255, v=wide)
            return Image.merge("LA", (grey, alpha.convert("L")))
        return grey
    if mode == "F":
        return image.point(lambda value: value * 255).convert("L")  # F -> L rounds and clips
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")  # La, RGBa, RGBX, YCbCr…


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    profile = image.info.get("icc_profile")
    if profile and profile_space(profile) == b"CMYK":
        try:
            rgb = ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(BytesIO(profile)), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: Pillow's plain conversion below is better than no image
        else:
            assert rgb is not None
            rgb.info.pop("icc_profile", None)  # the pixels are sRGB now, the untagged default
            return rgb
    rgb = image.convert("RGB")
    rgb.info.pop("icc_profile", None)
    return rgb


def profile_space(profile: bytes) -> bytes:
    return profile[16:20] if len(profile) >= 128 else b""


def strip_metadata(image: Image.Image) -> bytes | None:
    """Drop all of `image`'s metadata (EXIF, XMP, comments, text chunks); return its ICC profile.

    Pillow's encoders copy some of `image.info` into their output unasked (a JPEG comment, a
    PNG ICC profile), so the dict is emptied rather than relying on save() arguments.
    """
    # A profile that does not parse, or is implausibly large (a 1 KB PNG can carry 1 MB of
    # "profile"), is dropped: the pixels are then taken as sRGB, the untagged default.
    profile = valid_icc_profile(image.info.get("icc_profile"))
    image.info = {}
    return profile



def resize(image: Image.Image, geometry: Geometry, source_size: tuple[int, int]) -> Image.Image:
    """`image` cut and scaled to `geometry`, which was planned for a `source_size` source.

    `image` may be a reduced-scale decode of that source (reduce_on_load), so the crop box is
    scaled to the pixels at hand; crop and resample are one Lanczos pass. Pillow premultiplies
    alpha while resampling, so transparent edges get no dark fringe.
    """
    crop = geometry.crop or (0, 0, *source_size)
    size = (geometry.width, geometry.height)
    if image.size == source_size and (crop[2] - crop[0], crop[3] - crop[1]) == size:
        return image if geometry.crop is None else image.crop(crop)  # pixel-exact: no resampling
    scale_x, scale_y = image.width / source_size[0], image.height / source_size[1]
    box = (crop[0] * scale_x, crop[1] * scale_y, crop[2] * scale_x, crop[3] * scale_y)
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)


def crop_focus(image: Image.Image, geometry: Geometry, source_size: tuple[int, int], effects: Effects) -> tuple[int, int]:
    """Where a cover crop centres (thousandths): found in `image`'s pixels for g:smart, else the
    URL's gravity or focal point, else the centre. `geometry` was planned for the centre."""
    if effects.smart:
        return smart_focus(image, geometry, source_size)
    return effects.focus or CENTRE


def smart_focus(image: Image.Image, geometry: Geometry, source_size: tuple[int, int]) -> tuple[int, int]:
    """The focus (thousandths) whose cover crop of `geometry`'s size holds the most detail.

    Detail is edge energy: the gradient magnitude (Pillow's FIND_EDGES Laplacian) of a grey copy
    at most SMART_SIDE px long. A cover crop only slides along one axis, so the energy is summed
    per column (or row) by a box resize to one row (column), and the window with the largest
    sum wins; ties go to the window nearest the centre. Edge energy rather than entropy: entropy
    of a window's histogram rewards noise and smooth gradients as much as a subject, needs a
    histogram per window, and a flat background has neither edges nor entropy anyway.
    """
    if geometry.crop is None:
        return 500, 500
    src_w, src_h = source_size
    left, top, right, bottom = geometry.crop
    scale = SMART_SIDE / max(image.size)
    small = image
    if scale < 1:  # shrink first: the grey copy then costs a few KB, not a byte per source pixel
        small = image.resize((max(3, round(image.width * scale)), max(3, round(image.height * scale))),
                             Image.Resampling.BOX, reducing_gap=REDUCING_GAP)
    small = small.convert("L")
    # FIND_EDGES copies the outermost pixels unfiltered: their brightness is not detail.
    edges = ImageOps.expand(ImageOps.crop(small.filter(ImageFilter.FIND_EDGES), 1), 1, fill=0)
    if right - left < src_w:  # the window slides horizontally
        profile = list(edges.resize((edges.width, 1), Image.Resampling.BOX).tobytes())
        start = _best_window(profile, (right - left) / src_w)
        return round(1000 * (start + (right - left) / src_w * len(profile) / 2) / len(profile)), 500
    profile = list(edges.resize((1, edges.height), Image.Resampling.BOX).tobytes())
    start = _best_window(profile, (bottom - top) / src_h)
    return 500, round(1000 * (start + (bottom - top) / src_h * len(profile) / 2) / len(profile))


def _best_window(profile: list[int], fraction: float) -> float:
    """The start (in profile cells) of the window `fraction` of the profile long with the most
    energy; of equal windows the one nearest the centre."""
    cells = len(profile)
    window = max(1, min(cells, round(fraction * cells)))
    best_key, best_start = None, 0
    total = sum(profile[:window])
    for start in range(cells - window + 1):
        if start:
            total += profile[start + window - 1] - profile[start - 1]
        key = (total, -abs(2 * start + window - cells))
        if best_key is None or key > best_key:
            best_key, best_start = key, start
    # The window in cells was rounded: scale its start back to the true fraction's room.
    room = cells - window
    return best_start * (cells - fraction * cells) / room if room else 0.0


def apply_filters(image: Image.Image, effects: Effects) -> Image.Image:
    """`image` blurred (Gaussian), sharpened (unsharp mask) and made grey, in that order.

    Run on the output-sized image, so their cost follows the output; sigmas are in output
    pixels with dpr applied, so a blur at @2x looks as it does at 1x. Alpha is filtered with
    the colours (a blurred silhouette gets a soft edge); gray keeps alpha.
    """
    if effects.blur:
        image = image.filter(ImageFilter.GaussianBlur(effects.blur / 10))
    if effects.sharpen:
        image = image.filter(ImageFilter.UnsharpMask(effects.sharpen / 10, SHARPEN_PERCENT, 0))
    if effects.gray and image.mode in ("RGB", "RGBA"):
        grey = image.convert("L")
        image = grey if image.mode == "RGB" else Image.merge("LA", (grey, image.getchannel("A")))
    return image


def pad(image: Image.Image, geometry: Geometry, background: str | None) -> Image.Image:
    """`image` centred on `geometry.canvas`: margins of `background` ("rrggbb"), or transparent.

    The image keeps its own pixels, alpha included (a background only fills the margins; a
    format without alpha flattens later). No canvas: `image` as it is.
    """
    if geometry.canvas is None or geometry.canvas == image.size:
        return image
    if background is None:
        mode = "LA" if image.mode in ("L", "LA") else "RGBA"
        fill: tuple[int, ...] = (0,) * len(mode)
    else:
        colour = _rgb(background)
        grey = image.mode in ("L", "LA") and colour[0] == colour[1] == colour[2]
        mode = ("L" if grey else "RGB") + ("A" if image.mode in ("LA", "RGBA") else "")
        fill = (colour[:1] if grey else colour) + ((255,) if mode.endswith("A") else ())
    canvas = Image.new(mode, geometry.canvas, fill)
    position = ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2)
    canvas.paste(image if image.mode == mode else image.convert(mode), position)
    return canvas


def _rgb(background: str) -> tuple[int, int, int]:
    return int(background[0:2], 16), int(background[2:4], 16), int(background[4:6], 16)


def finish_frame(image: Image.Image, geometry: Geometry, source_size: tuple[int, int], effects: Effects,
                 output_format: str) -> Image.Image:
    """The steps after decoding, on one (decoded, upright, normalised) frame:
    resize -> apply_filters -> pad -> flatten."""
    return finish_resized(resize(image, geometry, source_size), geometry, effects, output_format)


def finish_resized(image: Image.Image, geometry: Geometry, effects: Effects, output_format: str) -> Image.Image:
    """The steps after `resize` (whose output `image` is): apply_filters -> pad -> flatten.
    Each makes a new image when it changes one: `image` is never modified."""
    thumbnail = apply_filters(image, effects)
    return flatten(pad(thumbnail, geometry, effects.background), output_format, effects.background)


def flatten(image: Image.Image, output_format: str, background: str | None = None) -> Image.Image:
    """`image` in a mode `output_format` stores.

    A format without alpha (JPEG) gets alpha flattened onto `background` ("rrggbb"), else white.
    WebP and AVIF get RGB(A) for greyscale, as their encoders would convert anyway; the explicit
    mode lets encode() see that a Gray ICC profile no longer fits.
    """
    mode = image.mode
    if not FORMATS[output_format].alpha and mode in ("LA", "RGBA"):
        colour = _rgb(background) if background is not None else (255, 255, 255)
        grey = mode == "LA" and colour[0] == colour[1] == colour[2]
        base = Image.new("L" if grey else "RGB", image.size, colour[0] if grey else colour)
        base.paste(image, mask=image.getchannel("A"))
        return base
    if output_format in ("webp", "avif") and mode in ("L", "LA"):
        return image.convert("RGB" if mode == "L" else "RGBA")
    return image

