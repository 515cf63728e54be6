"""The memory tier's budget counts what entries really cost, small ones included."""

from __future__ import annotations

import os
import tracemalloc

from cache import CoalescingCache, StoredResult
from server.http.responses import entry_maker, entry_size
from server.thumbnails import Plan, ResultKey
from server.thumbnails.spec import ThumbSpec
from storage import Source


class TestEntryAccounting:
    """Accounted bytes are at least the bytes Python allocated for the entries (tracemalloc)."""

    def test_small_entries_are_not_undercounted(self) -> None:
        make = entry_maker("max-age=604800")
        cache: CoalescingCache = CoalescingCache(10**12, sizeof=entry_size)
        count = 5000
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            for number in range(count):
                source = Source(relative=f"photos/img_{number:05d}.jpg", size=100_000 + number,
                                mtime_ns=1_700_000_000_000_000_000 + number)
                spec = ThumbSpec(320, None, "contain", None, None)
                key = ResultKey(source.relative, source.identity, spec.canonical, "webp", "encoder settings")
                plan = Plan(spec, source, "webp", key, "Accept")
                stored = StoredResult(body=os.urandom(100), media_type="image/webp", etag=key.etag,
                                      source_mtime_ns=source.mtime_ns, vary="Accept")
                cache.put(key, make(plan, stored))
            allocated = tracemalloc.get_traced_memory()[0] - start
        finally:
            tracemalloc.stop()
        accounted = cache.stats().bytes
        assert cache.stats().entries == count
        assert accounted >= allocated, (accounted / count, allocated / count)
        assert accounted <= 1.5 * allocated  # and not so generous that the budget is wasted
