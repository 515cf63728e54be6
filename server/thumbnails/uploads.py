"""Thumbnails of uploaded images (`POST {prefix}/{spec}`), with no HTTP: the spec grammar, the
pipeline, the source limits, the render processes and their memory budget of thumbnails of
originals; nothing is cached or stored, as an upload has no identity to key it by.

An upload holds a render slot from the moment its body starts to arrive: with every slot taken
(renders running and queued, uploads being read) it is refused before a byte is read, so the
bodies a process holds are bounded by `capacity` x `uploads.max_bytes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from server.imaging import Rendered
from server.thumbnails.negotiation import negotiate_format
from server.thumbnails.pool import RenderUnavailable
from server.thumbnails.service import ThumbnailService, render_in_budget
from server.thumbnails.spec import ThumbSpec


class UploadedThumbnail(NamedTuple):
    rendered: Rendered
    spec: ThumbSpec
    #: "Accept" when the output format was negotiated from the request's Accept header.
    vary: str | None
    render_ms: float


class UploadRenderer:
    """Renders uploads through `service`'s pool; at most `capacity` uploads and renders at once."""

    def __init__(self, service: ThumbnailService, *, capacity: int) -> None:
        self._service = service
        self._capacity = capacity
        self.reading = 0  # uploads whose body is being read

    async def render(self, spec_text: str, accept: str | None,
                     read_body: Callable[[], Awaitable[bytes]]) -> UploadedThumbnail:
        """Parse `spec_text` (`InvalidSpec` before any byte is read), take a slot
        (`RenderUnavailable` when none is free), read the body with `read_body` and render it.

        Raises whatever `read_body` raises, `ImageError` (422) and `RenderUnavailable` (503).
        """
        service = self._service
        spec = service.parse(spec_text)
        if self.reading + service.pool.in_flight >= self._capacity:
            error = RenderUnavailable("Too many renders waiting; try again shortly", retry_after=1)
            service.events.rejected(getattr(error, "reason", "unavailable"))
            raise error
        self.reading += 1
        try:
            data = await read_body()
        finally:
            self.reading -= 1  # before the render takes its own place in the pool: no gap
        negotiated = spec.format is None and bool(service.options.auto_formats)
        output_format = spec.format or negotiate_format(accept, service.options.auto_formats)
        request = service.render_request(spec, output_format)
        rendered, seconds = await service.run_render(render_in_budget, data, request, service.options.limits)
        return UploadedThumbnail(rendered, spec, "Accept" if negotiated else None, round(seconds * 1000, 1))
