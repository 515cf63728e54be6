"""The one request-header reader both the image front and the routes use."""

from __future__ import annotations

from collections.abc import Iterable

# The request headers image responses depend on. ASGI servers lowercase header names.
IMAGE_HEADERS = frozenset({
    "accept", "if-none-match", "if-modified-since", "range", "if-range", "origin", "access-control-request-headers",
    "host",  # the gallery's image page shows absolute URLs to copy
})
_WANTED = {name.encode(): name for name in IMAGE_HEADERS}


def read_headers(raw: Iterable[tuple[bytes, bytes]], names: Iterable[str] | None = None) -> dict[str, str]:
    """The image headers of a request (or those `names`, lowercase), in one pass over the raw list.

    Several lines of one header are joined with ", " in the order received, as RFC 9110 §5.3
    says a recipient may for list-valued fields (`Accept`, `If-None-Match`). For a field that
    is not a list (`Range`, `If-Range`, `If-Modified-Since`), the joined value does not parse
    and is ignored as a malformed one would be, whichever front reads it.
    """
    wanted_names = _WANTED if names is None else {name.encode(): name for name in names}
    found: dict[str, str] = {}
    for name, value in raw:
        wanted = wanted_names.get(name)
        if wanted is None:
            continue
        text = value.decode("latin-1")
        previous = found.get(wanted)
        found[wanted] = text if previous is None else f"{previous}, {text}"
    return found
