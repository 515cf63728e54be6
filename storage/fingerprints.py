"""Fingerprints of an original's bytes, so that its identity names its content on every node.

Size and mtime alone name a file for nginx, but not for a cache shared by a fleet: a file renamed
into place with the same size and mtime (`cp -p`, `rsync -a` of an edited file, build tools that
pin mtimes) would keep the old thumbnails for ever. Inode and ctime tell versions apart on one
machine but differ between machines that hold the same file. So the bytes are hashed once per
version (size, mtime, device, inode, ctime: `Source.version`) per process, off the event loop, and
the hash joins size and mtime in `Source.identity`.

xxHash's XXH3-128 (the `xxhash` package): about 7 GB/s here against 0.4 GB/s for BLAKE2b, so a
10 MB photo costs ~1.5 ms once; it detects changes, it is not a defence against someone who can
already write into the image root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import BinaryIO

import xxhash
from cachetools import LRUCache

#: Versions remembered per process: a few hundred bytes each.
MAX_KNOWN = 65536
#: What a hash reads at a time.
CHUNK_BYTES = 1 << 20


def fingerprint_bytes(data: bytes | memoryview) -> str:
    """The fingerprint of `data`: 32 hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def fingerprint_file(file: BinaryIO, size: int) -> str:
    """The fingerprint of the first `size` bytes of the open `file`, read in CHUNK_BYTES pieces
    into one buffer (a mapping of the whole file would count it all in the process's RSS)."""
    digest = xxhash.xxh3_128()
    buffer = bytearray(min(CHUNK_BYTES, max(size, 1)))
    view = memoryview(buffer)
    left = size
    while left > 0:
        got = file.readinto(view[: min(left, len(buffer))])
        if not got:
            break  # shorter than its stat: the caller's version check after the read says so
        digest.update(view[:got])
        left -= got
    return digest.hexdigest()


class Fingerprints:
    """Fingerprints by version, bounded (least recently used dropped), computed once per version
    even when many requests ask at once. Touched from the event loop only."""

    def __init__(self, max_known: int = MAX_KNOWN) -> None:
        self._known: LRUCache[Hashable, str] = LRUCache(maxsize=max_known)
        self._pending: dict[Hashable, asyncio.Future[str]] = {}

    def known(self, version: Hashable) -> str | None:
        return self._known.get(version)

    async def of(self, version: Hashable, compute: Callable[[], str]) -> str:
        """The fingerprint of `version`: remembered, or `compute()` run in a thread (blocking
        reads and hashing stay off the event loop). Raises what `compute` raises."""
        found = self._known.get(version)
        if found is not None:
            return found
        pending = self._pending.get(version)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(compute))
            self._pending[version] = pending
            pending.add_done_callback(lambda done: self._settle(version, done))
        # Shielded: one waiter giving up (a client gone) must not cancel the others' hash.
        return await asyncio.shield(pending)

    def _settle(self, version: Hashable, done: asyncio.Future[str]) -> None:
        self._pending.pop(version, None)
        if not done.cancelled() and done.exception() is None:
            self._known[version] = done.result()
