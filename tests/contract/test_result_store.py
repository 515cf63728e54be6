"""The contract every `ResultStore` keeps: the same tests for memory, disk and Redis."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from cache import ResultStore
from tests.contract.conftest import digest_of, stored_result


def skip_unless_shared(store: ResultStore) -> None:
    if store.kind == "memory":
        pytest.skip("a MemoryResultStore shares nothing with another object")


class TestMiss:
    """A digest never stored is a miss: None."""

    async def test_get_of_an_unknown_digest(self, result_store: ResultStore) -> None:
        assert await result_store.get(digest_of("never stored")) is None


class TestRoundTrip:
    """What is put comes back equal, field by field."""

    @pytest.mark.parametrize("vary", ["Accept", None])
    async def test_put_then_get(self, result_store: ResultStore, vary: str | None) -> None:
        digest = digest_of("a")
        stored = stored_result(b"\x00\xffwebp bytes\r\n", vary=vary)
        await result_store.put(digest, stored)
        found = await result_store.get(digest)
        assert found == stored
        assert (found.body, found.media_type, found.etag, found.source_mtime_ns, found.vary) == (
            stored.body, stored.media_type, stored.etag, stored.source_mtime_ns, vary,
        )

    async def test_empty_body(self, result_store: ResultStore) -> None:
        await result_store.put(digest_of("empty"), stored_result(b""))
        assert await result_store.get(digest_of("empty")) == stored_result(b"")

    async def test_large_body(self, result_store: ResultStore) -> None:
        body = os.urandom(2 * 1024 * 1024)
        await result_store.put(digest_of("large"), stored_result(body))
        found = await result_store.get(digest_of("large"))
        assert found is not None and found.size == len(body) and found.body == body

    async def test_a_long_digest(self, result_store: ResultStore) -> None:
        digest = "f" * 128
        await result_store.put(digest, stored_result(b"sha-512 sized key"))
        assert await result_store.get(digest) == stored_result(b"sha-512 sized key")


class TestOverwrite:
    """A second put for one digest replaces the first."""

    async def test_last_put_wins(self, result_store: ResultStore) -> None:
        digest = digest_of("a")
        await result_store.put(digest, stored_result(b"first"))
        await result_store.put(digest, stored_result(b"second, longer than the first", vary=None))
        assert await result_store.get(digest) == stored_result(b"second, longer than the first", vary=None)


class TestDistinctDigests:
    """Entries under distinct digests are independent."""

    async def test_each_digest_has_its_own_entry(self, result_store: ResultStore) -> None:
        digests = [digest_of(str(n)) for n in range(20)]
        for n, digest in enumerate(digests):
            await result_store.put(digest, stored_result(b"body %d" % n))
        await result_store.put(digests[3], stored_result(b"replaced"))
        found = [await result_store.get(digest) for digest in digests]
        assert found[3] == stored_result(b"replaced")
        assert [entry.body for n, entry in enumerate(found) if n != 3] == [b"body %d" % n for n in range(20) if n != 3]

    async def test_digests_sharing_a_prefix(self, result_store: ResultStore) -> None:
        first, second = "ab" * 16, "ab" * 15 + "cd"
        await result_store.put(first, stored_result(b"first"))
        assert await result_store.get(second) is None
        await result_store.put(second, stored_result(b"second"))
        assert (await result_store.get(first)).body == b"first"


class TestKeys:
    """A key that is not a lowercase hex digest of 32+ characters is refused with ValueError."""

    @pytest.mark.parametrize("key", ["AB" * 16, "ab" * 15, "../" + "a" * 32, "a" * 32 + "/x", "g" * 32, "a" * 130, ""])
    async def test_refused(self, result_store: ResultStore, key: str) -> None:
        with pytest.raises(ValueError, match="hex digest"):
            await result_store.get(key)
        with pytest.raises(ValueError, match="hex digest"):
            await result_store.put(key, stored_result())
        with pytest.raises(ValueError, match="hex digest"):
            await result_store.lock(key, 1.0)


class TestRenderLock:
    """One holder at a time: a second acquire fails until unlock or expiry."""

    async def test_acquire_fail_unlock_reacquire(self, result_store: ResultStore) -> None:
        digest = digest_of("render me")
        assert await result_store.lock(digest, 30.0) is True
        assert await result_store.lock(digest, 30.0) is False
        await result_store.unlock(digest)
        assert await result_store.lock(digest, 30.0) is True
        await result_store.unlock(digest)

    async def test_locks_are_per_digest(self, result_store: ResultStore) -> None:
        assert await result_store.lock(digest_of("a"), 30.0) is True
        assert await result_store.lock(digest_of("b"), 30.0) is True
        assert await result_store.lock(digest_of("a"), 30.0) is False

    async def test_a_lock_expires_by_itself(self, result_store: ResultStore) -> None:
        digest = digest_of("holder died")
        assert await result_store.lock(digest, 0.2) is True
        assert await result_store.lock(digest, 0.2) is False
        await asyncio.sleep(0.35)
        assert await result_store.lock(digest, 30.0) is True

    async def test_unlock_without_a_lock_does_nothing(self, result_store: ResultStore) -> None:
        await result_store.unlock(digest_of("never locked"))
        assert await result_store.lock(digest_of("never locked"), 30.0) is True

    async def test_the_lock_does_not_hide_the_entry(self, result_store: ResultStore) -> None:
        digest = digest_of("a")
        await result_store.put(digest, stored_result())
        assert await result_store.lock(digest, 30.0) is True
        assert await result_store.get(digest) == stored_result()


class TestSharedBacking:
    """Two store objects on one backing (folder, Redis namespace) see each other's entries and locks."""

    async def test_entries(self, open_store: Callable[[], ResultStore]) -> None:
        first, second = open_store(), open_store()
        skip_unless_shared(first)
        await first.put(digest_of("a"), stored_result(b"from the first"))
        assert await second.get(digest_of("a")) == stored_result(b"from the first")
        await second.put(digest_of("a"), stored_result(b"from the second"))
        assert await first.get(digest_of("a")) == stored_result(b"from the second")

    async def test_locks(self, open_store: Callable[[], ResultStore]) -> None:
        first, second = open_store(), open_store()
        skip_unless_shared(first)
        digest = digest_of("one render")
        assert await first.lock(digest, 30.0) is True
        assert await second.lock(digest, 30.0) is False
        await second.unlock(digest)  # not its lock: nothing happens
        assert await second.lock(digest, 30.0) is False
        await first.unlock(digest)
        assert await second.lock(digest, 30.0) is True

    async def test_an_expired_holder_cannot_release_its_successor(self, open_store: Callable[[], ResultStore]) -> None:
        first, second, third = open_store(), open_store(), open_store()
        skip_unless_shared(first)
        digest = digest_of("slow render")
        assert await first.lock(digest, 0.2) is True
        await asyncio.sleep(0.35)
        assert await second.lock(digest, 30.0) is True
        await first.unlock(digest)  # too late: the lock is the second's now
        assert await third.lock(digest, 30.0) is False

    async def test_close_releases_the_locks_held(self, open_store: Callable[[], ResultStore]) -> None:
        first, second = open_store(), open_store()
        skip_unless_shared(first)
        await first.lock(digest_of("a"), 30.0)
        await first.put(digest_of("a"), stored_result())
        await first.close()
        assert await second.lock(digest_of("a"), 30.0) is True
        assert await second.get(digest_of("a")) == stored_result()  # entries outlive the object

    async def test_one_winner_among_concurrent_lockers(self, open_store: Callable[[], ResultStore]) -> None:
        stores = [open_store() for _ in range(4)]
        skip_unless_shared(stores[0])
        digest = digest_of("contended")
        results = await asyncio.gather(*(store.lock(digest, 30.0) for store in stores for _ in range(5)))
        assert results.count(True) == 1


class TestStats:
    """stats() names the kind and says the store is reachable."""

    async def test_facts(self, result_store: ResultStore) -> None:
        await result_store.put(digest_of("a"), stored_result(b"x" * 1000))
        facts = await result_store.stats()
        assert facts["kind"] == result_store.kind in ("memory", "disk", "redis")
        assert facts["reachable"] is True

