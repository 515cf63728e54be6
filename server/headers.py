"""Response header values shared by originals and thumbnails."""

from __future__ import annotations

import re
from urllib.parse import quote

_UNSAFE_IN_QUOTED = re.compile(r'[^\x20-\x7e]|["\\%;]')


def content_disposition(filename: str) -> str:
    """`inline` with the file's name, safe whatever the name holds (RFC 6266).

    The quoted `filename` is an ASCII fallback in which quotes, backslashes, semicolons,
    percent signs, control characters (CR/LF included) and non-ASCII become `_`; when that
    changed anything, `filename*` carries the exact name, UTF-8 and percent-encoded.
    """
    fallback = _UNSAFE_IN_QUOTED.sub("_", filename)
    if fallback == filename:
        return f'inline; filename="{filename}"'
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
