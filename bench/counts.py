"""What the render-count scenarios measure: a burst of requests, and the renders a log shows.

:func:`burst` sends every URL at once, each on a fresh connection (``Connection: close``), so
the kernel spreads them over a server's worker processes as it would a crowd of new clients,
and returns one :class:`Answer` per URL. :func:`count_renders` counts the lines our server logs
per render (logger ``thumbserver``: ``INFO: rendered <path> <spec> as <format> (<n> bytes)``),
whichever worker process rendered.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from urllib.parse import urlsplit

RENDER_MARK = " rendered "  # in every line our server logs for a render, and in no other


@dataclass(frozen=True)
class Answer:
    """One request of a burst: ``status`` 0 when no response came (``error`` says why);
    ``digest`` identifies the body."""

    url: str
    status: int
    etag: str = ""
    digest: str = ""
    error: str = ""


@dataclass(frozen=True)
class BurstSummary:
    """``failed``: answers other than 200; ``inconsistent``: URLs answered with more than one
    body or ETag (a render that differs between processes or nodes)."""

    requests: int
    distinct: int
    failed: int
    inconsistent: int
    first_error: str = ""


def burst(urls: list[str], *, timeout: float) -> list[Answer]:
    """GET every URL at once on its own connection; all answers within ``timeout`` seconds."""
    return asyncio.run(_burst(urls, timeout))


async def _burst(urls: list[str], timeout: float) -> list[Answer]:
    return list(await asyncio.gather(*(_get(url, timeout) for url in urls)))


async def _get(url: str, timeout: float) -> Answer:
    try:
        return await asyncio.wait_for(_exchange(url), timeout)
    except (OSError, ValueError, asyncio.TimeoutError) as error:
        return Answer(url, 0, error=f"{type(error).__name__}: {error}".rstrip(": "))


async def _exchange(url: str) -> Answer:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "Connection: close\r\n\r\n".encode("ascii"))
        await writer.drain()
        raw = await reader.read()  # to the end: the server closes after its answer
    finally:
        writer.close()
    status, headers, body = parse_response(raw)
    return Answer(url, status, headers.get("etag", ""), blake2b(body, digest_size=16).hexdigest())


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one HTTP/1.1 response read to EOF.

    The body is returned as received (a chunked one keeps its framing: still one digest per
    distinct body). Raises ``ValueError`` when there is no status line and head.
    """
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError(f"incomplete response ({len(raw)} bytes)")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/") or not rest[:3].isdigit():
        raise ValueError(f"not a status line: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(rest[:3]), headers, body


def summarize(answers: list[Answer]) -> BurstSummary:
    """Count the failed answers and the URLs whose answers disagree."""
    variants: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for answer in answers:
        if answer.status == 200:
            variants[answer.url].add((answer.etag, answer.digest))
    failed = [answer for answer in answers if answer.status != 200]
    first_error = ""
    if failed:
        first_error = failed[0].error or f"status {failed[0].status}"
    return BurstSummary(
        requests=len(answers), distinct=len({answer.url for answer in answers}),
        failed=len(failed), inconsistent=sum(1 for found in variants.values() if len(found) > 1),
        first_error=first_error,
    )


def count_renders(text: str) -> int:
    """How many renders a server log records."""
    return sum(1 for line in text.splitlines() if RENDER_MARK in line)


def renders_in(*logs: Path) -> int:
    """:func:`count_renders` over log files (a missing file counts 0)."""
    total = 0
    for log in logs:
        try:
            total += count_renders(log.read_text(errors="replace"))
        except FileNotFoundError:
            continue
    return total
