"""`GET`/`HEAD /{path}`: original files, served as a careful static server (nginx) would."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response

from server.conditional import http_date, if_range_allows, is_not_modified, parse_range
from server.headers import content_disposition
from storage import Source

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


def respond_original(source: Source, request_headers: Headers, *, cache_control: str) -> Response:
    """The 200, 206 or 304 answer for `source`; raises `RangeNotSatisfiable` for a 416."""
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
    return _RangedFileResponse(
        source.path,
        stat_result=source.stat,
        headers=headers,
        media_type=media_type_for(source.name),
        ranges=ranges,
    )
