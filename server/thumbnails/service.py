"""The thumbnail service: what a request means, and where its bytes come from.

    plan(spec, path, accept)  parse the spec, resolve the source, choose the output format,
                              build the ResultKey: everything known before any image work
    cached(plan)              the memory tier, synchronously (the cache-hit path)
    entry(plan)               memory tier -> shared tier -> render, one production per key

No HTTP here: the HTTP layer turns a `StoredResult` into whatever it keeps in the memory tier
(encoded response heads) through the `make_entry` function it passes in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, NamedTuple, TypeVar

from cache import CoalescingCache, ResultStore, StoredResult
from server.formats import FORMATS, format_for_media_type
from server.imaging import EncoderSettings, Rendered, RenderRequest, SourceLimits, SourceTooLarge, render_thumbnail
from server.thumbnails.keys import SOURCE_FAMILY, ResultKey
from server.thumbnails.negotiation import negotiate_format
from server.thumbnails.pool import RenderPool
from server.thumbnails.spec import SpecRules, ThumbSpec, parse_spec
from storage import OriginalStore, Source

E = TypeVar("E")

logger = logging.getLogger("thumbserver")


@dataclass(frozen=True, slots=True)
class ThumbnailOptions:
    """The configuration the service needs, as plain data (built by the composition root)."""

    rules: SpecRules
    auto_formats: tuple[str, ...]
    encoder: EncoderSettings
    limits: SourceLimits
    # A render lock in the shared tier expires after this (a dead holder blocks nobody longer);
    # a process that finds the lock taken waits at most this long for the holder's result.
    lock_ttl_s: float = 15.0


class Plan(NamedTuple):
    """One request, understood: known before any image work, and enough to answer a 304.

    A named tuple: one is built per request, on the cache-hit path too.
    """

    spec: ThumbSpec
    source: Source
    output_format: str | None
    key: ResultKey
    vary: str | None

    @property
    def etag(self) -> str:
        return self.key.etag

    def filename(self, media_type: str) -> str:
        """`photo_320x240.webp`: the source's stem, the box and the extension of the bytes."""
        stem = self.source.name.rpartition(".")[0] or self.source.name
        found = format_for_media_type(media_type)
        return f"{stem}_{self.spec.box_name}.{found.extension if found else 'bin'}"


class ThumbnailService(Generic[E]):
    """Answers "which bytes are this thumbnail", rendering each key at most once per process
    (and, with a shared tier, once for every process that shares it)."""

    def __init__(
        self,
        options: ThumbnailOptions,
        *,
        originals: OriginalStore,
        pool: RenderPool,
        memory: CoalescingCache[E],
        make_entry: Callable[[Plan, StoredResult], E],
        shared: ResultStore | None = None,
    ) -> None:
        self.options = options
        self.originals = originals
        self.pool = pool
        self.memory = memory
        self.shared = shared
        self._make_entry = make_entry
        self._encoder = options.encoder.describe()
        self.renders = 0  # renders started in this process, for tests and /healthz
        # Specs repeat endlessly on real traffic; invalid ones raise and are not memoised.
        self._parse = lru_cache(maxsize=1024)(lambda text: parse_spec(text, options.rules))

    def plan(self, spec_text: str, url_path: str, accept: str | None) -> Plan:
        """Raises `InvalidSpec` (a bad spec wins over a missing file) or `NotFound`."""
        spec = self._parse(spec_text)
        source = self.originals.resolve(url_path)
        negotiated = spec.format is None and bool(self.options.auto_formats)
        output_format = spec.format or negotiate_format(accept, self.options.auto_formats)
        key = ResultKey(source.relative, source.identity, spec.canonical, output_format or SOURCE_FAMILY, self._encoder)
        return Plan(spec, source, output_format, key, vary="Accept" if negotiated else None)

    def cached(self, plan: Plan) -> E | None:
        """The memory tier's entry, or None. Never awaits: the cache-hit path."""
        return self.memory.get(plan.key)

    async def entry(self, plan: Plan) -> E:
        """The entry for `plan` from the fastest tier that has it, rendering on a miss.

        Raises `ImageError` (422), `RenderUnavailable` (503), `NotFound` or `SourceChanged`.
        """
        return await self.memory.get_or_create(plan.key, lambda: self._produce(plan))

    async def _produce(self, plan: Plan) -> E:
        shared = self.shared
        if shared is None:
            return self._make_entry(plan, self._stored(plan, await self._render(plan)))
        digest = plan.key.digest
        stored = await shared.get(digest)
        if stored is None:
            stored = await self._render_once_for_all(shared, plan)
        return self._make_entry(plan, stored)

    async def _render_once_for_all(self, shared: ResultStore, plan: Plan) -> StoredResult:
        """Render `plan` in exactly one of the processes sharing the tier; the others wait for it.

        The render lock expires by itself, so a holder that dies delays the others at most
        `lock_ttl_s`; a waiter that sees no result by then renders itself. A failing tier says
        "locked" to everyone (GuardedStore), so each process renders on its own: slower, not wrong.
        """
        digest = plan.key.digest
        ttl = self.options.lock_ttl_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl
        delay = 0.01
        while not await shared.lock(digest, ttl):
            if loop.time() >= deadline:
                break  # the holder is too slow or gone: render here rather than wait longer
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
            stored = await shared.get(digest)
            if stored is not None:
                return stored
        else:
            try:
                # The holder of a lock that just expired may have finished meanwhile.
                stored = await shared.get(digest)
                if stored is not None:
                    return stored
                stored = self._stored(plan, await self._render(plan))
                await shared.put(digest, stored)  # before unlocking: waiters find it at once
                return stored
            finally:
                await shared.unlock(digest)
        stored = self._stored(plan, await self._render(plan))
        await shared.put(digest, stored)
        return stored

    async def _render(self, plan: Plan) -> Rendered:
        limits = self.options.limits
        if plan.source.size > limits.max_bytes:
            raise SourceTooLarge("The source image is larger than this server accepts")
        spec = plan.spec
        request = RenderRequest(
            width=spec.width,
            height=spec.height,
            fit=spec.fit,
            format=plan.output_format,
            quality=spec.quality,
            encoder=self.options.encoder,
        )
        self.renders += 1
        rendered = await self.pool.run(_read_and_render, self.originals, plan.source, request, limits)
        logger.info("rendered %s %s as %s (%d bytes)", plan.source.relative, spec.canonical, rendered.format,
                    len(rendered.data))
        return rendered

    def _stored(self, plan: Plan, rendered: Rendered) -> StoredResult:
        return StoredResult(
            body=rendered.data,
            media_type=FORMATS[rendered.format].media_type,
            etag=plan.etag,
            source_mtime_ns=plan.source.mtime_ns,
            vary=plan.vary,
        )

    async def close(self) -> None:
        """Close the shared tier (releasing any render lock still held)."""
        if self.shared is not None:
            await self.shared.close()


def _read_and_render(originals: OriginalStore, source: Source, request: RenderRequest, limits: SourceLimits) -> Rendered:
    """Runs in a render worker: read the exact version `source` names (or raise `SourceChanged`:
    other bytes must not be cached under its identity), then render it."""
    return render_thumbnail(originals.read(source, max_bytes=limits.max_bytes), request, limits=limits)
