"""`GuardedStore`: a shared tier whose failures cost a render, never a request."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

from cache.store import ResultStore, StoredResult

T = TypeVar("T")


class _Admission(Enum):
    CLOSED = "closed"  # the store works: call it
    PROBE = "probe"  # the breaker's wait is over: this one call finds out whether it works again
    SKIP = "skip"  # the breaker is open: answer as a miss without calling


class GuardedStore:
    """Wraps any `ResultStore` so that get, put, lock, unlock, stats and close never raise.

    A failure (any exception, or a call longer than `timeout_s` when given) counts an error and
    opens a circuit breaker: for `retry_after_s` every call answers at once as a miss without
    touching the store (get -> None, put -> nothing, lock -> True so that the caller renders
    itself, unlock -> nothing). Then one call goes through as a probe while the others are still
    answered as misses; its success closes the breaker, its failure opens it again.

    The first failure of a burst is logged as a warning, the rest are only counted until the
    store works again, which is logged too. `check()` is the exception: it is start-up's
    question and raises `UnusableStore` as the inner store does.
    """

    def __init__(
        self,
        inner: ResultStore,
        *,
        logger: logging.Logger,
        retry_after_s: float = 5.0,
        timeout_s: float | None = None,
        on_lookup: Callable[[str], None] | None = None,
    ) -> None:
        self.inner = inner
        # Told the result of every get: "hit", "miss", or "error" (failed, or skipped by the breaker).
        self._on_lookup = on_lookup or (lambda result: None)
        self.kind = inner.kind
        self.retry_after_s = retry_after_s
        self.timeout_s = timeout_s
        self._logger = logger
        self._open_until: float | None = None  # None: closed
        self._probing = False
        self.hits = self.misses = self.errors = self.skipped = self.writes = 0

    @property
    def available(self) -> bool:
        """False from a failure until a call succeeds again."""
        return self._open_until is None

    async def get(self, digest: str) -> StoredResult | None:
        answered, result = await self._guarded(lambda: self.inner.get(digest))
        if not answered:
            self._on_lookup("error")
        elif result is None:
            self.misses += 1
            self._on_lookup("miss")
        else:
            self.hits += 1
            self._on_lookup("hit")
        return result

    async def put(self, digest: str, result: StoredResult) -> None:
        answered, _ = await self._guarded(lambda: self.inner.put(digest, result))
        if answered:
            self.writes += 1

    async def lock(self, digest: str, ttl_s: float) -> bool:
        answered, acquired = await self._guarded(lambda: self.inner.lock(digest, ttl_s))
        return bool(acquired) if answered else True

    async def unlock(self, digest: str) -> None:
        await self._guarded(lambda: self.inner.unlock(digest))

    async def stats(self) -> dict[str, Any]:
        """The inner store's facts (only `reachable: False` while the breaker is open or if they
        fail) with this guard's counters and `available`."""
        counters = {
            "available": self.available,
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "skipped": self.skipped,
            "writes": self.writes,
        }
        facts: dict[str, Any] = {"kind": self.kind, "reachable": False}
        if self.available:
            try:
                facts = await self._bounded(self.inner.stats)
            except Exception:  # noqa: BLE001 - /healthz reports it, the next call counts it
                pass
        return facts | counters

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        try:
            await self._bounded(self.inner.close)
        except Exception as error:  # noqa: BLE001 - closing at shutdown must not fail it
            self._logger.warning("shared %s tier: closing it failed: %s: %s", self.kind, type(error).__name__, error)

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, what `call` returned), or (False, None) if it failed or was skipped."""
        admission = self._admit()
        if admission is _Admission.SKIP:
            self.skipped += 1
            return False, None
        try:
            value = await self._bounded(call)
        except Exception as error:  # noqa: BLE001 - every failure of the tier is a miss
            self._failed(error)
            return False, None
        finally:
            if admission is _Admission.PROBE:
                self._probing = False  # also when cancelled: the next call probes instead
        if admission is _Admission.PROBE:
            self._recovered()
        return True, value

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        if self.timeout_s is None:
            return await call()
        async with asyncio.timeout(self.timeout_s):
            return await call()

    def _admit(self) -> _Admission:
        if self._open_until is None:
            return _Admission.CLOSED
        if self._probing or time.monotonic() < self._open_until:
            return _Admission.SKIP
        self._probing = True
        return _Admission.PROBE

    def _failed(self, error: Exception) -> None:
        self.errors += 1
        first = self._open_until is None
        self._open_until = time.monotonic() + self.retry_after_s
        if first:
            self._logger.warning(
                "shared %s tier failing, serving without it (next try in %.1f s): %s: %s",
                self.kind, self.retry_after_s, type(error).__name__, error,
            )

    def _recovered(self) -> None:
        # Only a probe closes the breaker: a call that began before the failure and ends well
        # after it says little about the store now.
        self._open_until = None
        self._logger.info("shared %s tier working again (%d errors so far)", self.kind, self.errors)
