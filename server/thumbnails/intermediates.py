"""The intermediate tiers: decoded sources kept in a render process's memory, and in a folder
every render process of the machine reads (`HostIntermediates`), each bounded in bytes.

Keyed by the source's path and identity (size, mtime, fingerprint of its bytes) and the class
(server/imaging/intermediate.py), so a source that changes gets new keys and never reuses a stale
intermediate; the old ones age out. The memory tier belongs to one render process, touched by its
one job at a time: no lock. Not shared between nodes: a decoded 1500x1000 intermediate is 4.5 MB,
more than re-decoding it costs to fetch from a disk or Redis tier over a network.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Hashable

from cachetools import LRUCache
from PIL import Image, ImageFile

from server.imaging.geometry import Geometry
from server.imaging.intermediate import Intermediate, ShareResize, SourceFacts, class_size
from server.imaging.pipeline import RENDERER_VERSION

SourceKey = tuple[str, int, int, str | None]  # relative path, size, mtime_ns, fingerprint
#: Facts are a few dozen bytes each; kept for more sources than intermediates fit.
MAX_FACTS = 4096


class IntermediateCache:
    """At most `max_bytes` of intermediate pixels, least recently used dropped first; an
    intermediate larger than the whole budget is used once and not kept."""

    def __init__(self, max_bytes: int, host: HostIntermediates | None = None) -> None:
        self.max_bytes = max_bytes
        self.host = host  # the machine's tier, or None
        self._images: LRUCache[tuple[SourceKey, int], Intermediate] = LRUCache(
            maxsize=max(1, max_bytes), getsizeof=lambda found: found.kept_bytes
        )
        self._facts: LRUCache[SourceKey, SourceFacts] = LRUCache(maxsize=MAX_FACTS)

    def facts(self, source: SourceKey) -> SourceFacts | None:
        return self._facts.get(source)

    def get(self, source: SourceKey, eighths: int) -> Intermediate | None:
        return self._images.get((source, eighths))

    def put(self, source: SourceKey, facts: SourceFacts, eighths: int, intermediate: Intermediate) -> None:
        """Keep `intermediate`; put it again after a render from it, to count the resizes it
        has kept since (`Intermediate.kept_bytes`)."""
        self._facts[source] = facts
        if self.max_bytes <= 0 or intermediate.kept_bytes > self.max_bytes:
            self._images.pop((source, eighths), None)
            return
        self._images[(source, eighths)] = intermediate

    def resize_sharer(self, source: SourceKey, facts: SourceFacts, eighths: int) -> ShareResize | None:
        """How renders from `source`'s class `eighths` share their resizes with other processes
        (`Intermediate.resized`); None without the machine's tier."""
        if self.host is None:
            return None
        return functools.partial(self.host.resize_once, host_key(source, facts), eighths)

    @property
    def nbytes(self) -> int:
        return int(self._images.currsize)

    def __len__(self) -> int:
        return len(self._images)


