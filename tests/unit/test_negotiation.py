"""Accept negotiation: explicit image types with q > 0 only, in auto_formats order."""

from __future__ import annotations

import pytest

from server.thumbnails.negotiation import negotiate_format

CASES = [
    (None, ("webp",), None),
    ("", ("webp",), None),
    ("image/webp", ("webp",), "webp"),
    ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", ("webp",), "webp"),
    ("image/avif,image/webp,*/*", ("avif", "webp"), "avif"),
    ("image/avif,image/webp,*/*", ("webp", "avif"), "webp"),
    ("image/webp;q=0, image/avif", ("webp", "avif"), "avif"),
    ("image/webp;q=0.0", ("webp",), None),
    ("image/webp; q=0.5", ("webp",), "webp"),
    ("IMAGE/WEBP", ("webp",), "webp"),
    ("*/*", ("webp",), None),
    ("image/*", ("webp", "avif"), None),
    ("text/html,image/png", ("webp",), None),
    ("image/webp", (), None),
    ("image/webp;q=abc", ("webp",), None),
]


@pytest.mark.parametrize(("accept", "auto_formats", "expected"), CASES)
def test_negotiate_format(accept: str | None, auto_formats: tuple[str, ...], expected: str | None) -> None:
    assert negotiate_format(accept, auto_formats) == expected
