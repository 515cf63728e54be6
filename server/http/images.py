"""The one handler of image URLs: originals and thumbnails, for the front and the routes alike.

`ImageHandler.respond(scope)` classifies the raw path, reads the request headers once,
resolves the path once, and answers — 200/206/304, or an error through the one table. It never
raises: whichever door a request came through, one implementation decides what it gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Message, Receive

from server.http.cors import CorsPolicy
from server.http.errors import MethodNotAllowed, response_for
from server.http.gallery import Gallery
from server.http.hits import HitMemo
from server.http.info import respond_info
from server.http.originals import respond_original
from server.http.request import read_headers
from server.http.responses import ThumbnailEntry, not_modified
from server.http.uploads import UploadHandler
from server.http.urls import FOLDER, INFO, ORIGINAL, UPLOAD, VIEW, ImageURL, URLClassifier, decoded_path, raw_path_of
from server.thumbnails import BadSignature, ThumbnailService
from server.thumbnails.info import InfoService
from storage import NotFound, OriginalStore, SourceChanged

IMAGE_METHODS = ("GET", "HEAD")  # and POST to upload URLs
ALLOW = ", ".join(IMAGE_METHODS)


@dataclass(frozen=True, slots=True)
class CacheControl:
    originals: str
    thumbnails: str


class ImageHandler:
    def __init__(
        self,
        *,
        classifier: URLClassifier,
        originals: OriginalStore,
        thumbnails: ThumbnailService[ThumbnailEntry],
        cache_control: CacheControl,
        cors: CorsPolicy | None = None,
        info: InfoService[ThumbnailEntry] | None = None,
        gallery: Gallery | None = None,
        uploads: UploadHandler | None = None,
        hits: HitMemo | None = None,
    ) -> None:
        self.classifier = classifier
        self._hits = hits  # None: every hit goes through ASGI
        self._info = info
        self._gallery = gallery
        self._uploads = uploads  # None: uploads are off
        self._cors = cors if cors is not None and cors.enabled else None
        self._originals = originals
        self._thumbnails = thumbnails
        self._cache_control = cache_control

    def kind_of(self, scope: Mapping) -> str:
        """The metrics' kind of a request: original, thumbnail, info, browse or other."""
        try:
            url = self.classifier.classify(raw_path_of(scope))
        except (NotFound, BadSignature):
            return "other"
        if url is None:
            return "other"
        return "browse" if url.kind in (FOLDER, VIEW) else url.kind

    def classify(self, scope: Mapping) -> ImageURL | None | Exception:
        """The image URL of `scope`, None when it is not one, or the error it must be answered with."""
        try:
            return self.classifier.classify(raw_path_of(scope))
        except (NotFound, BadSignature) as error:
            return error

    async def respond(self, scope: Mapping, url: ImageURL | Exception, receive: Receive | None = None) -> Response:
        """The answer to an image request (`url` from `classify`); errors become error responses.
        `receive` reads the body of an upload (none: an empty body)."""
        headers = read_headers(scope["headers"])
        response = await self._respond(scope, url, headers, receive or _no_body)
        return response if self._cors is None else self._cors.apply(response, headers)

    async def _respond(self, scope: Mapping, url: ImageURL | Exception, headers: dict[str, str],
                       receive: Receive) -> Response:
        try:
            if isinstance(url, Exception):
                raise url
            method = scope["method"]
            if url.kind == UPLOAD:
                return await self._upload(scope, receive, url.spec or "", headers, method)
            if method not in IMAGE_METHODS:
                if method == "OPTIONS" and self._cors is not None:
                    return self._cors.preflight(headers, ALLOW)
                raise MethodNotAllowed(ALLOW)
            if url.kind == ORIGINAL:
                return await self._original(url.path, headers, method)
            if url.kind == INFO:
                return await self._facts(url.path, headers)
            if url.kind in (FOLDER, VIEW):
                return await self._page(scope, url, headers)
            return await self._thumbnail(url.spec or "", url.path, headers, scope)
        except Exception as error:  # noqa: BLE001 - every error is answered through the one table
            if (self._gallery is not None and isinstance(error, (NotFound, BadSignature))
                    and (isinstance(url, Exception) or url.kind == ORIGINAL)):
                # /{folder} without its slash: the folder's page, when it is a real folder.
                redirect = await self._folder_redirect(scope)
                if redirect is not None:
                    return redirect
            return response_for(error, context=f"for {scope.get('method')} {scope.get('path')!r}")

    async def _facts(self, path: str, headers: Mapping[str, str]) -> Response:
        if self._info is None:
            raise NotFound("info is not served")
        for _attempt in range(2):
            try:
                return await respond_info(self._info, path, headers, self._cache_control.originals)
            except SourceChanged:
                continue  # replaced while being read: once more from a fresh stat
        raise SourceChanged(path)

    async def _page(self, scope: Mapping, url: ImageURL, headers: Mapping[str, str]) -> Response:
        assert self._gallery is not None  # the classifier names pages only when browsing is on
        if url.kind == FOLDER:
            response = await self._gallery.folder_page(url.path, headers, scope.get("query_string", b""))
        else:
            response = await self._gallery.image_page(url.path, headers, headers.get("host"),
                                                      scope.get("scheme", "http"))
        if scope["method"] == "HEAD":
            response.body = b""  # the same headers, Content-Length included, and no body
        return response

    async def _folder_redirect(self, scope: Mapping) -> Response | None:
        if scope.get("method") not in IMAGE_METHODS:
            return None
        raw = raw_path_of(scope).partition(b"?")[0]
        path = decoded_path(raw)  # None for an encoded slash: it never names a folder (nor anything else)
        if path is None:
            return None
        assert self._gallery is not None
        return await self._gallery.redirect(path, raw, scope.get("query_string", b""))

    async def _upload(self, scope: Mapping, receive: Receive, spec: str, headers: Mapping[str, str],
                      method: str) -> Response:
        if self._uploads is None:
            # Uploads off: no resource here (404), and POST is refused as on any thumbnail URL.
            raise MethodNotAllowed(ALLOW) if method == "POST" else NotFound("uploads are off")
        if method == "POST":
            return await self._uploads.respond(scope, receive, spec, headers)
        if method == "OPTIONS" and self._cors is not None:
            return self._cors.preflight(headers, "POST")
        raise MethodNotAllowed("POST")

    async def _original(self, path: str, headers: Mapping[str, str], method: str) -> Response:
        for _attempt in range(2):
            # stat() of a file whose inode is cached costs microseconds: cheaper than a thread hop.
            try:
                source = self._originals.resolve(path)
                if source.fingerprint is None:  # the first request for this version in this process
                    source = await self._originals.identify(source)
                return await respond_original(
                    self._originals, source, headers, cache_control=self._cache_control.originals, method=method
                )
            except SourceChanged:
                continue  # replaced while being read: once more from a fresh stat
        raise SourceChanged(path)

    async def _thumbnail(self, spec: str, path: str, headers: Mapping[str, str], scope: Mapping) -> Response:
        service = self._thumbnails
        facts = scope.get("thumbserver")
        for _attempt in range(2):
            try:
                plan = await service.plan(spec, path, headers.get("accept"))
            except SourceChanged:
                continue  # replaced while being hashed: once more from a fresh stat
            entry = service.cached(plan)
            if entry is not None:
                if self._hits is not None:
                    self._hits.remember(request_target(scope), headers, plan, entry, entry.head_304)
                response = entry.response(headers)
                if facts is not None:
                    facts["cache"] = "304" if response.status_code == 304 else "memory"
                return response
            response = not_modified(plan, headers, self._cache_control.thumbnails)
            if response is not None:
                if self._hits is not None:
                    self._hits.remember(request_target(scope), headers, plan, None, response.raw_headers)
                if facts is not None:
                    facts["cache"] = "304"
                return response
            try:
                entry = await service.entry(plan)
            except SourceChanged:
                continue  # replaced while being read: once more from a fresh stat
            response = entry.response(headers)
            if facts is not None:
                outcome, render_ms = service.outcomes.get(plan.key, ("memory", None))
                facts["cache"], facts["render_ms"] = outcome, render_ms
            return response
        raise SourceChanged(path)


def request_target(scope: Mapping) -> bytes:
    """The request target as the client sent it in origin form: raw path and query."""
    query = scope.get("query_string")
    raw = raw_path_of(scope)
    return raw + b"?" + query if query else raw


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
