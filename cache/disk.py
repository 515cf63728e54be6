"""`DiskStore`: the shared tier as files in one folder, for every worker process on a machine.

Hand-written rather than diskcache. diskcache is process-safe and well tested, but it
is synchronous SQLite: every call would need a thread of its own here anyway, its culling runs
inside its own transactions on its own terms, and its files can be read only through it. What
this tier needs is small and all POSIX: an atomic rename, an mtime, an `flock` and `O_EXCL`. So
it is the layout thumbor's file result storage uses (a versioned path, sharded by digest, a temp
file renamed into place).

What runs where: a thread hop costs about 0.3 ms of CPU on the 2-core bench machine (more than a
disk-tier hit's own work), so the metadata calls of local files (stat, O_EXCL create, rename,
unlink, a non-blocking flock), which cost microseconds, run on the event loop's thread, as the
originals' `lstat`s do. Data goes off the loop: an entry is read on the loop only when every
byte is already in the page cache (`preadv` with `RWF_NOWAIT`), otherwise through aiofiles;
entries are written in one thread hop; a flock that is busy (another process evicting) is
waited for in a thread, and eviction scans run there too.

Layout, under `{path}/v{LAYOUT_VERSION}/{namespace}/`::

    .usage                  "{bytes} {scanned_at}": the running total every process shares;
                            flock'ed while a write is counted and while entries are evicted
    .locks                  flock'ed while a stale render lock is taken over or a lock released
    ab/cd/abcd…             an entry: `StoredResult.to_bytes()`, checked on every read
    ab/cd/abcd….lock        a render lock: "{expires_at} {token}", created with O_EXCL
    ab/cd/.abcd….{rand}.tmp an entry being written

How the byte bound holds with several processes writing: a writer writes its temp file in full,
then counts its size into `.usage` under the flock, evicting first if the total would pass
`max_bytes`, and only then renames the file into place. Eviction scans the tree (temp files
included in the total, never evicted) and deletes the entries with the oldest mtime until the
total is under 90 % of `max_bytes`; a read touches its entry's mtime, so that order is least
recently used across every process. The counted total is never below what is on disk (overwrites
and deleted corrupt entries make it high until the next scan), so once writes settle the folder
is within `max_bytes`; while they run, within it plus the temp files being written. The total
is re-established by a scan when `.usage` is missing or older than `rescan_interval_s`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os

from cache.store import (
    DIGEST_PATTERN,
    LAYOUT_VERSION,
    CorruptEntry,
    StoredResult,
    UnusableStore,
    checked_digest,
    checked_namespace,
)

#: Eviction empties the folder down to this share of `max_bytes`, so it does not run on every write.
EVICT_TO = 0.9
#: Temp files and lock files left this long (by a process that died) are removed by the next scan.
_LEFTOVER_S = 3600.0
_USAGE = ".usage"
_LOCKS = ".locks"


class DiskStore:
    """A `ResultStore` in the folder `path`, bounded by `max_bytes`, least recently used out first.

    The constructor creates the folder and writes a probe file into it, raising `UnusableStore`
    (naming the folder and the reason) if it cannot: start-up stops with that one line.
    `check()` asks the same question again later. Stores on the same folder and namespace, in
    any number of processes, share entries, the byte budget and render locks.
    """

    kind = "disk"

    def __init__(
        self, path: str | os.PathLike[str], max_bytes: int, *, namespace: str, rescan_interval_s: float = 300.0
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.path = Path(path).expanduser().absolute()
        self.max_bytes = max_bytes
        self.namespace = checked_namespace(namespace)
        self.root = self.path / f"v{LAYOUT_VERSION}" / namespace
        self._root = str(self.root)  # entry paths are built as strings: pathlib's `/` costs more than the syscalls
        self._rescan_interval_s = rescan_interval_s
        self._usage_path = self.root / _USAGE
        self._locks_path = self.root / _LOCKS
        self._counting = asyncio.Lock()  # one thread per process waits on the .usage flock, not one per write
        self._held: dict[str, str] = {}  # digest -> token of the render locks this object holds
        self._evictions = self._oversize = 0
        self._prepare()

    # -- the protocol ---------------------------------------------------------------------------

    async def get(self, digest: str) -> StoredResult | None:
        path = self._entry_path(digest)
        try:
            # A stat of a local file costs microseconds: a miss never leaves the loop's thread.
            info = os.stat(path)
        except FileNotFoundError:
            return None
        try:
            data = _read_cached(path, info.st_size)
            if data is None:
                # Not all in the page cache: a read that may wait for the disk, off the loop.
                async with aiofiles.open(path, "rb") as file:
                    data = await file.read()
        except FileNotFoundError:
            return None
        try:
            result = StoredResult.from_bytes(data)
        except CorruptEntry:
            # A concurrent writer may have renamed a good entry in since the read: losing it
            # costs one render, keeping a corrupt one would cost every read.
            with suppress(FileNotFoundError):
                os.unlink(path)
            return None
        _touch(path)  # recency for eviction: a utime, microseconds on the loop's thread
        return result

    async def put(self, digest: str, result: StoredResult) -> None:
        """Store `result`; one larger than the whole budget is not stored (counted as oversize)."""
        path = self._entry_path(digest)
        data = result.to_bytes()
        if len(data) > self.max_bytes:
            self._oversize += 1
            return
        folder = path.rpartition("/")[0]
        temp = f"{folder}/.{digest}.{secrets.token_hex(6)}.tmp"
        try:
            # One thread hop for open, write and close (aiofiles would take three); the shard's
            # folders are made only when the first write into them finds them missing.
            await asyncio.to_thread(_write_new, temp, data)
            if not self._count_in_now(len(data)):
                # The budget's flock is busy (another process is evicting): wait for it in a thread.
                async with self._counting:
                    await asyncio.to_thread(self._count_in, len(data))
            os.replace(temp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)  # one syscall, also on cancellation: no await here
            raise

    async def lock(self, digest: str, ttl_s: float) -> bool:
        entry = self._entry_path(digest)
        path = entry + ".lock"
        token = secrets.token_hex(16)
        content = f"{time.time() + ttl_s:.6f} {token}\n".encode()
        try:
            created = _create_exclusive(path, content)
        except FileNotFoundError:  # the first of its shard: a mkdir is a metadata call like the others
            os.makedirs(path.rpartition("/")[0], exist_ok=True)
            created = _create_exclusive(path, content)
        if not created:
            if os.path.exists(path) and not _lock_expired(path, ttl_s):
                return False  # the common "someone renders it" answer, without a thread
            taken = await asyncio.to_thread(self._take_lock, entry, ttl_s)
            if taken is None:
                return False
            token = taken
        self._held[digest] = token
        return True

    async def unlock(self, digest: str) -> None:
        token = self._held.pop(checked_digest(digest), None)
        if token is None:
            return
        entry = self._entry_path(digest)
        if not self._release_lock_now(entry, token):
            await asyncio.to_thread(self._release_lock, entry, token)

    async def stats(self) -> dict[str, Any]:
        """kind, folder, budget, the byte total every process counts into, this process's
        evictions and oversize results, and whether the folder is writable."""
        total, reachable = await asyncio.to_thread(self._peek)
        return {
            "kind": self.kind,
            "path": str(self.root),
            "max_bytes": self.max_bytes,
            "bytes": total,
            "evictions": self._evictions,
            "oversize": self._oversize,
            "reachable": reachable,
        }

    async def check(self) -> None:
        await asyncio.to_thread(self._prepare)

    async def close(self) -> None:
        """Release the render locks still held; entries stay for the next process."""
        for digest in list(self._held):
            with suppress(OSError):
                await self.unlock(digest)

    # -- paths and start-up ---------------------------------------------------------------------

    def _entry_path(self, digest: str) -> str:
        checked_digest(digest)
        return f"{self._root}/{digest[:2]}/{digest[2:4]}/{digest}"

    def _prepare(self) -> None:
        """Create the folder and its two metadata files and write a probe, or `UnusableStore`."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for meta in (self._usage_path, self._locks_path):
                os.close(os.open(meta, os.O_RDWR | os.O_CREAT, 0o644))
            descriptor, probe = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=self.root)
            try:
                os.write(descriptor, b"probe")
            finally:
                os.close(descriptor)
                os.unlink(probe)
        except OSError as error:
            where = f" ({error.filename})" if error.filename and Path(error.filename) != self.path else ""
            reason = error.strerror or str(error)
            raise UnusableStore(f"disk cache folder {self.path} cannot be created or written{where}: {reason}") from error

    # -- the byte budget (these run in a thread) ------------------------------------------------

    def _count_in_now(self, size: int) -> bool:
        """`_count_in` on the loop's thread when it is quick: the flock is free and no eviction or
        rescan is due. False (nothing done) otherwise: the caller runs `_count_in` in a thread."""
        descriptor = _try_flock(self._usage_path)
        if descriptor is None:
            return False
        try:
            total, scanned_at = _read_usage(descriptor)
            if total is None or time.time() - scanned_at > self._rescan_interval_s or total + size > self.max_bytes:
                return False
            _write_usage(descriptor, total + size, scanned_at)
            return True
        finally:
            os.close(descriptor)

    def _release_lock_now(self, entry: str, token: str) -> bool:
        """`_release_lock` on the loop's thread when the `.locks` flock is free; False otherwise."""
        descriptor = _try_flock(self._locks_path)
        if descriptor is None:
            return False
        try:
            self._unlink_if_ours(entry + ".lock", token)
            return True
        finally:
            os.close(descriptor)

    def _count_in(self, size: int) -> None:
        """Add `size` (a temp file already on disk) to the shared total, evicting when over budget."""
        with _flocked(self._usage_path) as descriptor:
            total, scanned_at = _read_usage(descriptor)
            now = time.time()
            stale = total is None or now - scanned_at > self._rescan_interval_s
            if stale or total + size > self.max_bytes:
                total, scanned_at = self._rescan_and_evict(), now
            else:
                total += size
            _write_usage(descriptor, total, scanned_at)

    def _rescan_and_evict(self) -> int:
        """Scan the tree; delete oldest-mtime entries while the total is over budget. The total left."""
        entries, temp_bytes, stale_locks = self._scan()
        total = temp_bytes + sum(size for _, size, _ in entries)
        if total > self.max_bytes * EVICT_TO:
            entries.sort()
            for _, size, path in entries:
                if total <= self.max_bytes * EVICT_TO:
                    break
                with suppress(FileNotFoundError):
                    os.unlink(path)
                total -= size
                self._evictions += 1
        if stale_locks:
            with _flocked(self._locks_path):
                for path in stale_locks:
                    if _lock_expired(path):
                        with suppress(FileNotFoundError):
                            os.unlink(path)
        return total

    def _scan(self) -> tuple[list[tuple[int, int, str]], int, list[Path]]:
        """(mtime_ns, size, path) of every entry, the bytes of temp files in flight, and lock
        files old enough to have been left by a process that died. Removes leftover temp files."""
        entries: list[tuple[int, int, str]] = []
        temp_bytes = 0
        stale_locks: list[Path] = []
        leftover_before = time.time() - _LEFTOVER_S
        for folder in _shard_folders(self.root):
            items = _scandir(folder)
            listed = {item.name for item in items}
            for item in items:
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    # Evicted, dropped, or a temp file renamed into place since the listing:
                    # that entry was counted in by its writer and must be counted here too.
                    entry = _renamed_entry(folder, item.name, listed)
                    if entry is not None:
                        entries.append(entry)
                    continue
                if DIGEST_PATTERN.fullmatch(item.name):
                    entries.append((info.st_mtime_ns, info.st_size, item.path))
                elif item.name.endswith(".tmp"):
                    if info.st_mtime < leftover_before:
                        with suppress(FileNotFoundError):
                            os.unlink(item.path)
                    else:
                        temp_bytes += info.st_size
                elif item.name.endswith(".lock") and info.st_mtime < leftover_before:
                    stale_locks.append(Path(item.path))
        return entries, temp_bytes, stale_locks

    def _peek(self) -> tuple[int | None, bool]:
        try:
            with open(self._usage_path, "rb") as file:
                total, _ = _parse_usage(file.read(64))
        except OSError:
            return None, False
        return total, os.access(self.root, os.W_OK)

    # -- render locks (these run in a thread) ---------------------------------------------------

    def _take_lock(self, entry: str, ttl_s: float) -> str | None:
        """The new lock's token, or None if another holder's lock has not expired."""
        path = entry + ".lock"
        token = secrets.token_hex(16)
        content = f"{time.time() + ttl_s:.6f} {token}\n".encode()
        os.makedirs(path.rpartition("/")[0], exist_ok=True)
        if _create_exclusive(path, content):
            return token
        # Taking over an expired lock is two steps (unlink, create): under .locks, so that two
        # processes cannot both see it expired and both take it, and an unlock cannot race them.
        with _flocked(self._locks_path):
            if not _lock_expired(path, ttl_s):
                return None
            with suppress(FileNotFoundError):
                os.unlink(path)
            return token if _create_exclusive(path, content) else None

    def _release_lock(self, entry: str, token: str) -> None:
        with _flocked(self._locks_path):
            self._unlink_if_ours(entry + ".lock", token)

    @staticmethod
    def _unlink_if_ours(path: str, token: str) -> None:
        try:
            fields = _read_small(path).split()
        except FileNotFoundError:
            return
        if fields[1:2] == [token.encode()]:
            with suppress(FileNotFoundError):
                os.unlink(path)


