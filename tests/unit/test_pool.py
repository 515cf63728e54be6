"""The render pool: jobs in processes of their own, killed at their deadline, crashes contained,
address space capped, a memory budget, and nothing left running after shutdown."""

from __future__ import annotations

import asyncio
import os
import pickle
import resource
import signal
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from server.imaging import ImageError, RenderRequest, SourceLimits, SourceTooLarge, UndecodableImage
from server.thumbnails.pool import RenderCrashed, RenderPool, RenderUnavailable, announce_peak
from server.thumbnails.service import _read_and_render
from storage import FileStore, NotFound, SourceChanged
from tests.support import images
from tests.support.probe import proc_stat, process_running

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=10_000_000)
REQUEST = RenderRequest(width=32, height=None, fit="contain", format="png", quality=None)


# --- jobs: module-level, so that they pickle; they run in render processes --------------------


def _raise(error: BaseException) -> None:
    raise error


def _raise_what_does_not_pickle() -> None:
    raise ValueError(lambda: None)


def _sleep_and_return(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


def _segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _announce_and_sleep(peak: int, seconds: float) -> tuple[float, float]:
    """When the job started after its peak was granted, and when it ended (monotonic clock,
    the same in every process)."""
    announce_peak(peak)
    started = time.monotonic()
    time.sleep(seconds)
    return started, time.monotonic()


def _announce_and_meet(peak: int, mine: Path, theirs: Path) -> bool:
    """Announce `peak`, then wait (at most 10 s) for the other job to have announced too: True
    when both held their peaks at the same time."""
    announce_peak(peak)
    mine.touch()
    deadline = time.monotonic() + 10
    while not theirs.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return theirs.exists()


# --- what /proc says --------------------------------------------------------------------------




def _gone(pid: int, *, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while process_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not process_running(pid)


def _children(parent: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        stat = proc_stat(int(entry)) if entry.isdigit() else None
        if stat is not None and int(stat[1]) == parent and stat[0] not in ("Z", "X"):
            found.add(int(entry))
    return found


def _render_processes() -> set[int]:
    """Running children of this test process's fork server: every render process of every pool."""
    for pid in _children(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"multiprocessing.forkserver" in command:
            return _children(pid)
    return set()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def make_pool() -> Iterator:
    """`make_pool(workers=1, timeout_s=1)`: a pool, shut down after the test."""
    pools: list[RenderPool] = []

    def build(*, workers: int = 2, queue: int = 4, timeout_s: float = 10.0, **options) -> RenderPool:
        pools.append(RenderPool(workers=workers, queue=queue, timeout_s=timeout_s, **options))
        return pools[-1]

    yield build
    for pool in pools:
        pool.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path.resolve(), ("jpg", "png"))


class TestResults:
    """A job's result comes back; a real render reads its source in the render process."""

    async def test_plain_result(self, make_pool) -> None:
        pool = make_pool()
        assert await pool.run(pow, 2, 10) == 1024
        assert await pool.run(os.getpid) != os.getpid()
        assert pool.in_flight == 0

    async def test_render(self, make_pool, store: FileStore, tmp_path: Path) -> None:
        images.write(tmp_path / "photo.jpg", images.jpeg_bytes((640, 480)))
        pool = make_pool()
        rendered = await pool.run(_read_and_render, store, store.resolve("photo.jpg"), REQUEST, LIMITS)
        assert (rendered.format, rendered.width, rendered.height) == ("png", 32, 24)
        assert Image.open(BytesIO(rendered.data)).size == (32, 24)


class TestExceptions:
    """What a job raises is raised by `run`: the same type with the same public message."""

    async def _both(self, pool: RenderPool, function, *args) -> tuple[BaseException, BaseException]:
        with pytest.raises(Exception) as direct:
            function(*args)
        with pytest.raises(Exception) as pooled:
            await pool.run(function, *args)
        return direct.value, pooled.value

    async def test_undecodable(self, make_pool, store: FileStore, tmp_path: Path) -> None:
        (tmp_path / "text.jpg").write_bytes(b"not an image at all")
        direct, pooled = await self._both(make_pool(), _read_and_render, store, store.resolve("text.jpg"),
                                          REQUEST, LIMITS)
        assert type(pooled) is type(direct) is UndecodableImage
        assert pooled.public_message == direct.public_message
        assert str(pooled).startswith("UnidentifiedImageError: cannot identify image file")

    async def test_too_large_keeps_its_own_public_message(self, make_pool, store: FileStore, tmp_path: Path) -> None:
        images.write(tmp_path / "photo.png", images.png_bytes((64, 48)))
        limits = SourceLimits(max_pixels=1000, max_bytes=10_000_000)
        direct, pooled = await self._both(make_pool(), _read_and_render, store, store.resolve("photo.png"),
                                          REQUEST, limits)
        assert type(pooled) is SourceTooLarge
        assert pooled.public_message == direct.public_message == "The source image is larger than 1000 pixels."

    async def test_storage_errors(self, make_pool, store: FileStore, tmp_path: Path) -> None:
        pool = make_pool()
        path = images.write(tmp_path / "photo.jpg", images.jpeg_bytes((64, 48)))
        source = store.resolve("photo.jpg")
        path.write_bytes(images.jpeg_bytes((80, 60)))  # another version, another size
        with pytest.raises(SourceChanged):
            await pool.run(_read_and_render, store, source, REQUEST, LIMITS)
        path.unlink()
        with pytest.raises(NotFound):
            await pool.run(_read_and_render, store, source, REQUEST, LIMITS)

    async def test_the_jobs_own_timeout_is_not_the_deadline(self, make_pool) -> None:
        with pytest.raises(TimeoutError, match="mine"):
            await make_pool().run(_raise, TimeoutError("mine"))

    async def test_an_exception_that_does_not_pickle(self, make_pool) -> None:
        pool = make_pool(workers=1)
        pid = await pool.run(os.getpid)
        with pytest.raises(RuntimeError, match="does not pickle"):
            await pool.run(_raise_what_does_not_pickle)
        assert await pool.run(os.getpid) == pid  # the process carries on

    async def test_a_job_that_does_not_pickle(self, make_pool) -> None:
        pool = make_pool(workers=1)
        pid = await pool.run(os.getpid)
        with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
            await pool.run(pow, lambda: None, 2)
        assert await pool.run(os.getpid) == pid  # refused before any process was involved
        assert pool.in_flight == 0


class TestDeadline:
    """A job past the deadline is killed at once: its slot and CPU are back, the next job runs."""

    async def test_killed_at_the_deadline(self, make_pool) -> None:
        pool = make_pool(workers=1, timeout_s=1.0)
        before = await pool.run(os.getpid)
        started = time.monotonic()
        with pytest.raises(RenderUnavailable) as refused:
            await pool.run(time.sleep, 30)
        assert time.monotonic() - started < 1.0 + 1.0
        assert refused.value.retry_after == 5
        assert pool.in_flight == 0
        assert _gone(before), "the render process still runs after its deadline"
        started = time.monotonic()
        after = await pool.run(os.getpid)
        assert after != before
        assert time.monotonic() - started < 5  # not after the 30 s the killed job would have slept

    async def test_waiting_counts_towards_the_deadline(self, make_pool) -> None:
        pool = make_pool(workers=1, timeout_s=1.0)
        running = asyncio.create_task(pool.run(time.sleep, 30))
        await asyncio.sleep(0)
        with pytest.raises(RenderUnavailable):
            await pool.run(pow, 2, 2)  # waited for the only process, which never came free
        with pytest.raises(RenderUnavailable):
            await running
        assert await pool.run(pow, 2, 3) == 8


class TestCrashes:
    """A job that kills its process is a 422 for its request; the pool carries on."""

    @pytest.mark.parametrize("crash", [os.abort, _segfault])
    async def test_crash(self, make_pool, crash) -> None:
        pool = make_pool(workers=1)
        before = await pool.run(os.getpid)
        with pytest.raises(RenderCrashed) as crashed:
            await pool.run(crash)
        assert isinstance(crashed.value, (ImageError, UndecodableImage))
        assert crashed.value.public_message == "The source could not be decoded."
        assert pool.in_flight == 0
        assert await pool.run(os.getpid) != before
        assert await pool.run(pow, 2, 5) == 32

    async def test_address_space_is_capped(self, make_pool) -> None:
        cap = 768 * 1024 * 1024
        pool = make_pool(workers=1, process_memory_bytes=cap)
        assert await pool.run(resource.getrlimit, resource.RLIMIT_AS) == (cap, cap)
        assert len(await pool.run(bytearray, 64 * 1024 * 1024)) == 64 * 1024 * 1024
        with pytest.raises(RenderCrashed):
            await pool.run(bytearray, cap)
        assert await pool.run(pow, 2, 6) == 64

    async def test_no_cap(self, make_pool) -> None:
        pool = make_pool(workers=1, process_memory_bytes=0)
        assert await pool.run(resource.getrlimit, resource.RLIMIT_AS) == resource.getrlimit(resource.RLIMIT_AS)


class TestQueue:
    """At most workers + queue renders in flight; the next is refused at once."""

    async def test_queue_full(self, make_pool) -> None:
        pool = make_pool(workers=1, queue=1)
        admitted = [asyncio.create_task(pool.run(time.sleep, 0.5)) for _ in range(2)]
        await asyncio.sleep(0)
        assert pool.in_flight == 2
        with pytest.raises(RenderUnavailable) as refused:
            await pool.run(pow, 2, 2)
        assert refused.value.retry_after == 1
        assert await asyncio.gather(*admitted) == [None, None]
        assert pool.in_flight == 0


class TestMemoryBudget:
    """Jobs announce their peak and wait until it fits the budget; one over the whole budget is refused."""

    async def test_a_second_big_job_waits_for_the_first(self, make_pool) -> None:
        pool = make_pool(workers=2, render_memory_bytes=100)
        first, second = sorted(await asyncio.gather(
            pool.run(_announce_and_sleep, 80, 0.3), pool.run(_announce_and_sleep, 80, 0.0)
        ))
        assert second[0] >= first[1], "both held 80 of a budget of 100 at once"

    # 40 each: beyond what the pool reserves before sending a job, so each asks; 10 each: within it.
    @pytest.mark.parametrize("peak", [40, 10])
    async def test_jobs_that_fit_together_run_together(self, make_pool, tmp_path: Path, peak: int) -> None:
        pool = make_pool(workers=2, render_memory_bytes=100)
        a, b = tmp_path / "a", tmp_path / "b"
        assert await asyncio.gather(
            pool.run(_announce_and_meet, peak, a, b), pool.run(_announce_and_meet, peak, b, a)
        ) == [True, True]

    async def test_small_peaks_count_in_the_budget_too(self, make_pool) -> None:
        # A peak this small fits what the pool reserves for a job before sending it (no asking):
        # it still holds its share, so a job of 90 waits for it to end.
        pool = make_pool(workers=2, render_memory_bytes=100)
        small, big = await asyncio.gather(
            pool.run(_announce_and_sleep, 15, 0.3), pool.run(_announce_and_sleep, 90, 0.0)
        )
        assert big[0] >= small[1], "15 and 90 of a budget of 100 were held at once"

    async def test_over_the_whole_budget(self, make_pool) -> None:
        pool = make_pool(workers=1, render_memory_bytes=100)
        with pytest.raises(SourceTooLarge) as refused:
            await pool.run(_announce_and_sleep, 101, 0)
        assert refused.value.public_message == "The source image is too large."
        started, ended = await pool.run(_announce_and_sleep, 100, 0)
        assert ended >= started

    async def test_a_render_announces_its_decoded_size(self, make_pool, store: FileStore, tmp_path: Path) -> None:
        # 2000x1500 JPEG for a 32 px box: drafted to 1/8 (250x188), 4 bytes x 3 copies = 564,000 bytes.
        images.write(tmp_path / "photo.jpg", images.jpeg_bytes((2000, 1500)))
        size = (tmp_path / "photo.jpg").stat().st_size
        small = make_pool(workers=1, render_memory_bytes=250 * 188 * 12 + size - 1)
        with pytest.raises(SourceTooLarge):
            await small.run(_read_and_render, store, store.resolve("photo.jpg"), REQUEST, LIMITS)
        enough = make_pool(workers=1, render_memory_bytes=250 * 188 * 12 + size)
        rendered = await enough.run(_read_and_render, store, store.resolve("photo.jpg"), REQUEST, LIMITS)
        assert (rendered.width, rendered.height) == (32, 24)


class TestStopSignals:
    """A render process sent SIGTERM (as the whole process group is, on a server's shutdown)
    answers the job in hand, then ends; another takes its place."""

    async def test_while_busy(self, make_pool) -> None:
        pool = make_pool(workers=1)
        pid = await pool.run(os.getpid)
        running = asyncio.create_task(pool.run(_sleep_and_return, 0.5, 256))
        await asyncio.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        assert await running == 256
        assert _gone(pid)
        assert await pool.run(os.getpid) not in (pid, None)

    async def test_while_idle(self, make_pool) -> None:
        pool = make_pool(workers=1)
        pid = await pool.run(os.getpid)
        os.kill(pid, signal.SIGTERM)
        assert _gone(pid)
        assert await pool.run(os.getpid) != pid


class TestShutdown:
    """Shutdown leaves no render process behind, and a render cut short by it is a 503."""

    async def test_no_process_left(self, make_pool) -> None:
        before = _render_processes()
        pool = make_pool(workers=3)
        assert await pool.run(pow, 2, 1) == 2
        mine = _render_processes() - before
        assert len(mine) == 3
        pool.shutdown()
        assert [pid for pid in mine if not _gone(pid)] == []
        assert _render_processes() <= before

    async def test_render_in_flight(self, make_pool) -> None:
        pool = make_pool(workers=1)
        pid = await pool.run(os.getpid)
        running = asyncio.create_task(pool.run(time.sleep, 30))
        await asyncio.sleep(0.2)
        pool.shutdown()
        with pytest.raises(RenderUnavailable):
            await running
        assert _gone(pid)
        with pytest.raises(RenderUnavailable):
            await pool.run(pow, 2, 2)
