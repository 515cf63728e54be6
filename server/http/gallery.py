"""The gallery: HTML pages of the image root's folders and of each image, when `browse.enabled`.

    GET/HEAD /, /{folder}/        breadcrumbs, subfolders, then the folder's images as a grid
                                  of square thumbnails, `browse.page_size` a page (`?page=N`)
    GET/HEAD /{folder}            308 to /{folder}/ (a real folder only)
    GET/HEAD {view}/{path}        one image: its facts (from /info) and URLs ready to copy

Every name reaches the page through `html.escape` (text and attributes) and every URL through
`urllib.parse.quote`, segment by segment, so a file called `<img src=x onerror=alert(1)>.jpg` or
`a#b?c.jpg` is shown as text and linked exactly. Pages are self-contained (inline CSS, one small
optional script for copy buttons, no external resource) under a Content-Security-Policy that
allows exactly those two by hash. Thumbnails in the grid are square covers, so their `width`
and `height` attributes are known without decoding anything.

Under each name the grid shows the image's displayed pixel size ("W × H", EXIF orientation
applied). Sizes come from one render-process job per page view of not-yet-known sizes
(`server.thumbnails.sizes`): it reads a bounded prefix of each file of the page and parses only
its header, never on the event loop and without decoding a pixel. They are memoised by path and
local version (size, mtime, device, inode, ctime) in a bounded LRU, so a page view of a known
folder runs no job at all.
A size the prefix does not tell (see `server.imaging.sizes`), an undecodable file, or a job
refused or cut short (pool busy, `SIZES_WAIT_S` passed) shows the name alone: the page never
fails for a size, and sizes not found because the pool was busy are tried again next time.

Folder pages carry an ETag of the listing, the page and the sizes shown (`Cache-Control:
no-cache`), so a revalidation of an unchanged folder is a 304 after a stat of the folder and
one of each file on the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs, quote

import anyio
from cachetools import LRUCache
from starlette.responses import Response

from server.http.conditional import is_not_modified
from server.http.responses import EncodedResponse, encode_head
from server.imaging import ImageError
from server.thumbnails import Signer
from server.thumbnails.info import InfoService
from server.thumbnails.pool import RenderUnavailable
from server.thumbnails.sizes import Size, displayed_sizes
from storage import FolderLister, FolderListing, NotFound, Source

logger = logging.getLogger("thumbserver")

#: Bump when the pages' markup changes: every page's ETag names it.
GALLERY_VERSION = "2"
#: The grid's square thumbnails, in CSS pixels (and twice that for 2x screens).
GRID_SIDE = 200
#: Widths offered for `srcset` on an image's page (each no wider than the image).
COMMON_WIDTHS = (320, 640, 960, 1280, 1920)
#: The width of the image shown on its page.
PAGE_IMAGE_WIDTH = 1280
#: Displayed sizes remembered, one per (path, local version): 100 pages of 200 files.
SIZE_MEMO_ENTRIES = 20_000
#: How long a sizes job may go on starting files (it returns what it found by then), and how
#: long a page view waits for it at most (then the page is shown without the missing sizes).
SIZES_BUDGET_S = 2.0
SIZES_WAIT_S = 5.0


class InvalidPage(Exception):
    """A `?page=` that is not a page of the folder (400)."""


@dataclass(frozen=True, slots=True)
class GalleryLinks:
    """Builds the server's URLs for a path below the root, signed as the server requires."""

    thumbnail_prefix: str
    info_prefix: str
    view_prefix: str
    signer: Signer | None = None
    sign_originals: bool = False

    def original(self, path: str) -> str:
        return self._signed("", quote_path(path), self.sign_originals)

    def info(self, path: str) -> str:
        return self._signed(self.info_prefix, quote_path(path), self.sign_originals)

    def thumbnail(self, spec: str, path: str) -> str:
        return self._signed(self.thumbnail_prefix, f"{spec}/{quote_path(path)}", True)

    def view(self, path: str) -> str:
        return f"{self.view_prefix}/{quote_path(path)}"

    @staticmethod
    def folder(relative: str) -> str:
        return "/" + (quote_path(relative) + "/" if relative else "")

    def _signed(self, prefix: str, rest: str, signed: bool) -> str:
        if signed and self.signer is not None:
            return f"{prefix}/{self.signer.sign(rest.encode('ascii'))}/{rest}"
        return f"{prefix}/{rest}"

    def fingerprint(self) -> str:
        signer = "" if self.signer is None else self.signer.sign(b"fingerprint")
        return f"{self.thumbnail_prefix}|{self.info_prefix}|{self.view_prefix}|{signer}|{self.sign_originals}"


