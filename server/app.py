"""The composition root: settings in, the ASGI app out. The only module besides `cli` that
reads `Settings`; every other area gets small frozen objects built here."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from hashlib import blake2b

from fastapi import FastAPI

from cache import CoalescingCache, DiskStore, GuardedStore, RedisStore, ResultStore, UnusableStore
from server.config import ConfigError, Settings
from server.http.cors import CorsPolicy
from server.http.gallery import Gallery, GalleryLinks
from server.http.info import info_entry_maker
from server.http.images import CacheControl, ImageHandler
from server.http.hits import HitMemo
from server.http.observe import Metrics, Observer
from server.http.responses import entry_maker, entry_size
from server.http.routes import build_app, reserved_segments
from server.http.uploads import UploadHandler, UploadLimits
from server.http.urls import URLClassifier
from server.imaging import EncoderSettings, SourceLimits
from server.thumbnails import (
    Preset,
    RenderPool,
    ServiceEvents,
    Signer,
    SpecRules,
    ThumbnailOptions,
    ThumbnailService,
)
from server.thumbnails.info import InfoService
from server.thumbnails.intermediates import host_folder
from storage import FileStore, FolderLister, NotFound, SourceChanged
from server.thumbnails.uploads import UploadRenderer
from storage import FileStore, NotFound, SourceChanged


def thumbnail_options(settings: Settings) -> ThumbnailOptions:
    thumbnails = settings.thumbnails
    return ThumbnailOptions(
        rules=SpecRules(
            max_width=thumbnails.max_width,
            max_height=thumbnails.max_height,
            allowed_sizes=thumbnails.allowed_sizes,
            allowed_dpr_tenths=tuple(round(dpr * 10) for dpr in thumbnails.allowed_dprs),
            # "Empty" means the configured defaults only: a URL may name those and no others.
            allowed_qualities=thumbnails.allowed_qualities or tuple(thumbnails.quality.model_dump().values()),
            presets={name: Preset(p.width, p.height, p.fit) for name, p in thumbnails.presets.items()},
        ),
        auto_formats=thumbnails.auto_formats,
        encoder=EncoderSettings(qualities=thumbnails.quality.model_dump()),
        limits=SourceLimits(max_pixels=settings.limits.max_source_pixels, max_bytes=settings.limits.max_source_bytes,
                            max_frames=settings.limits.max_animation_frames),
        # A render lock outlives the longest render (its deadline) by a margin for the read and write.
        lock_ttl_s=settings.limits.render_timeout_s + 5,
    )


#: Redis entries are shared by every node whatever its image root's path: the result key already
#: names the source by its path below the root and its version.
REDIS_NAMESPACE = "results"


def _namespace(settings: Settings) -> str:
    """One namespace per image root: two servers of different roots never mix results."""
    return blake2b(str(settings.storage.root).encode(), digest_size=8).hexdigest()


def shared_store(settings: Settings) -> ResultStore | None:
    """The shared tier `cache.shared` names, unguarded; None for `none`. Raises `UnusableStore`."""
    cache = settings.cache
    if cache.shared == "disk":
        assert cache.disk_path is not None  # load_settings fills in the default
        return DiskStore(cache.disk_path, cache.disk_max_bytes, namespace=_namespace(settings))
    if cache.shared == "redis":
        return RedisStore(cache.redis_url, ttl_s=cache.redis_ttl_s, timeout_s=cache.redis_timeout_s,
                          namespace=REDIS_NAMESPACE)
    return None


def check_shared_tier(settings: Settings) -> None:
    """Start-up's check that the configured shared tier can be used; `ConfigError` naming the key."""
    key = {"disk": "cache.disk_path", "redis": "cache.redis_url"}.get(settings.cache.shared, "cache.shared")
    try:
        store = shared_store(settings)
        if store is None:
            return

        async def check() -> None:
            try:
                await store.check()
            finally:
                await store.close()

        asyncio.run(check())
    except (UnusableStore, OSError, ValueError) as error:
        raise ConfigError(f"{key}: {error}") from None


def _guarded(store: ResultStore | None, settings: Settings, events: ServiceEvents) -> GuardedStore | None:
    if store is None:
        return None
    timeout = settings.cache.redis_timeout_s if settings.cache.shared == "redis" else None
    return GuardedStore(store, logger=logging.getLogger("thumbserver.cache"), timeout_s=timeout,
                        on_lookup=lambda result: events.looked_up("shared", result))


def _root_favicon(settings: Settings) -> bytes | None:
    """The image root's own favicon.ico, when it has one (read once, at start)."""
    try:
        icons = FileStore(settings.storage.root, {"ico"})
        return icons.read(icons.resolve("favicon.ico"), max_bytes=1_000_000)
    except (NotFound, SourceChanged, OSError):
        return None


def signer_for(settings: Settings) -> Signer | None:
    """The URL signer of `security.*`, or None when no keys are set (nothing is signed)."""
    security = settings.security
    if not security.keys:
        return None
    return Signer(security.keys, security.salts, size=security.signature_size)


