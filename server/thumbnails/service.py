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
import dataclasses
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, NamedTuple, TypeVar

from cache import CoalescingCache, ResultStore, StoredResult
from server.formats import FORMATS, format_for_media_type
from server.imaging import EncoderSettings, Rendered, RenderRequest, SourceLimits, SourceTooLarge
from server.thumbnails.keys import SOURCE_FAMILY, ResultKey
from server.thumbnails.negotiation import negotiate_format
from server.thumbnails.pool import RenderPool, RenderUnavailable
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


class ServiceEvents:
    """What the service reports as it works (metrics count them); every method does nothing here.

    `looked_up(tier, result)`: tier "memory" or "shared", result "hit", "miss" or "error".
    `rendered(format, seconds)`, `rejected(reason)`, `in_flight(delta)` for renders;
    `intermediate(result)` per render: "decoded" (the source was read and decoded) or "reused"
    (cut from an intermediate its render process kept).
    """

    def looked_up(self, tier: str, result: str) -> None: ...

    def rendered(self, output_format: str, seconds: float) -> None: ...

    def rejected(self, reason: str) -> None: ...

    def in_flight(self, delta: int) -> None: ...

    def intermediate(self, result: str) -> None: ...


#: Where an entry came from, by key, for the requests that asked (access logs): "shared" or
#: "render" with the render's milliseconds. Bounded: cleared when it reaches this many keys.
MAX_OUTCOMES = 1024


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
        events: ServiceEvents | None = None,
    ) -> None:
        self.events = events or ServiceEvents()
        self.outcomes: dict[ResultKey, tuple[str, float | None]] = {}
        self.options = options
        self.originals = originals
        self.pool = pool
        self.memory = memory
        self.shared = shared
        self._make_entry = make_entry
        # The animation limits decide whether a thumbnail animates: they name its bytes too.
        limits = options.limits
        self._encoder = f"{options.encoder.describe()};frames<={limits.max_frames},pixels<={limits.max_pixels}"
        self.renders = 0  # renders started in this process, for tests
        # Specs repeat endlessly on real traffic; invalid ones raise and are not memoised.
        self._parse = lru_cache(maxsize=1024)(lambda text: parse_spec(text, options.rules))

    async def plan(self, spec_text: str, url_path: str, accept: str | None) -> Plan:
        """Raises `InvalidSpec` (a bad spec wins over a missing file), `NotFound` or
        `SourceChanged`. Awaits only the first time a process sees a version of the source
        (its fingerprint, hashed off the event loop); then it is a stat and a few lookups."""
        spec = self._parse(spec_text)
        source = self.originals.resolve(url_path)
        if source.fingerprint is None:  # the first request for this version in this process
            source = await self.originals.identify(source)
        negotiated = spec.format is None and bool(self.options.auto_formats)
        output_format = spec.format or negotiate_format(accept, self.options.auto_formats)
        key = ResultKey(source.relative, source.identity, spec.canonical, output_format or SOURCE_FAMILY, self._encoder)
        return Plan(spec, source, output_format, key, vary="Accept" if negotiated else None)

    def cached(self, plan: Plan) -> E | None:
        """The memory tier's entry, or None. Never awaits: the cache-hit path."""
        found = self.memory.get(plan.key)
        self.events.looked_up("memory", "miss" if found is None else "hit")
        return found

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
        else:
            self._outcome(plan, "shared", None)
        return self._make_entry(plan, stored)

    def _outcome(self, plan: Plan, outcome: str, render_ms: float | None) -> None:
        if len(self.outcomes) >= MAX_OUTCOMES:
            self.outcomes.clear()
        self.outcomes[plan.key] = (outcome, render_ms)

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
        request = self.render_request(plan.spec, plan.output_format)
        self.renders += 1
        # One source's renders go to the render process that keeps its intermediates.
        rendered, seconds = await self.run_render(_read_and_render, self.originals, plan.source, request, limits,
                                                  affinity=source_key(plan.source))
        self._outcome(plan, "render", round(seconds * 1000, 1))
        logger.info("rendered %s %s as %s (%d bytes)", plan.source.relative, plan.spec.canonical, rendered.format,
                    len(rendered.data))
        return rendered

    def parse(self, spec_text: str) -> ThumbSpec:
        """The spec `spec_text` names, under the configured rules; raises `InvalidSpec`."""
        return self._parse(spec_text)

    def render_request(self, spec: ThumbSpec, output_format: str | None) -> RenderRequest:
        """What the pipeline is asked for `spec` in `output_format` (None: the source's family)."""
        return RenderRequest(width=spec.width, height=spec.height, fit=spec.fit, format=output_format,
                             quality=spec.quality, encoder=self.options.encoder, effects=spec.effects)

    async def run_render(self, function: Callable[..., Rendered], *args: object,
                         affinity: Hashable = None) -> tuple[Rendered, float]:
        """`function(*args)` in a render process, counted as a render (in flight, rejections,
        duration): the result and the seconds it took. Raises what `RenderPool.run` raises.
        `affinity`: renders with one value go to one render process when it is free."""
        started = time.perf_counter()
        self.events.in_flight(1)
        try:
            rendered = await self.pool.run(function, *args, affinity=affinity)
        except RenderUnavailable as error:
            self.events.rejected(getattr(error, "reason", "unavailable"))
            raise
        finally:
            self.events.in_flight(-1)
        seconds = time.perf_counter() - started
        self.events.intermediate("reused" if rendered.reused else "decoded")
        self.events.rendered(rendered.format, seconds)
        return rendered, seconds

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


