"""uvicorn's httptools protocol with bounds on the request head that neither parser has alone.

httptools (llhttp) parses about twice as fast as h11, but buffers a request line and headers
of any size: one 20 MB header costs 20 MB for as long as the client keeps trickling it. This
protocol counts the bytes received while a request head is incomplete and answers 431 (then
closes) past `server.h11_max_incomplete_event_size`, the same bound h11 enforces.

uvicorn also has no deadline for a request head still arriving (slowloris): enough clients
trickling one header byte a second hold every `limit_concurrency` slot for ever. Here a head
must be complete within `server.timeout_request_head` seconds of the connection opening or
of the request's first byte, or the client gets 408 and the connection is closed.

And uvicorn arms its keep-alive timer when a response is complete, but cancels it whenever data
arrives and re-arms it only at the next response: a client that declares a large body, reads
the response (sent without reading the body, as every image response is) and then sends one
byte now and then holds the connection for ever, and 1,000 such clients lock every other client
out. Here a connection whose request body is still unread when its response is complete is
closed, as the response already went out in full.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _closing_error(status: int, reason: str) -> bytes:
    """A complete JSON error response that announces the connection's close."""
    body = json.dumps({"detail": reason}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


_RESPONSE_408 = _closing_error(408, "Request Timeout")
_RESPONSE_431 = _closing_error(431, "Request Header Fields Too Large")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses request heads longer than the configured bound.

    After each chunk is parsed, a request whose head is still incomplete has the chunk counted
    against the bound. The count can include the tail of earlier pipelined requests in the same
    chunk, so the bound holds to within one read (64 KiB), never more.
    """

    def __init__(self, *args, head_timeout: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit = self.config.h11_max_incomplete_event_size
        self._head_bytes = 0
        self._in_head = False
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._message_complete = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head:
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._head_limit and not self.transport.is_closing():
            self.transport.write(_RESPONSE_431)
            self.transport.close()

    def on_message_begin(self) -> None:
        self._message_complete = False
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._message_complete = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._message_complete and not self.transport.is_closing():
            # The rest of the request body would arrive with no timer at all: end here.
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._in_head or self.cycle is None:
            # Nothing or part of a head arrived in time. An idle keep-alive connection
            # (between requests) is uvicorn's timeout_keep_alive's business, not ours.
            self.transport.write(_RESPONSE_408)
            self.transport.close()
