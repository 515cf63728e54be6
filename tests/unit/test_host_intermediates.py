"""The machine's intermediate tier: what one render process decoded, another cuts from, with the
same bytes; bounded; a torn or foreign file is a miss, never other pixels."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from server.imaging import RenderRequest, SourceLimits
from server.imaging.decode import decoding, open_source
from server.imaging.intermediate import SCALED, SourceFacts, decode_class, decode_intermediate, read_facts
from server.imaging.pipeline import RENDERER_VERSION, render_from, render_thumbnail
from server.thumbnails.intermediates import HostIntermediates, worth_sharing
from server.thumbnails.pool import RenderPool
from server.thumbnails.service import _read_and_render, source_key
from storage import FileStore
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)
KEY = ("photo.jpg", 123, 456, "f" * 32)


def intermediate_of(data: bytes, width: int):
    header = open_source(data, LIMITS)
    with decoding():
        facts = read_facts(header)
        eighths = decode_class(facts, RenderRequest(width=width, height=None, fit="contain", format=None,
                                                     quality=None).box)
        return decode_intermediate(header, data, facts, eighths), eighths


@pytest.fixture
def fresh():
    """A textured 800x600 JPEG's intermediate for 100 px, and its class."""
    data = images.jpeg_bytes((800, 600), image=images.textured((800, 600)))
    return intermediate_of(data, 100)


@pytest.fixture
def host(tmp_path: Path) -> HostIntermediates:
    return HostIntermediates(str(tmp_path / "shm"), 64 * 1024 * 1024)


class TestRoundTrip:
    """An intermediate read back gives the thumbnail a fresh decode gives, byte for byte."""

    @pytest.mark.parametrize("make", [
        lambda: images.jpeg_bytes((1600, 1200), image=images.textured((1600, 1200)), icc=True, orientation=6),
        lambda: images.png_bytes((300, 200), mode="RGBA"),
        lambda: images.png_bytes((300, 200), mode="LA"),
        lambda: images.jpeg_bytes((800, 600), mode="L"),
    ])
    def test_same_bytes(self, host: HostIntermediates, make) -> None:
        data = make()
        fresh, eighths = intermediate_of(data, 150)
        host.put(KEY, eighths, fresh)
        kept = host.get(KEY, eighths)
        assert kept is not None
        assert kept.image.tobytes() == fresh.image.tobytes() and kept.image.mode == fresh.image.mode
        assert (kept.source_size, kept.source_format, kept.icc_profile) == (
            fresh.source_size, fresh.source_format, fresh.icc_profile)
        for output in ("jpeg", "webp", "png"):
            request = RenderRequest(width=150, height=None, fit="contain", format=output, quality=None)
            assert render_from(kept, request).data == render_thumbnail(data, request, limits=LIMITS).data

    def test_other_key_or_class_is_a_miss(self, host: HostIntermediates) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 100)
        host.put(KEY, eighths, fresh)
        assert host.get(KEY[:3] + ("0" * 32,), eighths) is None
        assert host.get(KEY, eighths + 1) is None


class TestDamage:
    """A file that is not what its key wrote is a miss."""

    def test_torn_file(self, host: HostIntermediates) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 100)
        host.put(KEY, eighths, fresh)
        path = host._path(KEY, eighths)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) - 10])
        assert host.get(KEY, eighths) is None

    def test_file_of_another_key_under_the_name(self, host: HostIntermediates) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 100)
        other = ("other.jpg", 1, 2, "0" * 32)
        host.put(other, eighths, fresh)
        os.replace(host._path(other, eighths), host._path(KEY, eighths))
        assert host.get(KEY, eighths) is None

    def test_garbage(self, host: HostIntermediates) -> None:
        Path(host._path(KEY, 1)).write_bytes(b"\xff" * 100)
        assert host.get(KEY, 1) is None


