"""`GET`/`HEAD {prefix}/{spec}/{path}`: thumbnails made on demand, cached, and revalidated cheaply."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b

from starlette.datastructures import Headers
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
    """What the cache keeps: the encoded bytes and what the response needs to describe them."""

    body: bytes
    media_type: str
    extension: str


@dataclass(slots=True)
class _Plan:
    """Everything about one request that is known before any image work."""

    spec: ThumbSpec
    source: Source
    output_format: str | None
    key: tuple
    headers: dict[str, str]
    not_modified: bool

    def response(self, thumbnail: Thumbnail) -> Response:
        stem = self.source.name.rpartition(".")[0] or self.source.name
        headers = {
            **self.headers,
            "Content-Disposition": content_disposition(f"{stem}_{self.spec.box_name}.{thumbnail.extension}"),
            "X-Content-Type-Options": "nosniff",
        }
        return Response(thumbnail.body, media_type=thumbnail.media_type, headers=headers)


class ThumbnailService:
    """Answers thumbnail requests from the cache, rendering (once per key) on a miss."""

    def __init__(self, settings: Settings, *, cache: CoalescingCache[Thumbnail], pool: RenderPool) -> None:
        self._settings = settings
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

    async def respond(self, spec_text: str, url_path: str, request_headers: Headers) -> Response:
        """The 200 or 304 for this request; raises the domain errors that `server.errors` maps."""
        try:
            return await self._respond(spec_text, url_path, request_headers)
        except SourceChanged:
            # Replaced while being read: start again from a fresh stat, once.
            try:
                return await self._respond(spec_text, url_path, request_headers)
            except SourceChanged:
                raise RenderUnavailable("The source image is changing; try again shortly", retry_after=1) from None

    def respond_if_ready(self, spec_text: str, url_path: str, request_headers: Headers) -> Response | None:
        """The 304 or cached 200 without awaiting anything, or `None` when a render is needed.

        The cache-hit path: one stat (in `resolve`) and one dict lookup, no file read and no
        hashing of bodies. Raises the same domain errors as `respond`.
        """
        plan = self._plan(spec_text, url_path, request_headers)
        if plan.not_modified:
            return Response(status_code=304, headers=plan.headers)
        thumbnail = self.cache.get(plan.key)
        return None if thumbnail is None else plan.response(thumbnail)

    async def _respond(self, spec_text: str, url_path: str, request_headers: Headers) -> Response:
        plan = self._plan(spec_text, url_path, request_headers)
        if plan.not_modified:
            return Response(status_code=304, headers=plan.headers)
        thumbnail = await self.cache.get_or_create(plan.key, lambda: self._render(plan))
        return plan.response(thumbnail)

    def _plan(self, spec_text: str, url_path: str, request_headers: Headers) -> _Plan:
        spec = self._parse(spec_text)
        source = resolve(self._root, url_path, self._extensions)
        output_format = spec.format or negotiate_format(request_headers.get("accept"), self._auto_formats)
        key = (source.relative, source.identity, spec.canonical, output_format or SOURCE_FAMILY)
        etag = _etag(key)
        headers = {"ETag": etag, "Last-Modified": http_date(source.stat.st_mtime), "Cache-Control": self._cache_control}
        if spec.format is None and self._auto_formats:
            headers["Vary"] = "Accept"
        not_modified = is_not_modified(request_headers, etag, source.stat.st_mtime)
        return _Plan(spec, source, output_format, key, headers, not_modified)

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
        return Thumbnail(body=rendered.data, media_type=rendered.media_type, extension=EXTENSIONS[rendered.format])


def _read_and_render(source: Source, request: RenderRequest, limits: SourceLimits) -> Rendered:
    """Runs in a render thread: read the exact version `source` names (or raise `SourceChanged`:
    other bytes must not be cached under its identity), then render it."""
    return render_thumbnail(read_source(source, max_bytes=limits.max_bytes), request, limits=limits)


def _etag(key: tuple) -> str:
    """Strong ETag from the source's identity, the canonical spec, the format and the renderer."""
    digest = blake2b(f"{RENDERER_VERSION}|{key!r}".encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def thumbnail_size(thumbnail: Thumbnail) -> int:
    """What one cache entry costs: its body (the rest is a few hundred bytes of overhead)."""
    return len(thumbnail.body)
