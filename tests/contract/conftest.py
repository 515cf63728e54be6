"""Fixtures of the result-store contract: a store of each kind on a fresh backing, and real Redis.

    open_store          a factory of store objects on this test's backing, parametrized over
                        memory, disk (a folder in tmp_path) and redis (a namespace of its own)
    result_store        the first store `open_store` gives
    redis_server        one real redis-server on 127.0.0.1 for the session (skips if not installed)
    own_redis_server    a redis-server for one test, which may kill, pause and restart it
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from hashlib import blake2b
from pathlib import Path

import pytest

from cache import DiskStore, MemoryResultStore, RedisStore, ResultStore, StoredResult
from tests.support.redis_server import RedisServer, redis_server_binary

BACKINGS = ("memory", "disk", "redis")
NO_REDIS = "redis-server is not on PATH (Debian: apt-get install redis-server; .ci/run installs it)"


def digest_of(text: str) -> str:
    """A result-key digest as the server computes them: 32 lowercase hex characters."""
    return blake2b(text.encode(), digest_size=16).hexdigest()


def stored_result(body: bytes = b"thumbnail bytes", *, vary: str | None = "Accept") -> StoredResult:
    return StoredResult(
        body=body,
        media_type="image/webp",
        etag=f'"{digest_of(body.hex())}"',
        source_mtime_ns=1_700_000_000_123_456_789,
        vary=vary,
    )


def start_redis(workdir: Path) -> RedisServer:
    if redis_server_binary() is None:
        pytest.skip(NO_REDIS)
    server = RedisServer(workdir)
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session; tests keep apart by namespace, never flush it."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test alone: it may be killed, paused and restarted."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses, so tests sharing one Redis cannot see each other."""
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=BACKINGS)
async def open_store(
    request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> AsyncIterator[Callable[[], ResultStore]]:
    """`open_store()`: a new store object on this test's backing: the same folder or the same
    Redis namespace every time (a MemoryResultStore shares nothing: each is new and empty)."""
    kind = request.param
    server: RedisServer | None = request.getfixturevalue("redis_server") if kind == "redis" else None
    opened: list[ResultStore] = []

    def open_one() -> ResultStore:
        store: ResultStore
        if kind == "memory":
            store = MemoryResultStore()
        elif kind == "disk":
            store = DiskStore(tmp_path / "results", 64 * 1024 * 1024, namespace=namespace)
        else:
            assert server is not None
            store = RedisStore(server.url, ttl_s=600, timeout_s=5.0, namespace=namespace)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
def result_store(open_store: Callable[[], ResultStore]) -> ResultStore:
    return open_store()
