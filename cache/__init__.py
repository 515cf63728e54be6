"""Where results are kept. HTTP-free: keys are hashables or hex digests, values are bytes.

    CoalescingCache     the in-process, byte-bounded LRU with one production per key (cache.lru)
    ResultStore         the protocol of a tier shared by workers and nodes (cache.store)
    ├── MemoryResultStore   a dict: the reference implementation
    StoredResult        what a shared tier keeps: body, media type, ETag, source mtime, Vary
"""

from cache.lru import CacheStats, CoalescingCache
from cache.store import LAYOUT_VERSION, CorruptEntry, MemoryResultStore, ResultStore, StoredResult

__all__ = [
    "LAYOUT_VERSION", "CacheStats", "CoalescingCache", "CorruptEntry", "MemoryResultStore", "ResultStore",
    "StoredResult",
]
