"""The `OriginalStore` protocol, and `MemoryStore`: originals held in a dict (tests, fixtures).

A store returns data or raises `NotFound`/`SourceChanged`; it never decides an HTTP status.
Every implementation runs the one contract suite in `tests/contract/`.
"""

from __future__ import annotations

import io
import time
from typing import BinaryIO, Protocol, runtime_checkable

from storage.fingerprints import fingerprint_bytes
from storage.source import NotFound, Source, SourceChanged, check_lexically


@runtime_checkable
class OriginalStore(Protocol):
    """Where originals come from. Methods block (a few syscalls at most for `resolve`)."""

    def resolve(self, url_path: str) -> Source:
        """The original `url_path` names (decoded, no leading "/"), or `NotFound`. Its
        `fingerprint` is set when the store already knows it (else None: see `identify`)."""
        ...

    async def identify(self, source: Source) -> Source:
        """`source` with its fingerprint, so that `source.identity` names its content: known,
        or hashed off the event loop (once per version). Raises `NotFound`/`SourceChanged`."""
        ...

    def read(self, source: Source, *, max_bytes: int) -> bytes:
        """All bytes of exactly the version `source` names (at most `max_bytes + 1` are read);
        `SourceChanged` if it is another version now, `NotFound` if it is gone."""
        ...

    def open(self, source: Source) -> BinaryIO:
        """A readable file of exactly the version `source` names; the caller closes it."""
        ...

    def unchanged(self, source: Source, file: BinaryIO) -> bool:
        """Whether `file` (from `open`) still holds the version `source` names."""
        ...

    def still_names(self, source: Source) -> bool:
        """Whether `source`'s path still names exactly the version `source` is (a stat at most,
        never a read): what a cache of answers checks before it answers again."""
        ...


class MemoryStore:
    """An `OriginalStore` over a dict of path -> bytes; `put` replaces a version."""

    def __init__(self, extensions: frozenset[str] | set[str] | tuple[str, ...]) -> None:
        self.extensions = frozenset(extensions)
        self._files: dict[str, tuple[bytes, int, str]] = {}  # path -> (bytes, mtime_ns, fingerprint)

    def put(self, url_path: str, data: bytes) -> None:
        previous = self._files.get(url_path)
        mtime_ns = time.time_ns()
        if previous is not None and previous[1] >= mtime_ns:
            mtime_ns = previous[1] + 1
        self._files[url_path] = (data, mtime_ns, fingerprint_bytes(data))

    def delete(self, url_path: str) -> None:
        self._files.pop(url_path, None)

    def resolve(self, url_path: str) -> Source:
        check_lexically(url_path, self.extensions)
        found = self._files.get(url_path)
        if found is None:
            raise NotFound(f"{url_path!r} is not stored")
        data, mtime_ns, fingerprint = found
        return Source(relative=url_path, size=len(data), mtime_ns=mtime_ns, fingerprint=fingerprint)

    async def identify(self, source: Source) -> Source:
        return source  # fingerprinted when put

    def read(self, source: Source, *, max_bytes: int) -> bytes:
        return self._current(source)[: max_bytes + 1]

    def open(self, source: Source) -> BinaryIO:
        return io.BytesIO(self._current(source))

    def unchanged(self, source: Source, file: BinaryIO) -> bool:
        found = self._files.get(source.relative)
        return found is not None and (len(found[0]), found[1], found[2]) == source.identity

    def still_names(self, source: Source) -> bool:
        found = self._files.get(source.relative)
        return found is not None and (len(found[0]), found[1], found[2]) == source.identity

    def _current(self, source: Source) -> bytes:
        found = self._files.get(source.relative)
        if found is None:
            raise NotFound(f"{source.relative!r} is gone")
        data, mtime_ns, fingerprint = found
        if (len(data), mtime_ns, fingerprint) != source.identity:
            raise SourceChanged(source.relative)
        return data
