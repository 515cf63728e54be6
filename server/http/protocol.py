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

Zero-copy file bodies: each request's scope advertises the ASGI "Zero Copy Send" extension
(`http.response.zerocopysend`) on plain TCP, and a `{"type": "http.response.zerocopysend",
"file": …, "offset": …, "count": …, "more_body": …}` message sends `count` bytes of the open
file with `os.sendfile`, from the descriptor the application opened and checked (the server
never opens a path). The socket is written without blocking: when it is full, the wait for
writability is the event loop's (a slow client holds no thread and stalls nobody). Bytes that
cannot all be sent because the file ended early abort the connection (a reset, never a
response that looks complete). A page of the file that is not in the page cache is read by
the kernel inside `sendfile`, on the loop's thread, as nginx's `sendfile on` does without
`aio threads`: originals are expected to be hot or on local disks.
"""

from __future__ import annotations

import asyncio
import json
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

#: The ASGI extension (and message type) of a file body sent with sendfile.
ZERO_COPY_SEND = "http.response.zerocopysend"


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
        self._head_deadline = 0.0
        self._message_complete = True
        self._zero_copy = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # sendfile writes the socket itself: only where no TLS layer sits between.
        self._zero_copy = self.scheme == "http" and hasattr(os, "sendfile")
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
        if self._zero_copy:
            self.scope["extensions"] = {ZERO_COPY_SEND: {}}

    def on_headers_complete(self) -> None:
        self._in_head = False  # the head timer, when it fires, finds nothing to do
        previous = self.cycle
        super().on_headers_complete()
        if self._zero_copy and self.cycle is not previous and type(self.cycle) is RequestResponseCycle:
            # uvicorn builds its own cycle class; this one only adds a message type to `send`.
            self.cycle.__class__ = ZeroCopyCycle

    def on_message_complete(self) -> None:
        self._message_complete = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._message_complete and not self.transport.is_closing():
            # The rest of the request body would arrive with no timer at all: end here.
            self.transport.close()

    def _arm_head_timer(self) -> None:
        # A deadline moved per request, and at most one timer that checks it when due: a
        # keep-alive connection with many requests arms no timer and cancels none per request.
        self._head_deadline = self.loop.time() + self._head_timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_check)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_check(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        waiting = self._in_head or self.cycle is None
        if not waiting:
            return  # the head came in time; the next message start arms the timer again
        if self.loop.time() < self._head_deadline:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_check)
            return
        self._head_timed_out()

    def _head_timed_out(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head timed out while the previous response is still being sent: a 408
            # written now would land inside that body. Close once the response is complete.
            self.cycle.keep_alive = False
            return
        # Nothing or part of a head arrived in time. An idle keep-alive connection
        # (between requests) is uvicorn's timeout_keep_alive's business, not ours.
        self.transport.write(_RESPONSE_408)
        self.transport.close()


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, plus the `http.response.zerocopysend` message."""

    def send(self, message):  # type: ignore[override]
        # Not a coroutine itself: it hands back uvicorn's (or ours) to await, so every other
        # message costs one call more than uvicorn's own send, not one coroutine more.
        if message["type"] == ZERO_COPY_SEND:
            return self._send_file(message)
        return RequestResponseCycle.send(self, message)

    async def _send_file(self, message) -> None:
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message {ZERO_COPY_SEND!r} outside a response body.")
        if self.chunked_encoding:
            raise RuntimeError(f"{ZERO_COPY_SEND!r} needs a response with a Content-Length.")
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        file = message["file"]
        descriptor = file.fileno()
        offset = message.get("offset")
        if offset is None:
            offset = os.lseek(descriptor, 0, os.SEEK_CUR)
        count = message.get("count")
        if count is None:
            count = os.fstat(descriptor).st_size - offset
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
        elif count > 0:
            if count > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            sent = await send_file(self.transport, descriptor, offset, count)
            if sent is None or self.transport.is_closing():
                self.disconnected = True  # the client went away: the rest is dropped, as uvicorn does
                return
            if sent < count:
                self.transport.abort()  # a reset: the client must not take this for a whole body
                self.disconnected = True
                raise RuntimeError(f"the file ended after {sent} of {count} bytes")
            self.expected_content_length -= count
        if not message.get("more_body", False):
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


async def send_file(transport: asyncio.Transport, descriptor: int, offset: int, count: int) -> int | None:
    """Send `count` bytes of `descriptor` from `offset` on `transport`'s socket with sendfile.

    Returns how many were sent (fewer when the file ended first), or None when the connection
    closed or failed meanwhile. Waits, on the event loop, for what the transport has buffered
    (the status line and headers) to leave first, and for the socket to take more whenever it
    is full. The socket is used through a descriptor of its own: the transport's number may be
    closed and reused by another connection while this waits.
    """
    loop = asyncio.get_running_loop()
    if transport.is_closing():
        return None
    socket = os.dup(transport.get_extra_info("socket").fileno())
    try:
        # uvloop writes small buffers at the end of the loop's iteration: usually one turn of
        # the loop sends the head; a socket that is full needs a wait for writability.
        await asyncio.sleep(0)
        while transport.get_write_buffer_size():
            await _writable(loop, socket)
            await asyncio.sleep(0)  # the transport writes its own buffer on this wake-up
            if transport.is_closing():
                return None
        sent = 0
        while sent < count:
            try:
                done = os.sendfile(socket, descriptor, offset + sent, count - sent)
            except BlockingIOError:
                await _writable(loop, socket)
                if transport.is_closing():
                    return None
                continue
            except OSError:  # EPIPE, ECONNRESET…: the client is gone
                return None
            if done == 0:
                break  # end of file
            sent += done
        return sent
    finally:
        os.close(socket)


async def _writable(loop: asyncio.AbstractEventLoop, socket: int) -> None:
    """Return once `socket` can take more bytes (or has failed: the next write says which)."""
    ready = loop.create_future()
    loop.add_writer(socket, _set_ready, ready)
    try:
        await ready
    finally:
        loop.remove_writer(socket)


def _set_ready(ready: asyncio.Future) -> None:
    if not ready.done():
        ready.set_result(None)
