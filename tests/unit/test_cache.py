"""The coalescing LRU: byte bound, eviction order, oversize values, failures, shared renders."""

from __future__ import annotations

import asyncio

import pytest

from cache import CoalescingCache


def produce(value: bytes, calls: list[bytes] | None = None, delay: float = 0):
    async def run() -> bytes:
        if calls is not None:
            calls.append(value)
        await asyncio.sleep(delay)
        return value

    return run


class TestByteBound:
    """Entries are kept up to max_bytes of their size, least recently used evicted first."""

    async def test_bound_and_eviction_order(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(100, sizeof=len)
        for key in "abc":
            await cache.get_or_create(key, produce(key.encode() * 40))
        stats = cache.stats()
        assert (stats.entries, stats.bytes, stats.evictions) == (2, 80, 1)
        assert cache.get("a") is None
        assert cache.get("b") == b"b" * 40

    async def test_recent_use_protects_an_entry(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(100, sizeof=len)
        await cache.get_or_create("a", produce(b"a" * 40))
        await cache.get_or_create("b", produce(b"b" * 40))
        assert cache.get("a") is not None  # a is now the most recent
        await cache.get_or_create("c", produce(b"c" * 40))
        assert cache.get("a") is not None
        assert cache.get("b") is None

    async def test_oversize_value_is_returned_not_kept(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(100, sizeof=len)
        await cache.get_or_create("small", produce(b"s" * 10))
        value = await cache.get_or_create("huge", produce(b"h" * 101))
        assert value == b"h" * 101
        stats = cache.stats()
        assert (stats.entries, stats.bytes, stats.oversize) == (1, 10, 1)
        assert cache.get("small") == b"s" * 10

    async def test_hits_and_misses_are_counted(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(100, sizeof=len)
        calls: list[bytes] = []
        for _ in range(3):
            await cache.get_or_create("k", produce(b"v", calls))
        stats = cache.stats()
        assert (stats.hits, stats.misses, len(calls)) == (2, 1, 1)


class TestCoalescing:
    """Concurrent misses for one key share one production."""

    async def test_one_production_for_many_callers(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(1000, sizeof=len)
        calls: list[bytes] = []
        results = await asyncio.gather(*(cache.get_or_create("k", produce(b"v", calls, 0.05)) for _ in range(50)))
        assert results == [b"v"] * 50
        assert calls == [b"v"]
        stats = cache.stats()
        assert (stats.misses, stats.coalesced, stats.entries) == (1, 49, 1)

    async def test_distinct_keys_are_not_shared(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(1000, sizeof=len)
        calls: list[bytes] = []
        await asyncio.gather(*(cache.get_or_create(i, produce(bytes([i]), calls, 0.01)) for i in range(5)))
        assert sorted(calls) == [bytes([i]) for i in range(5)]

    async def test_failure_reaches_every_waiter_and_is_not_cached(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(1000, sizeof=len)
        attempts = 0

        async def failing() -> bytes:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(0.02)
            raise ValueError("broken source")

        results = await asyncio.gather(*(cache.get_or_create("k", failing) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(result, ValueError) for result in results)
        assert attempts == 1
        assert cache.stats().entries == 0
        assert await cache.get_or_create("k", produce(b"fixed")) == b"fixed"

    async def test_cancelled_caller_does_not_cancel_the_others(self) -> None:
        cache: CoalescingCache[bytes] = CoalescingCache(1000, sizeof=len)
        first = asyncio.ensure_future(cache.get_or_create("k", produce(b"v", delay=0.05)))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(cache.get_or_create("k", produce(b"other")))
        first.cancel()
        assert await second == b"v"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert cache.get("k") == b"v"
