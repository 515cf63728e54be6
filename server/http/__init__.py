"""The only package that imports starlette, fastapi or uvicorn.

    urls.py         the one URL classifier (raw path -> original / thumbnail / info / gallery page / none)
    request.py      the one request-header reader
    images.py       the one handler of image URLs, used by both doors below
    front.py        the pure-ASGI front that owns image URLs
    routes.py       the FastAPI app: /healthz, the API description, the documented image routes
    originals.py    200/206/304 answers for originals from any OriginalStore
    info.py         /info answers: an original's facts as JSON, entries with encoded heads
    gallery.py      the gallery's HTML pages (browse.enabled): folders, images, redirects
    responses.py    thumbnail entries with encoded heads, JSON errors, Content-Disposition
    conditional.py  If-None-Match, If-Modified-Since, If-Range, Range parsing
    errors.py       the error table
    protocol.py     uvicorn's httptools protocol with bounded request heads
"""
