"""Repeated thumbnail hits answered whole by the HTTP protocol, before any ASGI machinery.

A cache hit that goes through ASGI pays for uvicorn's request cycle (a scope, a task, the send
coroutines), the Observer, the classifier, the path's resolution and the memory tier: about
twice what a raw ASGI app returning fixed bytes costs. Yet a thumbnail URL answered from the
memory tier gets the same answer again for as long as its source is the same file: the entry's
200 or its 304, with the same CORS headers for the same `Origin`. So `HitMemo` remembers, per
request target, `Accept` and `Origin` that a thumbnail was answered for from memory (or with a
304 while memory held nothing), what that answer followed from (the plan and the memory entry)
and its heads with CORS applied, and the protocol answers a repeated request with:

- the request headers read by the one reader (`read_headers`);
- one `lstat`: the path still names the same version of the file (device, inode, size, mtime,
  ctime), so the source's identity, the result key and the ETag are what they were;
- the memory tier's lookup, the very one a hit through ASGI makes (counted the same, and it
  keeps the entry's recency): the entry must still be the remembered one; with none, only a
  304 is answered here, as the usual path answers it (`plan_not_modified`);
- the conditional check of the entry (`ThumbnailEntry.status_for`, the same function);

then writes the status line, the server's default headers (`Date`), the remembered head and the
body, and counts the request in the same metrics. Everything else goes the usual way: another
method, a request body, a pipelined request, a transport that is not writable, HTTP/1.0 or
`Connection: close`, a target never answered from the memory tier, an entry evicted or
replaced, a changed or missing file. The response never differs from the one the usual path
gives, byte for byte (tests/e2e/test_fast_hits.py compares both).

Bounds: at most `MAX_ENTRIES` targets, least recently used dropped first. A remembered entry is
held weakly: the memo never keeps a thumbnail's bytes alive after the memory tier dropped them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping

from cachetools import LRUCache

from server.http.cors import CorsPolicy
from server.http.observe import Metrics
from server.http.request import read_headers
from server.http.responses import EncodedResponse, Head, ThumbnailEntry, plan_not_modified
from server.thumbnails import Plan, ThumbnailService
from storage import OriginalStore

#: Request targets remembered. Each costs its key, plan and two heads: ~2.2 KB measured with
#: tracemalloc over 2,000 of them (CORS on), so ~9 MB per worker at most, beside the memory tier.
MAX_ENTRIES = 4096


class Remembered:
    """What answered a target: the plan, the memory entry (held weakly; None when a 304 was
    answered with no entry in memory) and the final heads."""

    __slots__ = ("plan", "entry", "head_200", "head_304")

    def __init__(self, plan: Plan, entry: ThumbnailEntry | None, head_200: bytes, head_304: bytes) -> None:
        self.plan = plan
        self.entry = weakref.ref(entry) if entry is not None else None
        self.head_200 = head_200
        self.head_304 = head_304

    def held(self) -> ThumbnailEntry | None:
        """The remembered entry while something still holds it (the memory tier), else None."""
        return self.entry() if self.entry is not None else None


def _key(target: bytes, headers: Mapping[str, str]) -> tuple[bytes, str | None, str | None]:
    """What a remembered answer depends on besides the file: the target, `Accept` and `Origin`."""
    return target, headers.get("accept"), headers.get("origin")


class Answer:
    """A response to write as it is: `head` (header lines, no status line, no final blank line)
    and `body`."""

    __slots__ = ("status", "head", "body")

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status = status
        self.head = head
        self.body = body


class HitMemo:
    def __init__(self, thumbnails: ThumbnailService, originals: OriginalStore, *, cors: CorsPolicy | None,
                 metrics: Metrics | None, max_entries: int = MAX_ENTRIES) -> None:
        self._metrics = metrics
        self._thumbnails = thumbnails
        self._originals = originals
        self._cors = cors
        self._remembered: LRUCache[tuple[bytes, str | None, str | None], Remembered] = LRUCache(maxsize=max_entries)

    def __len__(self) -> int:
        return len(self._remembered)

    def remember(self, target: bytes, headers: Mapping[str, str], plan: Plan, entry: ThumbnailEntry | None,
                 head_304: Head) -> None:
        """Note that a request for `target` with `headers` was answered from `entry`, which the
        memory tier holds for `plan`'s key, or (`entry` None) with a 304 of `head_304` while the
        memory tier held nothing for it."""
        if plan.source.stat is None:
            return  # a source without a local file has no one-stat check
        key = _key(target, headers)
        known = self._remembered.get(key)
        if (known is not None and known.plan.key == plan.key and known.plan.source.version == plan.source.version
                and known.held() is entry):
            return  # remembered already (a request the protocol leaves to the usual way)
        head_200 = self._final_head(200, entry.head_200, headers) if entry is not None else b""
        self._remembered[key] = Remembered(
            plan, entry, head_200, self._final_head(304, head_304, headers))

    def answer(self, target: bytes, raw_headers: Iterable[tuple[bytes, bytes]], *,
               head_only: bool = False) -> Answer | None:
        """The complete response to a GET (or with `head_only`, a HEAD) of `target`, or None:
        answer it the usual way."""
        headers = read_headers(raw_headers)
        key = _key(target, headers)
        remembered = self._remembered.get(key)
        if remembered is None:
            return None
        plan = remembered.plan
        if not self._originals.still_names(plan.source):
            del self._remembered[key]
            return None
        found = self._thumbnails.cached(plan)  # the lookup a hit through ASGI makes, counted alike
        if found is None:
            # As the usual path does with nothing in memory: a 304 from the validators alone, or
            # (a render, a shared-tier read) the usual way.
            if plan_not_modified(plan, headers):
                return Answer(304, remembered.head_304, b"")
            return None
        if found is not remembered.held():
            del self._remembered[key]  # another entry now: the usual path remembers it
            return None
        if found.status_for(headers) == 304:
            return Answer(304, remembered.head_304, b"")
        return Answer(200, remembered.head_200, b"" if head_only else found.stored.body)

    def answered(self, status: int, seconds: float) -> None:
        """Count an answer written by the protocol, as the Observer counts every other request."""
        if self._metrics is not None:
            self._metrics.remembered_hit(status, seconds)

    def _final_head(self, status: int, head: Head, headers: Mapping[str, str]) -> bytes:
        response = EncodedResponse(status, head)
        if self._cors is not None:
            response = self._cors.apply(response, headers)
        return b"".join(name.lower() + b": " + value + b"\r\n" for name, value in response.raw_headers)