def _read_cached(path: str, size: int) -> bytes | None:
    """The whole file if every byte is in the page cache (preadv with RWF_NOWAIT: the kernel
    answers without waiting for the disk), else None: then the caller reads it off the loop."""
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None:
        return None
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        buffer = bytearray(size + 1)  # one byte more: a file that grew since the stat shows it
        try:
            count = os.preadv(descriptor, [buffer], 0, flag)
        except (BlockingIOError, OSError):
            return None
        return bytes(buffer[:count]) if count == size else None
    finally:
        os.close(descriptor)


def _write_new(path: str, data: bytes) -> None:
    """Write `data` into the new file `path`, making its folders if they are missing."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        os.makedirs(path.rpartition("/")[0], exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with open(descriptor, "wb") as file:
        file.write(data)


def _read_small(path: str) -> bytes:
    """The bytes of a small file (a lock's): one open, one read, one close."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(descriptor, 4096)
    finally:
        os.close(descriptor)


def _touch(path: str) -> None:
    """Mark an entry recently used; one evicted meanwhile is no matter."""
    with suppress(FileNotFoundError):
        os.utime(path)


@contextmanager
def _flocked(path: Path) -> Iterator[int]:
    """An exclusive flock on `path` (created if the folder lost it), released on exit."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield descriptor
    finally:
        os.close(descriptor)  # releases the flock


def _try_flock(path: Path) -> int | None:
    """A descriptor of `path` holding its exclusive flock, or None when another process holds it
    (or the file is gone): never blocks, so it may run on the event loop's thread."""
    try:
        descriptor = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _read_usage(descriptor: int) -> tuple[int | None, float]:
    return _parse_usage(os.pread(descriptor, 64, 0))


def _parse_usage(data: bytes) -> tuple[int | None, float]:
    try:
        total, scanned_at = data.split()
        return int(total), float(scanned_at)
    except ValueError:
        return None, 0.0  # new, or torn: the caller rescans


def _write_usage(descriptor: int, total: int, scanned_at: float) -> None:
    # Fixed width, so a reader without the flock sees an old or a new line, never a mix of lengths.
    os.pwrite(descriptor, f"{total:20d} {scanned_at:20.3f}\n".encode(), 0)


def _create_exclusive(path: str, content: bytes) -> bool:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(descriptor, content)
    finally:
        os.close(descriptor)
    return True


def _lock_expired(path: str | Path, ttl_s: float = 0.0) -> bool:
    """Whether the lock at `path` is gone or past its expiry. A lock still being written (empty)
    counts as expiring `ttl_s` after its mtime."""
    try:
        data = _read_small(os.fspath(path))
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return True
    try:
        expires_at = float(data.split()[0])
    except (ValueError, IndexError):
        expires_at = mtime + ttl_s
    return expires_at <= time.time()


def _renamed_entry(folder: str, temp_name: str, listed: set[str]) -> tuple[int, int, str] | None:
    """(mtime_ns, size, path) of the entry that temp file `temp_name` became, if it was not listed."""
    if not temp_name.endswith(".tmp"):
        return None
    name = temp_name[1:].partition(".")[0]
    if name in listed or not DIGEST_PATTERN.fullmatch(name):
        return None
    listed.add(name)
    path = os.path.join(folder, name)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size, path


def _shard_folders(root: Path) -> Iterator[str]:
    for first in _scandir(root):
        if len(first.name) == 2 and first.is_dir(follow_symlinks=False):
            for second in _scandir(first.path):
                if len(second.name) == 2 and second.is_dir(follow_symlinks=False):
                    yield second.path


def _scandir(path: str | Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as items:
            return list(items)
    except FileNotFoundError:
        return []
