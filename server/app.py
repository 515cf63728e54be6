"""The composition root: settings in, the ASGI app out. The only module besides `cli` that
reads `Settings`; every other area gets small frozen objects built here."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from cache import CoalescingCache
from server.config import Settings
from server.http.images import CacheControl, ImageHandler
from server.http.responses import entry_maker, entry_size
from server.http.routes import build_app, reserved_segments
from server.http.urls import URLClassifier
from server.imaging import EncoderSettings, SourceLimits
from server.thumbnails import Preset, RenderPool, SpecRules, ThumbnailOptions, ThumbnailService
from storage import FileStore


def thumbnail_options(settings: Settings) -> ThumbnailOptions:
    thumbnails = settings.thumbnails
    return ThumbnailOptions(
        rules=SpecRules(
            max_width=thumbnails.max_width,
            max_height=thumbnails.max_height,
            allowed_sizes=thumbnails.allowed_sizes,
            presets={name: Preset(p.width, p.height, p.fit) for name, p in thumbnails.presets.items()},
        ),
        auto_formats=thumbnails.auto_formats,
        encoder=EncoderSettings(qualities=thumbnails.quality.model_dump()),
        limits=SourceLimits(max_pixels=settings.limits.max_source_pixels, max_bytes=settings.limits.max_source_bytes),
    )


def create_app(settings: Settings, *, front: bool = True) -> FastAPI:
    """Build the ASGI app for `settings`. All state lives on the app; nothing is global.

    `front=False` serves image URLs through the FastAPI routes only (for the parity tests).
    """
    originals = FileStore(settings.storage.root, settings.storage.extensions)
    pool = RenderPool(
        workers=settings.limits.render_workers,
        queue=settings.limits.render_queue,
        timeout_s=settings.limits.render_timeout_s,
    )
    cache_control = CacheControl(
        originals=settings.http.cache_control_originals, thumbnails=settings.http.cache_control_thumbnails
    )
    thumbnails = ThumbnailService(
        thumbnail_options(settings),
        originals=originals,
        pool=pool,
        memory=CoalescingCache(settings.cache.max_bytes, sizeof=entry_size),
        make_entry=entry_maker(cache_control.thumbnails),
    )
    classifier = URLClassifier(thumbnail_prefix=settings.thumbnails.prefix, reserved=())
    images = ImageHandler(classifier=classifier, originals=originals, thumbnails=thumbnails, cache_control=cache_control)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Routes added after create_app (before start) own their first segments too.
        classifier.reserve(reserved_segments(app.routes))
        yield
        await thumbnails.close()
        pool.shutdown()

    app = build_app(
        images=images, thumbnails=thumbnails, thumbnail_prefix=settings.thumbnails.prefix, lifespan=lifespan, front=front
    )
    app.state.settings = settings
    app.state.thumbnails = thumbnails
    return app