def quote_path(path: str) -> str:
    """`path` percent-encoded segment by segment (`#`, `?`, `%`, spaces and non-ASCII included)."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


# --- the page's fixed parts, and the policy that allows exactly them ---------------------------

STYLE = """
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1b1b1f;--muted:#55555f;--card:#f2f2f5;--line:#d0d0d8;
--link:#0b57d0;--focus:#b3261e;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.45}
@media (prefers-color-scheme:dark){:root{--bg:#131316;--fg:#e6e6ea;--muted:#a9a9b4;--card:#1f1f24;
--line:#3a3a44;--link:#a8c7fa;--focus:#ffb4ab}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg)}
header,main,footer{max-width:1200px;margin:0 auto;padding:0.75rem 1rem}
a{color:var(--link)}
a:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible{outline:3px solid var(--focus);
outline-offset:2px}
h1{font-size:1.4rem;margin:0.5rem 0;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:1.25rem 0 0.5rem}
.crumbs ol{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:0.25rem}
.crumbs li+li::before{content:"/";color:var(--muted);margin-right:0.25rem}
.folders{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:0.5rem}
.folders a{display:inline-block;padding:0.35rem 0.7rem;background:var(--card);border:1px solid var(--line);
border-radius:6px;text-decoration:none;overflow-wrap:anywhere}
.grid{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:0.75rem}
.grid a{display:block;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:0.4rem;
text-decoration:none;color:var(--fg)}
.grid img{display:block;width:100%;height:auto;aspect-ratio:1;object-fit:cover;border-radius:4px;background:var(--line)}
.name{display:block;font-size:0.85rem;margin-top:0.3rem;overflow-wrap:anywhere}
.size{display:block;font-size:0.8rem;color:var(--muted);font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}
.pages{display:flex;gap:1rem;align-items:center;margin:1rem 0}
figure{margin:0}
figure img{max-width:100%;height:auto;background:var(--card);border-radius:6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:0.2rem 1rem}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.swatch{display:inline-block;width:1em;height:1em;border:1px solid var(--line);vertical-align:middle}
.copy{display:flex;gap:0.5rem;align-items:flex-start;margin:0.4rem 0}
.copy label{min-width:7rem;color:var(--muted)}
.copy textarea,.copy input{flex:1;font:0.85rem ui-monospace,monospace;background:var(--card);color:var(--fg);
border:1px solid var(--line);border-radius:4px;padding:0.3rem}
button{font:inherit;padding:0.25rem 0.7rem;border-radius:4px;border:1px solid var(--line);background:var(--card);
color:var(--fg);cursor:pointer}
"""

# Copy buttons: hidden until this runs (the page works without it). No inline handlers.
SCRIPT = """
for(const b of document.querySelectorAll("button[data-copy]")){b.hidden=false;
b.addEventListener("click",()=>{const f=document.getElementById(b.dataset.copy);f.select();
const done=()=>{b.textContent="Copied";setTimeout(()=>{b.textContent="Copy"},1500)};
if(navigator.clipboard){navigator.clipboard.writeText(f.value).then(done,()=>{})}else{done()}})}
"""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = (
    f"default-src 'none'; img-src 'self'; style-src 'sha256-{_sha256(STYLE)}'; "
    f"script-src 'sha256-{_sha256(SCRIPT)}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "cache-control": "no-cache",
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _document(title: str, crumbs: str, body: str, *, script: bool = False) -> str:
    tail = f"<script>{SCRIPT}</script>" if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><nav class="crumbs" aria-label="Breadcrumb">{crumbs}</nav></header>'
        f"<main>{body}</main>{tail}</body></html>"
    )


class Gallery:
    """The gallery's pages, from a `FolderLister` (what a folder holds) and the info service
    (an image's facts)."""

    def __init__(self, *, lister: FolderLister, info: InfoService, links: GalleryLinks, page_size: int) -> None:
        self.lister = lister
        self.info = info
        self.links = links
        self.page_size = page_size
        self._fingerprint = links.fingerprint()
        # (path, *Source.version) -> displayed size, or None when that version has none to show.
        self._sizes: LRUCache[tuple[str, int, int], Size] = LRUCache(maxsize=SIZE_MEMO_ENTRIES)
        self.size_jobs = 0  # sizes jobs sent to the render processes, for tests and measurements

    # --- folders ------------------------------------------------------------------------------

    async def folder_page(self, folder: str, headers: Mapping[str, str], query: bytes) -> Response:
        """The page of `folder` ("" or "a/b/"); `NotFound`, or `InvalidPage` for a bad `?page=`."""
        relative = folder.removesuffix("/")
        if folder and not folder.endswith("/"):
            raise NotFound("a folder page's path ends with /")
        listing = await anyio.to_thread.run_sync(self.lister.listing, relative)
        pages = max(1, math.ceil(len(listing.images) / self.page_size))
        page = _page_number(query, pages)
        start = (page - 1) * self.page_size
        shown = listing.images[start : start + self.page_size]
        sizes = await self.sizes([_join(relative, name) for name in shown])
        sizes_text = ";".join("-" if size is None else f"{size[0]}x{size[1]}" for size in sizes)
        etag = self._etag("folder", listing.digest, str(page), str(self.page_size), sizes_text)
        if is_not_modified(headers, etag, 0):
            return EncodedResponse(304, encode_head({"etag": etag, "cache-control": "no-cache"}))
        html = self._folder_html(listing, page, pages, sizes)
        return _html_response(html, etag)

    async def sizes(self, paths: list[str]) -> list[Size]:
        """The displayed size of each of `paths` (None: not known), from the memo, and for the
        rest from one job in a render process. Never raises for a size: a file gone, a pool busy
        or a job cut short leave that size None (and, but for an answer of the job, unmemoised)."""
        sources = await anyio.to_thread.run_sync(self._resolve_all, paths)
        keys = [None if source is None else (source.relative, *source.version) for source in sources]
        sizes: list[Size] = [None if key is None else self._sizes.get(key) for key in keys]
        missing = [i for i, key in enumerate(keys) if key is not None and key not in self._sizes]
        if not missing:
            return sizes
        info = self.info
        batch = [sources[i] for i in missing]
        self.size_jobs += 1
        found: list[Size] = []
        with anyio.move_on_after(SIZES_WAIT_S):
            try:
                # Half the pool's deadline at most: the job returns what it found before it is killed.
                budget = min(SIZES_BUDGET_S, info.pool.timeout_s / 2)
                found = await info.pool.run(displayed_sizes, info.originals, batch, info.limits, budget)
            except (RenderUnavailable, ImageError):  # busy, past its deadline, its process died
                found = []
            except Exception:  # the store's own trouble (EMFILE, EIO…): the page goes on without sizes
                logger.warning("gallery: finding %d sizes failed", len(batch), exc_info=True)
                found = []
        for i, size in zip(missing, found, strict=False):  # files the job did not reach: next time
            self._sizes[keys[i]] = sizes[i] = size  # type: ignore[index]
        return sizes

    def _resolve_all(self, paths: list[str]) -> list[Source | None]:
        """Each path's current version, by `resolve`'s rules (None: gone since the listing)."""
        found: list[Source | None] = []
        for path in paths:
            try:
                found.append(self.info.originals.resolve(path))
            except NotFound:
                found.append(None)
        return found

    def _folder_html(self, listing: FolderListing, page: int, pages: int, sizes: list[Size]) -> str:
        links = self.links
        relative = listing.relative
        title = "/" + (relative + "/" if relative else "")
        parts = [f"<h1>Index of {escape(title)}</h1>"]
        if listing.folders:
            items = "".join(
                f'<li><a href="{escape(links.folder(_join(relative, name)))}">{escape(name)}/</a></li>'
                for name in listing.folders
            )
            parts.append(f'<h2 id="folders">Folders</h2><ul class="folders" aria-labelledby="folders">{items}</ul>')
        start = (page - 1) * self.page_size
        shown = listing.images[start : start + self.page_size]
        count = len(listing.images)
        summary = f"{count} image{'s' if count != 1 else ''}"
        if pages > 1:
            summary += f", {start + 1}–{start + len(shown)} shown"
        parts.append(f'<h2 id="images">Images <span class="muted">({escape(summary)})</span></h2>')
        if shown:
            side = GRID_SIDE
            cells = []
            for name, size in zip(shown, sizes, strict=True):
                path = _join(relative, name)
                size_html = "" if size is None else f'<span class="size">{escape(f"{size[0]} × {size[1]}")}</span>'
                one = links.thumbnail(f"{side}x{side},cover", path)
                two = links.thumbnail(f"{side}x{side}@2x,cover", path)
                cells.append(
                    f'<li><a href="{escape(links.view(path))}">'
                    f'<img src="{escape(one)}" srcset="{escape(one)} 1x, {escape(two)} 2x" width="{side}" '
                    f'height="{side}" loading="lazy" decoding="async" alt="{escape(name)}">'
                    f'<span class="name">{escape(name)}</span>{size_html}</a></li>'
                )
            parts.append(f'<ul class="grid" aria-labelledby="images">{"".join(cells)}</ul>')
        elif not listing.folders:
            parts.append('<p class="muted">This folder is empty.</p>')
        if pages > 1:
            parts.append(self._pager(relative, page, pages))
        return _document(f"Index of {title}", self._crumbs(relative, last_is_page=True), "".join(parts))

    def _pager(self, relative: str, page: int, pages: int) -> str:
        base = self.links.folder(relative)
        previous = (f'<a rel="prev" href="{escape(base)}?page={page - 1}">← Previous</a>' if page > 1
                    else '<span class="muted">← Previous</span>')
        following = (f'<a rel="next" href="{escape(base)}?page={page + 1}">Next →</a>' if page < pages
                     else '<span class="muted">Next →</span>')
        return f'<nav class="pages" aria-label="Pages">{previous}<span>Page {page} of {pages}</span>{following}</nav>'

    def _crumbs(self, relative: str, *, last_is_page: bool) -> str:
        segments = relative.split("/") if relative else []
        items = [f'<li><a href="/">Home</a></li>']
        for index, segment in enumerate(segments):
            target = self.links.folder("/".join(segments[: index + 1]))
            current = ' aria-current="page"' if last_is_page and index == len(segments) - 1 else ""
            items.append(f'<li><a href="{escape(target)}"{current}>{escape(segment)}</a></li>')
        return f"<ol>{''.join(items)}</ol>"

    # --- /{folder} -> /{folder}/ ----------------------------------------------------------------

    async def redirect(self, path: str, raw_path: bytes, query: bytes) -> Response | None:
        """A 308 to the page of the folder `path` names, or None when it names no folder."""
        if not path or path.endswith("/"):
            return None
        if not await anyio.to_thread.run_sync(self.lister.is_folder, path):
            return None
        location = raw_path.decode("ascii") + "/" + ("?" + query.decode("latin-1") if query else "")
        return EncodedResponse(308, encode_head({"location": location, "cache-control": "no-cache",
                                                 "content-length": "0"}))

    # --- one image ------------------------------------------------------------------------------

    async def image_page(self, path: str, headers: Mapping[str, str], host: str | None, scheme: str) -> Response:
        """The page of the image `path`; `NotFound` when it is not one the server serves."""
        plan = await self.info.plan(path)
        origin = f"{scheme}://{host}" if host else ""
        etag = self._etag("image", plan.etag, origin)
        if is_not_modified(headers, etag, 0):
            return EncodedResponse(304, encode_head({"etag": etag, "cache-control": "no-cache"}))
        try:
            entry = self.info.cached(plan) or await self.info.entry(plan)
            facts: dict | None = json.loads(entry.stored.body)
        except ImageError:
            facts = None
        return _html_response(self._image_html(path, facts, origin), etag)

    def _image_html(self, path: str, facts: dict | None, origin: str) -> str:
        links = self.links
        name = path.rpartition("/")[2]
        folder = path.rpartition("/")[0]
        parts = [f"<h1>{escape(name)}</h1>"]
        if facts is None:
            parts.append('<p class="muted">This file cannot be decoded as an image.</p>')
            parts.append(f'<p><a href="{escape(links.original(path))}">The original file</a></p>')
            return _document(name, self._crumbs(folder, last_is_page=False), "".join(parts))
        width, height = facts["width"], facts["height"]
        widths = [w for w in COMMON_WIDTHS if w < width] + [width]
        shown = min(width, PAGE_IMAGE_WIDTH)
        shown_height = max(1, round(height * shown / width))
        srcset = ", ".join(f"{links.thumbnail(f'{w}x', path)} {w}w" for w in widths)
        src = links.thumbnail(f"{shown}x", path)
        sizes = f"(max-width: {shown}px) 100vw, {shown}px"
        parts.append(
            f'<figure><img src="{escape(src)}" srcset="{escape(srcset)}" sizes="{escape(sizes)}" width="{shown}" '
            f'height="{shown_height}" alt="{escape(name)}"></figure>'
        )
        color = facts["dominant_color"]
        rows = [
            ("Size", f"{width} × {height} px"),
            ("Format", f"{facts['format']} ({facts['media_type']})"),
            ("Bytes", f"{facts['bytes']:,}"),
            ("EXIF orientation", str(facts["orientation"])),
            ("Frames", f"{facts['frames']}{' (animated)' if facts['animated'] else ''}"),
            ("Transparency", "yes" if facts["has_alpha"] else "no"),
            ("Last modified", facts["last_modified"]),
        ]
        facts_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
        facts_html += (f'<dt>Dominant colour</dt><dd><svg class="swatch" viewBox="0 0 1 1" aria-hidden="true">'
                       f'<rect width="1" height="1" fill="{escape(color)}"/></svg> <code>{escape(color)}</code></dd>'
                       f"<dt>BlurHash</dt><dd><code>{escape(facts['blurhash'])}</code></dd>")
        parts.append(f'<h2 id="facts">Facts</h2><dl aria-labelledby="facts">{facts_html}</dl>')
        snippet = (f'<img src="{origin}{src}"\n     srcset="'
                   + ",\n             ".join(f"{origin}{links.thumbnail(f'{w}x', path)} {w}w" for w in widths)
                   + f'"\n     sizes="{sizes}"\n     width="{shown}" height="{shown_height}" loading="lazy"'
                   + f' alt="{escape(name, quote=True)}">')
        copies = [
            ("original", "Original", origin + links.original(path)),
            ("info", "Info (JSON)", origin + links.info(path)),
            *((f"w{w}", f"{w} px wide", origin + links.thumbnail(f"{w}x", path)) for w in widths),
            ("square", f"{GRID_SIDE} px square", origin + links.thumbnail(f"{GRID_SIDE}x{GRID_SIDE},cover", path)),
        ]
        rows_html = "".join(
            f'<div class="copy"><label for="u-{key}">{escape(label)}</label>'
            f'<input id="u-{key}" readonly value="{escape(url)}">'
            f'<button type="button" data-copy="u-{key}" hidden>Copy</button></div>'
            for key, label, url in copies
        )
        rows_html += (f'<div class="copy"><label for="u-srcset">&lt;img srcset&gt;</label>'
                      f'<textarea id="u-srcset" readonly rows="{len(widths) + 4}">{escape(snippet)}</textarea>'
                      f'<button type="button" data-copy="u-srcset" hidden>Copy</button></div>')
        parts.append(f'<h2 id="urls">URLs</h2><section aria-labelledby="urls">{rows_html}</section>')
        parts.append(f'<p><a href="{escape(links.original(path))}">Open the original</a> · '
                     f'<a href="{escape(links.folder(folder))}">Back to the folder</a></p>')
        return _document(name, self._crumbs(folder, last_is_page=False), "".join(parts), script=True)

    def _etag(self, *parts: str) -> str:
        text = "\0".join((GALLERY_VERSION, self._fingerprint, *parts))
        return '"g' + hashlib.blake2b(text.encode(), digest_size=12).hexdigest() + '"'


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _page_number(query: bytes, pages: int) -> int:
    values = parse_qs(query.decode("latin-1")).get("page")
    if not values:
        return 1
    text = values[-1]
    if not text.isdigit() or not 1 <= int(text) <= pages:
        raise InvalidPage(f"page must be a whole number from 1 to {pages}")
    return int(text)


def _html_response(html: str, etag: str) -> EncodedResponse:
    body = html.encode()
    head = {**PAGE_HEADERS, "etag": etag, "content-type": "text/html; charset=utf-8", "content-length": str(len(body))}
    return EncodedResponse(200, encode_head(head), body)
