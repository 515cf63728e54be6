"""The one URL classifier: which requests are image URLs, and what they name.

Routing reads the raw path as sent, split on literal `/`, and decodes each segment once, so
what an edge rule sees (a CDN path rule, a WAF, a VCL regex matching `/thumb/`) is what the
server serves: `/%74humb/…` is not a thumbnail URL, and `%2F` never splits a segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote, unquote

from server.thumbnails import BadSignature, Signer
from storage import NotFound

ORIGINAL = "original"
INFO = "info"
#: A gallery page of a folder (`/`, `/{folder}/`) and an image's page (`{view prefix}/{path}`),
#: when browsing is on; both count as the metrics' kind "browse".
FOLDER = "folder"
VIEW = "view"
#: The classifier remembers this many answers, for raw paths up to this long.
MEMO_ENTRIES = 4096
MEMO_PATH_BYTES = 512
THUMBNAIL = "thumbnail"
UPLOAD = "upload"  # `{prefix}/{spec}`: POST an image, get its thumbnail

# C0 controls, DEL and C1 controls: never part of a served name (a CR or LF in a name would be
# an alias of the name without it in some routers, and a header-injection hazard in others).
_CONTROLS = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)))


class ImageURL(NamedTuple):
    """An image request: `kind` is ORIGINAL, THUMBNAIL, INFO, FOLDER, VIEW or UPLOAD (no path);
    `path` is decoded, without a leading "/" (a FOLDER's path is "" for the root, else it ends
    with "/")."""

    kind: str
    path: str
    spec: str | None = None


class URLClassifier:
    """Decides, from the raw path alone, whether a request is for an image and which.

    `reserved` first segments belong to the application's other routes (`healthz`, `docs`,
    `metrics`…): their paths are never images, so a route registered there is never shadowed.
    With a `signer`, thumbnail URLs (and originals, with `sign_originals`) carry a signature
    segment that is checked here, before any filesystem work, and never reaches a key.
    `info_prefix` names info URLs (signed like originals). With `browse_prefix` (browsing on),
    `/` and every path ending in `/` are folder pages, never signed (a folder is not an
    original), and `{browse_prefix}/{path}` is an image's page.
    """

    def __init__(
        self,
        *,
        thumbnail_prefix: str,
        reserved: Iterable[str],
        signer: Signer | None = None,
        sign_originals: bool = False,
        info_prefix: str = "/info",
        browse_prefix: str | None = None,
    ) -> None:
        self._prefix = thumbnail_prefix.strip("/")
        self._info = info_prefix.strip("/")
        self._view = browse_prefix.strip("/") if browse_prefix is not None else None
        self._signer = signer
        self._sign_originals = sign_originals and signer is not None
        self._reserved = frozenset(reserved)
        # Image traffic repeats a few URLs endlessly: remember the answers for short paths (a
        # bounded memo; refusals are not kept, they raise).
        self._memo: dict[bytes, ImageURL | None] = {}

    def reserve(self, segments: Iterable[str]) -> None:
        """Add first segments that other routes own."""
        self._reserved = (self._reserved | frozenset(segments)) - {self._prefix, self._info, self._view}
        self._memo.clear()

    def classify(self, raw_path: bytes) -> ImageURL | None:
        """The image `raw_path` names, None when it is not an image URL, or `NotFound` when it
        is one that no rule lets name a file (an encoded `/`, a control character, bad UTF-8)."""
        try:
            return self._memo[raw_path]
        except KeyError:
            pass
        found = self._classify(raw_path)
        if len(raw_path) <= MEMO_PATH_BYTES:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()  # cheaper than an LRU here, and a refill costs microseconds
            self._memo[raw_path] = found
        return found

    def _classify(self, raw_path: bytes) -> ImageURL | None:
        if b"?" in raw_path:  # uvicorn's raw_path has no query; some ASGI clients' do
            raw_path = raw_path.partition(b"?")[0]
        if raw_path[:1] != b"/":
            return None
        try:
            text = raw_path.decode("ascii")
        except UnicodeDecodeError:
            raise NotFound("non-ASCII bytes in the raw path") from None
        first, _, rest = text[1:].partition("/")
        if first in self._reserved:
            return None
        if self._view is not None:
            if text.endswith("/"):
                return ImageURL(FOLDER, _decoded(text[1:]))
            if first == self._view:
                return ImageURL(VIEW, _decoded(rest))
        if first == self._info:
            if self._sign_originals:
                rest = self._verified(rest)
            return ImageURL(INFO, _decoded(rest))
        if first == self._prefix:
            if self._signer is not None:
                rest = self._verified(rest)
            spec, slash, path = rest.partition("/")
            if not slash and spec:
                # Decoded once, unlike a thumbnail's spec: an upload is never cached, so an alias
                # splits no cache entry, and Swagger UI's "Try it out" sends "," as "%2C".
                return ImageURL(UPLOAD, "", _decoded(spec))
            if not slash or "%" in spec:
                raise NotFound("a thumbnail URL needs a plain spec and a path")
            return ImageURL(THUMBNAIL, _decoded(path), spec)
        path = text[1:]
        if self._sign_originals:
            path = self._verified(path)
            first = path.partition("/")[0]
        if "%" in first and unquote(first) in (self._prefix, self._info, self._view, *self._reserved):
            raise NotFound("an encoded prefix is not that prefix")
        return ImageURL(ORIGINAL, _decoded(path))

    def _verified(self, signed: str) -> str:
        """The rest of `signed` ("{signature}/{rest}") when the signature is good; else `BadSignature`."""
        assert self._signer is not None
        signature, slash, rest = signed.partition("/")
        if not slash:
            raise BadSignature("no signature")
        self._signer.verify(signature, rest.encode("ascii"))
        return rest


def decoded_path(raw_path: bytes) -> str | None:
    """The path of `raw_path` (no leading "/", query dropped) decoded by the classifier's rules,
    or None when no resource could have it (not ASCII, an encoded slash, a control character)."""
    raw_path = raw_path.partition(b"?")[0]
    if raw_path[:1] != b"/":
        return None
    try:
        return _decoded(raw_path.decode("ascii")[1:])
    except (UnicodeDecodeError, NotFound):
        return None


def _decoded(path: str) -> str:
    """`path` with each segment percent-decoded once; `NotFound` for what no segment may hold."""
    if "%" not in path and path.isprintable():
        return path  # the common case: nothing to decode, no control character
    return _decode(path.split("/"))


def _decode(segments: list[str]) -> str:
    decoded = []
    for segment in segments:
        try:
            value = unquote(segment, errors="strict") if "%" in segment else segment
        except UnicodeDecodeError:
            raise NotFound("percent-encoding that is not UTF-8") from None
        if "/" in value or not _CONTROLS.isdisjoint(value):
            raise NotFound("an encoded slash or a control character in a segment")
        decoded.append(value)
    return "/".join(decoded)


def raw_path_of(scope: dict) -> bytes:
    """The path as sent (ASGI `raw_path`), rebuilt from `path` for servers that omit it."""
    raw = scope.get("raw_path")
    return raw if raw is not None else quote(scope["path"]).encode("ascii")
