"""CPU of the disk tier's part of one cold request: get (miss), lock, get, put, unlock.

    PYTHONPATH=CHECKOUT .venv/bin/python bench/disk_tier_cycle.py [FOLDER] [--steps]

Runs a DiskStore in a temporary folder inside FOLDER (default: the system's temporary folder,
where bench/run.py keeps the tier) over fresh random digests, as cold requests are: prints CPU
ms per cycle for 5 passes of 500 (after 500 of warm-up), and with --steps the mean of each step.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections import Counter

from cache.disk import DiskStore
from cache.store import StoredResult


async def main(folder: str | None, steps: bool) -> None:
    with tempfile.TemporaryDirectory(dir=folder) as path:
        store = DiskStore(path, 1 << 30, namespace="bench")
        body = os.urandom(40_000)  # a 2 MP -> 512 px JPEG's size
        spent: Counter = Counter()

        async def step(name: str, call) -> object:
            started = time.process_time()
            value = await call
            spent[name] += time.process_time() - started
            return value

        async def cycle(digest: str) -> None:
            assert await step("get", store.get(digest)) is None
            assert await step("lock", store.lock(digest, 15))
            assert await step("get again", store.get(digest)) is None
            result = StoredResult(body=body, media_type="image/jpeg", etag=f'"{digest}"', source_mtime_ns=1)
            await step("put", store.put(digest, result))
            await step("unlock", store.unlock(digest))

        for _ in range(500):
            await cycle(secrets.token_hex(16))
        spent.clear()
        passes = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(500):
                await cycle(secrets.token_hex(16))
            passes.append((time.process_time() - started) / 500 * 1000)
        print("CPU ms per cycle, 5 passes of 500:", " ".join(f"{value:.3f}" for value in passes))
        if steps:
            for name, seconds in spent.items():
                print(f"  {name}: {seconds / 2500 * 1000:.3f} ms")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(arguments[0] if arguments else None, "--steps" in sys.argv))
