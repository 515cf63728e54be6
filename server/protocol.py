"""uvicorn's httptools protocol with a bound on the request head, which h11 has and httptools lacks.

httptools (llhttp) parses about twice as fast as h11, but buffers a request line and headers
of any size: one 20 MB header costs 20 MB for as long as the client keeps trickling it. This
protocol counts the bytes received while a request head is incomplete and answers 431 (then
closes) past `server.h11_max_incomplete_event_size`, the same bound h11 enforces.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_BODY = json.dumps({"detail": "Request Header Fields Too Large"}).encode()
_RESPONSE_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"cache-control: no-store\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses request heads longer than the configured bound.

    After each chunk is parsed, a request whose head is still incomplete has the chunk counted
    against the bound. The count can include the tail of earlier pipelined requests in the same
    chunk, so the bound holds to within one read (64 KiB), never more.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit = self.config.h11_max_incomplete_event_size
        self._head_bytes = 0
        self._in_head = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head:
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._head_limit and not self.transport.is_closing():
            self.transport.write(_RESPONSE_431)
            self.transport.close()

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
