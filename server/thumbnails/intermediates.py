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
import hashlib
import json
import os
import tempfile
from collections.abc import Hashable

from cachetools import LRUCache
from PIL import Image

from server.imaging.intermediate import Intermediate, SourceFacts

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
            maxsize=max(1, max_bytes), getsizeof=lambda found: found.nbytes
        )
        self._facts: LRUCache[SourceKey, SourceFacts] = LRUCache(maxsize=MAX_FACTS)

    def facts(self, source: SourceKey) -> SourceFacts | None:
        return self._facts.get(source)

    def get(self, source: SourceKey, eighths: int) -> Intermediate | None:
        return self._images.get((source, eighths))

    def put(self, source: SourceKey, facts: SourceFacts, eighths: int, intermediate: Intermediate) -> None:
        self._facts[source] = facts
        if self.max_bytes <= 0 or intermediate.nbytes > self.max_bytes:
            return
        self._images[(source, eighths)] = intermediate

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
    """

    #: Modes whose raw bytes alone rebuild the image (no palette, no info needed).
    MODES = frozenset({"RGB", "RGBA", "L", "LA"})

    def __init__(self, folder: str, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
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
        pixels = image.tobytes()
        total = 4 + len(header) + len(pixels)
        if total > self.max_bytes:
            return
        try:
            self._make_room(total)
            descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(descriptor, "wb") as file:
                file.write(len(header).to_bytes(4, "big") + header)
                file.write(pixels)
            os.replace(temporary, self._path(key, eighths))
        except OSError:  # a full /dev/shm degrades to decoding, never fails a render
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temporary)

    def _make_room(self, incoming: int) -> None:
        entries = []
        with os.scandir(self.folder) as found:
            for entry in found:
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

    def _path(self, key: Hashable, eighths: int) -> str:
        name = hashlib.blake2b(repr((key, eighths)).encode(), digest_size=16).hexdigest()
        return os.path.join(self.folder, name)


def host_folder(namespace: str) -> str:
    """Where a machine's render processes keep shared intermediates: RAM-backed `/dev/shm` where
    there is one, else the temporary folder; one folder per user and image root."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"thumbserver-{os.getuid()}", namespace)
