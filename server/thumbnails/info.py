"""The info service: the facts of an original (`/info`), kept like a thumbnail.

    plan(path)      resolve the source and build its `InfoKey`: enough to answer a 304
    cached(plan)    the memory tier, synchronously
    entry(plan)     memory tier -> shared tier -> a small decode in a render process

Facts are computed by `server.imaging.facts` inside the render processes (no image parsing on
the event loop), under the pool's memory budget, and stored as JSON in the same memory tier and
shared tier as thumbnails, under keys of their own. Unlike thumbnails, processes sharing a tier
don't take a render lock for them: a fact-finding decode is a few milliseconds, so two processes
computing the same facts at once cost less than the lock's round trips.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from functools import cached_property
from hashlib import blake2b
from typing import Generic, NamedTuple, TypeVar

from cache import CoalescingCache, ResultStore, StoredResult
from server.imaging import SourceLimits, SourceTooLarge
from server.imaging.facts import FACTS_VERSION, Facts
from server.thumbnails.pool import RenderPool, RenderUnavailable
from server.thumbnails.service import ServiceEvents
from storage import OriginalStore, Source

E = TypeVar("E")

INFO_MEDIA_TYPE = "application/json"


class _InfoFields(NamedTuple):
    source: str
    identity: tuple[int, ...]
    version: str = FACTS_VERSION


class InfoKey(_InfoFields):
    """The name of one version of an original's facts. Three fields: never equal to a
    `ResultKey` (six) in the memory tier both share."""

    def canonical(self) -> bytes:
        return json.dumps(["info", self.version, self.source, list(self.identity)], separators=(",", ":"),
                          ensure_ascii=False).encode()

    @cached_property
    def digest(self) -> str:
        return blake2b(self.canonical(), digest_size=16).hexdigest()

    @cached_property
    def etag(self) -> str:
        """The info's own strong ETag (the original's is in the body)."""
        return f'"i{self.digest}"'


class InfoPlan(NamedTuple):
    source: Source
    key: InfoKey

    @property
    def etag(self) -> str:
        return self.key.etag


class InfoService(Generic[E]):
    """Answers "what are the facts of this original", decoding each version at most once per
    process (and, with a shared tier, usually once for all)."""

    def __init__(
        self,
        *,
        originals: OriginalStore,
        pool: RenderPool,
        memory: CoalescingCache[E],
        make_entry: Callable[[InfoPlan, StoredResult], E],
        limits: SourceLimits,
        shared: ResultStore | None = None,
        events: ServiceEvents | None = None,
    ) -> None:
        self.originals = originals
        self.pool = pool
        self.memory = memory
        self.shared = shared
        self.limits = limits
        self.events = events or ServiceEvents()
        self._make_entry = make_entry
        self.decodes = 0  # fact-finding decodes started in this process, for tests

    async def plan(self, url_path: str) -> InfoPlan:
        """Raises `NotFound` or `SourceChanged`."""
        source = self.originals.resolve(url_path)
        if source.fingerprint is None:  # the first request for this version in this process
            source = await self.originals.identify(source)
        return InfoPlan(source, InfoKey(source.relative, source.identity))

    def cached(self, plan: InfoPlan) -> E | None:
        found = self.memory.get(plan.key)
        self.events.looked_up("memory", "miss" if found is None else "hit")
        return found

    async def entry(self, plan: InfoPlan) -> E:
        """Raises `ImageError` (422), `RenderUnavailable` (503), `NotFound` or `SourceChanged`."""
        return await self.memory.get_or_create(plan.key, lambda: self._produce(plan))

    async def _produce(self, plan: InfoPlan) -> E:
        shared = self.shared
        stored = await shared.get(plan.key.digest) if shared is not None else None
        if stored is None:
            stored = self._stored(plan, await self._facts(plan))
            if shared is not None:
                await shared.put(plan.key.digest, stored)
        return self._make_entry(plan, stored)

    async def _facts(self, plan: InfoPlan) -> Facts:
        if plan.source.size > self.limits.max_bytes:
            raise SourceTooLarge("The source image is larger than this server accepts")
        self.decodes += 1
        self.events.in_flight(1)
        try:
            return await self.pool.run(_read_and_describe, self.originals, plan.source, self.limits)
        except RenderUnavailable as error:
            self.events.rejected(getattr(error, "reason", "unavailable"))
            raise
        finally:
            self.events.in_flight(-1)

    @staticmethod
    def _stored(plan: InfoPlan, facts: Facts) -> StoredResult:
        body = json.dumps(asdict(facts), separators=(",", ":")).encode()
        return StoredResult(body=body, media_type=INFO_MEDIA_TYPE, etag=plan.etag,
                            source_mtime_ns=plan.source.mtime_ns)


def facts_of(stored: StoredResult) -> dict:
    """The facts a stored info result holds, as a dict."""
    return json.loads(stored.body)


def _read_and_describe(originals: OriginalStore, source: Source, limits: SourceLimits) -> Facts:
    """Runs in a render process: read the exact version `source` names, announce the decode's
    peak memory (known from the header) and wait until it fits the pool's budget, then find
    the facts."""
    from server.imaging.facts import facts_peak, open_for_facts, read_facts
    from server.thumbnails.pool import announce_peak

    data = originals.read(source, max_bytes=limits.max_bytes)
    header, stored_size = open_for_facts(data, limits)
    announce_peak(facts_peak(header, len(data)))
    return read_facts(header, stored_size)
