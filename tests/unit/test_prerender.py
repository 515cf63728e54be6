"""`thumbserver prerender`'s parts: which images, which thumbnails, how a run counts and reports,
and what Ctrl-C does to jobs in flight (with a stand-in service: no render processes here)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
from hashlib import blake2b
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from cache import GuardedStore, MemoryResultStore, StoredResult
from server.imaging import UndecodableImage
from server.prerender import (
    BarProgress,
    FOUND,
    WRITTEN,
    Failure,
    Job,
    KeptLedger,
    LineProgress,
    Prerenderer,
    Tally,
    UsageError,
    checked_specs,
    checked_variants,
    describe,
    expand_jobs,
    find_images,
    report,
)
from server.thumbnails import Preset, RenderUnavailable, SpecRules
from storage import FileStore, NotFound

EXTENSIONS = ("jpg", "jpeg", "png")
RULES = SpecRules(presets={"small": Preset(160, 160, "cover")}, allowed_sizes=())


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with images at two depths, what the server refuses, and symlinks in, out and round."""
    root = tmp_path / "images"
    for relative in ("b.jpg", "a.PNG", "album/c.jpg", "album/deeper/d.jpeg", "album/two words.jpg",
                     ".hidden.jpg", ".git/e.jpg", "notes.txt", "noext"):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded here")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    os.symlink(outside / "secret.jpg", root / "link-out.jpg")
    os.symlink(outside, root / "folder-out")
    os.symlink(root / "b.jpg", root / "album" / "link-in.jpg")
    os.symlink(root, root / "album" / "loop")  # a cycle: walked once, never forever
    os.mkfifo(root / "pipe.jpg")
    return root.resolve()


def store(root: Path) -> FileStore:
    return FileStore(root, EXTENSIONS)


class TestFindImages:
    """The images the server would serve, sorted, each path once; given paths checked like URLs."""

    def test_the_whole_root(self, tree: Path) -> None:
        assert find_images(store(tree)) == [
            "a.PNG", "b.jpg", "album/c.jpg", "album/link-in.jpg", "album/two words.jpg", "album/deeper/d.jpeg",
        ]

    def test_every_found_path_resolves_as_a_url_would(self, tree: Path) -> None:
        originals = store(tree)
        for relative in find_images(originals):
            assert originals.resolve(relative).relative == relative

    def test_a_folder_a_file_and_an_absolute_path(self, tree: Path) -> None:
        found = find_images(store(tree), ["album/deeper", "b.jpg", str(tree / "album" / "c.jpg")])
        assert found == ["album/deeper/d.jpeg", "b.jpg", "album/c.jpg"]

    def test_overlapping_paths_give_each_image_once(self, tree: Path) -> None:
        assert find_images(store(tree), ["album/deeper", "album/deeper/d.jpeg", "./album/deeper/"]) == [
            "album/deeper/d.jpeg"]

    def test_the_root_given_as_dot_or_absolute(self, tree: Path) -> None:
        assert find_images(store(tree), ["."]) == find_images(store(tree), [str(tree)]) == find_images(store(tree))

    @pytest.mark.parametrize("given", ["missing.jpg", "album/missing", "../outside", "..", "/etc", "album/../../x"])
    def test_missing_or_outside_the_root(self, tree: Path, given: str) -> None:
        with pytest.raises(UsageError, match="storage.root"):
            find_images(store(tree), [given])

    @pytest.mark.parametrize("given", ["notes.txt", ".hidden.jpg", "link-out.jpg", "pipe.jpg"])
    def test_files_the_server_refuses(self, tree: Path, given: str) -> None:
        with pytest.raises(UsageError, match="not an image the server serves"):
            find_images(store(tree), [given])

    def test_a_dot_folder(self, tree: Path) -> None:
        with pytest.raises(UsageError, match="dot-folders"):
            find_images(store(tree), [".git"])

    @pytest.mark.parametrize("given", ["folder-out", "folder-out/"])
    def test_a_symlinked_folder_outside_the_root(self, tree: Path, given: str) -> None:
        with pytest.raises(UsageError, match="not under storage.root"):
            find_images(store(tree), [given])
        with pytest.raises(UsageError, match="not under storage.root"):
            find_images(store(tree), [str(tree / given)])


