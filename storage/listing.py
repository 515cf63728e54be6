"""Folder listings for the gallery: what a folder holds that `resolve` would serve, listed once
per version of the folder.

A listing follows `resolve`'s rules exactly: no dot-files or dot-folders, no name a URL segment
cannot carry (control characters, bytes that are not UTF-8, backslashes), only the allowed
extensions, only regular files and folders, and a symlink only when it resolves inside the root.
Names are sorted in natural order ("img2" before "img10"), case-insensitively.

The listing of a folder is memoised by the folder's (mtime_ns, inode): adding, removing or
renaming an entry changes the folder's mtime, so a page view of an unchanged folder costs one
stat, however many files it holds. (A file whose content changes in place keeps its folder's
mtime, and a listing shows names only, so it stays right.)
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterable
from hashlib import blake2b
from typing import NamedTuple

from storage.source import NotFound

# C0 controls, DEL and C1 controls: never in a servable URL segment (as the URL classifier refuses).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_DIGITS = re.compile(r"(\d+)")


class FolderListing(NamedTuple):
    """A folder's servable content. `relative` is "" for the root, else "a/b" (no slashes around);
    `digest` names this content (it changes whenever a listed name does)."""

    relative: str
    folders: tuple[str, ...]
    images: tuple[str, ...]
    digest: str


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key: digit runs compare as numbers, the rest case-insensitively ("a2" < "A10")."""
    parts: list[object] = _DIGITS.split(name.casefold())  # text, digits, text, digits…, text
    parts[1::2] = map(int, parts[1::2])  # type: ignore[arg-type]
    parts.append(name)  # equal ignoring case: a stable, total order
    return tuple(parts)


class FolderLister:
    """Lists folders below one root; remembers the last `memo_folders` listings."""

    def __init__(self, root: str | os.PathLike[str], extensions: Iterable[str], *, memo_folders: int = 64) -> None:
        self.root = os.fspath(root)
        self.extensions = frozenset(extensions)
        self._memo_folders = memo_folders
        self._memo: dict[str, tuple[tuple[int, int], FolderListing]] = {}
        self._lock = threading.Lock()
        self.scans = 0  # folders actually read (not memoised), for tests and measurements

    def folder_path(self, relative: str) -> str:
        """The real path of the folder `relative` ("" or "a/b") names inside the root, or `NotFound`."""
        return self._folder(relative)[0]

    def _folder(self, relative: str) -> tuple[str, os.stat_result]:
        if relative:
            for segment in relative.split("/"):
                if not _servable_name(segment):
                    raise NotFound(f"segment {segment!r} refused")
        full = os.path.realpath(os.path.join(self.root, relative)) if relative else self.root
        if os.path.commonpath([full, self.root]) != self.root:
            raise NotFound(f"{relative!r} resolves outside the root")
        try:
            st = os.stat(full)
        except OSError as error:
            raise NotFound(f"{relative!r}: {error.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise NotFound(f"{relative!r} is not a folder")
        return full, st

    def is_folder(self, relative: str) -> bool:
        try:
            self.folder_path(relative)
        except NotFound:
            return False
        return True

    def listing(self, relative: str) -> FolderListing:
        """The listing of the folder `relative`; `NotFound` when it is not a servable folder.

        Blocking (a stat, and a scan of the folder when it changed): call it from a thread.
        """
        full, st = self._folder(relative)
        version = (st.st_mtime_ns, st.st_ino)
        with self._lock:
            found = self._memo.get(full)
        if found is not None and found[0] == version:
            return found[1]
        listing = self._scan(relative, full)
        with self._lock:
            if len(self._memo) >= self._memo_folders:
                self._memo.pop(next(iter(self._memo)))  # the oldest folder listed
            self._memo[full] = (version, listing)
        return listing

    def _scan(self, relative: str, full: str) -> FolderListing:
        self.scans += 1
        folders: list[str] = []
        images: list[str] = []
        try:
            entries = list(os.scandir(full))
        except OSError as error:
            raise NotFound(f"{relative!r}: {error.strerror}") from None
        for entry in entries:
            name = entry.name
            if not _servable_name(name):
                continue
            kind = self._kind(entry)
            if kind == "folder":
                folders.append(name)
            elif kind == "file" and _has_extension(name, self.extensions) and os.access(entry.path, os.R_OK):
                # (access: an unreadable file is not served by resolve either.)
                images.append(name)
        folders.sort(key=natural_key)
        images.sort(key=natural_key)
        digest = blake2b("\0".join(["d", *folders, "f", *images]).encode(), digest_size=12).hexdigest()
        return FolderListing(relative.strip("/"), tuple(folders), tuple(images), digest)

    def _kind(self, entry: os.DirEntry[str]) -> str | None:
        """"folder", "file" or None, from the entry's type (no stat), following a symlink only
        when it stays inside the root."""
        try:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if os.path.commonpath([target, self.root]) != self.root:
                    return None
                st = os.stat(target)
                return "folder" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else None
            if entry.is_dir(follow_symlinks=False):
                return "folder"
            if entry.is_file(follow_symlinks=False):
                return "file"
        except (OSError, ValueError):
            return None
        return None


def _servable_name(name: str) -> bool:
    """Whether one path segment may name something served: not empty, no leading dot, no
    backslash, no control character, and valid UTF-8 (a file name that is not UTF-8 arrives
    with surrogate escapes, which no URL can carry)."""
    if not name or name.startswith(".") or "\\" in name or _CONTROLS.search(name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_extension(name: str, extensions: frozenset[str]) -> bool:
    """check_lexically's extension rule, for a name `_servable_name` already accepted."""
    stem, dot, extension = name.rpartition(".")
    return bool(dot) and extension.lower() in extensions
