"""`FileStore`: originals from a folder on disk, resolved safely inside it, and read checked."""

from __future__ import annotations

import errno
import fcntl
from functools import lru_cache
import os
import stat
from pathlib import Path
from typing import BinaryIO


from storage.fingerprints import Fingerprints, fingerprint_file
from storage.source import NotFound, Source, SourceChanged, check_lexically, holds, version_of


class FileStore:
    """The `OriginalStore` of a folder: today's resolution rules, one instance per image root."""

    def __init__(self, root: Path | str, extensions: frozenset[str] | set[str] | tuple[str, ...]) -> None:
        self.root = os.fspath(root)
        self.extensions = frozenset(extensions)
        # What an opened file's kernel name is checked against (the root as given may hold a symlink).
        self._real_root = os.path.realpath(self.root)
        self._fingerprints = Fingerprints()

    def __getstate__(self) -> dict:
        # The store travels to the render processes with every job: without its fingerprints
        # (they only read, and a pending hash's future does not pickle).
        return {key: value for key, value in self.__dict__.items() if key != "_fingerprints"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fingerprints = Fingerprints()

    def resolve(self, url_path: str) -> Source:
        source = resolve(self.root, url_path, self.extensions)
        known = self._fingerprints.known(source.version)
        return source if known is None else source._replace(fingerprint=known)

    async def identify(self, source: Source) -> Source:
        if source.fingerprint is not None:
            return source
        fingerprint = await self._fingerprints.of(source.version, lambda: self._fingerprint(source))
        return source._replace(fingerprint=fingerprint)

    def _fingerprint(self, source: Source) -> str:
        """Hash exactly the version `source` names (blocking: run in a thread)."""
        file, opened = open_regular(source, root=self._real_root)
        with file:
            if version_of(opened) != source.version:
                raise SourceChanged(source.relative)
            fingerprint = fingerprint_file(file, opened.st_size)
            if version_of(os.fstat(file.fileno())) != source.version:
                raise SourceChanged(source.relative)
        return fingerprint

    def read(self, source: Source, *, max_bytes: int) -> bytes:
        return read_source(source, max_bytes=max_bytes, root=self._real_root)

    def open(self, source: Source) -> BinaryIO:
        file, opened = open_regular(source, root=self._real_root)
        if not holds(opened, source):
            file.close()
            raise SourceChanged(source.relative)
        return file

    def unchanged(self, source: Source, file: BinaryIO) -> bool:
        return holds(os.fstat(file.fileno()), source)

    def still_names(self, source: Source) -> bool:
        """One lstat of the path `resolve` found: the same device, inode, size, mtime and ctime.
        A folder on the way swapped for a symlink leads the lstat elsewhere (another inode); a
        permission change moves the ctime. A source with a fingerprint is a version whose bytes
        were hashed, so an unchanged version keeps its identity."""
        if source.path is None or source.stat is None or source.fingerprint is None:
            return False
        try:
            return version_of(os.lstat(source.path)) == source.version
        except (OSError, ValueError):
            return False


def resolve(root: Path | str, url_path: str, extensions: frozenset[str] | set[str] | tuple[str, ...]) -> Source:
    """Return the regular file that `url_path` names inside `root`, or raise `NotFound`.

    `url_path` is the already percent-decoded path, without the leading "/". `root` must be
    absolute and already resolved. Refused: an empty path, empty/`.`/`..` segments, segments
    starting with `.`, NUL, backslashes, an extension not in `extensions` (lowercase, no dot),
    anything that resolves (symlinks followed) outside `root`, and anything not a regular file.
    """
    root = os.fspath(root)
    segments = _checked_segments(url_path, frozenset(extensions) if not isinstance(extensions, frozenset) else extensions)
    full_path, st = _walk_below(root, segments)
    if not stat.S_ISREG(st.st_mode):
        raise NotFound(f"{url_path!r} is not a regular file")
    if not _readable(full_path, st.st_dev, st.st_ino, st.st_ctime_ns):
        raise NotFound(f"{url_path!r} is not readable")
    return Source(relative=url_path, size=st.st_size, mtime_ns=st.st_mtime_ns, path=full_path, stat=st)


@lru_cache(maxsize=4096)  # the same paths come back endlessly; refusals raise and are not kept
def _checked_segments(url_path: str, extensions: frozenset[str]) -> tuple[str, ...]:
    return tuple(check_lexically(url_path, extensions))


@lru_cache(maxsize=4096)
def _readable(path: str, device: int, inode: int, ctime_ns: int) -> bool:
    """`os.access(path, R_OK)`, asked once per version of the file's permissions.

    A change of mode, owner or ACL changes the ctime, and the folders on the path were searched
    by the lstat that found this inode: so the answer for one (path, inode, ctime) never changes,
    and a cache hit is spared a syscall.
    """
    return os.access(path, os.R_OK)


def _walk_below(root: str, segments: tuple[str, ...]) -> tuple[str, os.stat_result]:
    """The path and stat of `segments` below `root`, symlinks followed only if they stay inside.

    Without symlinks the path is inside `root` by construction (the segments were checked
    lexically), and the last lstat is the file's stat: one syscall per segment, where
    `realpath` would lstat every folder from `/` down. At the first symlink, the whole path is
    resolved and compared with the root as whole paths, never as string prefixes:
    "/srv/images-private" is not inside "/srv/images".
    """
    path = root
    try:
        for segment in segments:
            path = f"{path}/{segment}"
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                return _resolve_links(root, "/".join(segments))
    except (OSError, ValueError) as exc:
        raise NotFound(f"{path!r}: {exc}") from None
    return path, st


def _resolve_links(root: str, relative: str) -> tuple[str, os.stat_result]:
    full_path = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([full_path, root]) != root:
        raise NotFound(f"{relative!r} resolves outside the root")
    return full_path, os.stat(full_path)


# O_NONBLOCK: a FIFO put in the file's place after `resolve` must not block open() forever
# (it has no effect on regular files). O_NOFOLLOW: `Source.path` had no symlink as its last
# component when it was resolved, so one there now was swapped in since; refuse it.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC

# What open() says about a path that is no longer a servable file (ELOOP: a symlink swapped in).
# Other errors (EMFILE, EIO…) are the server's own trouble, not a missing file, and propagate.
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ELOOP, errno.EISDIR,
                   errno.ENXIO, errno.ENAMETOOLONG})


