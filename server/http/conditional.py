"""Conditional requests (RFC 9110 §13): If-None-Match, If-Modified-Since, If-Range, and ranges.

Pure functions over header strings, so both the originals and the thumbnails use one
implementation and tests can table-drive them.
"""

from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime


def http_date(timestamp: float) -> str:
    """An IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`."""
    return formatdate(timestamp, usegmt=True)


def _opaque_tag(tag: str) -> str:
    # Weak comparison: W/"x" and "x" are the same entity tag.
    return tag.strip().removeprefix("W/")


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Return `True` if the If-None-Match value (a list, or `*`) names `etag`, weakly compared."""
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque_tag(etag)
    return any(_opaque_tag(candidate) == wanted for candidate in if_none_match.split(","))


def not_modified_since(if_modified_since: str, mtime: float) -> bool:
    """Return `True` if the resource's `mtime` is not after the If-Modified-Since date.

    An unparseable date is ignored (the answer is `False`), as RFC 9110 requires.
    """
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


def is_not_modified(headers, etag: str, mtime: float) -> bool:
    """Given the request headers, return `True` if a 304 answers the request.

    If-None-Match, when present, decides alone; If-Modified-Since is only consulted without it.
    """
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is not None:
        return not_modified_since(if_modified_since, mtime)
    return False


class RangeNotSatisfiable(Exception):
    """No range of a syntactically valid Range header overlaps the representation of `size` bytes."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def parse_range(header: str, size: int, *, max_ranges: int = 100) -> list[tuple[int, int]] | None:
    """Parse a `Range` header into sorted, merged, half-open `(start, end)` byte ranges.

    Returns `None` when the header must be ignored (answer 200 with the whole body): another
    unit, a syntax error, a reversed range, or more than `max_ranges` ranges. Raises
    `RangeNotSatisfiable` when every range starts beyond the end. Ranges that overlap or
    touch are merged, so a flood of ranges costs one pass and yields a bounded response.
    """
    unit, _, ranges_text = header.partition("=")
    if unit.strip().lower() != "bytes" or not ranges_text:
        return None
    parts = ranges_text.split(",")
    if len(parts) > max_ranges:
        return None
    ranges: list[tuple[int, int]] = []
    for part in parts:
        parsed = _parse_range_spec(part.strip(), size)
        if parsed is False:
            return None
        if parsed is not None:
            ranges.append(parsed)
    if not ranges:
        raise RangeNotSatisfiable(size)
    return _merge_ranges(ranges)


def _parse_range_spec(spec: str, size: int) -> tuple[int, int] | None | bool:
    """One `first-last`, `first-` or `-suffix`: a range, `None` if unsatisfiable, `False` if invalid."""
    first, dash, last = spec.partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return False
    if not first.isascii() or not last.isascii():
        return False
    if first == "":
        if last == "":
            return False
        suffix = _position(last)
        return (max(size - suffix, 0), size) if suffix > 0 and size > 0 else None
    start = _position(first)
    if last and _position(last) < start:
        return False
    if start >= size:
        return None
    end = min(_position(last) + 1, size) if last else size
    return (start, end)


# Larger than any file: a position with more significant digits than this means "past the end".
_BEYOND_ANY_FILE = 10**20


def _position(digits: str) -> int:
    """A byte position from ASCII digits of any length.

    int() refuses strings of over 4,300 digits (ValueError, CVE-2020-10735), and a client may send
    a million: every position past 20 significant digits is simply beyond the end of any file.
    """
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 20 else _BEYOND_ANY_FILE


def _merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def if_range_allows(if_range: str | None, etag: str, last_modified: str) -> bool:
    """Return `True` if the Range applies: no If-Range, or it names the current strong ETag or date."""
    if if_range is None:
        return True
    if if_range.startswith("W/"):
        return False
    return if_range == etag or if_range == last_modified