class TestSpecs:
    """--spec values are checked against the configuration; the default is presets then allowed sizes."""

    def test_default_is_presets_then_allowed_sizes(self) -> None:
        rules = SpecRules(presets={"small": Preset(160, 160, "cover")}, allowed_sizes=("320x", "640x480"))
        assert [text for text, _ in checked_specs([], rules)] == ["small", "320x", "640x480"]

    def test_one_thumbnail_however_it_is_written(self) -> None:
        specs = checked_specs(["320x240,webp,cover", "320x240,cover,webp", "small", "160x160,cover"], RULES)
        assert [text for text, _ in specs] == ["320x240,webp,cover", "small"]

    def test_an_invalid_spec_is_named(self) -> None:
        with pytest.raises(UsageError, match=r"--spec 99999x: the box is larger"):
            checked_specs(["320x", "99999x"], RULES)

    def test_a_size_outside_the_allow_list(self) -> None:
        with pytest.raises(UsageError, match="not one of the allowed sizes"):
            checked_specs(["100x"], SpecRules(allowed_sizes=("320x",)))

    def test_nothing_to_default_to(self) -> None:
        with pytest.raises(UsageError, match="thumbnails.presets and thumbnails.allowed_sizes are empty"):
            checked_specs([], SpecRules())


class TestVariants:
    """--format: the variants a request naming no format can get, and only those."""

    def test_default_is_every_variant_the_server_serves(self) -> None:
        assert checked_variants([], ("webp",)) == ("source", "webp")
        assert checked_variants([], ("avif", "webp")) == ("source", "avif", "webp")
        assert checked_variants([], ()) == ("source",)

    def test_a_chosen_subset_in_order_once(self) -> None:
        assert checked_variants(["webp", "source", "webp"], ("webp",)) == ("webp", "source")

    @pytest.mark.parametrize("given", ["jpeg", "avif", "bmp"])
    def test_a_variant_no_negotiation_gives(self, given: str) -> None:
        with pytest.raises(UsageError, match=rf"--format {given}: .*name it in the spec"):
            checked_variants([given], ("webp",))


class TestJobs:
    """Every image × spec × variant; a spec naming its format is that one variant."""

    def test_expansion(self) -> None:
        specs = checked_specs(["small", "320x,png"], RULES)
        jobs = expand_jobs(["a.jpg", "b/c.jpg"], specs, ("source", "webp"))
        assert jobs == [
            Job("a.jpg", "small", "source"), Job("a.jpg", "small", "webp"), Job("a.jpg", "320x,png", "png"),
            Job("b/c.jpg", "small", "source"), Job("b/c.jpg", "small", "webp"), Job("b/c.jpg", "320x,png", "png"),
        ]

    def test_accept_header_per_variant(self) -> None:
        assert Job("a.jpg", "small", "source").accept is None
        assert Job("a.jpg", "small", "webp").accept == "image/webp"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestLineProgress:
    """Not a terminal: one line every interval (not one per thumbnail), and one at the end."""

    def test_lines(self) -> None:
        clock = FakeClock()
        tally = Tally(total=500, clock=clock)
        stream = io.StringIO()
        progress = LineProgress(tally, stream, interval_s=2.0)
        progress.start("prerender: 500 thumbnails")
        for second in range(1, 41):  # 40 jobs over 4 s
            clock.now = 100.0 + second / 10
            if second % 20 == 0:
                tally.failures.append(Failure("x.jpg", "small", "source", "bad"))
            else:
                tally.rendered += 1
            progress.advance()
        progress.finish()
        assert stream.getvalue().splitlines() == [
            "prerender: 500 thumbnails",
            "prerender: 20/500 done, 1 failed, 10.0/s, 48 s left",
            "prerender: 40/500 done, 2 failed, 10.0/s, 46 s left",
            "prerender: 40/500 done, 2 failed, 10.0/s, 46 s left",
        ]

    def test_no_time_left_once_done(self) -> None:
        clock = FakeClock()
        tally = Tally(total=3, clock=clock)
        clock.now += 2
        tally.skipped = 3
        assert LineProgress(tally, io.StringIO()).line() == "prerender: 3/3 done, 0 failed, 1.5/s"


class TestBarProgress:
    """On a terminal: a bar with done/total, the rate, time left and the failures."""

    def test_one_frame(self) -> None:
        out = io.StringIO()
        tally = Tally(total=10, rendered=2)
        progress = BarProgress(tally, Console(file=out, force_terminal=True, width=120))
        progress.start("prerender: 10 thumbnails")
        tally.failures.append(Failure("x.jpg", "small", "source", "bad"))
        progress.advance()
        progress.note("a note above the bar")
        progress.finish()
        shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
        assert "prerender: 10 thumbnails" in shown and "a note above the bar" in shown
        assert re.search(r"prerender ━+╺━+ +3/10 \S+/s \S+ 1 failed\n$", shown), shown


def reported(tally: Tally) -> str:
    out = io.StringIO()
    report(tally, Console(file=out, width=10_000, highlight=False))
    return out.getvalue()


