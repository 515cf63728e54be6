"""The ceilings: a raw ASGI app (no framework) and a bare Starlette app serving the same bytes.

``raw`` (the hit ceiling of issue 14: "no slower than a raw ASGI app returning the same bytes and
headers"): ``GET /thumb.jpg`` answers the bytes from memory with the very headers our server sent
for them (``thumb.headers.json`` beside ``thumb.jpg``, written by the run; without it, just the
type, length and ETag), 304 with the ETag when ``If-None-Match`` repeats it; ``GET /original.jpg``
the file's bytes read once at start-up. ``app`` is the Starlette ceiling:

Run by uvicorn from the main venv with ``BENCH_STATIC_DIR`` naming a folder that holds
``thumb.jpg`` (the bytes of our cached thumbnail) and ``original.jpg``:

- ``GET /thumb.jpg``: the bytes from memory with a fixed strong ETag, 304 when
  ``If-None-Match`` repeats it (the least a revalidating thumbnail route can do);
- ``GET /original.jpg``: Starlette's ``FileResponse``, as our server serves originals;
- ``GET /healthz``: 200 JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

STATIC = Path(os.environ["BENCH_STATIC_DIR"])
THUMB = (STATIC / "thumb.jpg").read_bytes()
THUMB_ETAG = f'"{hashlib.sha256(THUMB).hexdigest()[:32]}"'


async def thumb(request: Request) -> Response:
    if request.headers.get("if-none-match") == THUMB_ETAG:
        return Response(status_code=304, headers={"etag": THUMB_ETAG})
    return Response(THUMB, media_type="image/jpeg", headers={"etag": THUMB_ETAG})


async def original(request: Request) -> Response:
    return FileResponse(STATIC / "original.jpg", media_type="image/jpeg")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/thumb.jpg", thumb),
    Route("/original.jpg", original),
    Route("/healthz", healthz),
])


# --- the raw ASGI ceiling ------------------------------------------------------------------------

_SENT = STATIC / "thumb.headers.json"
_HEADERS = json.loads(_SENT.read_text()) if _SENT.exists() else {"content-type": "image/jpeg", "etag": THUMB_ETAG}
_HEADERS["content-length"] = str(len(THUMB))
RAW_ETAG = _HEADERS["etag"]
RAW_200 = [(name.encode(), value.encode()) for name, value in _HEADERS.items()]
RAW_304 = [(name.encode(), value.encode()) for name, value in _HEADERS.items()
           if name in ("etag", "cache-control", "last-modified", "vary")]
ORIGINAL = (STATIC / "original.jpg").read_bytes()
ORIGINAL_HEADERS = [(b"content-type", b"image/jpeg"), (b"content-length", str(len(ORIGINAL)).encode())]


async def raw(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/thumb.jpg":
        for name, value in scope["headers"]:
            if name == b"if-none-match" and value.decode() == RAW_ETAG:
                await send({"type": "http.response.start", "status": 304, "headers": RAW_304})
                await send({"type": "http.response.body", "body": b""})
                return
        await send({"type": "http.response.start", "status": 200, "headers": RAW_200})
        await send({"type": "http.response.body", "body": THUMB})
    elif path == "/original.jpg":
        await send({"type": "http.response.start", "status": 200, "headers": ORIGINAL_HEADERS})
        await send({"type": "http.response.body", "body": ORIGINAL})
    else:
        await send({"type": "http.response.start", "status": 200 if path == "/healthz" else 404,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"status": "ok"}'})
