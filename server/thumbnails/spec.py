"""The thumbnail spec grammar (DESIGN.md §URLs) and its one canonical form.

    spec     = base [ "@" dpr "x" ] *( "," modifier )
    base     = width "x" height | width "x" | "x" height | preset-name
    modifier = "contain" | "cover" | "fill" | "pad" | "jpeg" | "png" | "webp" | "avif" | "gif"
             | "q" 1*3DIGIT | "g:" gravity | "fp:" frac ":" frac | "bg:" 6HEXDIG
             | "blur:" sigma | "sharpen:" sigma | "gray" | "still"
    gravity  = "c" | "n" | "s" | "e" | "w" | "ne" | "nw" | "se" | "sw" | "smart"
    frac     = 0..1, at most 3 decimals;  sigma = 0.1..100 (blur), 0.1..10 (sharpen), one decimal
    dpr      = 1..4, at most one decimal

`parse_spec` folds dpr and presets into the box (and dpr into the sigmas, rounded to tenths: a
blur looks the same at @2x), drops what changes nothing (`g:c`, `fp:0.5:0.5`), and so every way of writing one
thumbnail has the same `ThumbSpec.canonical` string: the cache key and ETag are built from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from collections.abc import Mapping
from typing import NamedTuple

from server.formats import OUTPUT_FORMATS as FORMATS
from server.imaging import FITS, GRAVITIES, NEEDS_BOTH_SIDES, Effects

# ASCII digits only: \d would accept "٣٢٠" and int() would take it.
_BOX = re.compile(r"(?P<width>[0-9]{1,5})?x(?P<height>[0-9]{1,5})?")
_DPR = re.compile(r"(?P<units>[1-4])(?:\.(?P<tenths>[0-9]))?x")
_QUALITY = re.compile(r"q(?P<quality>[0-9]{1,3})")
_FRACTION = r"(?:0(?:\.[0-9]{1,3})?|1(?:\.0{1,3})?)"
_FOCUS = re.compile(rf"fp:(?P<x>{_FRACTION}):(?P<y>{_FRACTION})")
_SIGMA = re.compile(r"(?P<name>blur|sharpen):(?P<units>[0-9]{1,3})(?:\.(?P<tenths>[0-9]))?")
_BACKGROUND = re.compile(r"bg:(?P<hex>[0-9A-Fa-f]{6})")
#: Sigma limits in tenths, by filter.
SIGMA_TENTHS = {"blur": (1, 1000), "sharpen": (1, 100)}
#: Gravity names by focus point, for the canonical form (fp:1:0 is g:ne).
_GRAVITY_BY_FOCUS = {point: name for name, point in GRAVITIES.items()}
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
    #: Gravity, focal point, background, filters (sigmas with dpr applied) and still.
    effects: Effects = Effects()
    #: `640x480,cover,webp,q70,g:ne,bg:ffffff,blur:1.6,sharpen:0.5,gray,still`: fit always
    #: written, the rest when given, in this order. Computed once: parsed specs are memoised, so
    #: this is read on every request.
    canonical: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = [f"{self.width or ''}x{self.height or ''}", self.fit]
        if self.format:
            parts.append(self.format)
        if self.quality is not None:
            parts.append(f"q{self.quality}")
        parts += _effect_words(self.effects)
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

    words = _parse_modifiers(modifiers)
    if settings.allowed_sizes:
        _check_allowed_variant(dpr_tenths, words, settings)
    fit = words.fit or fit
    if fit in NEEDS_BOTH_SIDES and (width is None or height is None):
        raise InvalidSpec(f"{fit} needs both a width and a height")
    if (words.gravity or words.focus) and fit != "cover":
        raise InvalidSpec(f"{'g:' if words.gravity else 'fp:'} only applies to cover, not {fit}")

    width = _scale(width, dpr_tenths)
    height = _scale(height, dpr_tenths)
    if (width or 0) > settings.max_width or (height or 0) > settings.max_height:
        raise InvalidSpec(f"the box is larger than {settings.max_width}x{settings.max_height}")
    # Sigmas are in output pixels: dpr scales them as it scales the box, and like the box they
    # must stay within their bounds after it (so the canonical form parses to itself).
    blur, sharpen = ((tenths * dpr_tenths + 5) // 10 for tenths in (words.blur, words.sharpen))
    for name, tenths in (("blur", blur), ("sharpen", sharpen)):
        if tenths > SIGMA_TENTHS[name][1]:
            raise InvalidSpec(f"{name} sigma times dpr must be at most {SIGMA_TENTHS[name][1] / 10:g}")
    focus = GRAVITIES[words.gravity] if words.gravity not in (None, "smart") else words.focus
    effects = Effects(
        focus=None if focus == GRAVITIES["c"] else focus,
        smart=words.gravity == "smart",
        background=words.background,
        blur=blur,
        sharpen=sharpen,
        gray=words.gray,
        still=words.still,
    )
    return ThumbSpec(width=width, height=height, fit=fit, format=words.format, quality=words.quality, effects=effects)


#: Modifiers with a continuum of values (a focal point, a colour, a sigma): an allow-list of sizes
#: refuses them, else each allowed size would again have millions of variants.
UNBOUNDED_MODIFIERS = (("focus", "fp:"), ("background", "bg:"), ("blur", "blur:"), ("sharpen", "sharpen:"))


def _check_allowed_variant(dpr_tenths: int, words: _Words, settings: SpecRules) -> None:
    """With an allow-list of sizes, a URL's dpr and quality are bounded too, and the modifiers
    with a continuum of values are refused, so the variants an unsigned URL can make stay
    countable (sizes x dprs x qualities x formats x fits x gravities x gray x still)."""
    if dpr_tenths != 10 and dpr_tenths not in settings.allowed_dpr_tenths:
        raise InvalidSpec(f"dpr {dpr_tenths / 10:g}x is not one of the allowed dprs")
    if words.quality is not None and words.quality not in settings.allowed_qualities:
        raise InvalidSpec(f"quality q{words.quality} is not one of the allowed qualities")
    for attribute, prefix in UNBOUNDED_MODIFIERS:
        if getattr(words, attribute):
            raise InvalidSpec(f"{prefix} is not served with thumbnails.allowed_sizes (it has no bounded set of values)")


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


@dataclass(slots=True)
class _Words:
    """The modifiers of one spec as written (sigmas in tenths, before dpr)."""

    fit: str | None = None
    format: str | None = None
    quality: int | None = None
    gravity: str | None = None
    focus: tuple[int, int] | None = None
    background: str | None = None
    blur: int = 0
    sharpen: int = 0
    gray: bool = False
    still: bool = False
    seen: set[str] = field(default_factory=set)

    def once(self, kind: str) -> None:
        """Each kind of modifier once: a repeat is ambiguous, never "the last one wins"."""
        if kind in self.seen:
            raise InvalidSpec(f"{kind} given twice")
        self.seen.add(kind)


def _parse_modifiers(modifiers: list[str]) -> _Words:
    words = _Words()
    for word in modifiers:
        if word in FITS:
            words.once("fit")
            words.fit = word
        elif word in FORMATS:
            words.once("format")
            words.format = word
        elif (match := _QUALITY.fullmatch(word)) is not None:
            words.once("quality")
            words.quality = int(match["quality"])
            if not 1 <= words.quality <= 100:
                raise InvalidSpec("quality must be q1 to q100")
        elif word.startswith(("g:", "fp:")):
            words.once("gravity or focal point (g:, fp:)")
            _parse_anchor(word, words)
        elif word.startswith("bg:"):
            words.once("background (bg:)")
            if (match := _BACKGROUND.fullmatch(word)) is None:
                raise InvalidSpec(f"{_shown(word)} is not a background such as bg:ffffff (6 hex digits)")
            words.background = match["hex"].lower()
        elif word.startswith(("blur:", "sharpen:")):
            name = word.partition(":")[0]
            words.once(name)
            setattr(words, name, _parse_sigma(word, name))
        elif word in ("gray", "still"):
            words.once(word)
            setattr(words, word, True)
        else:
            raise InvalidSpec(f"unknown modifier {_shown(word)}")
    return words


def _parse_anchor(word: str, words: _Words) -> None:
    if word.startswith("g:"):
        if word[2:] not in GRAVITIES and word[2:] != "smart":
            raise InvalidSpec(f"{_shown(word)} is not a gravity: g: takes {', '.join(GRAVITIES)} or smart")
        words.gravity = word[2:]
        return
    match = _FOCUS.fullmatch(word)
    if match is None:
        raise InvalidSpec(f"{_shown(word)} is not a focal point such as fp:0.3:0.6 (0..1, at most 3 decimals)")
    words.focus = (_thousandths(match["x"]), _thousandths(match["y"]))


def _thousandths(text: str) -> int:
    whole, _, decimals = text.partition(".")
    return int(whole or 0) * 1000 + int((decimals + "000")[:3])


def _parse_sigma(word: str, name: str) -> int:
    """The sigma of `blur:8` or `sharpen:0.5`, in tenths."""
    low, high = SIGMA_TENTHS[name]
    match = _SIGMA.fullmatch(word)
    tenths = int(match["units"]) * 10 + int(match["tenths"] or 0) if match is not None else 0
    if match is None or not low <= tenths <= high:
        raise InvalidSpec(
            f"{_shown(word)}: {name} takes a sigma from {low / 10:g} to {high / 10:g} with at most one decimal,"
            f" such as {name}:1.5"
        )
    return tenths


def _effect_words(effects: Effects) -> list[str]:
    """The canonical words of `effects`, in the canonical order."""
    words = []
    if effects.smart:
        words.append("g:smart")
    elif effects.focus is not None:
        name = _GRAVITY_BY_FOCUS.get(effects.focus)
        words.append(f"g:{name}" if name else f"fp:{_fraction(effects.focus[0])}:{_fraction(effects.focus[1])}")
    if effects.background is not None:
        words.append(f"bg:{effects.background}")
    if effects.blur:
        words.append(f"blur:{effects.blur / 10:g}")
    if effects.sharpen:
        words.append(f"sharpen:{effects.sharpen / 10:g}")
    words += [name for name in ("gray", "still") if getattr(effects, name)]
    return words


def _fraction(thousandths: int) -> str:
    return f"{thousandths / 1000:g}"


def _scale(side: int | None, dpr_tenths: int) -> int | None:
    if side is None:
        return None
    return max(1, (side * dpr_tenths + 5) // 10)


def _shown(text: str) -> str:
    """The client's text for an error detail, short and printable."""
    return repr(text[:40])