class TestReport:
    """The summary counts, and a table of failures in a stable order."""

    def test_success(self) -> None:
        clock = FakeClock()
        tally = Tally(total=12, rendered=8, skipped=4, clock=clock)
        clock.now += 4
        tally.stop()
        assert reported(tally) == "prerender: 8 rendered, 4 skipped, 0 failed in 4.0 s (2.0 renders/s)\n"

    def test_failures_sorted_in_a_table(self) -> None:
        tally = Tally(total=3, rendered=1)
        tally.failures += [Failure("z.jpg", "small", "webp", "The source is not an image that can be decoded."),
                           Failure("a [b].jpg", "small", "source", "The source image is too large.")]
        lines = reported(tally).splitlines()
        assert "1 rendered, 0 skipped, 2 failed" in lines[0]
        rows = [re.split(r"\s{2,}", line.strip()) for line in lines if ".jpg" in line]
        assert rows == [  # markup-like text shown as it is
            ["a [b].jpg", "small", "source", "The source image is too large."],
            ["z.jpg", "small", "webp", "The source is not an image that can be decoded."],
        ]

    def test_a_shared_tier_too_small_is_a_warning(self) -> None:
        tally = Tally(total=30, rendered=30, evicted=12)
        assert reported(tally).splitlines()[1] == (
            "prerender: warning: the shared tier evicted 12 entries to stay within its budget, so it does not "
            "hold everything prerendered: raise cache.disk_max_bytes")

    def test_interrupted(self) -> None:
        tally = Tally(total=10, rendered=3, interrupted=True)
        assert reported(tally).startswith("prerender: interrupted at 3/10, a rerun resumes: 3 rendered")


class TestDescribe:
    """Failures read as the server's public error messages, never a library's internals."""

    def test_public_messages(self) -> None:
        assert describe(UndecodableImage("PIL says: broken data stream at 0x1f")) == (
            "The source is not an image that can be decoded.")
        assert describe(RenderUnavailable("The render took too long; try again later")) == (
            "The render took too long; try again later")
        assert describe(NotFound("'/srv/x.jpg' vanished")) == "Not Found"


# --- the run, with a stand-in service ------------------------------------------------------------


class FailingPuts(MemoryResultStore):
    async def put(self, digest: str, result: StoredResult) -> None:
        raise OSError(28, "No space left on device")


class StandInService:
    """What `Prerenderer` uses of `ThumbnailService`: plan, entry, shared and pool.

    `entry` waits for `release` (when given) and then writes a result through the shared tier
    as the real service does; paths starting with "bad" raise UndecodableImage, with "busy"
    RenderUnavailable (no render process left).
    """

    def __init__(self, inner: MemoryResultStore | None = None, *, release: asyncio.Event | None = None) -> None:
        self.ledger = KeptLedger(inner if inner is not None else MemoryResultStore())
        self.shared = GuardedStore(self.ledger, logger=logging.getLogger("test.prerender"))
        self.pool = SimpleNamespace(shutdown=self._shutdown)
        self.release = release
        self.started: list[str] = []
        self.shut_down = False

    def _shutdown(self) -> None:
        self.shut_down = True

    async def plan(self, spec: str, path: str, accept: str | None) -> SimpleNamespace:
        digest = blake2b(repr((spec, path, accept)).encode(), digest_size=16).hexdigest()
        return SimpleNamespace(key=SimpleNamespace(digest=digest), path=path)

    async def entry(self, plan: SimpleNamespace) -> StoredResult:
        self.started.append(plan.path)
        if self.release is not None:
            await self.release.wait()
        if plan.path.startswith("bad"):
            raise UndecodableImage("truncated")
        if plan.path.startswith("busy"):
            raise RenderUnavailable("The server is shutting down; try again shortly")
        result = StoredResult(body=b"x", media_type="image/jpeg", etag='"e"', source_mtime_ns=1)
        await self.shared.put(plan.key.digest, result)
        return result


