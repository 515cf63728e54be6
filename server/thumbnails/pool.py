"""Running renders off the event loop: a bounded thread pool with a bounded queue and a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar


T = TypeVar("T")


class RenderUnavailable(Exception):
    """The render could not be done now (queue full, past its deadline, source changing); retry later."""

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class RenderPool:
    """At most `workers` renders run at once (threads: Pillow releases the GIL while it decodes,
    resamples and encodes) and at most `queue` wait; a render beyond that is refused at once with
    `RenderUnavailable`, as is one that is not finished after `timeout_s`.

    A slot is held until the thread really finishes, so a render abandoned at its deadline
    still counts against the bound while it burns CPU; a waiting one is cancelled before it starts.
    """

    def __init__(self, *, workers: int, queue: int, timeout_s: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render")
        self._capacity = workers + queue
        self._timeout_s = timeout_s
        self.in_flight = 0

    async def run(self, function: Callable[..., T], *args: object) -> T:
        if self.in_flight >= self._capacity:
            raise RenderUnavailable("Too many renders waiting; try again shortly", retry_after=1)
        loop = asyncio.get_running_loop()
        job = self._executor.submit(function, *args)
        self.in_flight += 1
        # The thread's own future, not an asyncio wrapper: it is done only when the work is.
        job.add_done_callback(lambda _: self._release_from_thread(loop))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job), self._timeout_s)
        except TimeoutError:
            job.cancel()  # only succeeds while it is still waiting for a thread
            raise RenderUnavailable("The render took too long; try again later", retry_after=5) from None

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._release)
        except RuntimeError:
            pass  # the loop is closed: the server is shutting down and nobody counts any more

    def _release(self) -> None:
        self.in_flight -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
