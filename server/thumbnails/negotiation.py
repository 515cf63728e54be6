"""Choosing a thumbnail's output format from the request's `Accept` header."""

from __future__ import annotations

from functools import lru_cache

#: Characters of an Accept header that are read; browsers send under 200.
MAX_ACCEPT_PARSED = 4096


def negotiate_format(accept: str | None, auto_formats: tuple[str, ...]) -> str | None:
    """The first of `auto_formats` whose `image/<format>` the Accept header names with q > 0.

    Wildcards (`*/*`, `image/*`) don't count, as in imgproxy and thumbor: browsers send them
    whether or not they can show WebP or AVIF. `None` means: use the source's family.
    """
    if not accept or not auto_formats:
        return None
    # The memo is keyed on the part that is parsed, so huge distinct headers cannot pin memory.
    return _negotiate(accept[:MAX_ACCEPT_PARSED], auto_formats)


@lru_cache(maxsize=512)  # a few distinct Accept strings arrive over and over
def _negotiate(accept: str, auto_formats: tuple[str, ...]) -> str | None:
    accepted = _explicit_image_types(accept)
    for output_format in auto_formats:
        if f"image/{output_format}" in accepted:
            return output_format
    return None


def _explicit_image_types(accept: str) -> set[str]:
    found = set()
    for media_range in accept.split(","):
        media_type, *parameters = media_range.split(";")
        media_type = media_type.strip().lower()
        if not media_type.startswith("image/") or media_type == "image/*":
            continue
        if _quality(parameters) > 0:
            found.add(media_type)
    return found


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0