def open_regular(source: Source, *, root: str) -> tuple[BinaryIO, os.stat_result]:
    """Open the file `source` names, check the open descriptor lies inside `root`, and return it
    with the descriptor's stat.

    The kernel walks `source.path` again, and any folder on it may have been swapped for a
    symlink to an outside folder since `resolve` checked it. So the check is made on what was
    opened, not on the path: the descriptor's own location (`/proc/self/fd/N`, the kernel's
    name for the open file, symlinks already resolved) must be inside `root`, and only that
    descriptor is ever read. Its `fstat` (not the earlier stat of the path) describes the bytes.
    Raises `NotFound` when the file has vanished, became unreadable, is no longer a regular
    file, or now lies outside the root. The caller closes the file.
    """
    try:
        descriptor = os.open(source.path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in _GONE:
            raise NotFound(f"{source.relative!r}: {exc.strerror}") from None
        raise
    try:
        if not _opened_inside(descriptor, root):
            raise NotFound(f"{source.relative!r} was opened outside the root (a folder swapped for a symlink?)")
        st = os.fstat(descriptor)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(f"{source.relative!r} is no longer a regular file")
        return os.fdopen(descriptor, "rb"), st
    except BaseException:
        os.close(descriptor)
        raise


def _opened_inside(descriptor: int, root: str) -> bool:
    """Whether the open file `descriptor` lies inside `root`, by the kernel's own name for it.

    Compared as whole paths, never as string prefixes ("/srv/images-private" is not inside
    "/srv/images"). A file unlinked since it was opened is named "… (deleted)" and still
    judged by its folder. Where the location cannot be known, the file is refused.
    """
    try:
        location = _location(descriptor)
    except OSError:
        return False
    return location.startswith(root) and os.path.commonpath([location, root]) == root


def _location(descriptor: int) -> str:
    """The kernel's path of an open descriptor: /proc on Linux, F_GETPATH on macOS."""
    get_path = getattr(fcntl, "F_GETPATH", None)
    if get_path is None:
        return os.readlink(f"/proc/self/fd/{descriptor}")
    return os.fsdecode(fcntl.fcntl(descriptor, get_path, bytes(1024)).rstrip(b"\0"))


def read_source(source: Source, *, max_bytes: int, root: str) -> bytes:
    """Read the whole file, checking it is still the version `source` describes and lies
    inside `root` (resolved, as `open_regular` checks it).

    Raises `NotFound` when it vanished or became unreadable, and `SourceChanged` when it is not
    the file `source` names or was written (`holds`), before or after the read (a replace or an
    in-place write happened since `resolve`, or during the read): the caller must not cache or
    label such bytes with the old identity. Reads at most `max_bytes + 1` bytes so a file that
    grew cannot exhaust memory.
    """
    file, st = open_regular(source, root=root)
    with file:
        if not holds(st, source):
            raise SourceChanged(source.relative)
        data = file.read(max_bytes + 1)
        # A write during the read changes the mtime (or the size) that fstat reports now.
        if len(data) != min(st.st_size, max_bytes + 1) or not holds(os.fstat(file.fileno()), source):
            raise SourceChanged(source.relative)
    return data
