"""A byte-bounded LRU (cachetools) in front of a producer, sharing one production per key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import LRUCache

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    coalesced: int
    oversize: int


class _CountingLRU(LRUCache):
    """cachetools' LRU, counting the entries it evicts to make room."""

    evictions = 0

    def popitem(self):
        item = super().popitem()
        self.evictions += 1
        return item


class CoalescingCache(Generic[V]):
    """Values kept up to `max_bytes` in total (as measured by `sizeof`), least recently used first out.

    `get_or_create(key, produce)` returns the cached value, or runs `produce()` once however many
    callers ask for the same missing key at the same time: they all await that one task. The task
    runs on its own, so a caller that goes away (a client disconnecting) neither cancels the
    production for the others nor wastes it. A failed production is not cached. A value larger
    than the whole budget is returned but not kept.

    Not thread-safe, by design: use it from the event loop's thread only. There is no `await`
    between a lookup and the matching insert, so it needs no lock.
    """

    def __init__(self, max_bytes: int, *, sizeof: Callable[[V], int]) -> None:
        self._lru: _CountingLRU = _CountingLRU(maxsize=max_bytes, getsizeof=sizeof)
        self._pending: dict[Hashable, asyncio.Task[V]] = {}
        self._hits = self._misses = self._coalesced = self._oversize = 0

    def get(self, key: Hashable) -> V | None:
        """The cached value (marking it recently used), or `None`. Counts a hit, not a miss."""
        value = self._lru.get(key)
        if value is not None:
            self._hits += 1
        return value

    async def get_or_create(self, key: Hashable, produce: Callable[[], Awaitable[V]]) -> V:
        value = self.get(key)
        if value is not None:
            return value
        task = self._pending.get(key)
        if task is None:
            self._misses += 1
            task = asyncio.ensure_future(produce())
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        else:
            self._coalesced += 1
        # shield: a cancelled caller must not cancel the shared task.
        return await asyncio.shield(task)

    def _settle(self, key: Hashable, task: asyncio.Task[V]) -> None:
        del self._pending[key]
        if task.cancelled() or task.exception() is not None:
            return  # exception() also marks it retrieved: no "never retrieved" warning when nobody waits
        self.put(key, task.result())

    def put(self, key: Hashable, value: V) -> bool:
        """Keep `value` under `key` (the least recently used go to make room); False when it is
        larger than the whole budget and so not kept."""
        try:
            self._lru[key] = value
        except ValueError:
            self._oversize += 1
            return False
        return True

    def clear(self) -> None:
        """Forget every entry (productions in flight still finish and are kept)."""
        self._lru.clear()

    def stats(self) -> CacheStats:
        return CacheStats(
            entries=len(self._lru),
            bytes=int(self._lru.currsize),
            max_bytes=int(self._lru.maxsize),
            hits=self._hits,
            misses=self._misses,
            evictions=self._lru.evictions,
            coalesced=self._coalesced,
            oversize=self._oversize,
        )
