"""The framework ceiling: a bare Starlette app serving the same bytes as our server, nothing more.

Run by uvicorn from the main venv with ``BENCH_STATIC_DIR`` naming a folder that holds
``thumb.jpg`` (the bytes of our cached thumbnail) and ``original.jpg``:

- ``GET /thumb.jpg``: the bytes from memory with a fixed strong ETag, 304 when
  ``If-None-Match`` repeats it (the least a revalidating thumbnail route can do);
- ``GET /original.jpg``: Starlette's ``FileResponse``, as our server serves originals;
- ``GET /healthz``: 200 JSON.
"""

from __future__ import annotations

import hashlib
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