def create_app(settings: Settings, *, front: bool = True) -> FastAPI:
    """Build the ASGI app for `settings`. All state lives on the app; nothing is global.

    `front=False` serves image URLs through the FastAPI routes only (for the parity tests).
    """
    originals = FileStore(settings.storage.root, settings.storage.extensions)
    pool = RenderPool(
        workers=settings.limits.render_workers,
        queue=settings.limits.render_queue,
        timeout_s=settings.limits.render_timeout_s,
        render_memory_bytes=settings.limits.render_memory_bytes,
        process_memory_bytes=settings.limits.render_process_memory_bytes,
        intermediate_bytes=settings.limits.intermediate_bytes,
        host_intermediates=(str(settings.limits.host_intermediate_path or host_folder(_namespace(settings))),
                            settings.limits.host_intermediate_bytes),
        preload=("server.thumbnails.service", "server.imaging.intermediate", "server.thumbnails.info",
                 "server.imaging.facts"),
    )
    metrics = Metrics() if settings.metrics.enabled else None
    events = metrics or ServiceEvents()
    cache_control = CacheControl(
        originals=settings.http.cache_control_originals, thumbnails=settings.http.cache_control_thumbnails
    )
    thumbnails = ThumbnailService(
        thumbnail_options(settings),
        originals=originals,
        pool=pool,
        memory=CoalescingCache(settings.cache.max_bytes, sizeof=entry_size),
        make_entry=entry_maker(cache_control.thumbnails),
        shared=_guarded(shared_store(settings), settings, events),
        events=events,
    )
    info = InfoService(
        originals=originals,
        pool=pool,
        memory=thumbnails.memory,  # one memory tier: facts and thumbnails share its byte budget
        make_entry=info_entry_maker(cache_control.originals),
        limits=thumbnail_options(settings).limits,
        shared=thumbnails.shared,
        events=events,
    )
    signer = signer_for(settings)
    browse = settings.browse
    classifier = URLClassifier(
        thumbnail_prefix=settings.thumbnails.prefix,
        reserved=(),
        signer=signer,
        sign_originals=settings.security.sign_originals,
        info_prefix=settings.info.prefix,
        browse_prefix=browse.view_prefix if browse.enabled else None,
    )
    gallery = None
    if browse.enabled:
        links = GalleryLinks(thumbnail_prefix=settings.thumbnails.prefix, info_prefix=settings.info.prefix,
                             view_prefix=browse.view_prefix, signer=signer,
                             sign_originals=settings.security.sign_originals)
        gallery = Gallery(lister=FolderLister(settings.storage.root, settings.storage.extensions), info=info,
                          links=links, page_size=browse.page_size)
    uploads = renderer = None
    if settings.uploads.enabled:
        # An upload holds a render slot from its first byte: as many as renders run and wait.
        renderer = UploadRenderer(thumbnails, capacity=settings.limits.render_workers + settings.limits.render_queue)
        uploads = UploadHandler(renderer, UploadLimits(settings.uploads.max_bytes, settings.uploads.read_timeout_s))
    cors = CorsPolicy(settings.http.cors_origins)
    # Repeated hits answered by the HTTP protocol (server/http/hits.py): by ours, on httptools.
    # Not with an access log: its line is written by the request's cycle (uvicorn's text log)
    # or the Observer (json).
    hits = None if settings.server.access_log or settings.server.http != "httptools" else HitMemo(
        thumbnails, originals, cors=cors if cors.enabled else None, metrics=metrics)
    images = ImageHandler(
        classifier=classifier,
        originals=originals,
        thumbnails=thumbnails,
        cache_control=cache_control,
        hits=hits,
        cors=cors,
        info=info,
        gallery=gallery,
        uploads=uploads,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Routes added after create_app (before start) own their first segments too.
        classifier.reserve(reserved_segments(app.routes))
        yield
        await thumbnails.close()
        pool.shutdown()
        if metrics is not None:
            metrics.process_stopped()

    app = build_app(
        images=images,
        thumbnails=thumbnails,
        thumbnail_prefix=settings.thumbnails.prefix,
        info_prefix=settings.info.prefix,
        lifespan=lifespan,
        front=front,
        docs=settings.server.docs,
        metrics=metrics,
        metrics_path=settings.metrics.path,
        robots_txt=settings.http.robots_txt,
        favicon=_root_favicon(settings),
        uploads=settings.uploads.enabled,
        signed=bool(settings.security.keys),
    )
    if metrics is not None or settings.server.access_log == "json":
        # Outermost: nothing answers a request without it being counted (and logged).
        app.add_middleware(Observer, metrics=metrics, kind_of=images.kind_of,
                           access_log=settings.server.access_log == "json")
    _outside_fastapi(app)
    app.state.settings = settings
    app.state.hits = hits  # found there by the HTTP protocol (server/http/protocol.py)
    app.state.thumbnails = thumbnails
    app.state.info = info
    app.state.gallery = gallery
    app.state.uploads = renderer
    return app


def _outside_fastapi(app: FastAPI) -> None:
    """Run the app's own middleware (the Observer, the image front) outside FastAPI's layers.

    FastAPI wraps user middleware in its error page, telemetry and body-limit layers: three
    more calls and send wrappers per request, a fifth of a cache hit, for nothing on image URLs
    (the image handler answers every error itself). Outside them, the Observer also counts the
    500s those layers make for other routes.
    """
    middleware, app.user_middleware = app.user_middleware, []
    build_inner = app.build_middleware_stack

    def build_middleware_stack():
        stack = build_inner()
        for cls, args, kwargs in reversed(middleware):
            stack = cls(stack, *args, **kwargs)
        return stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
