"""Intermediates: one decode per source and size class, the same bytes whether kept or fresh."""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from server.imaging import RenderRequest, SourceLimits, render_thumbnail
from server.imaging.geometry import Box, decode_size, plan_geometry
from server.imaging.intermediate import (
    DRAFT,
    FULL,
    SCALED,
    SourceFacts,
    class_size,
    decode_class,
    decode_intermediate,
    read_facts,
)
from server.imaging.decode import open_source
from server.imaging.steps import Effects
from server.thumbnails.intermediates import IntermediateCache
from server.thumbnails.pool import RenderPool
from server.thumbnails.service import _read_and_render
from storage import FileStore
from tests.support import images

LIMITS = SourceLimits(max_pixels=50_000_000, max_bytes=100 * 1024 * 1024)
SOURCE = (2400, 1600)


def request(width: int | None, height: int | None = None, fit: str = "contain", format: str | None = "jpeg"):
    return RenderRequest(width=width, height=height, fit=fit, format=format, quality=None)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture
def store(root: Path) -> FileStore:
    return FileStore(root, ("jpg", "png"))


@pytest.fixture
def photo(root: Path) -> bytes:
    data = images.jpeg_bytes(SOURCE, image=images.textured(SOURCE), icc=True)
    images.write(root / "photo.jpg", data)
    return data


@pytest.fixture
def pools():
    """`pools(**options)`: a one-process render pool, shut down after the test."""
    made: list[RenderPool] = []

    def build(**options) -> RenderPool:
        made.append(RenderPool(workers=options.pop("workers", 1), queue=8, timeout_s=20.0, **options))
        return made[-1]

    yield build
    for pool in made:
        pool.shutdown()


class TestSameBytes:
    """A thumbnail cut from a kept intermediate is byte for byte the one a fresh decode gives,
    in this process, in a render process without intermediates, and in one that keeps them."""

    @pytest.mark.parametrize("second", [request(240, format="webp"), request(200, 200, "cover"), request(300)])
    async def test_kept_equals_fresh(self, store, photo, pools, second) -> None:
        keeping = pools(intermediate_bytes=64 << 20)
        fresh_pool = pools(intermediate_bytes=0)
        source = store.resolve("photo.jpg")
        first = await keeping.run(_read_and_render, store, source, request(160), LIMITS)
        kept = await keeping.run(_read_and_render, store, source, second, LIMITS)
        assert (first.reused, kept.reused) == (False, True)
        fresh_elsewhere = await fresh_pool.run(_read_and_render, store, source, second, LIMITS)
        assert fresh_elsewhere.reused is False
        fresh_here = render_thumbnail(photo, second, limits=LIMITS)
        assert kept.data == fresh_elsewhere.data == fresh_here.data
        assert (kept.width, kept.height) == (fresh_here.width, fresh_here.height)

    async def test_a_srcset_decodes_each_class_once(self, store, photo, pools) -> None:
        pool = pools(intermediate_bytes=64 << 20)
        source = store.resolve("photo.jpg")
        reused = [
            (await pool.run(_read_and_render, store, source, request(width, format=output), LIMITS)).reused
            for width in (160, 300, 480, 600) for output in ("jpeg", "webp")
        ]
        # 160 and 300 px share the 1/8 decode (300x200); 480 and 600 px the 2/8 one (600x400).
        assert reused == [False, True, True, True, False, True, True, True]

    async def test_without_a_tier_every_render_decodes(self, store, photo, pools) -> None:
        pool = pools(intermediate_bytes=0)
        source = store.resolve("photo.jpg")
        results = [await pool.run(_read_and_render, store, source, request(160), LIMITS) for _ in range(2)]
        assert [result.reused for result in results] == [False, False]


class TestStaleSource:
    """A source that changes is decoded anew: its old intermediate is never used."""

    async def test_rewritten_file_is_decoded_again(self, root, store, photo, pools) -> None:
        pool = pools(intermediate_bytes=64 << 20)
        path = root / "photo.jpg"
        before = await pool.run(_read_and_render, store, store.resolve("photo.jpg"), request(160), LIMITS)
        red = images.jpeg_bytes(SOURCE, color="red")
        path.write_bytes(red)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new version, whatever the clock
        after = await pool.run(_read_and_render, store, store.resolve("photo.jpg"), request(160), LIMITS)
        assert after.reused is False
        assert after.data == render_thumbnail(red, request(160), limits=LIMITS).data
        assert after.data != before.data
        assert Image.open(BytesIO(after.data)).convert("RGB").getpixel((80, 50))[0] > 240

    async def test_same_size_new_mtime(self, root, store, photo, pools) -> None:
        pool = pools(intermediate_bytes=64 << 20)
        path = root / "photo.jpg"
        await pool.run(_read_and_render, store, store.resolve("photo.jpg"), request(160), LIMITS)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
        again = await pool.run(_read_and_render, store, store.resolve("photo.jpg"), request(160), LIMITS)
        assert again.reused is False


