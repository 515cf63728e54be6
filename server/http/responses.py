"""Response heads and bodies built once: thumbnail entries with encoded heads, JSON errors,
and the header values originals and thumbnails share."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from starlette.responses import JSONResponse, Response

from cache import StoredResult
from server.http.conditional import http_date, is_not_modified
from server.thumbnails import Plan

_UNSAFE_IN_QUOTED = re.compile(r'[^\x20-\x7e]|["\\%;]')

Head = list[tuple[bytes, bytes]]


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


def error_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """The one shape of every error: JSON `{"detail": ...}`, never cached, never sniffed."""
    all_headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}
    return JSONResponse({"detail": detail}, status_code=status, headers=all_headers)


class EncodedResponse(Response):
    """A Response whose headers were encoded once, when its thumbnail entered the memory tier.

    Starlette's `__call__` sends `raw_headers` as they are; the list is copied so that nothing
    downstream can change the cached one. The server drops the body of a HEAD response.
    """

    def __init__(self, status: int, headers: Head, body: bytes = b"") -> None:
        self.status_code = status
        self.raw_headers = list(headers)
        self.body = body
        self.background = None


@dataclass(frozen=True, slots=True, weakref_slot=True)
class ThumbnailEntry:
    """What the memory tier keeps: the stored result and its complete, encoded 200 and 304 heads.

    Every header of a thumbnail's 200 and 304 follows from its key, so they are built once per
    entry and a cache hit only copies them out.
    """

    stored: StoredResult
    head_200: Head
    head_304: Head

    def status_for(self, request_headers: Mapping[str, str]) -> int:
        """304 when the request's validators match this entry, else 200."""
        if is_not_modified(request_headers, self.stored.etag, self.stored.source_mtime_ns / 1e9):
            return 304
        return 200

    def response(self, request_headers: Mapping[str, str]) -> EncodedResponse:
        if self.status_for(request_headers) == 304:
            return EncodedResponse(304, self.head_304)
        return EncodedResponse(200, self.head_200, self.stored.body)


def validators(plan: Plan, cache_control: str) -> dict[str, str]:
    """ETag, Last-Modified, Cache-Control and Vary: the headers of a thumbnail's 304."""
    headers = {"etag": plan.etag, "last-modified": http_date(plan.source.mtime), "cache-control": cache_control}
    if plan.vary:
        headers["vary"] = plan.vary
    return headers


def plan_not_modified(plan: Plan, request_headers: Mapping[str, str]) -> bool:
    """Whether the request's validators match the thumbnail `plan` names (no entry needed)."""
    return is_not_modified(request_headers, plan.etag, plan.source.mtime)


def not_modified(plan: Plan, request_headers: Mapping[str, str], cache_control: str) -> EncodedResponse | None:
    """The 304 for a thumbnail that is in no tier here, without any image work; else None."""
    if not plan_not_modified(plan, request_headers):
        return None
    return EncodedResponse(304, encode_head(validators(plan, cache_control)))


def entry_maker(cache_control: str) -> Callable[[Plan, StoredResult], ThumbnailEntry]:
    """The function the thumbnail service calls to turn a stored result into a memory entry."""

    def make_entry(plan: Plan, stored: StoredResult) -> ThumbnailEntry:
        head_304 = validators(plan, cache_control)
        head_200 = {
            **head_304,
            "content-disposition": content_disposition(plan.filename(stored.media_type)),
            "x-content-type-options": "nosniff",
            "content-type": stored.media_type,
            "content-length": str(len(stored.body)),
        }
        return ThumbnailEntry(stored=stored, head_200=encode_head(head_200), head_304=encode_head(head_304))

    return make_entry


# What an entry costs beyond its body and heads: the key, the objects, lists and tuples around
# them and the LRU's links. tracemalloc over 10,000 entries of 100-byte bodies measured ~2.5 KB
# each (tests/unit/test_memory_accounting.py keeps this figure honest).
ENTRY_OVERHEAD = 2600


def entry_size(entry: ThumbnailEntry) -> int:
    """What one memory entry costs: its body, its encoded heads, and the measured overhead."""
    heads = sum(len(name) + len(value) for name, value in entry.head_200)
    return len(entry.stored.body) + 2 * heads + ENTRY_OVERHEAD


def encode_head(headers: Mapping[str, str]) -> Head:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
