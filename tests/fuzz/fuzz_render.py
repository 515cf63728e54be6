"""atheris harness: `server.imaging.render_thumbnail` on mutated image bytes.

    python tests/fuzz/fuzz_render.py [libFuzzer flags] [corpus dirs]   e.g. -max_total_time=60

An input is 4 bytes choosing the request (box, fit, output format) followed by the source.
`tests/fuzz/seeds.py` writes a seed corpus of small valid images of every allowed format.
Properties: the only exception is `ImageError` (`UndecodableImage`, `SourceTooLarge`); a result
decodes as its own format, has the size it claims, and never exceeds the box.
"""

from __future__ import annotations

import sys
import warnings
from io import BytesIO

import atheris

with atheris.instrument_imports():
    import PIL.Image
    from server.formats import OUTPUT_FORMATS as FORMATS
    from server.imaging import FITS, EncoderSettings, ImageError, RenderRequest, SourceLimits, render_thumbnail

# Small limits keep every input cheap: the fuzzer explores parsers, not big allocations.
LIMITS = SourceLimits(max_pixels=2_000_000, max_bytes=1_000_000)
SIDES = (None, 1, 7, 32, 64, 200)


def request_from(header: bytes) -> RenderRequest:
    width, height = SIDES[header[0] % len(SIDES)], SIDES[header[1] % len(SIDES)]
    fit = FITS[header[2] % len(FITS)]
    if width is None and height is None:
        width = 32
    if fit != "contain" and (width is None or height is None):
        fit = "contain"
    output = (None, *FORMATS)[header[3] % (len(FORMATS) + 1)]
    if output == "avif":
        output = "webp"  # AVIF encoding is ~100x slower: keep the fuzzer on the decoders
    return RenderRequest(width=width, height=height, fit=fit, format=output, quality=None, encoder=EncoderSettings())


def test_one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    request = request_from(data[:4])
    try:
        rendered = render_thumbnail(data[4:], request, limits=LIMITS)
    except ImageError:
        return
    assert request.width is None or rendered.width <= request.width, (rendered, request)
    assert request.height is None or rendered.height <= request.height, (rendered, request)
    assert request.format is None or rendered.format == request.format, (rendered, request)
    output = PIL.Image.open(BytesIO(rendered.data))
    assert output.format.lower() == rendered.format, (output.format, rendered)
    assert output.size == (rendered.width, rendered.height), (output.size, rendered)


def main() -> None:
    # Pillow warns about odd tags and truncated reads on nearly every mutated input; only
    # exceptions and wrong results are findings, and printing thousands of warnings is slow.
    warnings.simplefilter("ignore")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