class Silent:
    """A progress display that shows nothing and keeps the notes."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def start(self, headline: str) -> None: ...

    def advance(self) -> None: ...

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self) -> None: ...


def jobs(*paths: str) -> list[Job]:
    return [Job(path, "small", "source") for path in paths]


def prerenderer(service: StandInService, tally: Tally, *, in_flight: int = 4) -> Prerenderer:
    return Prerenderer(service, service.ledger, tally, Silent(), in_flight=in_flight)  # type: ignore[arg-type]


class TestPrerenderer:
    """Counts, skips on a rerun, failures with their public message, and results not kept."""

    async def test_render_then_skip_on_the_rerun(self) -> None:
        store = MemoryResultStore()
        first = Tally(total=5)
        await prerenderer(StandInService(store), first).run(jobs("a.jpg", "b.jpg", "c.jpg", "bad.jpg", "d.jpg"))
        assert (first.rendered, first.skipped, [f.path for f in first.failures]) == (4, 0, ["bad.jpg"])
        assert first.failures[0].error == "The source is not an image that can be decoded."
        again = Tally(total=5)
        service = StandInService(store)
        await prerenderer(service, again).run(jobs("a.jpg", "b.jpg", "c.jpg", "bad.jpg", "d.jpg"))
        assert (again.rendered, again.skipped, len(again.failures)) == (0, 4, 1)
        assert service.started == ["bad.jpg"]  # the shared tier answered for the others

    async def test_a_result_the_tier_did_not_keep_is_a_failure(self) -> None:
        tally = Tally(total=2)
        await prerenderer(StandInService(FailingPuts()), tally).run(jobs("a.jpg", "b.jpg"))
        assert tally.rendered == 0
        assert [f.error for f in tally.failures][0] == (
            "rendered, but the shared tier did not keep it (OSError: [Errno 28] No space left on device)")
        assert len(tally.failures) == 2  # the second write was skipped by the open breaker: not kept either

    async def test_at_most_in_flight_at_once(self) -> None:
        release = asyncio.Event()
        service = StandInService(release=release)
        tally = Tally(total=10)
        running = asyncio.create_task(prerenderer(service, tally, in_flight=3).run(jobs(*(f"{n}.jpg" for n in range(10)))))
        await asyncio.sleep(0.05)
        assert len(service.started) == 3
        release.set()
        await running
        assert tally.rendered == 10


class TestInterrupt:
    """Ctrl-C once: no new jobs, those in flight finish and count. Twice: they are abandoned."""

    async def test_once_lets_the_jobs_in_flight_finish(self) -> None:
        release = asyncio.Event()
        service = StandInService(release=release)
        tally = Tally(total=10)
        worker = prerenderer(service, tally, in_flight=3)
        running = asyncio.create_task(worker.run(jobs(*(f"{n}.jpg" for n in range(10)))))
        await asyncio.sleep(0.05)
        worker.interrupt()
        release.set()
        await asyncio.wait_for(running, 5)
        assert tally.interrupted and service.started == ["0.jpg", "1.jpg", "2.jpg"]
        assert (tally.rendered, tally.done) == (3, 3)
        assert not service.shut_down
        assert "finishing the 3 thumbnails in flight" in worker.progress.notes[0]  # type: ignore[attr-defined]

    async def test_a_render_the_interrupt_stopped_is_left_for_the_rerun(self) -> None:
        # The terminal's Ctrl-C stops the render processes too: a job finding none is not a failure.
        release = asyncio.Event()
        service = StandInService(release=release)
        tally = Tally(total=4)
        worker = prerenderer(service, tally, in_flight=2)
        running = asyncio.create_task(worker.run(jobs("a.jpg", "busy.jpg", "c.jpg", "d.jpg")))
        await asyncio.sleep(0.05)
        worker.interrupt()
        release.set()
        await asyncio.wait_for(running, 5)
        assert (tally.rendered, tally.failures, tally.done) == (1, [], 1)

    async def test_unavailable_without_an_interrupt_is_a_failure(self) -> None:
        tally = Tally(total=1)
        await prerenderer(StandInService(), tally).run(jobs("busy.jpg"))
        assert [f.error for f in tally.failures] == ["The server is shutting down; try again shortly"]

    async def test_twice_abandons_them(self) -> None:
        service = StandInService(release=asyncio.Event())  # never released: renders that would hang
        tally = Tally(total=10)
        worker = prerenderer(service, tally, in_flight=3)
        running = asyncio.create_task(worker.run(jobs(*(f"{n}.jpg" for n in range(10)))))
        await asyncio.sleep(0.05)
        worker.interrupt()
        worker.interrupt()
        await asyncio.wait_for(running, 5)
        assert service.shut_down  # the render processes are killed
        assert (tally.done, tally.interrupted) == (0, True)  # abandoned: neither done nor failed


class TestKeptLedger:
    """What the shared tier found or wrote, per digest, told once."""

    async def test_outcomes(self) -> None:
        ledger = KeptLedger(MemoryResultStore())
        digest = "ab" * 16
        assert await ledger.get(digest) is None and ledger.outcome(digest) is None
        await ledger.put(digest, StoredResult(body=b"x", media_type="image/png", etag='"e"', source_mtime_ns=1))
        assert ledger.outcome(digest) == WRITTEN and ledger.outcome(digest) is None
        assert await ledger.get(digest) is not None and ledger.outcome(digest) == FOUND
