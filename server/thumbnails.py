"""`GET`/`HEAD {prefix}/{spec}/{path}`: thumbnails made on demand, cached, and revalidated cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b

from starlette.responses import Response

from cache import CoalescingCache
from server.conditional import http_date, is_not_modified
from server.config import Settings
from server.headers import content_disposition
from server.imaging import (
    EXTENSIONS,
    RENDERER_VERSION,
    Rendered,
    RenderRequest,
    SourceLimits,
    SourceTooLarge,
    render_thumbnail,
)
from server.errors import RenderUnavailable
from server.negotiation import negotiate_format
from server.rendering import RenderPool
from server.spec import ThumbSpec, parse_spec
from storage import Source, SourceChanged, read_source, resolve

# The part of the cache key standing for "the source's own family" when no format is chosen:
# the result is still fully determined by the source's identity, so it is safe to share.
SOURCE_FAMILY = "source"


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """What the cache keeps: the encoded bytes with the complete, already-encoded response heads.

    Every header of a thumbnail's 200 and 304 follows from its cache key, so they are built
    once per render and a cache hit only copies them out.
    """

    body: bytes
    etag: str
    head_200: list[tuple[bytes, bytes]]
    head_304: list[tuple[bytes, bytes]]

    def response(self, request_headers: Mapping[str, str], mtime: float) -> EncodedResponse:
        if is_not_modified(request_headers, self.etag, mtime):
            return EncodedResponse(304, self.head_304)
        return EncodedResponse(200, self.head_200, self.body)


class EncodedResponse(Response):
    """A Response whose headers were encoded once, when the thumbnail was rendered.

    Starlette's `__call__` sends `raw_headers` as they are; the list is copied so that nothing
    downstream can change the cached one. The server drops the body of a HEAD response.
    """

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status
        self.raw_headers = list(headers)
        self.body = body
        self.background = None


@dataclass(slots=True)
class _Plan:
    """Everything about one request that is known before any image work."""

    spec: ThumbSpec
    source: Source
    output_format: str | None
    key: tuple
    vary: bool

    def validators(self) -> dict[str, str]:
        """ETag, Last-Modified, Cache-Control (filled in by the caller) and Vary: the 304's headers."""
        headers = {"etag": _etag(self.key), "last-modified": http_date(self.source.stat.st_mtime)}
        if self.vary:
            headers["vary"] = "Accept"
        return headers

    def not_modified(self, request_headers: Mapping[str, str], cache_control: str) -> EncodedResponse | None:
        """The 304 for a request whose thumbnail is not cached, without any image work."""
        validators = self.validators()
        if not is_not_modified(request_headers, validators["etag"], self.source.stat.st_mtime):
            return None
        return EncodedResponse(304, _encode({**validators, "cache-control": cache_control}))


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class ThumbnailService:
    """Answers thumbnail requests from the cache, rendering (once per key) on a miss."""

    def __init__(self, settings: Settings, *, cache: CoalescingCache[Thumbnail], pool: RenderPool) -> None:
        self._root = str(settings.storage.root)
        self._extensions = frozenset(settings.storage.extensions)
        self._auto_formats = settings.thumbnails.auto_formats
        self._cache_control = settings.http.cache_control_thumbnails
        self._qualities = settings.thumbnails.quality.model_dump()
        self._limits = SourceLimits(
            max_pixels=settings.limits.max_source_pixels, max_bytes=settings.limits.max_source_bytes
        )
        self.cache = cache
        self.pool = pool
        self.renders = 0  # renders started, for tests and /healthz
        # Specs repeat endlessly on real traffic; invalid ones raise and are not memoised.
        self._parse = lru_cache(maxsize=1024)(lambda text: parse_spec(text, settings.thumbnails))

    async def respond(self, spec_text: str, url_path: str, request_headers: Mapping[str, str]) -> EncodedResponse:
        """The 200 or 304 for this request; raises the domain errors that `server.errors` maps."""
        try:
            return await self._respond(spec_text, url_path, request_headers)
        except SourceChanged:
            # Replaced while being read: start again from a fresh stat, once.
            try:
                return await self._respond(spec_text, url_path, request_headers)
            except SourceChanged:
                raise RenderUnavailable("The source image is changing; try again shortly", retry_after=1) from None

    def respond_if_ready(
        self, spec_text: str, url_path: str, request_headers: Mapping[str, str]
    ) -> EncodedResponse | None:
        """The 304 or cached 200 without awaiting anything, or `None` when a render is needed.

        The cache-hit path: one stat (in `resolve`) and one dict lookup, no file read, no
        hashing of bodies, no header building. Raises the same domain errors as `respond`.
        """
        return self._ready(self._plan(spec_text, url_path, request_headers), request_headers)

    async def _respond(self, spec_text: str, url_path: str, request_headers: Mapping[str, str]) -> EncodedResponse:
        plan = self._plan(spec_text, url_path, request_headers)
        ready = self._ready(plan, request_headers)
        if ready is not None:
            return ready
        thumbnail = await self.cache.get_or_create(plan.key, lambda: self._render(plan))
        return thumbnail.response(request_headers, plan.source.stat.st_mtime)

    def _ready(self, plan: _Plan, request_headers: Mapping[str, str]) -> EncodedResponse | None:
        thumbnail = self.cache.get(plan.key)
        if thumbnail is not None:
            return thumbnail.response(request_headers, plan.source.stat.st_mtime)
        return plan.not_modified(request_headers, self._cache_control)

    def _plan(self, spec_text: str, url_path: str, request_headers: Mapping[str, str]) -> _Plan:
        spec = self._parse(spec_text)
        source = resolve(self._root, url_path, self._extensions)
        output_format = spec.format or negotiate_format(request_headers.get("accept"), self._auto_formats)
        key = (source.relative, source.identity, spec.canonical, output_format or SOURCE_FAMILY)
        return _Plan(spec, source, output_format, key, vary=spec.format is None and bool(self._auto_formats))

    async def _render(self, plan: _Plan) -> Thumbnail:
        if plan.source.stat.st_size > self._limits.max_bytes:
            raise SourceTooLarge("The source image is larger than this server accepts")
        spec = plan.spec
        request = RenderRequest(
            width=spec.width,
            height=spec.height,
            fit=spec.fit,
            format=plan.output_format,
            quality=spec.quality,
            qualities=self._qualities,
        )
        self.renders += 1
        rendered = await self.pool.run(_read_and_render, plan.source, request, self._limits)
        return self._entry(plan, rendered)

    def _entry(self, plan: _Plan, rendered: Rendered) -> Thumbnail:
        validators = {**plan.validators(), "cache-control": self._cache_control}
        stem = plan.source.name.rpartition(".")[0] or plan.source.name
        filename = f"{stem}_{plan.spec.box_name}.{EXTENSIONS[rendered.format]}"
        full = {
            **validators,
            "content-disposition": content_disposition(filename),
            "x-content-type-options": "nosniff",
            "content-type": rendered.media_type,
            "content-length": str(len(rendered.data)),
        }
        return Thumbnail(
            body=rendered.data, etag=validators["etag"], head_200=_encode(full), head_304=_encode(validators)
        )


def _read_and_render(source: Source, request: RenderRequest, limits: SourceLimits) -> Rendered:
    """Runs in a render thread: read the exact version `source` names (or raise `SourceChanged`:
    other bytes must not be cached under its identity), then render it."""
    return render_thumbnail(read_source(source, max_bytes=limits.max_bytes), request, limits=limits)


def _etag(key: tuple) -> str:
    """Strong ETag from the source's identity, the canonical spec, the format and the renderer."""
    digest = blake2b(f"{RENDERER_VERSION}|{key!r}".encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def thumbnail_size(thumbnail: Thumbnail) -> int:
    """What one cache entry costs: its body plus a fixed allowance for the heads and the key."""
    return len(thumbnail.body) + 1024
