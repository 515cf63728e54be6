"""Answers for `GET/HEAD {info.prefix}/{path}`: an original's facts as JSON.

The facts come from the info service (a small decode in a render process, kept in the memory
and shared tiers); this module adds what only the HTTP layer knows — the original's `etag` and
`last_modified`, exactly as the original's 200 sends them — and builds the entry's heads once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from starlette.responses import Response

from cache import StoredResult
from server.http.conditional import http_date, is_not_modified
from server.http.originals import original_etag
from server.http.responses import EncodedResponse, ThumbnailEntry, encode_head
from server.thumbnails.info import InfoPlan, InfoService, facts_of

#: The order of the keys in the body (DESIGN.md §Info).
FIELDS = ("width", "height", "format", "media_type", "bytes", "frames", "animated", "has_alpha", "orientation",
          "etag", "last_modified", "dominant_color", "blurhash")


def info_entry_maker(cache_control: str) -> Callable[[InfoPlan, StoredResult], ThumbnailEntry]:
    """The function the info service calls to turn stored facts into a memory entry."""

    def make_entry(plan: InfoPlan, stored: StoredResult) -> ThumbnailEntry:
        facts = facts_of(stored)
        source = plan.source
        facts.update(bytes=source.size, etag=original_etag(source), last_modified=http_date(source.mtime))
        body = json.dumps({name: facts[name] for name in FIELDS}, separators=(",", ":")).encode()
        head_304 = _validators(plan, cache_control)
        head_200 = {
            **head_304,
            "x-content-type-options": "nosniff",
            "content-type": "application/json",
            "content-length": str(len(body)),
        }
        entry_stored = StoredResult(body=body, media_type="application/json", etag=plan.etag,
                                    source_mtime_ns=source.mtime_ns)
        return ThumbnailEntry(stored=entry_stored, head_200=encode_head(head_200), head_304=encode_head(head_304))

    return make_entry


def _validators(plan: InfoPlan, cache_control: str) -> dict[str, str]:
    return {"etag": plan.etag, "last-modified": http_date(plan.source.mtime), "cache-control": cache_control}


async def respond_info(service: InfoService[ThumbnailEntry], path: str, headers: Mapping[str, str],
                       cache_control: str) -> Response:
    """The 200 or 304 for the facts of `path`; raises what the service raises (404, 422, 503)."""
    plan = await service.plan(path)
    entry = service.cached(plan)
    if entry is not None:
        return entry.response(headers)
    if is_not_modified(headers, plan.etag, plan.source.mtime):
        return EncodedResponse(304, encode_head(_validators(plan, cache_control)))
    entry = await service.entry(plan)
    return entry.response(headers)
