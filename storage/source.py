"""What every original store returns and raises, and the path rules they all apply."""

from __future__ import annotations

import os
from typing import NamedTuple


class NotFound(Exception):
    """No servable original for this path: missing, refused by a rule, or unreadable.

    The message is for logs only; clients get a generic answer so nothing about the
    storage leaks (which rule refused it, or whether a file exists outside the rules).
    """


class SourceChanged(Exception):
    """The original was replaced or modified between `resolve` and reading it, or while it was read."""


class Source(NamedTuple):
    """One version of an original, as it was when resolved.

    `relative` is the normalised path below the root ("a/b.jpg"). `identity` names this content
    for caches and ETags on every node; `version` tells this version of the file from any other
    on this machine (what reads check). `path` and `stat` are set by stores backed by local
    files; `fingerprint` once the store has hashed the bytes (`OriginalStore.identify`). A named
    tuple: one is built per request, on the cache-hit path too.
    """

    relative: str
    size: int
    mtime_ns: int
    path: str | None = None
    stat: os.stat_result | None = None
    fingerprint: str | None = None

    @property
    def identity(self) -> tuple[int, int, str | None]:
        """Size, mtime and a fingerprint of the bytes: the same on every node that holds the same
        file (copies made with `rsync -a` or `cp -p`), and different for other bytes even when
        size and mtime are the same (a file renamed into place, pinned build mtimes)."""
        return (self.size, self.mtime_ns, self.fingerprint)

    @property
    def version(self) -> tuple[int, ...]:
        """Size and mtime, and for a local file its device, inode and ctime: a file renamed into
        place has another inode, and an mtime set back by hand moves the ctime on."""
        return version_of(self.stat) if self.stat is not None else (self.size, self.mtime_ns)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def name(self) -> str:
        return self.relative.rpartition("/")[2]


def version_of(st: os.stat_result) -> tuple[int, ...]:
    """The `Source.version` of a local file whose stat is `st`."""
    return (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_ctime_ns)


def holds(st: os.stat_result, source: Source) -> bool:
    """Whether an open file whose stat is `st` is the file `source` names, unwritten since: same
    device, inode, size and mtime. Its ctime may have moved: a file renamed over or unlinked
    while open keeps its bytes (the ctime counts in `version`, which names what is hashed)."""
    if source.stat is None:
        return (st.st_size, st.st_mtime_ns) == (source.size, source.mtime_ns)
    return version_of(st)[:4] == source.version[:4]


def check_lexically(url_path: str, extensions: frozenset[str] | set[str] | tuple[str, ...]) -> list[str]:
    """The segments of `url_path`, or `NotFound` for what no store may serve.

    Refused: an empty path, empty/`.`/`..` segments, segments starting with `.` (dot-files such as
    `.git` or `.env`), NUL, backslashes, and an extension not in `extensions` (lowercase, no dot).
    """
    if not url_path:
        raise NotFound("empty path")
    if "\x00" in url_path or "\\" in url_path:
        raise NotFound("NUL or backslash in path")
    segments = url_path.split("/")
    for segment in segments:
        # Covers "", ".", ".." and dot-files/dot-folders such as ".git" or ".env" in one rule.
        if not segment or segment.startswith("."):
            raise NotFound(f"segment {segment!r} refused")
    _, dot, extension = segments[-1].rpartition(".")
    if not dot or extension.lower() not in extensions:
        raise NotFound(f"extension of {segments[-1]!r} not allowed")
    return segments
