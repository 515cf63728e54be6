"""The spec grammar: valid specs, their canonical form, and every kind of 400."""

from __future__ import annotations

import pytest

from server.imaging import Effects
from server.thumbnails.spec import InvalidSpec, Preset, SpecRules, ThumbSpec, parse_spec

DEFAULTS = SpecRules(presets={"small": Preset(160, 160, "cover")})

VALID = [
    ("320x240", ThumbSpec(320, 240, "contain", None, None), "320x240,contain"),
    ("320x", ThumbSpec(320, None, "contain", None, None), "320x,contain"),
    ("x240", ThumbSpec(None, 240, "contain", None, None), "x240,contain"),
    ("320x240,cover", ThumbSpec(320, 240, "cover", None, None), "320x240,cover"),
    ("320x240,fill,png", ThumbSpec(320, 240, "fill", "png", None), "320x240,fill,png"),
    ("320x240,cover,webp", ThumbSpec(320, 240, "cover", "webp", None), "320x240,cover,webp"),
    ("320x240,webp,cover", ThumbSpec(320, 240, "cover", "webp", None), "320x240,cover,webp"),
    ("320x240@2x,q70", ThumbSpec(640, 480, "contain", None, 70), "640x480,contain,q70"),
    ("320x@1.5x", ThumbSpec(480, None, "contain", None, None), "480x,contain"),
    ("x101@1.5x", ThumbSpec(None, 152, "contain", None, None), "x152,contain"),
    ("100x100@4x", ThumbSpec(400, 400, "contain", None, None), "400x400,contain"),
    ("100x100@1x", ThumbSpec(100, 100, "contain", None, None), "100x100,contain"),
    ("100x100@4.0x", ThumbSpec(400, 400, "contain", None, None), "400x400,contain"),
    ("4096x4096", ThumbSpec(4096, 4096, "contain", None, None), "4096x4096,contain"),
    ("1x1,q1", ThumbSpec(1, 1, "contain", None, 1), "1x1,contain,q1"),
    ("1x1,q100,avif,contain", ThumbSpec(1, 1, "contain", "avif", 100), "1x1,contain,avif,q100"),
    ("small", ThumbSpec(160, 160, "cover", None, None), "160x160,cover"),
    ("small,avif", ThumbSpec(160, 160, "cover", "avif", None), "160x160,cover,avif"),
    ("small@2x", ThumbSpec(320, 320, "cover", None, None), "320x320,cover"),
    ("small,contain", ThumbSpec(160, 160, "contain", None, None), "160x160,contain"),
    ("320x240,jpeg,q082", ThumbSpec(320, 240, "contain", "jpeg", 82), "320x240,contain,jpeg,q82"),
    ("320x240,gif", ThumbSpec(320, 240, "contain", "gif", None), "320x240,contain,gif"),
    # gravity and focal point: compass points are focus points; the centre is the default.
    ("400x400,cover,g:smart", ThumbSpec(400, 400, "cover", None, None, Effects(smart=True)), "400x400,cover,g:smart"),
    ("40x40,cover,g:ne", ThumbSpec(40, 40, "cover", None, None, Effects(focus=(1000, 0))), "40x40,cover,g:ne"),
    ("40x40,g:sw,cover", ThumbSpec(40, 40, "cover", None, None, Effects(focus=(0, 1000))), "40x40,cover,g:sw"),
    ("40x40,cover,g:c", ThumbSpec(40, 40, "cover", None, None), "40x40,cover"),
    ("40x40,cover,fp:0.5:0.5", ThumbSpec(40, 40, "cover", None, None), "40x40,cover"),
    ("40x40,cover,fp:1:0.000", ThumbSpec(40, 40, "cover", None, None, Effects(focus=(1000, 0))), "40x40,cover,g:ne"),
    ("400x300,cover,fp:0.3:0.6", ThumbSpec(400, 300, "cover", None, None, Effects(focus=(300, 600))),
     "400x300,cover,fp:0.3:0.6"),
    ("4x3,cover,fp:0.125:1.0", ThumbSpec(4, 3, "cover", None, None, Effects(focus=(125, 1000))), "4x3,cover,fp:0.125:1"),
    ("small,g:n", ThumbSpec(160, 160, "cover", None, None, Effects(focus=(500, 0))), "160x160,cover,g:n"),
    # pad and bg: (lowercased); bg: also serves flatten, with any fit.
    ("300x300,pad,bg:00FF00", ThumbSpec(300, 300, "pad", None, None, Effects(background="00ff00")),
     "300x300,pad,bg:00ff00"),
    ("300x,jpeg,bg:000000", ThumbSpec(300, None, "contain", "jpeg", None, Effects(background="000000")),
     "300x,contain,jpeg,bg:000000"),
    # filters: sigmas in hundredths of an output pixel, dpr applied.
    ("600x,blur:8", ThumbSpec(600, None, "contain", None, None, Effects(blur=80)), "600x,contain,blur:8"),
    ("300x@2x,blur:8", ThumbSpec(600, None, "contain", None, None, Effects(blur=160)), "600x,contain,blur:16"),
    ("100x@1.5x,sharpen:0.3", ThumbSpec(150, None, "contain", None, None, Effects(sharpen=5)),
     "150x,contain,sharpen:0.5"),
    ("10x,blur:100,sharpen:10", ThumbSpec(10, None, "contain", None, None, Effects(blur=1000, sharpen=100)),
     "10x,contain,blur:100,sharpen:10"),
    ("10x,gray,still", ThumbSpec(10, None, "contain", None, None, Effects(gray=True, still=True)),
     "10x,contain,gray,still"),
    # every kind in a scrambled order: one canonical order.
    ("still,gray,sharpen:1,blur:2,bg:ABCDEF,g:se,q50,webp,cover".replace("still,", "20x20,still,", 1),
     ThumbSpec(20, 20, "cover", "webp", 50, Effects((1000, 1000), False, "abcdef", 20, 10, True, True)),
     "20x20,cover,webp,q50,g:se,bg:abcdef,blur:2,sharpen:1,gray,still"),
]

