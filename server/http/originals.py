"""Answers for originals (`GET`/`HEAD /{path}`), as a careful static server (nginx) would.

200, 206 (one range, or multipart for several), 304, 416, from any `OriginalStore`. Built on
public interfaces only: the body is sent by this module's own ASGI response from the file the
store opened before the status line, so a file deleted in between is a 404, never a 200 cut
short. After every chunk the store confirms the file is still the version the headers describe;
if not, the send stops short of its Content-Length (the client sees a failed transfer, never a
complete 200 of mixed bytes). A replace by rename changes nothing: the old file is sent whole.

Where the server offers the ASGI "Zero Copy Send" extension (the project's httptools protocol
does), a 200 or a single-range 206 goes out with `sendfile` from the descriptor the store
opened and checked: all but the last `TAIL_BYTES` straight from the page cache, then, only if
the store confirms the file is still that version, the tail, read and sent as a plain body. A
file that changed or shrank while it was sent therefore never completes its Content-Length:
its tail is not sent, or the server resets the connection when the file ended early. Without
the extension (h11, the ASGI test client) the body is read in chunks in a thread, as before.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from functools import partial
from secrets import token_hex
from typing import BinaryIO

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from server.formats import media_type_for_name
from server.http.conditional import http_date, if_range_allows, is_not_modified, parse_range
from server.http.responses import content_disposition
from storage import OriginalStore, Source, SourceChanged

CHUNK_SIZE = 256 * 1024

# A plain GET of a file up to this size is read whole in one thread hop and sent as one body;
# larger files, HEAD and ranges are streamed. A whole body sits in memory until the client has
# read it, so this is also what each slow reader can pin: one streaming chunk, as when streaming
# (at 4 MB, 40 clients that stop reading pinned 160 MB; limit_concurrency of them, 4 GB).
WHOLE_READ_BYTES = CHUNK_SIZE

#: The ASGI extension (and message type) of a body sent with sendfile by the server.
ZERO_COPY_SEND = "http.response.zerocopysend"
# What a zero-copy body holds back until the file is confirmed unchanged: any non-zero amount
# keeps a changed file from completing its response; a page or four cost nothing to copy.
TAIL_BYTES = 16 * 1024


def original_etag(source: Source) -> str:
    """A strong ETag from the file's identity: mtime in ns and size (as nginx builds it), and
    the start of the bytes' fingerprint, so a same-size file renamed into place with the same
    mtime gets a new ETag too."""
    return f'"{source.mtime_ns:x}-{source.size:x}-{(source.fingerprint or "")[:16]}"'


class FileBody(Response):
    """Streams `ranges` of `file` (the whole file when None) with `headers` already built.

    Several ranges go out as `multipart/byteranges`. HEAD sends the same headers and no body.
    """

    def __init__(
        self,
        *,
        store: OriginalStore,
        source: Source,
        file: BinaryIO | None,
        status: int,
        headers: dict[str, str],
        ranges: list[tuple[int, int]],
    ) -> None:
        self._store, self._source, self._file = store, source, file
        self._parts: list[tuple[bytes, int, int]]
        if len(ranges) > 1:
            boundary = token_hex(13)  # 104 bits, as Firefox and Chrome use
            content_type = headers["content-type"]
            headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
            self._parts = [
                (
                    f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Range: bytes {start}-{end - 1}/{source.size}\r\n\r\n".encode("latin-1"),
                    start,
                    end,
                )
                for start, end in ranges
            ]
            self._epilogue = f"--{boundary}--".encode("latin-1")
            length = sum(len(head) + end - start + 2 for head, start, end in self._parts) + len(self._epilogue)
        else:
            start, end = ranges[0] if ranges else (0, source.size)
            self._parts, self._epilogue = [(b"", start, end)], b""
            length = end - start
        headers["content-length"] = str(length)
        self.status_code = status
        self.background = None
        self.body = b""
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if self._file is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            multipart = bool(self._epilogue)
            if not multipart and self._zero_copy_offered(scope):
                _, start, end = self._parts[0]
                await self._send_zero_copy(send, start, end)
                return
            for head, start, end in self._parts:
                if head:
                    await send({"type": "http.response.body", "body": head, "more_body": True})
                self._file.seek(start)  # lseek: no I/O, no thread hop
                while start < end:
                    chunk = await anyio.to_thread.run_sync(self._read, min(CHUNK_SIZE, end - start))
                    start += len(chunk)
                    more = multipart or start < end
                    await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if multipart:
                    await send({"type": "http.response.body", "body": b"\r\n", "more_body": True})
            if multipart:
                await send({"type": "http.response.body", "body": self._epilogue, "more_body": False})
        finally:
            if self._file is not None:
                self._file.close()

    def _zero_copy_offered(self, scope: Scope) -> bool:
        if ZERO_COPY_SEND not in scope.get("extensions", ()):
            return False
        try:
            self._file.fileno()  # type: ignore[union-attr]
        except (AttributeError, io.UnsupportedOperation):
            return False  # a store whose files are not the kernel's (MemoryStore)
        return True

    async def _send_zero_copy(self, send: Send, start: int, end: int) -> None:
        """`start`..`end` of the file: sendfile up to the tail, then the checked tail."""
        assert self._file is not None
        tail_start = max(start, end - TAIL_BYTES)
        if start < tail_start:
            await send({"type": ZERO_COPY_SEND, "file": self._file, "offset": start, "count": tail_start - start,
                        "more_body": True})
        # Checked after every byte before the tail was handed to the kernel: a write since the
        # headers shows in the descriptor's size or mtime now, and the response stays short.
        tail = os.pread(self._file.fileno(), end - tail_start, tail_start)
        if len(tail) != end - tail_start or not self._store.unchanged(self._source, self._file):
            raise SourceChanged("the file changed while it was being sent")
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    def _read(self, size: int) -> bytes:
        assert self._file is not None
        data = self._file.read(size)
        if len(data) != size or not self._store.unchanged(self._source, self._file):
            raise SourceChanged("the file changed while it was being sent")
        return data


async def respond_original(
    store: OriginalStore,
    source: Source,
    request_headers: Mapping[str, str],
    *,
    cache_control: str,
    method: str,
) -> Response:
    """The 200, 206 or 304 answer for `source`; raises `RangeNotSatisfiable` for a 416, and
    `SourceChanged` or `NotFound` when the file is no longer the version `source` names."""
    etag = original_etag(source)
    last_modified = http_date(source.mtime)
    validators = {"etag": etag, "last-modified": last_modified, "cache-control": cache_control}
    if is_not_modified(request_headers, etag, source.mtime):
        return Response(status_code=304, headers=validators)

    ranges = None
    range_header = request_headers.get("range")
    if range_header is not None and if_range_allows(request_headers.get("if-range"), etag, last_modified):
        ranges = parse_range(range_header, source.size)

    headers = {
        **validators,
        "content-disposition": content_disposition(source.name),
        "x-content-type-options": "nosniff",
        "accept-ranges": "bytes",
        "content-type": media_type_for_name(source.name),
    }
    if method == "GET" and ranges is None and source.size <= WHOLE_READ_BYTES:
        body = await anyio.to_thread.run_sync(partial(store.read, source, max_bytes=WHOLE_READ_BYTES))
        if len(body) != source.size:
            raise SourceChanged(source.relative)
        media_type = headers.pop("content-type")
        return Response(body, media_type=media_type, headers=headers)
    if ranges is not None:
        if len(ranges) == 1:
            start, end = ranges[0]
            headers["content-range"] = f"bytes {start}-{end - 1}/{source.size}"
    # Opened before any header is sent: a file deleted since resolve() is a 404, not a 200 cut
    # short; one replaced since raises SourceChanged and is served again from a fresh stat.
    file = store.open(source)
    if method == "HEAD":
        # Opened anyway: HEAD's headers describe only a file the store checked and would send.
        file.close()
        file = None
    return FileBody(
        store=store, source=source, file=file, status=206 if ranges else 200, headers=headers, ranges=ranges or []
    )
