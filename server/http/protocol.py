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

Repeated thumbnail hits are answered here, before uvicorn builds a request cycle and a task
for them, when the app keeps a `HitMemo` (`app.state.hits`; see server/http/hits.py for what
is checked and which requests go the usual way): a GET or HEAD with no body, on a keep-alive
HTTP/1.1 connection with nothing else in flight and a writable transport.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from server.http.hits import Answer, HitMemo

#: The ASGI extension (and message type) of a file body sent with sendfile.
ZERO_COPY_SEND = "http.response.zerocopysend"


def _closing_error(status: int, reason: str) -> bytes:
    """A complete JSON error response that announces the connection's close."""
    body = json.dumps({"detail": reason}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


#: Request headers that announce a body, or a protocol switch: such requests go the usual way.
_NOT_PLAIN = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect"})

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
        self._hits = _hits_of(self.app)
        self._answer: Answer | None = None  # a remembered hit, written when its message completes
        self._answer_started = 0.0

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
        if self._hits is not None and self._remembered_hit():
            return  # answered when the message completes (right away: it has no body)
        previous = self.cycle
        super().on_headers_complete()
        if self._zero_copy and self.cycle is not previous and type(self.cycle) is RequestResponseCycle:
            # uvicorn builds its own cycle class; this one only adds a message type to `send`.
            self.cycle.__class__ = ZeroCopyCycle

    def on_message_complete(self) -> None:
        self._message_complete = True
        answer = self._answer
        if answer is not None:
            self._answer = None
            self._write_answer(answer)
            return
        super().on_message_complete()

    def _remembered_hit(self) -> bool:
        """Whether this request is answered from the hit memo (then `_answer` holds the answer)."""
        parser = self.parser
        method = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return False
        if parser.get_http_version() != "1.1" or not parser.should_keep_alive() or parser.should_upgrade():
            return False
        cycle = self.cycle
        if self.pipeline or (cycle is not None and not cycle.response_complete) or self.flow.write_paused:
            return False  # an earlier response is still going out, or the client is not reading
        for name, _value in self.headers:
            if name in _NOT_PLAIN:
                return False
        assert self._hits is not None
        started = time.perf_counter()
        try:
            answer = self._hits.answer(self.url, self.headers, head_only=method == b"HEAD")
        except Exception:  # noqa: BLE001 - a fault here must cost the fast path, never the request
            self.logger.exception("the hit memo failed; answering the usual way")
            return False
        if answer is None:
            return False
        self._answer, self._answer_started = answer, started
        return True

    def _write_answer(self, answer: Answer) -> None:
        """Write a remembered hit as uvicorn's cycle would: status line, the server's default
        headers (Date), the head, the body (none for HEAD); then finish as a response does."""
        head = STATUS_LINE[answer.status] + _default_head(self.server_state.default_headers) + answer.head + b"\r\n"
        if answer.body:
            self.transport.writelines((head, answer.body))
        else:
            self.transport.write(head)
        assert self._hits is not None
        self._hits.answered(answer.status, time.perf_counter() - self._answer_started)
        self._unset_keepalive_if_required()  # pipelined answers arm one keep-alive timer, not one each
        self.on_response_complete()

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


def _hits_of(app: object) -> HitMemo | None:
    """The app's hit memo (`app.state.hits`), under any middleware uvicorn put around it."""
    for _depth in range(8):
        state = getattr(app, "state", None)
        hits = getattr(state, "hits", None) if state is not None else None
        if isinstance(hits, HitMemo):
            return hits
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


_defaults: tuple[list, bytes] = ([], b"")


def _default_head(defaults: list[tuple[bytes, bytes]]) -> bytes:
    """The server's default header lines, encoded once per new list (uvicorn makes one a second)."""
    global _defaults
    if _defaults[0] is not defaults:
        _defaults = (defaults, b"".join(name + b": " + value + b"\r\n" for name, value in defaults))
    return _defaults[1]


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