class TestNoUpscale:
    """An intermediate always covers what the thumbnail needs, and nothing grows past the source."""

    @pytest.mark.parametrize("orientation", [1, 6])
    @pytest.mark.parametrize("fit", ["contain", "cover", "fill"])
    def test_class_covers_every_box(self, fit, orientation) -> None:
        facts = SourceFacts((6000, 4000), orientation, SCALED)
        shown = facts.displayed_size
        for width in range(1, 6200, 97):
            box = Box(width, max(1, width * 2 // 3), fit)
            need = decode_size(plan_geometry(*shown, box), shown)
            eighths = decode_class(facts, box)
            size = class_size(facts, eighths)
            shown_size = size if orientation == 1 else size[::-1]
            assert shown_size[0] >= min(need[0], shown[0]) and shown_size[1] >= min(need[1], shown[1])
            assert eighths == 1 or not all(  # the smallest class that covers it
                side >= want for side, want in zip(class_size(facts, eighths - 1)[:: 1 if orientation == 1 else -1], need)
            )

    def test_box_larger_than_source(self, photo) -> None:
        rendered = render_thumbnail(photo, request(5000, 5000), limits=LIMITS)
        assert (rendered.width, rendered.height) == SOURCE

    def test_cover_larger_than_source_is_a_crop(self, photo) -> None:
        rendered = render_thumbnail(photo, request(3000, 3000, "cover"), limits=LIMITS)
        assert (rendered.width, rendered.height) == (1600, 1600)


class TestClasses:
    """Which intermediate a box needs: M/8 of the stored size."""

    def test_srcset_of_a_24mp_photo_shares_two(self) -> None:
        facts = SourceFacts((6000, 4000), 1, SCALED)
        classes = {width: decode_class(facts, Box(width, None, "contain")) for width in (160, 320, 640, 960, 1280)}
        assert classes == {160: 1, 320: 1, 640: 1, 960: 2, 1280: 2}
        assert class_size(facts, 1) == (750, 500)
        assert class_size(facts, 2) == (1500, 1000)

    def test_2mp_for_512_is_three_eighths(self) -> None:
        facts = SourceFacts((1920, 1280), 1, SCALED)
        assert decode_class(facts, Box(512, 512, "contain")) == 3
        assert class_size(facts, 3) == (720, 480)

    def test_rotated_source_swaps_axes(self) -> None:
        # Stored 4000x1000, shown 1000x4000: a 1000 px tall box needs 1000 px of the stored width.
        facts = SourceFacts((4000, 1000), 6, SCALED)
        assert decode_class(facts, Box(None, 1000, "contain")) == 2

    def test_draft_classes_are_powers_of_two(self) -> None:
        facts = SourceFacts((6000, 4000), 1, DRAFT)
        classes = [decode_class(facts, Box(width, None, "contain")) for width in (160, 800, 1600, 3100, 6000)]
        assert classes == [1, 2, 4, 8, 8]
        assert class_size(facts, 2) == (1500, 1000)

    def test_other_formats_decode_whole(self) -> None:
        facts = SourceFacts((6000, 4000), 1, FULL)
        assert decode_class(facts, Box(160, None, "contain")) == 8

    @pytest.mark.parametrize(("make", "decoder"), [
        (lambda: images.jpeg_bytes((64, 48)), SCALED),
        (lambda: images.jpeg_bytes((64, 48), mode="L"), SCALED),
        (lambda: images.jpeg_bytes((64, 48), mode="CMYK"), DRAFT),
        (lambda: images.png_bytes((64, 48)), FULL),
    ])
    def test_decoder_by_header(self, make, decoder) -> None:
        assert read_facts(open_source(make(), LIMITS)).decoder == decoder

    @pytest.mark.parametrize("width", [100, 300, 600, 1200, 2400])
    def test_decoded_size_is_the_class_size(self, photo, width) -> None:
        header = open_source(photo, LIMITS)
        facts = read_facts(header)
        eighths = decode_class(facts, Box(width, None, "contain"))
        intermediate = decode_intermediate(header, photo, facts, eighths)
        assert intermediate.image.size == class_size(facts, eighths)


class TestCache:
    """The tier is bounded in bytes, and an intermediate larger than it is not kept."""

    def _intermediate(self, size: tuple[int, int]):
        data = images.jpeg_bytes(size)
        header = open_source(data, LIMITS)
        facts = read_facts(header)
        return facts, decode_intermediate(header, data, facts, 8)

    def test_bounded_in_bytes(self) -> None:
        facts, intermediate = self._intermediate((100, 100))  # 40,000 bytes: Pillow's RGB is 4 a pixel
        assert intermediate.nbytes == 40_000
        cache = IntermediateCache(100_000)
        for name in ("a", "b", "c"):
            cache.put((name, 1, 1), facts, 8, intermediate)
        assert cache.nbytes == 80_000
        assert cache.get(("a", 1, 1), 8) is None
        assert cache.get(("c", 1, 1), 8) is intermediate
        assert cache.facts(("a", 1, 1)) == facts

    def test_larger_than_the_budget_is_not_kept(self) -> None:
        facts, intermediate = self._intermediate((200, 200))
        cache = IntermediateCache(10_000)
        cache.put(("a", 1, 1), facts, 8, intermediate)
        assert cache.get(("a", 1, 1), 8) is None and len(cache) == 0


class TestAffinity:
    """A source's renders go to the process that keeps it; a deep backlog is shared."""

    async def test_same_affinity_same_process(self, pools) -> None:
        pool = pools(workers=2)
        pids = [await pool.run(os.getpid, affinity=key) for key in ("x", "y", "x", "y", "x")]
        assert pids[0] == pids[2] == pids[4]
        assert pids[1] == pids[3]

    async def test_backlog_is_shared_and_nothing_waits_for_ever(self, pools) -> None:
        import asyncio

        pool = pools(workers=2)
        pids = await asyncio.gather(*(pool.run(_sleep_pid, 0.3, affinity="x") for _ in range(6)))
        assert len(pids) == 6 and len(set(pids)) == 2


def _sleep_pid(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return os.getpid()


class TestResizeOnce:
    """The formats of one size share one resize: the bytes are those of a fresh render, whatever
    was cut from the intermediate before (filters, pads, crops never modify the kept pixels)."""

    @pytest.fixture
    def intermediate(self, photo):
        header = open_source(photo, LIMITS)
        facts = read_facts(header)
        return decode_intermediate(header, photo, facts, decode_class(facts, Box(300, None, "contain")))

    def test_second_format_reuses_the_resize_with_the_same_bytes(self, photo, intermediate) -> None:
        from server.imaging.pipeline import render_from

        geometry = plan_geometry(*intermediate.source_size, Box(300, None, "contain"))
        assert intermediate.kept_bytes == intermediate.nbytes
        first = render_from(intermediate, request(300, format="jpeg"))
        resized = intermediate.resized(geometry)
        assert intermediate.kept_bytes == intermediate.nbytes + 300 * 200 * 4
        for output in ("webp", "png", "jpeg"):
            assert render_from(intermediate, request(300, format=output)).data == render_thumbnail(
                photo, request(300, format=output), limits=LIMITS).data
        assert intermediate.resized(geometry) is resized  # cut once, for all four
        assert first.data == render_thumbnail(photo, request(300, format="jpeg"), limits=LIMITS).data

    @pytest.mark.parametrize("effects", [
        Effects(blur=20, gray=True), Effects(sharpen=10), Effects(background="ff0000"), Effects(gray=True)])
    def test_effects_leave_the_kept_resize_alone(self, photo, intermediate, effects) -> None:
        from server.imaging.pipeline import render_from

        plain = request(300, 300, "pad", format="webp")
        with_effects = RenderRequest(width=300, height=300, fit="pad", format="jpeg", quality=None, effects=effects)
        assert render_from(intermediate, with_effects).data == render_thumbnail(
            photo, with_effects, limits=LIMITS).data
        assert render_from(intermediate, plain).data == render_thumbnail(photo, plain, limits=LIMITS).data

    def test_bounded(self, intermediate, monkeypatch) -> None:
        from server.imaging.intermediate import Intermediate

        monkeypatch.setattr(Intermediate, "RESIZED_BYTES", 300 * 200 * 4)
        geometries = [plan_geometry(*intermediate.source_size, Box(width, None, "contain")) for width in (100, 200, 300)]
        made = [intermediate.resized(geometry) for geometry in geometries]
        # The 300 px one fills the bound alone: the older ones went, oldest first.
        assert intermediate.kept_bytes - intermediate.nbytes == 300 * 200 * 4
        assert intermediate.resized(geometries[2]) is made[2]
        assert intermediate.resized(geometries[0]) is not made[0]