INVALID = [
    ("", "empty"),
    ("x", "not a size"),
    ("0x240", "at least 1"),
    ("320x0", "at least 1"),
    ("-320x240", "not a size"),
    ("320X240", "not a size"),
    ("320x240,", "unknown modifier"),
    ("320 x240", "not a size"),
    ("٣٢٠x240", "not a size"),
    ("320x240,cover,cover", "fit given twice"),
    ("320x240,cover,fill", "fit given twice"),
    ("320x240,webp,png", "format given twice"),
    ("320x240,q50,q60", "quality given twice"),
    ("320x240,q0", "q1 to q100"),
    ("320x240,q101", "q1 to q100"),
    ("320x240,q1000", "unknown modifier"),
    ("320x240,q", "unknown modifier"),
    ("320x240,tiff", "unknown modifier"),
    ("320x240,COVER", "unknown modifier"),
    ("320x,cover", "needs both"),
    ("x240,fill", "needs both"),
    ("320x240@0x", "dpr"),
    ("320x240@5x", "dpr"),
    ("320x240@4.1x", "at most 4x"),
    ("320x240@1.25x", "dpr"),
    ("320x240@2", "dpr"),
    ("320x240@x", "dpr"),
    ("320x240@2x@2x", "dpr"),
    ("4097x10", "larger than"),
    ("10x4097", "larger than"),
    ("2049x@2x", "larger than"),
    ("99999999x1", "not a size"),
    ("large", "nor a preset"),
    ("a" * 300, "overlong"),
    ("320x240,tiff", "unknown modifier"),
    ("320x240,g:ne", "only applies to cover"),
    ("320x240,pad,fp:0.1:0.1", "only applies to cover"),
    ("320x240,cover,g:north", "not a gravity"),
    ("320x240,cover,g:", "not a gravity"),
    ("320x240,cover,g:NE", "not a gravity"),
    ("320x240,cover,g:n,g:s", "given twice"),
    ("320x240,cover,g:n,fp:0.1:0.1", "given twice"),
    ("320x240,cover,fp:0.1", "not a focal point"),
    ("320x240,cover,fp:1.1:0", "not a focal point"),
    ("320x240,cover,fp:0.1234:0", "not a focal point"),
    ("320x240,cover,fp:.5:0", "not a focal point"),
    ("320x240,cover,fp:-0.1:0", "not a focal point"),
    ("320x240,cover,fp:0.1:0.1:0.1", "not a focal point"),
    ("320x,pad", "needs both"),
    ("320x240,pad,cover", "fit given twice"),
    ("320x240,bg:fff", "6 hex digits"),
    ("320x240,bg:gggggg", "6 hex digits"),
    ("320x240,bg:000000,bg:ffffff", "given twice"),
    ("320x240,blur:0", "0.1 to 100"),
    ("320x240,blur:0.0", "0.1 to 100"),
    ("320x240,blur:100.1", "0.1 to 100"),
    ("320x240,blur:1.25", "at most one decimal"),
    ("320x240,blur:", "0.1 to 100"),
    ("320x240,blur:1e1", "0.1 to 100"),
    ("320x240,sharpen:10.1", "0.1 to 10"),
    ("320x240,blur:1,blur:2", "blur given twice"),
    ("320x240,gray,gray", "gray given twice"),
    ("320x240,still,still", "still given twice"),
    ("320x240,grey", "unknown modifier"),
    ("320x240@2x,blur:60", "times dpr must be at most 100"),
    ("320x240@1.5x,sharpen:7", "times dpr must be at most 10"),
]


