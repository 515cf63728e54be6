"""GuardedStore over a store that fails on demand: never raises, one log line per burst, a breaker
that skips the store for retry_after_s and then lets one probe through."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from cache import GuardedStore, MemoryResultStore, ResultStore, StoredResult
from tests.contract.conftest import digest_of, stored_result

RETRY_AFTER_S = 0.2


class FlakyStore(MemoryResultStore):
    """A MemoryResultStore that waits for `gate` (when set), then raises `failure` (when set); counts calls."""

    kind = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.calls = 0

    async def _maybe_fail(self) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure

    async def get(self, digest: str) -> StoredResult | None:
        await self._maybe_fail()
        return await super().get(digest)

    async def put(self, digest: str, result: StoredResult) -> None:
        await self._maybe_fail()
        await super().put(digest, result)

    async def lock(self, digest: str, ttl_s: float) -> bool:
        await self._maybe_fail()
        return await super().lock(digest, ttl_s)

    async def unlock(self, digest: str) -> None:
        await self._maybe_fail()
        await super().unlock(digest)

    async def stats(self) -> dict[str, Any]:
        await self._maybe_fail()
        return await super().stats()


@pytest.fixture
def flaky() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def guarded(flaky: FlakyStore) -> GuardedStore:
    return GuardedStore(flaky, logger=logging.getLogger("test.guarded"), retry_after_s=RETRY_AFTER_S)


class TestWorkingStore:
    """Over a working store it answers as the store does, and counts hits, misses and writes."""

    async def test_counts(self, guarded: GuardedStore) -> None:
        assert isinstance(guarded, ResultStore)
        assert await guarded.get(digest_of("a")) is None
        await guarded.put(digest_of("a"), stored_result())
        assert await guarded.get(digest_of("a")) == stored_result()
        assert await guarded.lock(digest_of("a"), 10.0) is True
        assert await guarded.lock(digest_of("a"), 10.0) is False
        facts = await guarded.stats()
        assert facts["entries"] == 1  # the inner store's facts, merged
        expected = {
            "kind": "flaky", "reachable": True, "available": True,
            "hits": 1, "misses": 1, "errors": 0, "skipped": 0, "writes": 1,
        }
        assert {key: facts[key] for key in expected} == expected


class TestFailures:
    """A failing store is a miss; the breaker then skips it, and one probe finds it working again."""

    async def test_every_call_answers_as_a_miss(self, guarded: GuardedStore, flaky: FlakyStore) -> None:
        flaky.failure = OSError(28, "No space left on device")
        assert await guarded.get(digest_of("a")) is None
        await guarded.put(digest_of("a"), stored_result())
        assert await guarded.lock(digest_of("a"), 10.0) is True
        await guarded.unlock(digest_of("a"))
        assert (guarded.errors, guarded.skipped, flaky.calls) == (1, 3, 1)
        facts = await guarded.stats()
        assert (facts["available"], facts["reachable"], facts["kind"]) == (False, False, "flaky")

    async def test_one_probe_after_retry_after(self, guarded: GuardedStore, flaky: FlakyStore) -> None:
        flaky.failure = ConnectionError("refused")
        await guarded.get(digest_of("a"))
        await asyncio.sleep(RETRY_AFTER_S + 0.05)
        flaky.failure, flaky.gate = None, asyncio.Event()
        probe = asyncio.ensure_future(guarded.get(digest_of("a")))
        await asyncio.sleep(0.01)
        assert [await guarded.get(digest_of("a")) for _ in range(5)] == [None] * 5  # skipped meanwhile
        assert (flaky.calls, guarded.skipped) == (2, 5)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        flaky.gate = None
        await guarded.put(digest_of("a"), stored_result())  # a cancelled probe does not jam the breaker
        assert guarded.available is True
        assert await guarded.get(digest_of("a")) == stored_result()

    async def test_a_failed_probe_reopens(self, guarded: GuardedStore, flaky: FlakyStore) -> None:
        flaky.failure = TimeoutError()
        await guarded.get(digest_of("a"))
        await asyncio.sleep(RETRY_AFTER_S + 0.05)
        await guarded.get(digest_of("a"))
        await guarded.get(digest_of("a"))
        assert (guarded.errors, guarded.skipped, flaky.calls) == (2, 1, 2)

    async def test_logged_once_per_burst(self, flaky: FlakyStore, caplog) -> None:
        guarded = GuardedStore(flaky, logger=logging.getLogger("test.guarded"), retry_after_s=0.02)
        with caplog.at_level(logging.INFO, logger="test.guarded"):
            for _ in range(2):  # two bursts
                flaky.failure = OSError("disk gone")
                for _ in range(3):
                    await guarded.get(digest_of("a"))
                    await asyncio.sleep(0.05)
                flaky.failure = None
                await guarded.get(digest_of("a"))
        records = [(record.levelname, record.getMessage()) for record in caplog.records]
        assert [level for level, _ in records] == ["WARNING", "INFO", "WARNING", "INFO"]
        assert "disk gone" in records[0][1] and "working again" in records[1][1]
        assert guarded.errors == 6

    async def test_a_call_that_began_before_the_failure_does_not_close_the_breaker(
        self, guarded: GuardedStore, flaky: FlakyStore
    ) -> None:
        gate = flaky.gate = asyncio.Event()
        slow = asyncio.ensure_future(guarded.put(digest_of("a"), stored_result()))
        await asyncio.sleep(0.01)
        flaky.gate, flaky.failure = None, OSError("broken")
        assert await guarded.get(digest_of("a")) is None
        flaky.failure = None
        gate.set()
        await slow  # succeeds, after the failure
        assert (guarded.writes, guarded.available) == (1, False)
        assert await guarded.get(digest_of("a")) is None  # still skipped until the probe
        assert guarded.skipped == 1


class TestTimeout:
    """With timeout_s, a store that hangs is a miss after timeout_s."""

    async def test_a_hanging_store(self, flaky: FlakyStore) -> None:
        guarded = GuardedStore(flaky, logger=logging.getLogger("test.guarded"), retry_after_s=RETRY_AFTER_S, timeout_s=0.1)
        flaky.gate = asyncio.Event()  # never set
        started = time.monotonic()
        assert await guarded.get(digest_of("a")) is None
        assert await guarded.lock(digest_of("a"), 10.0) is True
        assert time.monotonic() - started < 0.1 + 1
        assert (guarded.errors, guarded.skipped) == (1, 1)
        assert (await guarded.stats())["reachable"] is False
