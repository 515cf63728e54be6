"""`thumbserver prerender`: put thumbnails in the shared tier before anyone asks for them.

    add_arguments(parser)   the subcommand's options (`server.cli` wires the subcommand)
    run(settings, args)     find the images, expand the specs, render in parallel, report

Exit status:

    0    every thumbnail asked for is in the shared tier (rendered now, or there already)
    1    some failed; a table of them (path, spec, format, the server's public error) ends the output
    2    nothing was done: a configuration or usage error, one line on stderr
    130  interrupted (Ctrl-C): what was rendered is kept, and a rerun skips it

The keys are the server's own because so are the pieces: the service is built as `create_app`
builds it (the same `thumbnail_options`, `shared_store` behind a `GuardedStore`, `FileStore`,
`RenderPool`), with a memory tier that keeps nothing and one render process per core. Every
thumbnail goes through `ThumbnailService.entry` and its cross-process render lock, so a server
running on the same tier meanwhile never renders one of them a second time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TextIO, TypeVar

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from cache import CoalescingCache, GuardedStore, ResultStore, StoredResult, UnusableStore
from server.config import Settings
from server.thumbnails import (
    SOURCE_FAMILY,
    InvalidSpec,
    RenderPool,
    RenderUnavailable,
    SpecRules,
    ThumbnailOptions,
    ThumbnailService,
    ThumbSpec,
    parse_spec,
)
from storage import FileStore, NotFound

T = TypeVar("T")

#: Seconds between two progress lines when the output is not a terminal.
LINE_INTERVAL_S = 2.0
#: Jobs in flight per render process: one rendering, one reading its source or writing its result.
IN_FLIGHT_PER_WORKER = 2

DESCRIPTION = """\
Render thumbnails of every image under storage.root (or under the PATHs given) into the shared
tier (cache.shared), in parallel on every core, so that the server serves them without rendering.
Thumbnails already there are skipped, so a rerun after Ctrl-C or a failure resumes.
Exit status: 0 all done, 1 some failed (listed at the end), 2 usage or configuration error,
130 interrupted."""


class UsageError(Exception):
    """A request that cannot be carried out as given; the message is one line for the operator."""


class UnusableTier(Exception):
    """The shared tier cannot be used as configured; the message names the key."""


class NotKept(Exception):
    """Rendered, but the shared tier did not keep the result (it failed, or its breaker is open)."""


# --- the command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's own options (`--config` is the caller's)."""
    parser.description = parser.description or DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--spec", dest="specs", action="append", metavar="SPEC",
        help="a thumbnail spec as in URLs (320x240,cover; small); repeat for more "
             "(default: every preset and allowed size)",
    )
    parser.add_argument(
        "--format", dest="formats", action="append", metavar="F", type=str.lower,
        help="for specs that name no format, the variant to render: 'source' (the source's family) or one "
             "of thumbnails.auto_formats, as an Accept header would choose; repeat for more "
             "(default: all of them, so negotiated requests are shared-tier hits too)",
    )
    parser.add_argument(
        "--jobs", type=_positive, metavar="N",
        help="render processes (default: one per core)",
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="images or folders below storage.root, relative to it or absolute (default: the whole root)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Prerender what `args` asks for with `settings`: the exit status."""
    if settings.cache.shared == "none":
        print("thumbserver: configuration error: cache.shared: none keeps no results, so prerendering "
              "would keep nothing (use disk or redis)", file=sys.stderr)
        return 2
    try:
        return _prerender(settings, args)
    except UsageError as error:
        print(f"thumbserver: prerender: {error}", file=sys.stderr)
        return 2
    except UnusableTier as error:
        print(f"thumbserver: configuration error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prerender: interrupted before rendering anything", file=sys.stderr)
        return 130


def _prerender(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: server.cli imports this module for every command, and the composition root
    # (FastAPI and all) is only needed when prerendering.
    from server.app import shared_store, thumbnail_options

    options = thumbnail_options(settings)
    originals = FileStore(settings.storage.root, settings.storage.extensions)
    specs = checked_specs(args.specs or (), options.rules)
    variants = checked_variants(args.formats or (), options.auto_formats)
    images = find_images(originals, args.paths)
    try:
        store = shared_store(settings)
    except (UnusableStore, OSError, ValueError) as error:  # as start-up's check_shared_tier words it
        key = "cache.redis_url" if settings.cache.shared == "redis" else "cache.disk_path"
        raise UnusableTier(f"{key}: {error}") from None
    assert store is not None  # run() refuses cache.shared: none
    jobs = expand_jobs(images, specs, variants)
    workers = args.jobs or len(os.sched_getaffinity(0))
    service, ledger = build_service(settings, options, originals, store, workers=workers)
    tally = Tally(total=len(jobs))
    progress: Reporter = BarProgress(tally, Console(stderr=True)) if sys.stderr.isatty() else LineProgress(tally, sys.stderr)
    progress.start(
        f"prerender: {len(jobs)} thumbnails of {len(images)} images (specs {', '.join(text for text, _ in specs)}; "
        f"formats {', '.join(variants)}) into the {settings.cache.shared} tier, {workers} render processes"
    )
    prerenderer = Prerenderer(service, ledger, tally, progress, in_flight=IN_FLIGHT_PER_WORKER * workers)
    try:
        asyncio.run(_run_to_the_end(prerenderer, jobs))
    except KeyboardInterrupt:  # a Ctrl-C before our handler was in place, or after it was removed
        tally.interrupted = True
    finally:
        tally.stop()
        progress.finish()
    report(tally, Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 10_000))
    if tally.interrupted:
        return 130
    return 1 if tally.failures else 0


def build_service(settings: Settings, options: ThumbnailOptions, originals: FileStore, store: ResultStore, *,
                  workers: int) -> tuple[ThumbnailService[StoredResult], KeptLedger]:
    """The server's thumbnail service, built as `create_app` builds it but with `workers` render
    processes and a memory tier that keeps nothing; and the ledger of what `store` kept."""
    pool = RenderPool(
        workers=workers,
        queue=workers,  # as many wait as run: the in-flight bound never meets a full queue
        timeout_s=settings.limits.render_timeout_s,
        render_memory_bytes=settings.limits.render_memory_bytes,
        process_memory_bytes=settings.limits.render_process_memory_bytes,
        preload=("server.thumbnails.service",),
    )
    ledger = KeptLedger(store)
    guarded = GuardedStore(ledger, logger=logging.getLogger("thumbserver.cache"),
                           timeout_s=settings.cache.redis_timeout_s if settings.cache.shared == "redis" else None)
    service: ThumbnailService[StoredResult] = ThumbnailService(
        options,
        originals=originals,
        pool=pool,
        # Every entry is larger than this one byte: nothing is kept, results go to the shared tier.
        memory=CoalescingCache(1, sizeof=lambda stored: stored.size),
        make_entry=lambda plan, stored: stored,
        shared=guarded,
    )
    return service, ledger


async def _run_to_the_end(prerenderer: Prerenderer, jobs: Sequence[Job]) -> None:
    """`prerenderer.run(jobs)` with Ctrl-C and SIGTERM calling its `interrupt`, then the cleanup."""
    loop = asyncio.get_running_loop()
    # In place of asyncio.run's own Ctrl-C handling, which cancels every task at once. A signal
    # ignored by whoever started us (`nohup`, a background job) stays ignored.
    handled = [number for number in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(number) is not signal.SIG_IGN]
    for number in handled:
        loop.add_signal_handler(number, prerenderer.interrupt)
    try:
        await prerenderer.run(jobs)
    finally:
        for number in handled:
            loop.remove_signal_handler(number)
        await prerenderer.count_losses()
        await prerenderer.service.close()
        prerenderer.service.pool.shutdown()


# --- what to render ----------------------------------------------------------------------------


class Job(NamedTuple):
    """One thumbnail: an image, a spec as the operator wrote it, and the output variant."""

    path: str
    spec: str
    #: SOURCE_FAMILY or an output format: what a request without a format negotiates, or the spec's own.
    variant: str

    @property
    def accept(self) -> str | None:
        """The Accept header that makes the server choose this variant."""
        return None if self.variant == SOURCE_FAMILY else f"image/{self.variant}"


def checked_specs(given: Sequence[str], rules: SpecRules) -> list[tuple[str, ThumbSpec]]:
    """Each spec parsed, in order, once per canonical form (`small` and `160x160,cover` are one).

    Default: the presets, then the allowed sizes. Raises `UsageError` for an invalid spec, or
    when there is nothing to default to.
    """
    texts = list(given) or [*rules.presets, *rules.allowed_sizes]
    if not texts:
        raise UsageError("no --spec given, and thumbnails.presets and thumbnails.allowed_sizes are empty")
    found: dict[str, tuple[str, ThumbSpec]] = {}
    for text in texts:
        try:
            spec = parse_spec(text, rules)
        except InvalidSpec as error:
            raise UsageError(f"--spec {text}: {error}") from None
        found.setdefault(spec.canonical, (text, spec))
    return list(found.values())


def checked_variants(given: Sequence[str], auto_formats: Sequence[str]) -> tuple[str, ...]:
    """The variants to render for specs that name no format; default: every one the server serves."""
    servable = (SOURCE_FAMILY, *auto_formats)
    for variant in given:
        if variant not in servable:
            raise UsageError(
                f"--format {variant}: a request naming no format gets {' or '.join(servable)} "
                f"(thumbnails.auto_formats: {list(auto_formats)}); to render {variant}, name it in the spec "
                f"(--spec 320x,{variant})"
            )
    return tuple(dict.fromkeys(given)) or servable


def expand_jobs(images: Sequence[str], specs: Sequence[tuple[str, ThumbSpec]], variants: Sequence[str]) -> list[Job]:
    """Every (image, spec, variant), image by image; a spec that names its format has that one variant."""
    return [
        Job(path, text, variant)
        for path in images
        for text, spec in specs
        for variant in ((spec.format,) if spec.format else variants)
    ]


def find_images(originals: FileStore, paths: Sequence[str] = ()) -> list[str]:
    """The paths below the root (as in URLs) of every image the server serves under `paths`.

    `paths` are files or folders, relative to the root or absolute inside it; none: the whole
    root. The server's rules apply (`storage.extensions`, no dot-files or dot-folders, nothing
    resolving outside the root): each file is checked by `FileStore.resolve`. Folders are walked
    in sorted order, following symlinks that stay inside the root, each real folder once. Raises
    `UsageError` for a given path that is not under the root, or not a folder or servable image.
    """
    found: dict[str, None] = {}
    for given in paths or [""]:
        relative = _below_root(originals.root, given)
        full = os.path.join(originals.root, relative) if relative else originals.root
        if os.path.isdir(full):
            if os.path.commonpath([os.path.realpath(full), originals.root]) != originals.root:
                raise UsageError(f"{given}: not under storage.root ({originals.root}) once its symlinks are followed")
            if any(segment.startswith(".") for segment in relative.split("/") if segment):
                raise UsageError(f"{given}: the server serves nothing in dot-folders")
            found.update(dict.fromkeys(_walk(originals, relative)))
        elif os.path.lexists(full):
            try:
                originals.resolve(relative)
            except NotFound:
                raise UsageError(f"{given}: not an image the server serves (storage.extensions, dot-files, "
                                 "symlinks out of the root)") from None
            found[relative] = None
        else:
            raise UsageError(f"{given}: no such file or folder under storage.root ({originals.root})")
    return list(found)


def _below_root(root: str, given: str) -> str:
    """`given` as a "/"-separated path relative to `root` ("" for the root itself)."""
    if os.path.isabs(given):
        full = os.path.realpath(given)
        if os.path.commonpath([full, root]) != root:
            raise UsageError(f"{given}: not under storage.root ({root})")
        relative = os.path.relpath(full, root)
    else:
        relative = os.path.normpath(given) if given else "."
    if relative == ".":
        return ""
    if relative == ".." or relative.startswith("../"):
        raise UsageError(f"{given}: not under storage.root ({root})")
    return relative


def _walk(originals: FileStore, folder: str) -> Iterator[str]:
    root = originals.root
    seen: set[str] = set()
    for current, folders, files in os.walk(os.path.join(root, folder) if folder else root, followlinks=True):
        real = os.path.realpath(current)
        if real in seen or os.path.commonpath([real, root]) != root:
            folders[:] = []  # a symlink loop, a folder reached twice, or one outside the root
            continue
        seen.add(real)
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        prefix = os.path.relpath(current, root)
        for name in sorted(files):
            relative = name if prefix == "." else f"{prefix}/{name}"
            extension = name.rpartition(".")[2].lower()
            if name.startswith(".") or extension not in originals.extensions:
                continue
            try:
                originals.resolve(relative)
            except NotFound:
                continue  # a symlink out of the root, a FIFO, an unreadable file
            yield relative


# --- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """A thumbnail that could not be put in the shared tier, and what the server would say of it."""

    path: str
    spec: str
    variant: str
    error: str


@dataclass
class Tally:
    """What a run has done so far; the progress display and the summary read it."""

    total: int
    rendered: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    #: Entries the shared tier dropped meanwhile to stay within its budget, and results it
    #: refused as larger than the whole budget (the disk tier counts both).
    evicted: int = 0
    oversize: int = 0
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    stopped: float | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def done(self) -> int:
        return self.rendered + self.skipped + len(self.failures)

    @property
    def seconds(self) -> float:
        return (self.stopped if self.stopped is not None else self.clock()) - self.started

    def stop(self) -> None:
        if self.stopped is None:
            self.stopped = self.clock()


class Reporter(Protocol):
    """Shows a run's progress: a headline, then `advance` after every job, `note`s, and `finish`."""

    def start(self, headline: str) -> None: ...

    def advance(self) -> None: ...

    def note(self, text: str) -> None: ...

    def finish(self) -> None: ...


#: What `KeptLedger` saw happen to a digest.
FOUND, WRITTEN = "found", "written"


class KeptLedger:
    """A `ResultStore` passing every call on to `inner`, noting which digests it found or wrote.

    It sits under the `GuardedStore`, which turns a failing tier into misses and dropped writes
    (right for a server, which must answer anyway; wrong for a run whose only product is what
    the tier keeps): `outcome(digest)` tells whether this run's result for a digest was kept.
    """

    def __init__(self, inner: ResultStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.last_error: Exception | None = None
        self._outcomes: dict[str, str] = {}  # only for jobs in flight: each takes its own out

    def outcome(self, digest: str) -> str | None:
        """FOUND, WRITTEN or None (neither, as far as this run saw), forgetting it."""
        return self._outcomes.pop(digest, None)

    async def get(self, digest: str) -> StoredResult | None:
        found = await self._noted(self.inner.get(digest))
        if found is not None:
            self._outcomes[digest] = FOUND
        return found

    async def put(self, digest: str, result: StoredResult) -> None:
        await self._noted(self.inner.put(digest, result))
        self._outcomes[digest] = WRITTEN

    async def lock(self, digest: str, ttl_s: float) -> bool:
        return await self._noted(self.inner.lock(digest, ttl_s))

    async def unlock(self, digest: str) -> None:
        await self._noted(self.inner.unlock(digest))

    async def stats(self) -> dict[str, Any]:
        return await self.inner.stats()

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()

    async def _noted(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except Exception as error:
            self.last_error = error
            raise


class Prerenderer:
    """Renders jobs into the shared tier through `service`, at most `in_flight` at once.

    `interrupt()` (Ctrl-C, SIGTERM): the first stops taking jobs and lets those in flight
    finish, so that what they render is kept; the second abandons them (the render processes
    are killed; an abandoned job is counted neither done nor failed, and nothing half-written
    is kept: the shared tier renames whole entries into place).
    """

    def __init__(self, service: ThumbnailService[StoredResult], ledger: KeptLedger, tally: Tally,
                 progress: Reporter, *, in_flight: int) -> None:
        self.service = service
        self.ledger = ledger
        self.tally = tally
        self.progress = progress
        self._slots = asyncio.Semaphore(in_flight)
        self._running: set[asyncio.Task[None]] = set()
        self._abandoned = False

    async def run(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            await self._slots.acquire()
            if self.tally.interrupted:
                self._slots.release()
                break
            task = asyncio.create_task(self._one(job))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        if self._running:
            await asyncio.wait(set(self._running))  # not gather: waiting must not cancel them

    def interrupt(self) -> None:
        if not self.tally.interrupted:
            self.tally.interrupted = True
            self.progress.note(f"prerender: interrupted; finishing the {len(self._running)} thumbnails in flight "
                               "(Ctrl-C again to abandon them)")
        elif not self._abandoned:
            self._abandoned = True
            self.progress.note(f"prerender: abandoning the {len(self._running)} thumbnails in flight")
            # Killing the render processes ends the renders under way; cancelling the jobs ends
            # those still waiting for a process (they would wait out limits.render_timeout_s).
            self.service.pool.shutdown()
            for task in self._running:
                task.cancel()

    async def count_losses(self) -> None:
        """Note in the tally what the shared tier evicted or refused during the run."""
        assert self.service.shared is not None
        facts = await self.service.shared.stats()  # a GuardedStore's never raises
        self.tally.evicted = facts.get("evictions") or 0
        self.tally.oversize = facts.get("oversize") or 0

    async def _one(self, job: Job) -> None:
        try:
            outcome = await self._produce(job)
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
            # Ctrl-C reaches the render processes too (the terminal signals the whole process
            # group), and they stop once their job is answered: a job that then finds no process
            # was not done, nor did it fail. The rerun does it.
            given_up = self._abandoned or (self.tally.interrupted and isinstance(error, RenderUnavailable))
            if not given_up:
                self.tally.failures.append(Failure(job.path, job.spec, job.variant, describe(error)))
        else:
            if outcome == WRITTEN:
                self.tally.rendered += 1
            else:
                self.tally.skipped += 1
        finally:
            self._slots.release()
            self.progress.advance()

    async def _produce(self, job: Job) -> str:
        """WRITTEN when this run put the thumbnail in the shared tier, FOUND when it was there."""
        plan = await self.service.plan(job.spec, job.path, job.accept)
        digest = plan.key.digest
        shared = self.service.shared
        assert shared is not None  # run() refuses cache.shared: none
        if await shared.get(digest) is not None:
            self.ledger.outcome(digest)
            return FOUND
        await self.service.entry(plan)
        outcome = self.ledger.outcome(digest)
        if outcome is None:
            error = self.ledger.last_error
            reason = f"{type(error).__name__}: {error}" if error is not None else "it timed out or is failing"
            raise NotKept(f"rendered, but the shared tier did not keep it ({reason})")
        return outcome


def describe(error: Exception) -> str:
    """What the server would tell a client about `error` (its public message), for the summary."""
    from server.http.errors import TABLE  # the one table of public messages; imported when needed

    if isinstance(error, NotKept):
        return str(error)
    for kind, (_status, detail, _headers) in TABLE:
        if isinstance(error, kind):
            return detail(error)
    return f"{type(error).__name__}: {error}"


# --- progress and the summary ------------------------------------------------------------------


class LineProgress:
    """Progress for logs (the output is not a terminal): a line every `interval_s`, one at the end.

        prerender: 120/500 done, 3 failed, 41.2/s, 9 s left
    """

    def __init__(self, tally: Tally, stream: TextIO, *, interval_s: float = LINE_INTERVAL_S) -> None:
        self.tally = tally
        self.stream = stream
        self.interval_s = interval_s
        self._last = tally.started

    def start(self, headline: str) -> None:
        self.note(headline)

    def advance(self) -> None:
        now = self.tally.clock()
        if now - self._last >= self.interval_s:
            self._last = now
            self.note(self.line())

    def note(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def finish(self) -> None:
        self.note(self.line())

    def line(self) -> str:
        tally = self.tally
        seconds = tally.seconds
        rate = tally.done / seconds if seconds > 0 else 0.0
        text = f"prerender: {tally.done}/{tally.total} done, {len(tally.failures)} failed, {rate:.1f}/s"
        if rate > 0 and tally.done < tally.total and not tally.interrupted:
            text += f", {_duration((tally.total - tally.done) / rate)} left"
        return text


class _RateColumn(ProgressColumn):
    """Thumbnails a second, over rich's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?/s" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")


class BarProgress:
    """Progress on a terminal: a rich bar with done/total, rate, time left and failures."""

    def __init__(self, tally: Tally, console: Console) -> None:
        self.tally = tally
        self.console = console
        self._bar = Progress(
            TextColumn("prerender"), BarColumn(), MofNCompleteColumn(), _RateColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[failed]} failed", style="red"),
            console=console,
        )
        self._task = self._bar.add_task("prerender", total=tally.total, failed=0)

    def start(self, headline: str) -> None:
        self.console.print(Text(headline))
        self._bar.start()

    def advance(self) -> None:
        self._bar.update(self._task, completed=self.tally.done, failed=len(self.tally.failures))

    def note(self, text: str) -> None:
        self._bar.console.print(Text(text))  # above the bar

    def finish(self) -> None:
        self.advance()
        self._bar.stop()


def report(tally: Tally, console: Console) -> None:
    """The summary line, then a table of the failures (sorted, so two runs compare line by line)."""
    seconds = tally.seconds
    rate = tally.rendered / seconds if seconds > 0 else 0.0
    counts = (f"{tally.rendered} rendered, {tally.skipped} skipped, {len(tally.failures)} failed "
              f"in {seconds:.1f} s ({rate:.1f} renders/s)")
    if tally.interrupted:
        console.print(Text(f"prerender: interrupted at {tally.done}/{tally.total}, a rerun resumes: {counts}"))
    else:
        console.print(Text(f"prerender: {counts}"))
    losses = [f"evicted {tally.evicted} entries to stay within its budget"] if tally.evicted else []
    losses += [f"refused {tally.oversize} results larger than its whole budget"] if tally.oversize else []
    if losses:
        console.print(Text(f"prerender: warning: the shared tier {' and '.join(losses)}, so it does not hold "
                           "everything prerendered: raise cache.disk_max_bytes"))
    if not tally.failures:
        return
    table = Table("path", "spec", "format", "error", box=box.SIMPLE)
    for failure in sorted(tally.failures, key=lambda f: (f.path, f.spec, f.variant)):
        table.add_row(Text(failure.path), Text(failure.spec), Text(failure.variant), Text(failure.error))
    console.print(table)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
