"""The thumbnail spec grammar (DESIGN.md §URLs) and its one canonical form.

    spec     = base [ "@" dpr "x" ] *( "," modifier )
    base     = width "x" height | width "x" | "x" height | preset-name
    modifier = "contain" | "cover" | "fill" | "jpeg" | "png" | "webp" | "avif" | "q" 1*3DIGIT
    dpr      = 1..4, at most one decimal

`parse_spec` folds dpr and presets into the box, so every way of writing one thumbnail has
the same `ThumbSpec.canonical` string: the cache key and ETag are built from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from collections.abc import Mapping
from typing import NamedTuple

from server.formats import OUTPUT_FORMATS as FORMATS
from server.imaging import FITS, NEEDS_BOTH_SIDES

# ASCII digits only: \d would accept "٣٢٠" and int() would take it.
_BOX = re.compile(r"(?P<width>[0-9]{1,5})?x(?P<height>[0-9]{1,5})?")
_DPR = re.compile(r"(?P<units>[1-4])(?:\.(?P<tenths>[0-9]))?x")
_QUALITY = re.compile(r"q(?P<quality>[0-9]{1,3})")
MAX_SPEC_LENGTH = 200


class InvalidSpec(ValueError):
    """The spec is not in the grammar or asks for a size the configuration forbids (400)."""


class Preset(NamedTuple):
    width: int | None
    height: int | None
    fit: str = "contain"


@dataclass(frozen=True, slots=True)
class SpecRules:
    """What the configuration allows (`thumbnails.*`): the composition root builds it once."""

    max_width: int = 4096
    max_height: int = 4096
    allowed_sizes: tuple[str, ...] = ()
    # With allowed_sizes, the dprs (in tenths: 15 is 1.5x) and URL qualities also allowed; each
    # empty means "none but the default" (1x; the configured default qualities).
    allowed_dpr_tenths: tuple[int, ...] = ()
    allowed_qualities: tuple[int, ...] = ()
    presets: Mapping[str, Preset] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ThumbSpec:
    """A parsed, normalised spec. `width`/`height` already include dpr; `None` is a free side."""

    width: int | None
    height: int | None
    fit: str
    format: str | None
    quality: int | None
    #: `640x480,cover,webp,q70`: fit always written, format and quality when given. Computed once:
    #: parsed specs are memoised, so this is read on every request.
    canonical: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = [f"{self.width or ''}x{self.height or ''}", self.fit]
        if self.format:
            parts.append(self.format)
        if self.quality is not None:
            parts.append(f"q{self.quality}")
        object.__setattr__(self, "canonical", ",".join(parts))

    @property
    def box_name(self) -> str:
        """The box for file names: `640x480`, `640x`, `x480`."""
        return f"{self.width or ''}x{self.height or ''}"


def parse_spec(text: str, settings: SpecRules) -> ThumbSpec:
    """Parse `text` against the grammar and the configured limits, or raise `InvalidSpec`."""
    if not text or len(text) > MAX_SPEC_LENGTH:
        raise InvalidSpec("empty or overlong spec")
    head, *modifiers = text.split(",")
    base, at, dpr_text = head.partition("@")
    width, height, fit = _parse_base(base, settings)
    dpr_tenths = _parse_dpr(dpr_text) if at else 10

    explicit_fit, output_format, quality = _parse_modifiers(modifiers)
    if settings.allowed_sizes:
        _check_allowed_variant(dpr_tenths, quality, settings)
    fit = explicit_fit or fit
    if fit in NEEDS_BOTH_SIDES and (width is None or height is None):
        raise InvalidSpec(f"{fit} needs both a width and a height")

    width = _scale(width, dpr_tenths)
    height = _scale(height, dpr_tenths)
    if (width or 0) > settings.max_width or (height or 0) > settings.max_height:
        raise InvalidSpec(f"the box is larger than {settings.max_width}x{settings.max_height}")
    return ThumbSpec(width=width, height=height, fit=fit, format=output_format, quality=quality)


def _check_allowed_variant(dpr_tenths: int, quality: int | None, settings: SpecRules) -> None:
    """With an allow-list of sizes, a URL's dpr and quality are bounded too, so the variants an
    unsigned URL can make stay countable (sizes x dprs x qualities x formats x fits)."""
    if dpr_tenths != 10 and dpr_tenths not in settings.allowed_dpr_tenths:
        raise InvalidSpec(f"dpr {dpr_tenths / 10:g}x is not one of the allowed dprs")
    if quality is not None and quality not in settings.allowed_qualities:
        raise InvalidSpec(f"quality q{quality} is not one of the allowed qualities")


def _parse_base(base: str, settings: SpecRules) -> tuple[int | None, int | None, str]:
    preset = settings.presets.get(base)
    if preset is not None:
        return preset.width, preset.height, preset.fit
    match = _BOX.fullmatch(base)
    if match is None or (match["width"] is None and match["height"] is None):
        raise InvalidSpec(f"{_shown(base)} is not a size such as 320x240, 320x or x240, nor a preset")
    if settings.allowed_sizes and base not in settings.allowed_sizes:
        raise InvalidSpec(f"size {base} is not one of the allowed sizes")
    width = int(match["width"]) if match["width"] is not None else None
    height = int(match["height"]) if match["height"] is not None else None
    if width == 0 or height == 0:
        raise InvalidSpec("width and height must be at least 1")
    return width, height, "contain"


def _parse_dpr(text: str) -> int:
    """The device pixel ratio in tenths: `1.5x` → 15."""
    match = _DPR.fullmatch(text)
    if match is None:
        raise InvalidSpec(f"dpr {_shown(text)} is not 1x to 4x with at most one decimal, such as 1.5x")
    tenths = int(match["units"]) * 10 + int(match["tenths"] or 0)
    if tenths > 40:
        raise InvalidSpec("dpr must be at most 4x")
    return tenths


def _parse_modifiers(modifiers: list[str]) -> tuple[str | None, str | None, int | None]:
    fit = output_format = quality = None
    for word in modifiers:
        if word in FITS:
            if fit is not None:
                raise InvalidSpec("fit given twice")
            fit = word
        elif word in FORMATS:
            if output_format is not None:
                raise InvalidSpec("format given twice")
            output_format = word
        elif (match := _QUALITY.fullmatch(word)) is not None:
            if quality is not None:
                raise InvalidSpec("quality given twice")
            quality = int(match["quality"])
            if not 1 <= quality <= 100:
                raise InvalidSpec("quality must be q1 to q100")
        else:
            raise InvalidSpec(f"unknown modifier {_shown(word)}")
    return fit, output_format, quality


def _scale(side: int | None, dpr_tenths: int) -> int | None:
    if side is None:
        return None
    return max(1, (side * dpr_tenths + 5) // 10)


def _shown(text: str) -> str:
    """The client's text for an error detail, short and printable."""
    return repr(text[:40])