class HostIntermediates:
    """Intermediates shared by every render process of a machine: one file each in a RAM-backed
    folder (`/dev/shm`), at most about `max_bytes` together, least recently used removed first.

    Each server process has render processes of its own, and requests for one source reach every
    server process: without this, each of them decodes the source again (a 6000x4000 photo's
    srcset decoded at 1/8 and 2/8 by two server processes: four decodes instead of two). Reading
    one back costs a copy (~1 ms for 4.5 MB) against a decode of 50-150 ms.

    Files are written whole and renamed into place, and checked when read (the key they were
    written for, their length): a torn, foreign or stale file is a miss, never other pixels.
    Processes race only on eviction, where a file already gone is fine; the bound may be passed
    by the entries being written at that moment.

    One decode per class per machine: a render process that misses an entry `claim`s it (a lock
    file beside the entry, made with O_EXCL) and decodes; one that finds it claimed `await_entry`s
    the entry instead of decoding too, as two server processes asked for one srcset at the same
    moment do. The wait is bounded (then it decodes for itself), and a claim whose process has
    died, or that is older than `STALE_CLAIM_S`, is taken over: nobody waits long on a lost one.
    """

    #: A claim this old is lost whoever holds it (a decode takes well under a second; a pid may
    #: be reused, or be another PID namespace's).
    STALE_CLAIM_S = 10.0
    #: How often a waiting process looks for the entry (first, then doubled up to the last).
    POLL_S = (0.002, 0.02)
    #: How long to wait for another process's resize (one takes 3-40 ms) before resizing here.
    RESIZE_WAIT_S = 0.5
    #: How old this process's knowledge of the folder's bytes may be before it scans it again.
    RESCAN_S = 1.0

    #: Modes whose raw bytes alone rebuild the image (no palette, no info needed).
    MODES = frozenset({"RGB", "RGBA", "L", "LA"})

    def __init__(self, folder: str, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._known: int | None = None  # the folder's bytes as this process last knew them
        self._scanned_at = 0.0
        os.makedirs(folder, mode=0o700, exist_ok=True)

    def get(self, key: Hashable, eighths: int) -> Intermediate | None:
        path = self._path(key, eighths)
        try:
            with open(path, "rb") as file:
                data = file.read()
            os.utime(path)  # recently used
        except OSError:
            return None
        try:
            length = int.from_bytes(data[:4], "big")
            header = json.loads(data[4 : 4 + length])
            if header["key"] != repr((key, eighths)):
                return None  # another key's file under a colliding name
            mode, size = header["mode"], tuple(header["size"])
            pixels = memoryview(data)[4 + length :]
            if mode not in self.MODES or len(pixels) != size[0] * size[1] * len(mode):
                return None
            return Intermediate(
                image=Image.frombytes(mode, size, pixels),
                source_size=tuple(header["source_size"]),
                source_format=header["source_format"],
                icc_profile=base64.b64decode(header["icc"]) if header["icc"] is not None else None,
                lossless_webp=header["lossless_webp"],
            )
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, key: Hashable, eighths: int, intermediate: Intermediate) -> None:
        image = intermediate.image
        if image.mode not in self.MODES:
            return
        header = json.dumps({
            "key": repr((key, eighths)), "mode": image.mode, "size": list(image.size),
            "source_size": list(intermediate.source_size), "source_format": intermediate.source_format,
            "icc": base64.b64encode(intermediate.icc_profile).decode() if intermediate.icc_profile else None,
            "lossless_webp": intermediate.lossless_webp,
        }).encode()
        total = 4 + len(header) + image.width * image.height * len(image.mode)
        if total > self.max_bytes:
            return
        try:
            self._make_room(total)
            descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(descriptor, "wb") as file:
                file.write(len(header).to_bytes(4, "big") + header)
                file.flush()
                # The raw pixels straight from Pillow's memory to the file, a block at a time
                # (ImageFile._save, as Pillow's own raw formats write): no copy of them all first.
                ImageFile._save(image, file, [ImageFile._Tile("raw", (0, 0, *image.size), 0, (image.mode, 0, 1))])
            os.replace(temporary, self._path(key, eighths))
        except OSError:  # a full /dev/shm degrades to decoding, never fails a render
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temporary)

    def get_or_decode(self, key: Hashable, eighths: int, decode: Callable[[], Intermediate], *,
                      wait_s: float, keep: bool) -> tuple[Intermediate, bool]:
        """`key`'s class `eighths` from this tier, else from `decode()`: the intermediate, and
        whether it was found (True) or decoded (False).

        While another process decodes it, wait for its entry up to `wait_s` (a few times what the
        decode should take), then decode here too: a slow or lost holder costs one more decode,
        never a failed render. The bytes of the thumbnails are the same either way.

        What this process decodes is written for the others when `keep` (see `worth_sharing`),
        or when another process waited for it, or this one waited for another's (the class is
        asked by several at once).
        """
        deadline = time.monotonic() + wait_s
        shared = False  # another process decodes it too
        while True:
            found = self.get(key, eighths)
            if found is not None:
                return found, True
            claimed = self.claim(key, eighths)
            if claimed:
                found = self.get(key, eighths)  # written and released between the get and the claim
                if found is None:
                    break
                self.release(key, eighths)
                return found, True
            shared = True
            found = self.await_entry(key, eighths, deadline - time.monotonic())
            if found is not None:
                return found, True
            if time.monotonic() >= deadline:
                break  # the holder is slow: decode here too
            # The holder gave up without an entry: claim it again (one of the waiters will).
        try:
            intermediate = decode()
            if keep or shared or (claimed and self._wanted(key, eighths)):
                self.put(key, eighths, intermediate)
        finally:
            if claimed:
                self.release(key, eighths)
        return intermediate, False

    def resize_once(self, key: Hashable, eighths: int, geometry: Geometry, make: Callable[[], Image.Image]) -> Image.Image:
        """`make()`, the resize of `key`'s class `eighths` to `geometry`, or the same pixels from
        another process that makes it at this moment (the JPEG and the WebP of one width, asked
        at once of two server processes): kept here only while someone waits for it."""
        def as_entry() -> Intermediate:
            return Intermediate(image=make(), source_size=(0, 0), source_format=None, icc_profile=None,
                                lossless_webp=False)

        found, _ = self.get_or_decode((key, "resized", tuple(geometry)), eighths, as_entry,
                                      wait_s=self.RESIZE_WAIT_S, keep=False)
        return found.image

    def claim(self, key: Hashable, eighths: int) -> bool:
        """Take the right to decode `key`'s class `eighths` for the machine: True when this process
        holds it now (it then `put`s the entry, or not, and `release`s), False when a live process
        already does. A lost claim (dead holder, or older than STALE_CLAIM_S) is taken over."""
        lock = self._path(key, eighths) + ".lock"
        for _ in range(2):  # the second try after removing a lost claim
            try:
                # O_APPEND: a waiter's mark made before the pid is written is kept.
                descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            except FileExistsError:
                if not self._claim_is_lost(lock):
                    return False
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                continue
            except OSError:
                return True  # no lock can be made here: decode, as without the tier
            try:
                os.write(descriptor, str(os.getpid()).encode())
            finally:
                os.close(descriptor)
            return True
        return False

    def release(self, key: Hashable, eighths: int) -> None:
        """End this process's claim (after its `put`, so waiters find the entry at once)."""
        with contextlib.suppress(OSError):
            os.unlink(self._path(key, eighths) + ".lock")

    def await_entry(self, key: Hashable, eighths: int, timeout_s: float) -> Intermediate | None:
        """The entry another process is decoding, once it is there; None when its claim ends
        without one (the holder failed, or the entry was not kept), or after `timeout_s`: the
        caller then decodes for itself."""
        lock = self._path(key, eighths) + ".lock"
        with contextlib.suppress(OSError):  # not created: a claim already released is not marked
            descriptor = os.open(lock, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(descriptor, b"+")  # wanted: the holder writes its entry for us
            finally:
                os.close(descriptor)
        deadline = time.monotonic() + timeout_s
        delay = self.POLL_S[0]
        while True:
            found = self.get(key, eighths)
            if found is not None:
                return found
            if not os.path.exists(lock) or self._claim_is_lost(lock):
                return self.get(key, eighths)  # put just before the release
            if time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, self.POLL_S[1])

    def _wanted(self, key: Hashable, eighths: int) -> bool:
        """Whether a process waits for this process's claim of the entry (it marked the claim)."""
        try:
            with open(self._path(key, eighths) + ".lock", "rb") as file:
                return b"+" in file.read()
        except OSError:
            return False

    def _claim_is_lost(self, lock: str) -> bool:
        try:
            age = time.time() - os.stat(lock).st_mtime
            with open(lock) as file:
                pid = int(file.read().strip("+") or 0)
        except (OSError, ValueError):
            return False  # gone (released) or being written: not lost
        if age > self.STALE_CLAIM_S:
            return True
        if pid <= 0:
            return age > 1.0  # created, its pid not yet written: lost only if it stays so
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass  # another user's process: alive
        return False

    def _make_room(self, incoming: int) -> None:
        """Remove the least recently used entries until `incoming` more bytes fit. The folder is
        scanned (0.1-1 ms for 10-150 entries) only when what this process knows of it (its last
        scan, plus what it wrote since) comes near the bound, or that knowledge is RESCAN_S old:
        other processes write too, so the bound may be passed by what they wrote meanwhile."""
        now = time.monotonic()
        if (self._known is not None and now - self._scanned_at < self.RESCAN_S
                and self._known + incoming <= self.max_bytes * 0.9):
            self._known += incoming
            return
        self._scanned_at = now
        entries = []
        with os.scandir(self.folder) as found:
            for entry in found:
                if entry.name.endswith(".lock"):
                    if self._claim_is_lost(entry.path):  # its holder died, and nobody asked since
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                    continue  # a claim, not an entry: its holder removes it
                with contextlib.suppress(OSError):
                    stat = entry.stat()
                    entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total + incoming <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
            total -= size
        self._known = total + incoming

    def _path(self, key: Hashable, eighths: int) -> str:
        name = hashlib.blake2b(repr((key, eighths)).encode(), digest_size=16).hexdigest()
        return os.path.join(self.folder, name)


