"""`RedisStore`: the shared tier in Redis, for every worker on every node.

    thumbserver:v{LAYOUT_VERSION}:{namespace}:{digest}        `StoredResult.to_bytes()`, SET … EX ttl_s
    thumbserver:v{LAYOUT_VERSION}:{namespace}:lock:{digest}   a render lock: a random token, SET … NX PX;
                                                              released by a compare-and-delete script

Eviction is Redis's own: the TTL, and its `maxmemory-policy` where one is configured.

Every call is bounded by `timeout_s` as a whole (waiting for a connection, connecting, a retry on a
connection the server dropped, the reply), on top of the socket timeouts. A call cut short raises
`TimeoutError`; redis-py then drops that connection rather than reuse it mid-reply.

The client (and its connection pool) is made lazily, in the loop that first uses it: a store may
be built before any loop runs (the app is created outside one) and a worker process forked after
that builds its own. A store used from another loop later gets a new client there.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cache.store import LAYOUT_VERSION, CorruptEntry, StoredResult, UnusableStore, checked_digest, checked_namespace

# Deletes the lock only if it still holds this caller's token: an expired lock taken over by
# another process must not be released by its first holder.
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisStore:
    """A `ResultStore` in the Redis at `url`, entries kept `ttl_s`, every call within `timeout_s`.

    The constructor checks the URL only (no connection): `UnusableStore` naming it if it is not a
    Redis URL. `check()` connects and raises `UnusableStore` if Redis does not answer in time.
    Stores with the same URL and namespace share entries and render locks.
    """

    kind = "redis"

    def __init__(self, url: str, *, ttl_s: float, timeout_s: float, namespace: str) -> None:
        if ttl_s <= 0 or timeout_s <= 0:
            raise ValueError(f"ttl_s and timeout_s must be positive, not {ttl_s} and {timeout_s}")
        self.url = url
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.namespace = checked_namespace(namespace)
        try:
            parse_url(url)
        except ValueError as error:
            raise UnusableStore(f"redis url {redacted(url)!r} is not usable: {error}") from None
        self._prefix = f"thumbserver:v{LAYOUT_VERSION}:{namespace}:"
        self._client: Redis | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._unlock_script: Any = None
        self._held: dict[str, str] = {}  # digest -> token of the render locks this object holds

    async def get(self, digest: str) -> StoredResult | None:
        key = self._key(digest)
        async with asyncio.timeout(self.timeout_s):
            data = await self._redis().get(key)
            if data is None:
                return None
            try:
                return StoredResult.from_bytes(data)
            except CorruptEntry:
                await self._redis().delete(key)
                return None

    async def put(self, digest: str, result: StoredResult) -> None:
        key = self._key(digest)
        data = result.to_bytes()
        async with asyncio.timeout(self.timeout_s):
            await self._redis().set(key, data, ex=max(1, math.ceil(self.ttl_s)))

    async def lock(self, digest: str, ttl_s: float) -> bool:
        key = self._lock_key(digest)
        token = secrets.token_hex(16)
        async with asyncio.timeout(self.timeout_s):
            acquired = await self._redis().set(key, token, nx=True, px=max(1, round(ttl_s * 1000)))
        if acquired:
            self._held[digest] = token
        return bool(acquired)

    async def unlock(self, digest: str) -> None:
        key = self._lock_key(digest)
        token = self._held.pop(digest, None)
        if token is None:
            return
        async with asyncio.timeout(self.timeout_s):
            await self._release(key, token)

    async def stats(self) -> dict[str, Any]:
        """kind, URL (password hidden), and from Redis's INFO: memory used, its limit and policy."""
        facts: dict[str, Any] = {"kind": self.kind, "url": redacted(self.url), "ttl_s": self.ttl_s}
        try:
            async with asyncio.timeout(self.timeout_s):
                memory = await self._redis().info("memory")
        except Exception as error:  # noqa: BLE001 - a fact to report, not a failure of stats()
            return facts | {"reachable": False, "error": f"{type(error).__name__}: {error}"}
        return facts | {
            "reachable": True,
            "bytes": memory.get("used_memory"),
            "max_bytes": memory.get("maxmemory"),
            "eviction_policy": memory.get("maxmemory_policy"),
        }

    async def check(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._redis().ping()
        except Exception as error:  # noqa: BLE001 - any failure means the same at start-up
            detail = f"{type(error).__name__}: {error}" if str(error) else f"no answer within {self.timeout_s} s"
            raise UnusableStore(f"redis at {redacted(self.url)!r} does not answer PING: {detail}") from error

    async def close(self) -> None:
        """Release the render locks still held and close the connections (from the loop that made them)."""
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            for digest, token in list(self._held.items()):
                try:
                    async with asyncio.timeout(self.timeout_s):
                        await self._release(self._lock_key(digest), token)
                except Exception:  # noqa: BLE001,S112 - the lock expires by itself anyway
                    continue
            await self._client.aclose()  # redis-py 5.0.1+
        # A client made in another loop cannot be closed from this one; its sockets go with it.
        self._client = self._client_loop = self._unlock_script = None
        self._held.clear()

    def _redis(self) -> Redis:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = Redis.from_url(
                self.url,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                # One retry: a pooled connection the server closed (restart, idle timeout) fails
                # once, then reconnects. More is the circuit breaker's business.
                retry=Retry(NoBackoff(), 1),
            )
            self._client_loop = loop
            self._unlock_script = self._client.register_script(_UNLOCK)
        return self._client

    async def _release(self, key: str, token: str) -> None:
        client = self._redis()
        await self._unlock_script(keys=[key], args=[token], client=client)

    def _key(self, digest: str) -> str:
        return self._prefix + checked_digest(digest)

    def _lock_key(self, digest: str) -> str:
        return f"{self._prefix}lock:{checked_digest(digest)}"


def redacted(url: str) -> str:
    """`url` with its password replaced by `***`, for messages and /healthz."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host_and_port = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host_and_port}"))
    except ValueError:
        return "<unparsable url>"
