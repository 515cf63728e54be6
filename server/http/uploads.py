"""`POST {prefix}/{spec}`: a thumbnail of the image in the request body, never cached.

The image is the body itself (`Content-Type: image/...`) or the field `file` of a
`multipart/form-data` form. The body is read as it arrives and counted: past `uploads.max_bytes`
it is refused with 413 at once (before a byte is read when `Content-Length` says so), so it is
never held whole, and never spooled to disk; a multipart form is parsed as it streams
(python-multipart's push parser), keeping only the bytes of `file`. The whole body must arrive
within `read_timeout_s`, or 408: uvicorn bounds the time of a request head (server.http.protocol)
and of an idle connection, but not of a body trickling in.

    UploadTooLarge         413  over uploads.max_bytes (declared or counted)
    UnsupportedUploadType  415  the body, or the part `file`, is not an image type we decode
    BadUpload              400  no body, no field `file`, a malformed form
    UploadTimeout          408  the body did not arrive in time
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.responses import Response
from starlette.types import Receive

from server.formats import FORMATS
from server.http.request import read_headers
from server.http.responses import content_disposition
from server.thumbnails.uploads import UploadRenderer

#: The media types an upload may declare: those of the formats we decode.
UPLOAD_TYPES = frozenset(f.media_type for f in FORMATS.values())
#: What a multipart body may carry beyond the file: boundaries, part headers, small fields.
MULTIPART_OVERHEAD = 16 * 1024
FIELD = "file"


class UploadTooLarge(Exception):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"The upload is larger than {max_bytes} bytes.")


class UnsupportedUploadType(Exception):
    def __init__(self, given: str) -> None:
        super().__init__(f"{given or 'no type'} is not an image type this server decodes; "
                         f"send one of {', '.join(sorted(UPLOAD_TYPES))}, as the body or as the form field '{FIELD}'.")


class BadUpload(Exception):
    """A request with no image to read; `str()` is the client's detail."""


class UploadTimeout(Exception):
    """The body did not arrive within `UploadLimits.read_timeout_s`; `str()` is the client's detail."""


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_bytes: int
    read_timeout_s: float


_BODY_HEADERS = frozenset({"content-type", "content-length"})


class UploadHandler:
    """Answers `POST {prefix}/{spec}`: reads the body within `limits`, renders it with `renderer`."""

    def __init__(self, renderer: UploadRenderer, limits: UploadLimits) -> None:
        self._renderer = renderer
        self._limits = limits

    async def respond(self, scope: Mapping, receive: Receive, spec: str, headers: Mapping[str, str]) -> Response:
        """The thumbnail of the body; raises the errors of the table above and the renderer's."""
        body = _Body(read_headers(scope["headers"], _BODY_HEADERS), self._limits)
        done = await self._renderer.render(spec, headers.get("accept"), lambda: body.read(receive))
        facts = scope.get("thumbserver")
        if facts is not None:
            facts["cache"], facts["render_ms"] = "render", done.render_ms
        rendered = done.rendered
        stem = (body.filename or "upload").rpartition(".")[0] or body.filename or "upload"
        response_headers = {
            "cache-control": "no-store",
            "content-disposition": content_disposition(f"{stem}_{done.spec.box_name}.{FORMATS[rendered.format].extension}"),
            "x-content-type-options": "nosniff",
        }
        if done.vary:
            response_headers["vary"] = done.vary
        return Response(rendered.data, media_type=rendered.media_type, headers=response_headers)


class _Body:
    """One request's body: its declared type and size checked at once, read on demand."""

    def __init__(self, headers: Mapping[str, str], limits: UploadLimits) -> None:
        self._limits = limits
        self.filename: str | None = None
        media_type, options = parse_options_header(headers.get("content-type", ""))
        self._media_type = media_type.decode("latin-1").lower()
        self._boundary = options.get(b"boundary")
        self._multipart = self._media_type == "multipart/form-data"
        if not self._multipart and self._media_type not in UPLOAD_TYPES:
            raise UnsupportedUploadType(self._media_type)
        if self._multipart and not self._boundary:
            raise BadUpload("A multipart/form-data body needs a boundary parameter.")
        self._bound = limits.max_bytes + (MULTIPART_OVERHEAD if self._multipart else 0)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadUpload("Content-Length is not a number.")
            if int(declared) > self._bound:
                raise UploadTooLarge(limits.max_bytes)

    async def read(self, receive: Receive) -> bytes:
        try:
            async with asyncio.timeout(self._limits.read_timeout_s):
                data = await (self._read_form(receive) if self._multipart else self._read_raw(receive))
        except TimeoutError:
            raise UploadTimeout(f"The upload did not arrive within {self._limits.read_timeout_s:g} s.") from None
        if not data:
            raise BadUpload(f"The request has no image: send it as the body (Content-Type: image/...) "
                            f"or as the multipart/form-data field '{FIELD}'.")
        return data

    async def _read_raw(self, receive: Receive) -> bytes:
        data = bytearray()
        async for chunk in self._chunks(receive):
            data += chunk
        return bytes(data)

    async def _read_form(self, receive: Receive) -> bytes:
        assert self._boundary is not None
        form = _FormReader(self._boundary, self._limits.max_bytes)
        try:
            async for chunk in self._chunks(receive):
                form.write(chunk)
            form.finish()
        except MultipartParseError:
            raise BadUpload("The multipart/form-data body is malformed.") from None
        self.filename = form.filename
        return bytes(form.file)

    async def _chunks(self, receive: Receive) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive, counted against the bound (`UploadTooLarge` past it)."""
        count = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadUpload("The client went away before the whole body arrived.")
            chunk = message.get("body", b"")
            count += len(chunk)
            if count > self._bound:
                raise UploadTooLarge(self._limits.max_bytes)
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class _FormReader:
    """A multipart/form-data body fed chunk by chunk; keeps the bytes of the field `file` only."""

    def __init__(self, boundary: bytes, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._in_file = False
        self._ended = False
        self.file = bytearray()
        self.filename: str | None = None
        self._found = False
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        })

    def write(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> None:
        self._parser.finalize()
        if not self._ended:
            raise BadUpload("The multipart/form-data body ends before its closing boundary.")
        if not self._found:
            raise BadUpload(f"The form has no field '{FIELD}': send the image as the multipart field '{FIELD}'.")

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition.get(b"name") != FIELD.encode():
            return  # another field: its bytes are counted (the whole body is bounded) and dropped
        if self._found:
            raise BadUpload(f"The form has the field '{FIELD}' more than once.")
        media_type, _ = parse_options_header(self._headers.get(b"content-type", b""))
        if media_type.decode("latin-1").lower() not in UPLOAD_TYPES:
            raise UnsupportedUploadType(media_type.decode("latin-1"))
        self._found = self._in_file = True
        filename = disposition.get(b"filename")
        if filename:
            # Some browsers send a whole client path: keep its last segment.
            self.filename = filename.decode("utf-8", "replace").replace("\\", "/").rpartition("/")[2] or None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.file.extend(data[start:end])
            if len(self.file) > self._max_bytes:
                raise UploadTooLarge(self._max_bytes)

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self._ended = True
