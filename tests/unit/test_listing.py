"""storage.listing: what a folder lists (resolve's rules), in natural order, scanned once per version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import FolderLister, NotFound, natural_key, resolve

EXTENSIONS = frozenset({"jpg", "png"})


class TestNaturalOrder:
    """Digit runs compare as numbers, letters without case."""

    def test_order(self) -> None:
        names = ["img10.jpg", "IMG2.jpg", "img1.jpg", "b.jpg", "A.jpg", "img2.jpg", "10.jpg", "9.jpg"]
        assert sorted(names, key=natural_key) == [
            "9.jpg", "10.jpg", "A.jpg", "b.jpg", "img1.jpg", "IMG2.jpg", "img2.jpg", "img10.jpg"]


class TestRules:
    """Exactly the names resolve would serve."""

    def test_listed_names_resolve(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        (root / "sub").mkdir(parents=True)
        for name in ("a.jpg", "B.PNG", ".hidden.jpg", "notes.txt", "noext", "tab\there.jpg", "back\\slash.jpg"):
            (root / name).write_bytes(b"x")
        (root / ".git").mkdir()
        (tmp_path / "outside.jpg").write_bytes(b"x")
        (root / "escape.jpg").symlink_to(tmp_path / "outside.jpg")
        (root / "inside.jpg").symlink_to(root / "a.jpg")
        (root / "up").symlink_to(tmp_path)
        (root / "dangling.jpg").symlink_to(root / "gone.jpg")
        os.mkfifo(root / "fifo.jpg")
        listing = FolderLister(root, EXTENSIONS).listing("")
        assert listing.folders == ("sub",)
        assert listing.images == ("a.jpg", "B.PNG", "inside.jpg")
        for name in listing.images:
            assert resolve(str(root), name, EXTENSIONS).relative == name

    @pytest.mark.parametrize("relative", ["missing", ".git", "a.jpg", "up", "sub/..", "../root"])
    def test_not_folders(self, tmp_path: Path, relative: str) -> None:
        root = tmp_path / "root"
        (root / ".git").mkdir(parents=True)
        (root / "a.jpg").write_bytes(b"x")
        (root / "up").symlink_to(tmp_path)
        (root / "sub").mkdir()
        with pytest.raises(NotFound):
            FolderLister(root, EXTENSIONS).listing(relative)


class TestMemo:
    """A folder is scanned once per (mtime, inode); a change is seen at the next view."""

    def test_scanned_once(self, tmp_path: Path) -> None:
        (tmp_path / "a.jpg").write_bytes(b"x")
        lister = FolderLister(tmp_path, EXTENSIONS)
        first = lister.listing("")
        assert lister.listing("") is first
        assert lister.scans == 1
        (tmp_path / "b.jpg").write_bytes(b"x")
        os.utime(tmp_path, ns=(0, os.stat(tmp_path).st_mtime_ns + 1_000_000))  # coarse clocks
        second = lister.listing("")
        assert second.images == ("a.jpg", "b.jpg") and second.digest != first.digest
        assert lister.scans == 2
