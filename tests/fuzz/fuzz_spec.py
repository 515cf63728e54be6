"""atheris harness: `server.spec.parse_spec` on arbitrary text, under two configurations.

    python tests/fuzz/fuzz_spec.py [libFuzzer flags] [corpus dirs]   e.g. -max_total_time=60

Properties checked on every input: the only exception is `InvalidSpec`; an accepted spec is
within the configured limits and the grammar's ranges; its canonical form is ASCII and parses
back to the very same spec (one cache key and ETag per thumbnail).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from server.thumbnails.spec import FITS, FORMATS, MAX_SPEC_LENGTH, InvalidSpec, Preset, SpecRules, parse_spec

OPEN = SpecRules(presets={"small": Preset(160, 160, "cover")})
STRICT = SpecRules(
    max_width=1000,
    max_height=800,
    allowed_sizes=("320x240", "640x", "x100"),
    presets={"small": Preset(160, 160, "cover"), "wide": Preset(900, None)},
)


def check(text: str, settings: SpecRules) -> None:
    try:
        spec = parse_spec(text, settings)
    except InvalidSpec:
        return
    assert 0 < len(text) <= MAX_SPEC_LENGTH, text
    assert spec.width is not None or spec.height is not None, text
    assert spec.width is None or 1 <= spec.width <= settings.max_width, (text, spec)
    assert spec.height is None or 1 <= spec.height <= settings.max_height, (text, spec)
    assert spec.fit in FITS and (spec.format is None or spec.format in FORMATS), (text, spec)
    assert spec.quality is None or 1 <= spec.quality <= 100, (text, spec)
    assert spec.fit == "contain" or (spec.width and spec.height), (text, spec)
    assert spec.canonical.isascii(), (text, spec)
    if not settings.allowed_sizes:  # with an allow-list the canonical box may not be listed
        assert parse_spec(spec.canonical, settings) == spec, (text, spec)


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    settings = STRICT if provider.ConsumeBool() else OPEN
    check(provider.ConsumeUnicodeNoSurrogates(MAX_SPEC_LENGTH + 20), settings)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
