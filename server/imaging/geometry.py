"""Geometry: what part of the source a thumbnail shows and at what size. Pure arithmetic."""

from __future__ import annotations

from typing import NamedTuple

SWAPS_AXES = frozenset({5, 6, 7, 8})

FITS = ("contain", "cover", "fill", "pad")
#: Fits that make a box of an exact size, so they need both sides.
NEEDS_BOTH_SIDES = frozenset({"cover", "fill", "pad"})

#: Where a cover crop centres, in thousandths of the source's width and height, by compass point.
#: The window is centred on the point and then moved inside the source, so "ne" (1000, 0)
#: keeps the top-right corner and "c" is the plain centre crop.
GRAVITIES: dict[str, tuple[int, int]] = {
    "c": (500, 500), "n": (500, 0), "s": (500, 1000), "e": (1000, 500), "w": (0, 500),
    "ne": (1000, 0), "nw": (0, 0), "se": (1000, 1000), "sw": (0, 1000),
}
CENTRE = GRAVITIES["c"]


def box_problem(width: int | None, height: int | None, fit: str) -> str | None:
    """Why a `width` x `height` box with `fit` cannot be rendered, or None when it can."""
    if width is None and height is None:
        return "at least one of width and height is required"
    if any(side is not None and side < 1 for side in (width, height)):
        return "width and height must be at least 1"
    if fit not in FITS:
        return f"fit must be one of {', '.join(FITS)}"
    if fit in NEEDS_BOTH_SIDES and (width is None or height is None):
        return f"{fit} needs both width and height"
    return None


class Box(NamedTuple):
    """The requested box in final pixels (dpr applied); None leaves a side free (contain only)."""

    width: int | None
    height: int | None
    fit: str


class Geometry(NamedTuple):
    """Output size, and the part of the (oriented) source it shows: (left, top, right, bottom).

    `canvas` (pad only): the exact box the output is then centred in, at least its size.
    """

    width: int
    height: int
    crop: tuple[int, int, int, int] | None
    canvas: tuple[int, int] | None = None



def displayed_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size of a `size` image once `orientation` is applied."""
    width, height = size
    return (height, width) if orientation in SWAPS_AXES else (width, height)


def plan_geometry(src_w: int, src_h: int, request: Box, focus: tuple[int, int] = CENTRE) -> Geometry:
    """Output size and crop for a `src_w` x `src_h` (displayed) source. Never upscales.

    contain: the largest size inside the box with the source's aspect ratio (a free side is
    unbounded), at most the source's size. cover: exactly the box, showing the largest part of
    the source with the box's aspect ratio, centred on `focus` (thousandths of the source's
    sides) as far as the source allows; when that part is smaller than the box it is returned
    as is (a crop, not scaled up). fill: exactly the box, aspect ratio not kept; a box larger
    than the source on either side is first scaled down uniformly until both sides fit. pad:
    contain, on a canvas of exactly the box. Every side is at least 1 px.
    """
    box_w, box_h = request.width, request.height
    if request.fit == "cover":
        assert box_w is not None and box_h is not None
        return _plan_cover(src_w, src_h, box_w, box_h, focus)
    if request.fit == "pad":
        assert box_w is not None and box_h is not None
        inside = plan_geometry(src_w, src_h, Box(box_w, box_h, "contain"))
        return inside._replace(canvas=(box_w, box_h))
    if request.fit == "fill":
        assert box_w is not None and box_h is not None
        if box_w <= src_w and box_h <= src_h:
            return Geometry(box_w, box_h, None)
        if box_w * src_h > box_h * src_w:  # width is the side that overflows most
            return Geometry(src_w, max(1, _div_round(box_h * src_w, box_w)), None)
        return Geometry(max(1, _div_round(box_w * src_h, box_h)), src_h, None)
    # contain: scale by the tighter side, never above 1.
    fits_w = box_w is None or box_w >= src_w
    fits_h = box_h is None or box_h >= src_h
    if fits_w and fits_h:
        return Geometry(src_w, src_h, None)
    if box_h is None or (box_w is not None and box_w * src_h <= box_h * src_w):
        assert box_w is not None
        return Geometry(box_w, max(1, _div_round(src_h * box_w, src_w)), None)
    return Geometry(max(1, _div_round(src_w * box_h, src_h)), box_h, None)


def _plan_cover(src_w: int, src_h: int, box_w: int, box_h: int, focus: tuple[int, int]) -> Geometry:
    if src_w * box_h > src_h * box_w:  # source wider than the box: keep its height
        crop_w, crop_h = max(1, _div_round(src_h * box_w, box_h)), src_h
    else:
        crop_w, crop_h = src_w, max(1, _div_round(src_w * box_h, box_w))
    left, top = _window_start(src_w, crop_w, focus[0]), _window_start(src_h, crop_h, focus[1])
    crop = (left, top, left + crop_w, top + crop_h)
    if crop_w < box_w or crop_h < box_h:
        return Geometry(crop_w, crop_h, crop)
    return Geometry(box_w, box_h, None if crop == (0, 0, src_w, src_h) else crop)


def _window_start(side: int, window: int, thousandths: int) -> int:
    """Where a `window` along a `side` starts when centred on `thousandths` of the side, kept
    inside it; floor division, so the centre (500) gives the plain (side - window) // 2."""
    start = (2 * side * thousandths - 1000 * window) // 2000
    return min(max(start, 0), side - window)


def _div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def decode_size(geometry: Geometry, source_size: tuple[int, int]) -> tuple[int, int]:
    """The smallest whole-source size from which `geometry` can be cut without upscaling.

    For a crop this is the source scaled so the cropped part has the output's size, which is
    larger than the output itself.
    """
    src_w, src_h = source_size
    if geometry.crop is None:
        return geometry.width, geometry.height
    left, top, right, bottom = geometry.crop
    return (
        -(-src_w * geometry.width // (right - left)),  # ceiling division
        -(-src_h * geometry.height // (bottom - top)),
    )

