"""CORS for image responses (`http.cors_origins`): which origins may read them from scripts.

Every image response — 200, 206, 304, errors, hits and misses alike — gets
`Access-Control-Allow-Origin` (`*`, or the request's `Origin` when it is listed, and then
`Vary: Origin` merged into any `Vary: Accept`) and `Timing-Allow-Origin`; `OPTIONS` preflights
of image URLs are answered here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.responses import Response

MAX_AGE_S = 86400


class CorsPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        listed = tuple(origins)
        self._any = listed == ("*",)
        self._origins = frozenset(listed) - {"*"}

    @property
    def enabled(self) -> bool:
        return self._any or bool(self._origins)

    def allowed(self, request_headers: Mapping[str, str]) -> str | None:
        """The `Access-Control-Allow-Origin` value for this request, or None."""
        if self._any:
            return "*"
        origin = request_headers.get("origin")
        return origin if origin in self._origins else None

    def apply(self, response: Response, request_headers: Mapping[str, str]) -> Response:
        """`response` with the CORS headers this request earns (the raw list is its own copy)."""
        allowed = self.allowed(request_headers)
        if not self._any:
            _merge_vary(response, "Origin")  # the answer depends on Origin even when it is refused
        if allowed is not None:
            value = allowed.encode("latin-1")
            response.raw_headers.append((b"access-control-allow-origin", value))
            response.raw_headers.append((b"timing-allow-origin", value))
        return response

    def preflight(self, request_headers: Mapping[str, str], allow: str) -> Response:
        """The 204 answer to an `OPTIONS` preflight of an image URL."""
        headers = {"Access-Control-Allow-Methods": allow, "Access-Control-Max-Age": str(MAX_AGE_S),
                   "Cache-Control": f"max-age={MAX_AGE_S}"}
        asked = request_headers.get("access-control-request-headers")
        if asked:
            headers["Access-Control-Allow-Headers"] = asked[:1024]
        return Response(status_code=204, headers=headers)  # the caller applies the CORS headers


def _merge_vary(response: Response, name: str) -> None:
    for index, (key, value) in enumerate(response.raw_headers):
        if key == b"vary":
            if name.lower().encode() not in value.lower():
                response.raw_headers[index] = (key, value + b", " + name.encode())
            return
    response.raw_headers.append((b"vary", name.encode()))
