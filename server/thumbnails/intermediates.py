"""The intermediate tier: decoded sources kept in a render process's memory, bounded in bytes.

Keyed by the source's version (relative path, size, mtime_ns: what `Source` names) and the class
(server/imaging/intermediate.py), so a source that changes gets new keys and never reuses a stale
intermediate; the old ones age out of the LRU. One per render process, touched by its one job at a
time: no lock. Not shared between processes or nodes: a decoded 1500x1000 intermediate is 4.5 MB,
more than re-decoding it costs to fetch from a disk or Redis tier and unpickle.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import LRUCache

from server.imaging.intermediate import Intermediate, SourceFacts

SourceKey = tuple[str, int, int]  # relative path, size, mtime_ns
#: Facts are a few dozen bytes each; kept for more sources than intermediates fit.
MAX_FACTS = 4096


@dataclass(slots=True)
class IntermediateStats:
    decodes: int = 0  # intermediates decoded (renders that read and decoded their source)
    reused: int = 0  # renders cut from a kept intermediate (no read, no decode)


class IntermediateCache:
    """At most `max_bytes` of intermediate pixels, least recently used dropped first; an
    intermediate larger than the whole budget is used once and not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._images: LRUCache[tuple[SourceKey, int], Intermediate] = LRUCache(
            maxsize=max(1, max_bytes), getsizeof=lambda found: found.nbytes
        )
        self._facts: LRUCache[SourceKey, SourceFacts] = LRUCache(maxsize=MAX_FACTS)
        self.stats = IntermediateStats()

    def facts(self, source: SourceKey) -> SourceFacts | None:
        return self._facts.get(source)

    def get(self, source: SourceKey, eighths: int) -> Intermediate | None:
        return self._images.get((source, eighths))

    def put(self, source: SourceKey, facts: SourceFacts, eighths: int, intermediate: Intermediate) -> None:
        self._facts[source] = facts
        if self.max_bytes <= 0 or intermediate.nbytes > self.max_bytes:
            return
        self._images[(source, eighths)] = intermediate

    @property
    def nbytes(self) -> int:
        return int(self._images.currsize)

    def __len__(self) -> int:
        return len(self._images)
