"""`GET`/`HEAD /{path}`: original files, served as a careful static server (nginx) would."""

from __future__ import annotations

from functools import partial

import anyio
from collections.abc import Mapping
from starlette.responses import FileResponse, Response

from server.conditional import http_date, if_range_allows, is_not_modified, parse_range
from server.headers import content_disposition
from server.config import Settings
from server.errors import RenderUnavailable
from storage import Source, SourceChanged, read_source, resolve

MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
}


def media_type_for(name: str) -> str:
    return MEDIA_TYPES.get(name.rpartition(".")[2].lower(), "application/octet-stream")


def original_etag(source: Source) -> str:
    """A strong ETag from the file's identity (mtime in ns, size), as nginx builds it."""
    size, mtime_ns = source.identity
    return f'"{mtime_ns:x}-{size:x}"'


class _RangedFileResponse(FileResponse):
    """A FileResponse whose byte ranges were already parsed and checked by `respond_original`.

    Starlette's own range parsing answers a malformed or reversed Range with a plain-text 400;
    RFC 9110 says to ignore such a header, which is what nginx does, so the decision is ours.
    """

    chunk_size = 256 * 1024

    def __init__(self, *args, ranges: list[tuple[int, int]] | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ranges = ranges or []

    def _parse_range_header(self, http_range: str, file_size: int) -> list[tuple[int, int]]:
        return self._ranges


# A plain GET of a file up to this size is read whole in one thread hop and sent as one body;
# larger files, HEAD and ranges are streamed by FileResponse.
WHOLE_READ_BYTES = 4 * 1024 * 1024


async def respond_original(source: Source, request_headers: Mapping[str, str], *, cache_control: str, method: str = "GET") -> Response:
    """The 200, 206 or 304 answer for `source`; raises `RangeNotSatisfiable` for a 416.

    A small file is read before the status line is sent, checking it is still the version
    `source` names: a file replaced or truncated meanwhile raises `SourceChanged` or `NotFound`
    instead of ending as a short 200.
    """
    etag = original_etag(source)
    last_modified = http_date(source.stat.st_mtime)
    validators = {"ETag": etag, "Last-Modified": last_modified, "Cache-Control": cache_control}
    if is_not_modified(request_headers, etag, source.stat.st_mtime):
        return Response(status_code=304, headers=validators)

    ranges = None
    range_header = request_headers.get("range")
    if range_header is not None and if_range_allows(request_headers.get("if-range"), etag, last_modified):
        ranges = parse_range(range_header, source.stat.st_size)

    headers = {
        **validators,
        "Content-Disposition": content_disposition(source.name),
        "X-Content-Type-Options": "nosniff",
    }
    if method == "GET" and ranges is None and source.stat.st_size <= WHOLE_READ_BYTES:
        body = await anyio.to_thread.run_sync(partial(read_source, source, max_bytes=WHOLE_READ_BYTES))
        response = Response(body, media_type=media_type_for(source.name), headers=headers)
        response.headers["Accept-Ranges"] = "bytes"
        return response
    return _RangedFileResponse(
        source.path,
        stat_result=source.stat,
        headers=headers,
        media_type=media_type_for(source.name),
        ranges=ranges,
    )


class OriginalService:
    """Answers `GET`/`HEAD /{path}` for files inside the configured root."""

    def __init__(self, settings: Settings) -> None:
        self._root = str(settings.storage.root)
        self._extensions = frozenset(settings.storage.extensions)
        self._cache_control = settings.http.cache_control_originals

    async def respond(self, url_path: str, request_headers: Mapping[str, str], *, method: str) -> Response:
        """The answer for `url_path`; raises `NotFound`, `RangeNotSatisfiable` or `RenderUnavailable`."""
        for _attempt in range(2):
            # stat() of a file whose inode is cached costs microseconds: cheaper than a thread hop.
            source = resolve(self._root, url_path, self._extensions)
            try:
                return await respond_original(source, request_headers, cache_control=self._cache_control, method=method)
            except SourceChanged:
                continue  # replaced while being read: once more from a fresh stat
        raise RenderUnavailable("The file is changing; try again shortly", retry_after=1)
