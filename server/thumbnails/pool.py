"""Running renders off the event loop: a bounded pool of render processes with a bounded queue, a
deadline and a memory budget.

    RenderPool          at most `workers` renders at once, each in a process of its own, and at
                        most `queue` waiting; a render past its deadline has its process killed
    announce_peak(n)    called by a job in a render process before it decodes: waits until the
                        job's peak memory fits the pool's budget
    RenderUnavailable   503: queue full, deadline passed, shutting down
    RenderCrashed       422: the render's process died (a decoder crashed, or ran out of memory)

Why processes rather than threads: a thread cannot be stopped, so a render past its deadline kept
its CPU and its slot; a crash in a C decoder took the whole server down; and every Python-level
step of a render (header parsing, EXIF, the pipeline's glue) competed with the event loop for
the GIL. Isolation is against accidents, not a security boundary: a render process runs as the
same user as the server.

A render process is forked by multiprocessing's fork server (never by the server itself, which has
threads and an event loop) with the modules in `preload` already imported: a fresh one costs a
few milliseconds. It caps its own address space (RLIMIT_AS) and runs at a lower priority, so
that the event loop wins the CPU under load. The pool's `shutdown` kills it; a SIGTERM or SIGINT
(sent to the whole process group while uvicorn lets the requests in flight finish) ends it once
the job in hand is answered. It exits by itself when the pool's end of its socket closes (the
server is gone), and, should the server hang or die mid-render, when a job outlives the
deadline by `ALARM_MARGIN_S` (SIGALRM).

One job at a time crosses a process's socket, each message behind an 8-byte length:

    pool -> process   allowance (8 bytes), then ("job", function, args) pickled
    process -> pool   ("peak", n_bytes)              only from announce_peak, for a peak above
    pool -> process   ("go",) or ("refuse", error)   the allowance; it then waits for the answer
    process -> pool   ("done", result) or ("raised", exception)

The allowance is memory the pool reserved in its budget for the job before sending it (when that
much was free at once, else 0): a job whose announced peak fits it runs without asking, so a
common render is two messages, not four. The job reads its source itself: only the job's
arguments and its encoded result cross.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import resource
import select
import signal
import socket
import struct
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from server.imaging import SourceTooLarge, UndecodableImage
from server.thumbnails.intermediates import HostIntermediates, IntermediateCache

T = TypeVar("T")

logger = logging.getLogger("thumbserver")

#: A render process still in a job this long after its deadline ends itself (the pool kills it
#: at the deadline; this only matters when the server hangs or has died).
ALARM_MARGIN_S = 5.0

_LENGTH = struct.Struct("!Q")
#: What the pool reserves for a job before sending it, at most (and at most a share of the
#: budget: `_allowance`): more than a 24 MP photo's render at 1/8 or 2/8 holds.
ALLOWANCE_BYTES = 64 << 20
# A render process that has not said it is ready after this long is given up (the first one
# waits for the fork server to start and import `preload`).
_START_TIMEOUT_S = 60.0
# The exit status of a render process whose job raised MemoryError (its address space is spent).
_OUT_OF_MEMORY = 3


class RenderUnavailable(Exception):
    """The render could not be done now (queue full, past its deadline, source changing); retry later."""

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class _EndedBeforeJob(Exception):
    """The render process given a job had ended by itself (exit status 0, told to stop) before
    it read it: the job never ran and goes to another process."""


class RenderCrashed(UndecodableImage):
    """The render's process died: a decoder crashed or the render outgrew its address space.

    Only that process is lost (another takes its place); the source is what made it die.
    """

    public_message = "The source could not be decoded."


class RenderPool:
    """At most `workers` renders run at once, each in a render process of its own, and at most
    `queue` more wait; a render beyond that is refused at once with `RenderUnavailable`, as is one
    that is not finished `timeout_s` after it was submitted: its process is killed (SIGKILL) and
    another is started in its place, so the slot is free again at once.

    `render_memory_bytes` bounds what renders in flight hold together: a job announces its peak
    (`announce_peak`) and waits until it fits; a job whose peak alone exceeds the budget raises
    `SourceTooLarge`. `process_memory_bytes` caps each render process's address space (0: no
    cap); a render that outgrows it raises `RenderCrashed`, as does one whose process dies.
    `preload`: modules the fork server imports once, so render processes start warm (there is one
    fork server per server process: the first pool to start it decides). `nice`: how far below
    the server's priority a render process runs.

    The processes start with the pool: a pool that cannot start them raises RuntimeError, so a
    server that cannot isolate its renders does not start. Call `shutdown` to stop them.
    """

    def __init__(
        self,
        *,
        workers: int,
        queue: int,
        timeout_s: float,
        render_memory_bytes: int = 1 << 30,
        process_memory_bytes: int = 2 << 30,
        intermediate_bytes: int = 0,
        host_intermediates: tuple[str, int] | None = None,
        preload: Iterable[str] = (),
        nice: int = 10,
    ) -> None:
        self._capacity = workers + queue
        self._timeout_s = timeout_s
        self._budget = _MemoryBudget(render_memory_bytes)
        # Reserved per job in flight before it asks: at most half the budget for all of them.
        self._allowance = min(ALLOWANCE_BYTES, render_memory_bytes // (2 * workers))
        self._context = multiprocessing.get_context("forkserver")
        # "__main__" first, as multiprocessing does by default: the fork server imports a main
        # script once, so that render processes do not each import it again.
        self._context.set_forkserver_preload(["__main__", *preload])
        # Intermediates are kept on top of what a render may use: the cap counts both.
        address_space = process_memory_bytes + intermediate_bytes if process_memory_bytes else 0
        self._options = _ProcessOptions(address_space, nice, timeout_s + ALARM_MARGIN_S, intermediate_bytes,
                                        host_intermediates)
        self._idle = _Dispatcher()
        self._processes: set[_RenderProcess] = set()  # every process not yet killed
        self._starting = threading.Lock()  # processes start in threads; one at a time
        self._tasks: set[asyncio.Task[None]] = set()  # replacements being started
        self._closed = False
        self._start_failed = False
        self.in_flight = 0
        try:
            for _ in range(workers):
                self._idle.put(self._start())
        except Exception as error:
            self.shutdown()
            raise RuntimeError(f"cannot start render processes: {error}") from error

    @property
    def timeout_s(self) -> float:
        """How long a job may take from submission (waiting included) before it is given up."""
        return self._timeout_s

    async def run(self, function: Callable[..., T], *args: object, affinity: Hashable = None) -> T:
        """`function(*args)` in a render process: its result, or what it raised (same type, same
        attributes). `function` and `args` must pickle (a module-level function, plain data).

        `affinity` (e.g. a source's identity) sends the job to the process that last ran a job of
        the same affinity, which holds what that job left (its intermediates), when that process
        is idle or has a short backlog; otherwise to any idle process (see `_Dispatcher`).

        Raises `RenderUnavailable` when `queue` renders already wait, when the render is not done
        `timeout_s` after this call (waiting for a process, for the memory budget or for the
        render itself; also while no render process can be started), or at shutdown;
        `RenderCrashed` when its process died.
        """
        if self._closed:
            raise RenderUnavailable("The server is shutting down; try again shortly", retry_after=1)
        if self.in_flight >= self._capacity:
            raise RenderUnavailable("Too many renders waiting; try again shortly", retry_after=1)
        self.in_flight += 1
        try:
            async with asyncio.timeout(self._timeout_s) as deadline:
                return await self._run_in_process(function, args, affinity)
        except TimeoutError:
            if not deadline.expired():
                raise  # the job's own TimeoutError
            raise RenderUnavailable("The render took too long; try again later", retry_after=5) from None
        finally:
            self.in_flight -= 1

    async def _run_in_process(self, function: Callable[..., T], args: tuple[object, ...], affinity: Hashable) -> T:
        job = _pickled(("job", function, args))  # a job that does not pickle fails here, in no process
        while True:
            try:
                return await self._run_job(job, affinity)
            except _EndedBeforeJob:
                continue  # that process was told to stop (SIGTERM) just before: another one runs it

    async def _run_job(self, job: bytes, affinity: Hashable) -> Any:
        process = await self._take(affinity)
        reserved = self._budget.take_now(self._allowance)
        answered = False
        try:
            await process.send_job(job, reserved)
            kind, value = await process.receive()
            answered = True
            if kind == "peak":
                # Beyond the allowance: give it back and wait for the whole peak in arrival order.
                self._budget.release(reserved)
                reserved = 0
                if value > self._budget.total:
                    await process.send(("refuse", SourceTooLarge(
                        f"a render holding {value} bytes > limits.render_memory_bytes ({self._budget.total})",
                        public_message="The source image is too large.",
                    )))
                else:
                    reserved = await self._budget.acquire(value)
                    await process.send(("go",))
                kind, value = await process.receive()
        except (EOFError, OSError) as error:
            # The process has gone: its exit status says whether it crashed or was told to stop.
            self._drop(process)
            try:
                status = await process.ended(timeout=1.0)
            finally:
                process.kill()
                process.close()
            if status == 0 and not answered and not self._closed:
                raise _EndedBeforeJob() from None
            if self._closed or status == 0:
                raise RenderUnavailable("The server is shutting down; try again shortly", retry_after=1) from None
            logger.warning("render process %d died (%s); another takes its place", process.pid, _describe(status))
            raise RenderCrashed(f"render process {process.pid} died ({_describe(status)}): {error!r}") from None
        except BaseException:
            # Cancelled (the deadline, a request given up), or an answer that does not unpickle:
            # the process is busy or in an unknown state, and only a new one is sure to be ready.
            self._drop(process)
            process.kill()
            process.close()
            raise
        finally:
            if reserved:
                self._budget.release(reserved)
        self._idle.put(process)
        if kind == "raised":
            raise value
        return value

    async def _take(self, affinity: Hashable) -> _RenderProcess:
        """An idle render process, waiting for one if all are busy (or being replaced)."""
        while True:
            process = await self._idle.take(affinity)
            if process.alive():
                return process
            self._drop(process)  # ended while idle (killed from outside)
            process.close()

    def _drop(self, process: _RenderProcess) -> None:
        """Forget `process` and start another in its place, in the background."""
        self._processes.discard(process)
        self._idle.forget(process)
        if not self._closed:
            task = asyncio.get_running_loop().create_task(self._start_replacement())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_replacement(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                process = await asyncio.to_thread(self._start)
            except Exception:
                # Log the first failure of a run of them, not one per retry.
                if not self._start_failed:
                    logger.exception("cannot start a render process; retrying")
                    self._start_failed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._start_failed:
                logger.info("render processes start again")
                self._start_failed = False
            self._idle.put(process)
            return

    def _start(self) -> _RenderProcess:
        with self._starting:
            if self._closed:
                raise RuntimeError("the render pool is shut down")
            process = _RenderProcess(self._context, self._options)
            self._processes.add(process)
            return process

    def shutdown(self) -> None:
        """Kill every render process and wait (briefly) until they are gone. Renders in flight
        raise `RenderUnavailable`."""
        with self._starting:
            self._closed = True
        for task in self._tasks:
            task.cancel()
        processes = list(self._processes)
        self._processes.clear()
        for process in processes:
            process.kill()
        for process in self._idle.drain():
            process.close()  # a busy process's socket is closed by its job
        for process in processes:
            process.join(timeout=2.0)


class _MemoryBudget:
    """Bytes that renders in flight may hold together. `acquire` waits in arrival order, so a
    large render is not overtaken for ever by small ones."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def take_now(self, amount: int) -> int:
        """`amount` if it is free now and nobody waits (taken), else 0 (nothing taken)."""
        if self._waiting or amount > self._free:
            return 0
        self._free -= amount
        return amount

    async def acquire(self, amount: int) -> int:
        """Wait until `amount` (at most `total`) is free and take it; returns `amount`."""
        if not self._waiting and amount <= self._free:
            self._free -= amount
            return amount
        granted = asyncio.get_running_loop().create_future()
        waiter = (amount, granted)
        self._waiting.append(waiter)
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(amount)  # granted just as the wait was given up
            else:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                self._grant()  # the ones behind it may fit now
            raise
        return amount

    def release(self, amount: int) -> None:
        self._free += amount
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self._free:
            amount, granted = self._waiting.popleft()
            if not granted.done():
                self._free -= amount
                granted.set_result(None)


@dataclass(frozen=True, slots=True)
class _ProcessOptions:
    address_space_bytes: int  # 0: no cap
    nice: int
    alarm_s: float  # a job still running after this ends its process
    intermediate_bytes: int = 0  # the process's intermediate tier (0: none)
    host_intermediates: tuple[str, int] | None = None  # the machine's tier: (folder, max bytes)


class _Waiter:
    __slots__ = ("granted", "preferred", "skipped")

    def __init__(self, preferred: _RenderProcess | None) -> None:
        self.granted: asyncio.Future[_RenderProcess] = asyncio.get_running_loop().create_future()
        self.preferred = preferred
        self.skipped = 0


class _Dispatcher:
    """Idle render processes, the jobs waiting for one, and which process last ran each affinity.

    A job goes to its affinity's process when that one is idle; when it is busy, the job waits for
    it unless `STEAL_BACKLOG` jobs already do (then any idle process takes it: one more decode
    beats a deep queue behind one process). A process that becomes free serves, in order: the
    oldest waiter passed over `MAX_SKIPS` times (nobody starves), the oldest waiter that prefers
    it, the oldest waiter with no live preference, then the oldest waiter at all (stealing from a
    busier process rather than idling while jobs wait).
    """

    STEAL_BACKLOG = 2
    MAX_SKIPS = 4
    MAX_AFFINITIES = 4096

    def __init__(self) -> None:
        self._idle: list[_RenderProcess] = []
        self._waiting: deque[_Waiter] = deque()
        self._affinity: OrderedDict[Hashable, _RenderProcess] = OrderedDict()

    def put(self, process: _RenderProcess) -> None:
        """`process` is free: give it to a waiting job, or keep it idle."""
        waiter = self._choose_waiter(process)
        if waiter is None:
            self._idle.append(process)
            return
        self._waiting.remove(waiter)
        waiter.granted.set_result(process)

    async def take(self, affinity: Hashable) -> _RenderProcess:
        preferred = self._affinity.get(affinity) if affinity is not None else None
        if preferred is not None and preferred in self._idle:
            self._idle.remove(preferred)
            process = preferred
        elif self._idle and (preferred is None or self._backlog(preferred) >= self.STEAL_BACKLOG):
            process = self._idle.pop(0)
        else:
            # No process is idle, or the preferred one is busy but hardly behind: wait for it.
            process = await self._wait(preferred)
        if affinity is not None:
            self._affinity[affinity] = process
            self._affinity.move_to_end(affinity)
            if len(self._affinity) > self.MAX_AFFINITIES:
                self._affinity.popitem(last=False)
        return process

    async def _wait(self, preferred: _RenderProcess | None) -> _RenderProcess:
        waiter = _Waiter(preferred)
        self._waiting.append(waiter)
        try:
            return await waiter.granted
        except BaseException:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self.put(waiter.granted.result())  # granted just as the wait was given up
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            raise

    def _backlog(self, process: _RenderProcess) -> int:
        return sum(1 for waiter in self._waiting if waiter.preferred is process)

    def _choose_waiter(self, process: _RenderProcess) -> _Waiter | None:
        # A waiter cancelled but not yet resumed (so still listed) cannot take a process.
        for waiter in [waiter for waiter in self._waiting if waiter.granted.done()]:
            self._waiting.remove(waiter)
        if not self._waiting:
            return None
        oldest = self._waiting[0]
        if oldest.skipped >= self.MAX_SKIPS:
            return oldest
        chosen = next((waiter for waiter in self._waiting if waiter.preferred is process), None)
        if chosen is None:
            chosen = next((waiter for waiter in self._waiting if waiter.preferred is None), None)
        if chosen is None:
            chosen = oldest
        if chosen is not oldest:
            oldest.skipped += 1
        return chosen

    def forget(self, process: _RenderProcess) -> None:
        """`process` is gone: its waiters go to whichever process is free first."""
        if process in self._idle:
            self._idle.remove(process)
        for key in [key for key, holder in self._affinity.items() if holder is process]:
            del self._affinity[key]
        for waiter in self._waiting:
            if waiter.preferred is process:
                waiter.preferred = None
        # Waiters that were waiting for it may take an idle process now.
        while self._idle and self._waiting:
            self.put(self._idle.pop(0))

    def drain(self) -> list[_RenderProcess]:
        idle, self._idle = self._idle, []
        return idle


class _RenderProcess:
    """One render process seen from the pool: the process and the pool's end of its socket."""

    def __init__(self, context: Any, options: _ProcessOptions) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = context.Process(
                target=_serve, args=(theirs, options), name="thumbserver-render", daemon=True
            )
            self._process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self.pid: int = self._process.pid
        try:
            # Blocking: a process starts in the pool's constructor or in a thread, never on the loop.
            ours.settimeout(_START_TIMEOUT_S)
            ready = _receive_blocking(ours)
            if ready is None or pickle.loads(ready) != ("ready",):
                raise RuntimeError(f"render process {self.pid} ended before it was ready")
        except BaseException:
            self.kill()
            ours.close()
            raise
        ours.setblocking(False)

    def alive(self) -> bool:
        # The sentinel is ready once the process has ended (cheaper than is_alive's selector;
        # poll, not select: a busy server's descriptors go past select's 1024).
        poller = select.poll()
        poller.register(self._process.sentinel, select.POLLIN)
        return not poller.poll(0)

    async def send(self, message: tuple[Any, ...]) -> None:
        await self.send_pickled(_pickled(message))

    async def send_pickled(self, payload: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self._socket, _LENGTH.pack(len(payload)) + payload)

    async def send_job(self, job: bytes, allowance: int) -> None:
        """A pickled ("job", function, args) with the bytes reserved for it (see the module)."""
        header = _LENGTH.pack(_LENGTH.size + len(job)) + _LENGTH.pack(allowance)
        await asyncio.get_running_loop().sock_sendall(self._socket, header + job)

    async def receive(self) -> tuple[Any, ...]:
        """The next message; EOFError when the process has gone."""
        (size,) = _LENGTH.unpack(await self._receive_exactly(_LENGTH.size))
        return pickle.loads(await self._receive_exactly(size))

    async def _receive_exactly(self, size: int) -> bytearray:
        loop = asyncio.get_running_loop()
        buffer = bytearray(size)
        view = memoryview(buffer)
        received = 0
        while received < size:
            count = await loop.sock_recv_into(self._socket, view[received:])
            if not count:
                raise EOFError("the render process closed its socket")
            received += count
        return buffer

    def kill(self) -> None:
        self._process.kill()  # a process that has already ended is left alone

    def close(self) -> None:
        """Close the pool's end of the socket. Never while a receive is waiting on it."""
        self._socket.close()

    def join(self, timeout: float) -> None:
        self._process.join(timeout)

    async def ended(self, timeout: float = 5.0) -> int | None:
        """The exit code once the process has ended (negative: the signal); None if it has not
        ended within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        sentinel = self._process.sentinel
        ended = loop.create_future()
        loop.add_reader(sentinel, lambda: ended.done() or ended.set_result(None))
        try:
            await asyncio.wait_for(ended, timeout)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(sentinel)
        self._process.join(0)
        return self._process.exitcode


def _pickled(message: tuple[Any, ...]) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _receive_blocking(sock: socket.socket) -> bytes | None:
    """The next message on a blocking socket, still pickled; None at end of file."""
    header = _receive_exactly(sock, _LENGTH.size)
    return None if header is None else _receive_exactly(sock, _LENGTH.unpack(header)[0])


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if not count:
            return None
        received += count
    return bytes(buffer)


def _describe(status: int | None) -> str:
    if status is None:
        return "no exit status yet"
    if status < 0:
        return f"signal {signal.Signals(-status).name}"
    if status == _OUT_OF_MEMORY:
        return "out of memory"
    return f"exit status {status}"


# --- inside a render process ------------------------------------------------------------------


class _Channel:
    """A render process's end of its socket (blocking: the process does nothing else)."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self.busy = False  # in a job
        self.announced = False  # announce_peak was called in this job
        self.allowance = 0  # bytes the pool reserved for this job: a peak up to this needs no asking
        self.stopping = False  # told to stop while in a job: stop after it

    def stop(self, signum: int, frame: object) -> None:
        """SIGTERM or SIGINT: stop now when idle, else once the job in hand is answered."""
        if not self.busy:
            raise SystemExit(0)
        self.stopping = True

    def receive(self) -> bytes | None:
        """The next message, still pickled; None when the pool has closed its end."""
        return _receive_blocking(self._socket)

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            payload = _pickled(message)
        except MemoryError:
            raise
        except Exception as error:  # an exception or a result that does not pickle
            payload = _pickled(("raised", RuntimeError(f"the render's answer ({message[0]}) does not pickle: {error!r}")))
        self._socket.sendall(_LENGTH.pack(len(payload)) + payload)

    def ask_for(self, n_bytes: int) -> None:
        if self.announced:
            raise RuntimeError("announce_peak may be called once per job")
        self.announced = True
        if n_bytes <= self.allowance:
            return
        self.send(("peak", n_bytes))
        answer = self.receive()
        if answer is None:
            raise SystemExit(0)  # the pool is gone
        kind, *rest = pickle.loads(answer)
        if kind == "refuse":
            raise rest[0]


# Set in a render process only: how `announce_peak` reaches the pool.
_channel: _Channel | None = None
# Set in a render process only, when the pool keeps intermediates.
_intermediates: IntermediateCache | None = None


def worker_intermediates() -> IntermediateCache | None:
    """The intermediate tier of this render process; None outside one, or when it keeps none."""
    return _intermediates


def announce_peak(n_bytes: int) -> None:
    """Wait until a render that holds at most `n_bytes` at once fits the pool's memory budget.

    Called by a job in a render process, at most once and before it decodes anything. Raises
    `SourceTooLarge` when `n_bytes` exceeds the whole budget. Outside a render process (a job
    called directly, as tests do) it returns at once.
    """
    if _channel is not None:
        _channel.ask_for(n_bytes)


def _serve(sock: socket.socket, options: _ProcessOptions) -> None:
    """The main loop of a render process: run jobs until the pool closes its end or a SIGTERM
    comes. Exit status 0 means it was told to stop; anything else is a crash."""
    global _channel, _intermediates
    channel = _channel = _Channel(sock)
    if options.intermediate_bytes > 0:
        host = None
        if options.host_intermediates is not None and options.host_intermediates[1] > 0:
            with contextlib.suppress(OSError):  # an unusable folder: this process decodes for itself
                host = HostIntermediates(*options.host_intermediates)
        _intermediates = IntermediateCache(options.intermediate_bytes, host)
    # A SIGTERM or Ctrl-C sent to the whole process group (systemd, a terminal) while the server
    # drains its requests must not cut a render short: the job in hand is finished first.
    signal.signal(signal.SIGINT, channel.stop)
    signal.signal(signal.SIGTERM, channel.stop)
    _cap_address_space(options.address_space_bytes)
    if options.nice:
        os.nice(options.nice)
    try:
        channel.send(("ready",))
        while not channel.stopping and (message := channel.receive()) is not None:
            channel.busy, channel.announced = True, False
            signal.setitimer(signal.ITIMER_REAL, options.alarm_s)  # SIGALRM's default: the process ends
            try:
                (channel.allowance,) = _LENGTH.unpack_from(message)
                _, function, args = pickle.loads(memoryview(message)[_LENGTH.size:])
                reply = ("done", function(*args))
            except MemoryError:
                os._exit(_OUT_OF_MEMORY)  # nothing in this process can be trusted to allocate now
            except Exception as error:
                reply = ("raised", error)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            channel.send(reply)
            channel.busy = False
    except MemoryError:
        os._exit(_OUT_OF_MEMORY)
    except OSError:
        pass  # the pool's end is gone: nobody waits for an answer


def _cap_address_space(n_bytes: int) -> None:
    if not n_bytes:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = n_bytes if hard == resource.RLIM_INFINITY else min(n_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