def host_key(source: SourceKey, facts: SourceFacts) -> Hashable:
    """A class's key in the machine's tier: the source, and how it is decoded (simplejpeg or
    Pillow's draft) by which renderer."""
    return (source, facts.decoder, RENDERER_VERSION)


def worth_sharing(facts: SourceFacts, eighths: int, *, seen: bool) -> bool:
    """Whether to write a class just decoded to the machine's tier though nobody waits for it.

    Writing a 1 MB class costs ~1.1-1.3 ms of CPU (new tmpfs pages and their copy; measured
    median): 5 % of a cold 2 MP render (its 3/8 decode takes 11 ms), which a source asked once
    never repays; a 24 MP source's 1/8 or 2/8 decode costs 65-100 ms, so its write pays when one
    other process in fifty asks for it. Written: a source this process has rendered before
    (`seen`: a srcset in progress), or a class with 16 times fewer pixels than the source (at
    most 2/8 of a scaled JPEG).
    """
    if seen:
        return True
    width, height = facts.stored_size
    class_width, class_height = class_size(facts, eighths)
    return width * height >= 16 * class_width * class_height


def expected_decode_s(facts: SourceFacts) -> float:
    """About what decoding `facts`' source takes on a loaded machine, generously: 20 ns a stored
    pixel (a 24 MP JPEG at 1/8 measured 3 ns), at least 0.25 s."""
    width, height = facts.stored_size
    return max(0.25, width * height * 20e-9)


def host_folder(namespace: str) -> str:
    """Where a machine's render processes keep shared intermediates: RAM-backed `/dev/shm` where
    there is one, else the temporary folder; one folder per user and image root."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"thumbserver-{os.getuid()}", namespace)
