"""Where results are kept. HTTP-free: keys are hashables or hex digests, values are bytes.

    CoalescingCache     the in-process, byte-bounded LRU with one production per key (cache.lru)
    ResultStore         the protocol of a tier shared by workers and nodes (cache.store)
    ├── MemoryResultStore   a dict: the reference implementation
    ├── DiskStore           files in one folder, for the processes of one machine (cache.disk)
    ├── RedisStore          Redis, for every node (cache.redis_store)
    └── GuardedStore        any of them, made never to raise: failures are misses (cache.guarded)
    StoredResult        what a shared tier keeps: body, media type, ETag, source mtime, Vary
    UnusableStore       a tier that cannot be used as configured: start-up stops with its message
"""

from cache.disk import DiskStore
from cache.guarded import GuardedStore
from cache.lru import CacheStats, CoalescingCache
from cache.redis_store import RedisStore
from cache.store import (
    LAYOUT_VERSION,
    CorruptEntry,
    MemoryResultStore,
    ResultStore,
    StoredResult,
    UnusableStore,
)

__all__ = [
    "LAYOUT_VERSION", "CacheStats", "CoalescingCache", "CorruptEntry", "DiskStore", "GuardedStore",
    "MemoryResultStore", "RedisStore", "ResultStore", "StoredResult", "UnusableStore",
]