class TestBound:
    """The folder stays within its bytes: the least recently used files go first."""

    def test_oldest_removed(self, tmp_path: Path) -> None:
        image = Image.new("RGB", (100, 100), (1, 2, 3))  # 30,000 bytes of pixels
        from server.imaging.intermediate import Intermediate

        one = Intermediate(image=image, source_size=(100, 100), source_format="PNG", icc_profile=None,
                           lossless_webp=False)
        host = HostIntermediates(str(tmp_path / "shm"), 100_000)
        for n in range(5):
            host.put(("k", n), 8, one)
            os.utime(host._path(("k", n), 8), ns=(n * 10**9, n * 10**9))
        names = os.listdir(host.folder)
        assert sum(os.path.getsize(os.path.join(host.folder, name)) for name in names) <= 100_000
        assert host.get(("k", 4), 8) is not None
        assert host.get(("k", 0), 8) is None

    def test_larger_than_the_bound_is_not_kept(self, tmp_path: Path) -> None:
        fresh, eighths = intermediate_of(images.jpeg_bytes((800, 600)), 700)
        host = HostIntermediates(str(tmp_path / "shm"), 1000)
        host.put(KEY, eighths, fresh)
        assert host.get(KEY, eighths) is None and os.listdir(host.folder) == []


class TestOneDecodePerMachine:
    """A class another process is decoding is waited for, not decoded again; a lost or failed
    claim costs one more decode, never a failed render nor a long wait."""

    def test_waits_for_the_holders_entry(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        assert host.claim(KEY, eighths)  # this process decodes it
        decodes: list[int] = []
        outcome: list[tuple] = []
        waiter = threading.Thread(target=lambda: outcome.append(
            host.get_or_decode(KEY, eighths, lambda: decodes.append(1) or intermediate, wait_s=60, keep=False)))
        waiter.start()
        time.sleep(0.05)  # let it find the claim (it would also be right if it came later)
        host.put(KEY, eighths, intermediate)
        host.release(KEY, eighths)
        waiter.join()
        (found, reused), = outcome
        assert decodes == [] and reused is True
        assert found.image.tobytes() == intermediate.image.tobytes()

    def test_holder_without_an_entry_lets_one_waiter_decode(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        assert host.claim(KEY, eighths)
        assert not host.claim(KEY, eighths)  # held by a live process (this one)
        decodes: list[int] = []
        outcome: list[tuple] = []
        waiter = threading.Thread(target=lambda: outcome.append(
            host.get_or_decode(KEY, eighths, lambda: decodes.append(1) or intermediate, wait_s=60, keep=False)))
        waiter.start()
        time.sleep(0.05)
        host.release(KEY, eighths)  # gave up (an entry too large, a failed decode)
        waiter.join()
        assert decodes == [1] and outcome[0][1] is False
        assert host.get(KEY, eighths) is not None  # the waiter kept what it decoded
        assert not os.path.exists(host._path(KEY, eighths) + ".lock")

    def test_dead_holders_claim_is_taken_over(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        Path(host._path(KEY, eighths) + ".lock").write_text(str(dead.pid))
        decodes: list[int] = []
        found, reused = host.get_or_decode(KEY, eighths, lambda: decodes.append(1) or intermediate, wait_s=600,
                                          keep=False)
        assert decodes == [1] and reused is False and found is intermediate
        assert not os.path.exists(host._path(KEY, eighths) + ".lock")

    def test_dead_holders_claim_is_cleared_by_the_next_write(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        orphan = Path(host._path(("gone",), 1) + ".lock")
        orphan.write_text(f"+{dead.pid}+")  # marked by a waiter too
        live = Path(host._path(("busy",), 1) + ".lock")
        live.write_text(str(os.getpid()))
        host.put(KEY, eighths, intermediate)
        assert not orphan.exists() and live.exists()
        assert host.get(KEY, eighths) is not None

    def test_old_claim_is_taken_over(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        lock = Path(host._path(KEY, eighths) + ".lock")
        lock.write_text(str(os.getpid()))  # alive, but long past any decode
        past = time.time() - HostIntermediates.STALE_CLAIM_S - 5
        os.utime(lock, (past, past))
        assert host.claim(KEY, eighths)

    def test_slow_holder_past_the_wait_costs_one_decode(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        assert host.claim(KEY, eighths)
        decodes: list[int] = []
        found, reused = host.get_or_decode(KEY, eighths, lambda: decodes.append(1) or intermediate, wait_s=0.05,
                                          keep=False)
        assert decodes == [1] and reused is False
        assert os.path.exists(host._path(KEY, eighths) + ".lock")  # still the holder's

    def test_claims_are_not_evicted_as_entries(self, tmp_path: Path, fresh) -> None:
        intermediate, eighths = fresh
        host = HostIntermediates(str(tmp_path / "shm"), intermediate.image.width * intermediate.image.height * 3 + 500)
        assert host.claim(("other",), 1)
        for n in range(3):
            host.put(("k", n), eighths, intermediate)
        assert os.path.exists(host._path(("other",), 1) + ".lock")


class TestWhatIsWritten:
    """A class decoded for a source asked once is not written unless `keep` (a cold render does
    not pay for the write); one that another process waits for is."""

    def test_source_asked_once_is_not_written(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        found, reused = host.get_or_decode(KEY, eighths, lambda: intermediate, wait_s=60, keep=False)
        assert reused is False and host.get(KEY, eighths) is None
        assert os.listdir(host.folder) == []  # the claim is gone too

    def test_kept_is_written(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        host.get_or_decode(KEY, eighths, lambda: intermediate, wait_s=60, keep=True)
        assert host.get(KEY, eighths).image.tobytes() == intermediate.image.tobytes()

    def test_written_when_another_process_waits(self, host: HostIntermediates, fresh) -> None:
        intermediate, eighths = fresh
        decoding = threading.Event()
        proceed = threading.Event()

        def slow_decode():
            decoding.set()
            proceed.wait(60)
            return intermediate

        results: dict[str, tuple] = {}
        holder = threading.Thread(target=lambda: results.__setitem__("holder", host.get_or_decode(
            KEY, eighths, slow_decode, wait_s=60, keep=False)))
        holder.start()
        decoding.wait(60)
        other = HostIntermediates(host.folder, host.max_bytes)  # as another render process sees it
        waiter = threading.Thread(target=lambda: results.__setitem__("waiter", other.get_or_decode(
            KEY, eighths, lambda: pytest.fail("decoded twice"), wait_s=60, keep=False)))
        waiter.start()
        lock = Path(host._path(KEY, eighths) + ".lock")
        while b"+" not in lock.read_bytes():
            time.sleep(0.01)
        proceed.set()
        holder.join()
        waiter.join()
        assert results["holder"][1] is False and results["waiter"][1] is True
        assert results["waiter"][0].image.tobytes() == intermediate.image.tobytes()


class TestWorthSharing:
    """Which classes are written though nobody waits: a source seen before, or a class far
    cheaper to read than to decode."""

    @pytest.mark.parametrize("stored, eighths, expected", [
        ((6000, 4000), 1, True), ((6000, 4000), 2, True),  # a 24 MP srcset's classes
        ((1920, 1280), 3, False),  # a cold 2 MP render for 512 px
        ((6000, 4000), 3, False), ((800, 600), 8, False),
    ])
    def test_unseen(self, stored, eighths, expected) -> None:
        facts = SourceFacts(stored, 1, SCALED)
        assert worth_sharing(facts, eighths, seen=False) is expected
        assert worth_sharing(facts, eighths, seen=True) is True

    async def test_a_2mp_source_is_written_from_its_second_render(self, tmp_path: Path) -> None:
        root = tmp_path / "images"
        images.write(root / "photo.jpg", images.jpeg_bytes((1920, 1280), image=images.textured((1920, 1280))))
        store = FileStore(root.resolve(), ("jpg",))
        source = store.resolve("photo.jpg")
        folder = tmp_path / "shm"
        pool = RenderPool(workers=1, queue=8, timeout_s=30.0, intermediate_bytes=64 << 20,
                          host_intermediates=(str(folder), 64 << 20))
        try:
            sizes = []
            for width in (512, 1024):  # 3/8 (720x480), then 5/8 (1200x800)
                request = RenderRequest(width=width, height=None, fit="contain", format="jpeg", quality=None)
                rendered = await pool.run(_read_and_render, store, source, request, LIMITS)
                assert rendered.reused is False
                sizes.append(sorted(os.path.getsize(folder / name) for name in os.listdir(folder)))
        finally:
            pool.shutdown()
        assert sizes[0] == []  # asked once so far: not written
        assert len(sizes[1]) == 1 and sizes[1][0] > 1200 * 800 * 3  # a family now: written


class TestTwoRenderPools:
    """Render processes of two pools (two server processes) asked for one class at once: one decode."""

    async def test_one_decode_across_pools(self, tmp_path: Path) -> None:
        root = tmp_path / "images"
        images.write(root / "photo.jpg", images.jpeg_bytes((2400, 1600), image=images.textured((2400, 1600))))
        store = FileStore(root.resolve(), ("jpg",))
        source = store.resolve("photo.jpg")
        shared = (str(tmp_path / "shm"), 64 << 20)
        pools = [RenderPool(workers=2, queue=8, timeout_s=30.0, intermediate_bytes=64 << 20,
                            host_intermediates=shared) for _ in range(2)]
        try:
            # 160..300 px: all from the 1/8 class; each pool gets each width in both formats.
            requests = [RenderRequest(width=width, height=None, fit="contain", format=output, quality=None)
                        for width in (160, 300) for output in ("jpeg", "webp")]
            # Every job starts while the class is claimed (by this test, which then gives up
            # without an entry): one of them decodes it for all, whenever each arrives.
            host = HostIntermediates(*shared)
            header = open_source(store.read(source, max_bytes=LIMITS.max_bytes), LIMITS)
            host_key = (source_key(source), read_facts(header).decoder, RENDERER_VERSION)
            assert host.claim(host_key, 1)
            jobs = asyncio.gather(*(pool.run(_read_and_render, store, source, request, LIMITS)
                                    for request in requests for pool in pools))
            lock = Path(host._path(host_key, 1) + ".lock")
            while b"+" not in lock.read_bytes():  # a render process waits for the claim
                await asyncio.sleep(0.01)
            host.release(host_key, 1)
            results = await jobs
        finally:
            for pool in pools:
                pool.shutdown()
        assert [result.reused for result in results].count(False) == 1
        data = await asyncio.to_thread(Path(root / "photo.jpg").read_bytes)
        for request, result in zip([r for r in requests for _ in pools], results, strict=True):
            assert result.data == render_thumbnail(data, request, limits=LIMITS).data


class TestResizeOnce:
    """A resize another process is making at this moment is waited for, not made again; its
    pixels are the ones a fresh resize gives."""

    def test_second_process_takes_the_first_ones_pixels(self, host: HostIntermediates, fresh) -> None:
        from server.imaging.geometry import Box, plan_geometry
        from server.imaging.steps import resize

        intermediate, eighths = fresh
        geometry = plan_geometry(*intermediate.source_size, Box(90, None, "contain"))
        expected = resize(intermediate.image, geometry, intermediate.source_size)
        making = threading.Event()
        proceed = threading.Event()

        def slow_make():
            making.set()
            proceed.wait(60)
            return resize(intermediate.image, geometry, intermediate.source_size)

        results: dict[str, object] = {}
        first = threading.Thread(target=lambda: results.__setitem__(
            "first", host.resize_once(KEY, eighths, geometry, slow_make)))
        first.start()
        making.wait(60)
        other = HostIntermediates(host.folder, host.max_bytes)  # as another render process sees it
        second = threading.Thread(target=lambda: results.__setitem__(
            "second", other.resize_once(KEY, eighths, geometry, lambda: pytest.fail("resized twice"))))
        second.start()
        lock = Path(host._path((KEY, "resized", tuple(geometry)), eighths) + ".lock")
        while not lock.exists() or b"+" not in lock.read_bytes():
            time.sleep(0.01)
        proceed.set()
        first.join()
        second.join()
        assert results["first"].tobytes() == results["second"].tobytes() == expected.tobytes()
        assert results["second"].size == expected.size and results["second"].mode == expected.mode

    def test_nobody_waiting_nothing_written(self, host: HostIntermediates, fresh) -> None:
        from server.imaging.geometry import Box, plan_geometry
        from server.imaging.steps import resize

        intermediate, eighths = fresh
        geometry = plan_geometry(*intermediate.source_size, Box(90, None, "contain"))
        made = host.resize_once(KEY, eighths, geometry,
                                lambda: resize(intermediate.image, geometry, intermediate.source_size))
        assert made.width == 90 and os.listdir(host.folder) == []