def source_key(source: Source) -> tuple[str, int, int, str | None]:
    """What names one version of a source in the intermediate tier (and routes its renders)."""
    return (source.relative, *source.identity)


def _read_and_render(originals: OriginalStore, source: Source, request: RenderRequest, limits: SourceLimits) -> Rendered:
    """Runs in a render process: cut the thumbnail from the source's intermediate when this
    process keeps it (no read, no decode); else read the exact version `source` names (or raise
    `SourceChanged`: other bytes must not be cached under its identity) and `render_in_budget`,
    keeping the intermediate. The bytes are the same either way. A source that may animate (a GIF,
    an animated WebP) is rendered from its bytes each time: its frames are not an intermediate.
    """
    from server.imaging.intermediate import decode_class
    from server.imaging.pipeline import render_from
    from server.thumbnails.pool import announce_peak, worker_intermediates

    kept = worker_intermediates()
    key = source_key(source)
    facts = kept.facts(key) if kept is not None else None
    if kept is not None and facts is not None and not facts.may_animate:
        found_class = decode_class(facts, request.box)
        found = kept.get(key, found_class)
        if found is not None:
            announce_peak(found.nbytes * 2)  # the resized copy and its flattened one, at most
            rendered = render_from(found, request, share=kept.resize_sharer(key, facts, found_class))
            kept.put(key, facts, found_class, found)  # counted again with the resize it kept
            return dataclasses.replace(rendered, reused=True)
    data = originals.read(source, max_bytes=limits.max_bytes)
    return render_in_budget(data, request, limits, keep_as=key if kept is not None else None)


def render_in_budget(data: bytes, request: RenderRequest, limits: SourceLimits, *,
                     keep_as: tuple[str, int, int, str | None] | None = None) -> Rendered:
    """Runs in a render process: announce the render's peak memory and wait until it fits the
    pool's budget, then render `data` (an original's bytes, or an upload's) through its
    intermediate, kept in the process's intermediate tier under `keep_as` when given.

    The peak is known from the header alone, before any pixel is decoded: the intermediate's size
    (known from its class), at 4 bytes a pixel (Pillow's widest), times 3 for the pipeline's
    overlap (the decoded image, its oriented copy and its converted copy are alive at once), plus
    an animation's finished frames (animation_peak: all of them wait for the encoder), plus the
    source's bytes. A bad header raises here, as the render would.
    """
    # Imported here: only render processes run this, and they have it preloaded.
    from server.imaging import animated_frames, animation_peak, plan_geometry
    from server.imaging.decode import decoding, open_source
    from server.imaging.intermediate import Intermediate, class_size, decode_class, decode_intermediate, read_facts
    from server.imaging.pipeline import render_animated, render_from
    from server.thumbnails.intermediates import expected_decode_s, host_key, worth_sharing
    from server.thumbnails.pool import announce_peak, worker_intermediates

    header = open_source(data, limits)
    with decoding():
        facts = read_facts(header)
    if facts.may_animate:
        frames = animated_frames(header, request.format, request.effects, limits, data)
        if frames > 1:
            width, height = facts.stored_size
            geometry = plan_geometry(*facts.displayed_size, request.box)
            announce_peak(width * height * 4 * 3 + animation_peak(geometry, frames) + len(data))
            return render_animated(header, data, request, frames)
    eighths = decode_class(facts, request.box)
    width, height = class_size(facts, eighths)
    announce_peak(width * height * 4 * 3 + len(data))
    kept = worker_intermediates() if keep_as is not None else None  # None: keep nothing

    def decode() -> Intermediate:
        with decoding():
            return decode_intermediate(header, data, facts, eighths)

    if kept is None:
        return render_from(decode(), request)
    if kept.host is None:
        intermediate, reused = decode(), False
    else:
        # While another render process (of this server process or another) decodes this class,
        # wait for its entry rather than decode it again.
        keep = worth_sharing(facts, eighths, seen=kept.facts(keep_as) is not None)
        intermediate, reused = kept.host.get_or_decode(host_key(keep_as, facts), eighths, decode,
                                                       wait_s=expected_decode_s(facts) * 4, keep=keep)
    rendered = render_from(intermediate, request, share=kept.resize_sharer(keep_as, facts, eighths))
    kept.put(keep_as, facts, eighths, intermediate)  # after the render: with the resize it keeps
    return dataclasses.replace(rendered, reused=reused)
