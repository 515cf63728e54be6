"""What only the Redis tier promises: its keys and TTLs, a checked URL, and — through GuardedStore —
misses instead of failures while Redis is down, paused or back again."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis

from cache import LAYOUT_VERSION, GuardedStore, RedisStore, UnusableStore
from tests.contract.conftest import digest_of, stored_result
from tests.support.redis_server import RedisServer, free_port

TIMEOUT_S = 0.25
RETRY_AFTER_S = 0.5


@pytest.fixture
def raw(redis_server: RedisServer):
    """A plain synchronous client on the session's Redis, to look at what the store wrote."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
async def redis_store(redis_server: RedisServer, namespace: str):
    store = RedisStore(redis_server.url, ttl_s=3600, timeout_s=5.0, namespace=namespace)
    yield store
    await store.close()


def guarded_on(server: RedisServer, namespace: str) -> GuardedStore:
    store = RedisStore(server.url, ttl_s=3600, timeout_s=TIMEOUT_S, namespace=namespace)
    return GuardedStore(store, logger=logging.getLogger("test.shared"), retry_after_s=RETRY_AFTER_S)


class TestKeys:
    """Entries are SET under thumbserver:v{layout}:{namespace}:{digest} with the configured TTL."""

    async def test_key_and_ttl(self, redis_store: RedisStore, raw: redis.Redis, namespace: str) -> None:
        digest = digest_of("a")
        await redis_store.put(digest, stored_result(b"body"))
        key = f"thumbserver:v{LAYOUT_VERSION}:{namespace}:{digest}"
        assert raw.get(key) == stored_result(b"body").to_bytes()
        assert 3590 <= raw.ttl(key) <= 3600

    async def test_lock_key_expires(self, redis_store: RedisStore, raw: redis.Redis, namespace: str) -> None:
        digest = digest_of("a")
        assert await redis_store.lock(digest, 10.0) is True
        assert 9000 <= raw.pttl(f"thumbserver:v{LAYOUT_VERSION}:{namespace}:lock:{digest}") <= 10000

    async def test_a_corrupt_value_is_dropped(self, redis_store: RedisStore, raw: redis.Redis, namespace: str) -> None:
        digest = digest_of("a")
        key = f"thumbserver:v{LAYOUT_VERSION}:{namespace}:{digest}"
        raw.set(key, stored_result(b"body").to_bytes()[:-2])
        assert await redis_store.get(digest) is None
        assert raw.exists(key) == 0

    async def test_namespaces_are_separate(self, redis_server: RedisServer, redis_store: RedisStore) -> None:
        other = RedisStore(redis_server.url, ttl_s=60, timeout_s=5.0, namespace="another-namespace")
        await redis_store.put(digest_of("a"), stored_result())
        assert await other.get(digest_of("a")) is None
        await other.close()


class TestConstruction:
    """A bad URL fails at construction, naming it (password hidden); check() fails if nothing answers."""

    @pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "127.0.0.1:6379", "redis://127.0.0.1:notaport/0"])
    def test_bad_url(self, url: str) -> None:
        with pytest.raises(UnusableStore, match="redis url .* is not usable"):
            RedisStore(url, ttl_s=60, timeout_s=0.25, namespace="thumbs")

    def test_password_is_not_shown(self) -> None:
        with pytest.raises(UnusableStore) as raised:
            RedisStore("https://user:s3cret@example.invalid:1/0", ttl_s=60, timeout_s=0.25, namespace="thumbs")
        assert "s3cret" not in str(raised.value) and "user:***@example.invalid:1" in str(raised.value)

    async def test_check_without_a_server(self) -> None:
        store = RedisStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0", ttl_s=60, timeout_s=0.25, namespace="thumbs")
        started = time.monotonic()
        with pytest.raises(UnusableStore, match=r"redis at .*127\.0\.0\.1.* does not answer PING") as raised:
            await store.check()
        assert time.monotonic() - started < 0.25 + 1
        assert "s3cret" not in str(raised.value)
        await store.close()

    async def test_check_with_a_server(self, redis_store: RedisStore) -> None:
        await redis_store.check()
        assert (await redis_store.stats())["reachable"] is True

    def test_made_outside_a_loop_used_in_two(self, redis_server: RedisServer, namespace: str) -> None:
        store = RedisStore(redis_server.url, ttl_s=60, timeout_s=5.0, namespace=namespace)

        async def put_and_get(body: bytes):
            await store.put(digest_of("a"), stored_result(body))
            return await store.get(digest_of("a"))

        assert asyncio.run(put_and_get(b"first loop")) == stored_result(b"first loop")
        assert asyncio.run(put_and_get(b"second loop")) == stored_result(b"second loop")


