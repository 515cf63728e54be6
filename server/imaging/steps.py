"""The pixel steps of a render, each a plain function from image to image, testable alone:
orient -> normalize_mode -> strip_metadata -> resize -> flatten."""

from __future__ import annotations

from io import BytesIO

from PIL import Image, ImageCms, ImageMath

from server.formats import FORMATS
from server.imaging.decode import TRANSPOSES, valid_icc_profile
from server.imaging.geometry import Geometry

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


def flatten(image: Image.Image, output_format: str) -> Image.Image:
    """`image` in a mode `output_format` stores.

    A format without alpha (JPEG) gets alpha flattened onto white. WebP and AVIF get RGB(A) for greyscale,
    as their encoders would convert anyway; the explicit mode lets encode() see that a Gray
    ICC profile no longer fits.
    """
    mode = image.mode
    if not FORMATS[output_format].alpha and mode in ("LA", "RGBA"):
        background = Image.new(mode[:-1], image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        return background
    if output_format in ("webp", "avif") and mode in ("L", "LA"):
        return image.convert("RGB" if mode == "L" else "RGBA")
    return image

