"""`GET`/`HEAD /{path}`: original files, served as a careful static server (nginx) would."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import BinaryIO

import anyio
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from server.conditional import http_date, if_range_allows, is_not_modified, parse_range
from server.headers import content_disposition
from server.config import Settings
from server.errors import RenderUnavailable
from storage import Source, SourceChanged, identity_of, open_regular, read_source, resolve

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
    """A FileResponse of a file opened before its status line is sent, with byte ranges that
    `respond_original` already parsed and checked.

    Starlette's own range parsing answers a malformed or reversed Range with a plain-text 400;
    RFC 9110 says to ignore such a header, which is what nginx does, so the decision is ours.
    Starlette also opens the path only after sending the status line, so a file deleted in
    between would end as a 200 cut short; here the descriptor `respond_original` opened is sent
    (None for HEAD, which sends no body), and closed when the response is done.
    """

    chunk_size = 256 * 1024

    def __init__(self, file: BinaryIO | None, *args, ranges: list[tuple[int, int]] | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._file = file
        self._ranges = ranges or []

    def _parse_range_header(self, http_range: str, file_size: int) -> list[tuple[int, int]]:
        return self._ranges

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._file is not None:
                self._file.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[_UnchangedFile]:
        assert self._file is not None, "HEAD sends no body"
        assert self.stat_result is not None
        yield _UnchangedFile(self._file, identity_of(self.stat_result))


class _UnchangedFile:
    """The async `seek`/`read` FileResponse streams from, over a file that must not change.

    After every read the descriptor's fstat is compared with the identity the response headers
    were built from. A write while the file is being sent raises `SourceChanged` before the
    chunk goes out: the server then cuts the connection short of its Content-Length, so a client
    sees a failed transfer, never a complete 200 of mixed or missing bytes. (A replace by rename
    changes nothing here: the old inode is still open and is sent whole.)
    """

    def __init__(self, file: BinaryIO, identity: tuple[int, int]) -> None:
        self._file = file
        self._identity = identity

    async def seek(self, offset: int) -> int:
        return self._file.seek(offset)  # lseek: no I/O, no thread hop

    async def read(self, size: int) -> bytes:
        return await anyio.to_thread.run_sync(self._read, size)

    def _read(self, size: int) -> bytes:
        data = self._file.read(size)
        if identity_of(os.fstat(self._file.fileno())) != self._identity:
            raise SourceChanged("the file changed while it was being sent")
        return data


# A plain GET of a file up to this size is read whole in one thread hop and sent as one body;
# larger files, HEAD and ranges are streamed by FileResponse. A whole body sits in memory until
# the client has read it, so this is also what each slow reader can pin: one streaming chunk,
# as when streaming (at 4 MB, 40 clients that stop reading pinned 160 MB; limit_concurrency
# of them, 4 GB).
WHOLE_READ_BYTES = _RangedFileResponse.chunk_size


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
    file = None
    if method != "HEAD":
        # Opened before any header is sent: a file deleted since resolve() is a 404, not a 200
        # cut short; one replaced since is served from a fresh stat (OriginalService retries).
        file, opened = open_regular(source)
        if identity_of(opened) != source.identity:
            file.close()
            raise SourceChanged(source.relative)
    return _RangedFileResponse(
        file,
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