class TestOutage:
    """Redis down: misses at once, errors counted, the breaker skips; Redis back: the tier works."""

    async def test_killed_then_restarted(self, own_redis_server: RedisServer, namespace: str, caplog) -> None:
        guarded = guarded_on(own_redis_server, namespace)
        digest = digest_of("a")
        await guarded.put(digest, stored_result(b"before"))
        assert await guarded.get(digest) == stored_result(b"before")

        own_redis_server.kill()
        with caplog.at_level(logging.INFO, logger="test.shared"):
            started = time.monotonic()
            assert await guarded.get(digest) is None
            assert time.monotonic() - started < TIMEOUT_S + 1
            assert (guarded.errors, guarded.skipped, guarded.available) == (1, 0, False)

            started = time.monotonic()
            for _ in range(50):
                assert await guarded.get(digest) is None
                await guarded.put(digest, stored_result())
                assert await guarded.lock(digest, 10.0) is True  # the caller renders itself
            assert time.monotonic() - started < 0.1  # the breaker answered, Redis was not asked
            assert (guarded.errors, guarded.skipped) == (1, 150)

            await asyncio.sleep(RETRY_AFTER_S + 0.1)
            assert await guarded.get(digest) is None  # the probe: still down
            assert guarded.errors == 2

            own_redis_server.start()  # same port, empty (no persistence)
            await asyncio.sleep(RETRY_AFTER_S + 0.1)
            assert await guarded.get(digest) is None  # the probe: up again, and a plain miss
            assert guarded.available is True
            await guarded.put(digest, stored_result(b"after"))
            assert await guarded.get(digest) == stored_result(b"after")

        messages = [record.getMessage() for record in caplog.records if record.name == "test.shared"]
        assert len(messages) == 2, messages  # once when it failed, once when it came back
        assert "failing" in messages[0] and "working again" in messages[1]
        facts = await guarded.stats()
        assert facts["reachable"] is True and facts["errors"] == 2 and facts["available"] is True
        await guarded.close()

    async def test_paused(self, own_redis_server: RedisServer, namespace: str) -> None:
        guarded = guarded_on(own_redis_server, namespace)
        bare: RedisStore = guarded.inner
        await guarded.put(digest_of("a"), stored_result())
        own_redis_server.pause()
        try:
            started = time.monotonic()
            with pytest.raises((TimeoutError, redis.exceptions.TimeoutError)):
                await bare.get(digest_of("a"))
            assert time.monotonic() - started < TIMEOUT_S + 1

            started = time.monotonic()
            assert await guarded.get(digest_of("a")) is None
            assert time.monotonic() - started < TIMEOUT_S + 1
            assert guarded.errors == 1

            started = time.monotonic()
            facts = await guarded.stats()
            assert facts["available"] is False and facts["reachable"] is False
            assert time.monotonic() - started < 0.1
        finally:
            own_redis_server.resume()
        await asyncio.sleep(RETRY_AFTER_S + 0.1)
        assert await guarded.get(digest_of("a")) == stored_result()
        assert guarded.available is True
        await guarded.close()
