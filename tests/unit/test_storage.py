"""Path resolution: every accepted and refused case of DESIGN.md §URLs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import NotFound, SourceChanged, read_source, resolve

EXTENSIONS = frozenset({"jpg", "jpeg", "png"})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with files, a sub-folder, dot-files, symlinks in and out, and a sibling-prefix folder."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "a.jpg").write_bytes(b"a")
    (root / "UPPER.JPG").write_bytes(b"u")
    (root / "sub" / "b.png").write_bytes(b"b")
    (root / "sub" / "ünï cødé.jpg").write_bytes(b"u")
    (root / ".env.jpg").write_bytes(b"secret")
    (root / ".hidden" / "c.jpg").write_bytes(b"c")
    (root / "notes.txt").write_bytes(b"t")
    (root / "dir.jpg").mkdir()
    sibling = tmp_path / "images-private"
    sibling.mkdir()
    (sibling / "secret.jpg").write_bytes(b"secret")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"outside")
    os.symlink(outside, root / "link-out.jpg")
    os.symlink(root / "a.jpg", root / "link-in.jpg")
    os.symlink(tmp_path, root / "up")
    os.symlink(sibling, root / "sub" / "private")
    return root.resolve()


ACCEPTED = [
    ("a.jpg", "a.jpg"),
    ("UPPER.JPG", "UPPER.JPG"),
    ("sub/b.png", "sub/b.png"),
    ("sub/ünï cødé.jpg", "sub/ünï cødé.jpg"),
    ("link-in.jpg", "a.jpg"),
]

REFUSED = [
    "",
    "/",
    "a.jpg/",
    "sub//b.png",
    "./a.jpg",
    "sub/./b.png",
    "sub/../a.jpg",
    "../images-private/secret.jpg",
    "..",
    ".env.jpg",
    ".hidden/c.jpg",
    "a.jpg\x00.png",
    "sub\\b.png",
    "notes.txt",
    "a",
    "missing.jpg",
    "dir.jpg",
    "link-out.jpg",
    "up/outside.jpg",
    "up/images-private/secret.jpg",
    "sub/private/secret.jpg",
]


class TestResolve:
    """resolve() returns files inside the root and refuses everything else with NotFound."""

    @pytest.mark.parametrize(("url_path", "target"), ACCEPTED)
    def test_accepted(self, tree: Path, url_path: str, target: str) -> None:
        source = resolve(tree, url_path, EXTENSIONS)
        assert source.path == str(tree / target)
        assert source.relative == url_path
        assert source.stat.st_size == (tree / target).stat().st_size

    @pytest.mark.parametrize("url_path", REFUSED)
    def test_refused(self, tree: Path, url_path: str) -> None:
        with pytest.raises(NotFound):
            resolve(tree, url_path, EXTENSIONS)

    def test_root_itself_is_not_a_file(self, tree: Path) -> None:
        with pytest.raises(NotFound):
            resolve(tree, "sub", EXTENSIONS)

    def test_version_is_size_mtime_device_inode_ctime(self, tree: Path) -> None:
        source = resolve(tree, "a.jpg", EXTENSIONS)
        st = (tree / "a.jpg").stat()
        assert source.version == (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_ctime_ns)
        # Not hashed yet: resolve() only stats; FileStore.identify adds the fingerprint.
        assert source.identity == (st.st_size, st.st_mtime_ns, None)
        assert source.name == "a.jpg"


class TestReadSource:
    """read_source() returns the bytes of the version resolve() saw, or says why it cannot."""

    def test_reads_bytes(self, tree: Path) -> None:
        assert read_source(resolve(tree, "a.jpg", EXTENSIONS), max_bytes=100, root=str(tree)) == b"a"

    def test_deleted_after_resolve(self, tree: Path) -> None:
        source = resolve(tree, "a.jpg", EXTENSIONS)
        (tree / "a.jpg").unlink()
        with pytest.raises(NotFound):
            read_source(source, max_bytes=100, root=str(tree))

    def test_replaced_after_resolve(self, tree: Path) -> None:
        source = resolve(tree, "a.jpg", EXTENSIONS)
        (tree / "a.jpg").write_bytes(b"longer content")
        with pytest.raises(SourceChanged):
            read_source(source, max_bytes=100, root=str(tree))

    def test_reads_at_most_one_byte_past_the_limit(self, tree: Path) -> None:
        (tree / "big.jpg").write_bytes(b"x" * 1000)
        source = resolve(tree, "big.jpg", EXTENSIONS)
        assert len(read_source(source, max_bytes=10, root=str(tree))) == 11



def _identified(store, url_path: str):
    import asyncio

    return asyncio.run(store.identify(store.resolve(url_path)))


class TestStillNames:
    """`still_names`: whether a source's path still names that very version (the hit memo's check)."""

    def test_file_store(self, tree: Path, tmp_path: Path) -> None:
        from storage import FileStore

        store = FileStore(tree, EXTENSIONS)
        assert not store.still_names(store.resolve("a.jpg"))  # no fingerprint yet: nothing to vouch for
        source = _identified(store, "a.jpg")
        assert store.still_names(source)
        # Other bytes of the same size and mtime, renamed into place: only the inode tells.
        staged = tree / "staged"
        staged.write_bytes(b"z")
        before = (tree / "a.jpg").stat()
        os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(staged, tree / "a.jpg")
        assert not store.still_names(source)
        source = _identified(store, "a.jpg")
        os.chmod(tree / "a.jpg", 0o600)  # a permission change moves the ctime
        assert not store.still_names(source)
        source = _identified(store, "a.jpg")
        (tree / "a.jpg").unlink()
        assert not store.still_names(source)

    def test_a_folder_swapped_for_a_symlink_elsewhere(self, tree: Path, tmp_path: Path) -> None:
        from storage import FileStore

        store = FileStore(tree, EXTENSIONS)
        source = _identified(store, "sub/b.png")
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "b.png").write_bytes(b"b")
        os.utime(outside / "b.png", ns=(source.stat.st_atime_ns, source.mtime_ns))
        (tree / "sub").rename(tmp_path / "was-sub")
        os.symlink(outside, tree / "sub")
        assert not store.still_names(source)

    def test_memory_store(self) -> None:
        from storage import MemoryStore

        store = MemoryStore(EXTENSIONS)
        store.put("a.jpg", b"one")
        source = store.resolve("a.jpg")
        assert store.still_names(source)
        store.put("a.jpg", b"two")
        assert not store.still_names(source)
        store.delete("a.jpg")
        assert not store.still_names(source)