class TestValid:
    """Valid specs parse into a normalised ThumbSpec whose canonical form is stable."""

    @pytest.mark.parametrize(("text", "expected", "canonical"), VALID)
    def test_parse(self, text: str, expected: ThumbSpec, canonical: str) -> None:
        spec = parse_spec(text, DEFAULTS)
        assert spec == expected
        assert spec.canonical == canonical

    @pytest.mark.parametrize(("text", "expected", "canonical"), VALID)
    def test_canonical_form_parses_to_itself(self, text: str, expected: ThumbSpec, canonical: str) -> None:
        assert parse_spec(canonical, SpecRules(max_width=20000, max_height=20000)) == expected


class TestInvalid:
    """Anything outside the grammar or the limits raises InvalidSpec saying what is wrong."""

    @pytest.mark.parametrize(("text", "message"), INVALID)
    def test_rejected(self, text: str, message: str) -> None:
        with pytest.raises(InvalidSpec, match=message):
            parse_spec(text, DEFAULTS)


class TestAllowedSizes:
    """With allowed_sizes set, only those bases and the presets are served."""

    settings = SpecRules(allowed_sizes=("320x240", "640x"), allowed_dpr_tenths=(20,), presets=DEFAULTS.presets)

    @pytest.mark.parametrize("text", ["320x240", "320x240@2x", "320x240,cover,webp", "640x", "small"])
    def test_allowed(self, text: str) -> None:
        parse_spec(text, self.settings)

    @pytest.mark.parametrize("text", ["321x240", "640x480", "x240", "320x"])
    def test_refused(self, text: str) -> None:
        with pytest.raises(InvalidSpec, match="not one of the allowed sizes"):
            parse_spec(text, self.settings)


class TestAllowedVariants:
    """With allowed_sizes, dpr and quality are bounded too (empty lists: 1x and the defaults only)."""

    rules = SpecRules(allowed_sizes=("320x240",), allowed_dpr_tenths=(20,), allowed_qualities=(60, 82))

    @pytest.mark.parametrize("text", ["320x240", "320x240@1x", "320x240@2x", "320x240,q60", "320x240@2x,q82,webp"])
    def test_allowed(self, text: str) -> None:
        parse_spec(text, self.rules)

    @pytest.mark.parametrize("text", ["320x240@3.7x", "320x240@1.5x", "320x240,q37", "320x240@2x,q61"])
    def test_refused(self, text: str) -> None:
        with pytest.raises(InvalidSpec, match="allowed"):
            parse_spec(text, self.rules)

    def test_without_allowed_sizes_everything_goes(self) -> None:
        assert parse_spec("320x240@3.7x,q37", SpecRules()).quality == 37

    @pytest.mark.parametrize("text", ["320x240,cover,g:ne", "320x240,cover,g:smart", "320x240,pad", "320x240,gray",
                                      "320x240,still,gif"])
    def test_modifiers_with_few_values_are_allowed(self, text: str) -> None:
        parse_spec(text, self.rules)

    @pytest.mark.parametrize("text", ["320x240,cover,fp:0.31:0.6", "320x240,pad,bg:123456", "320x240,blur:3.7",
                                      "320x240,sharpen:1.1"])
    def test_modifiers_with_a_continuum_of_values_are_refused(self, text: str) -> None:
        """Each of these has thousands to millions of values: allowed sizes would bound nothing."""
        with pytest.raises(InvalidSpec, match="allowed_sizes"):
            parse_spec(text, self.rules)
