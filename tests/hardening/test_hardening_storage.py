"""Storage under a changing disk: what is found at a resolved path by the time it is opened."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from storage import FileStore, NotFound, SourceChanged, open_regular, read_source, resolve, version_of

EXTENSIONS = frozenset({"jpg"})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a" * 1000)
    (tmp_path / "outside.jpg").write_bytes(b"outside")
    return root.resolve()


def _within(seconds: float, function, *args):
    """Run `function(*args)` in a thread; fail (instead of hanging the suite) if it blocks."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(("value", function(*args)))
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcome.append(("error", error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"{getattr(function, '__name__', function)} blocked for {seconds} s"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


class TestSwappedAfterResolve:
    """A resolved path whose file is swapped for something else is refused, never followed or blocked on."""

    def test_fifo_does_not_block(self, root: Path) -> None:
        source = resolve(root, "a.jpg", EXTENSIONS)
        (root / "a.jpg").unlink()
        os.mkfifo(root / "a.jpg")  # open(O_RDONLY) of a FIFO waits for a writer: forever
        with pytest.raises(NotFound):
            _within(5, lambda: read_source(source, max_bytes=10_000, root=str(root)))
        with pytest.raises(NotFound):
            _within(5, lambda: open_regular(source, root=str(root)))

    def test_symlink_out_is_not_followed(self, root: Path) -> None:
        source = resolve(root, "a.jpg", EXTENSIONS)
        (root / "a.jpg").unlink()
        os.symlink(root.parent / "outside.jpg", root / "a.jpg")
        with pytest.raises(NotFound):
            read_source(source, max_bytes=10_000, root=str(root))

    def test_folder_swapped_for_a_symlink_out_is_refused(self, root: Path) -> None:
        """Only the last component is opened with O_NOFOLLOW: a folder before it that became a
        symlink to an outside folder since resolve() is caught on the opened descriptor."""
        (root / "sub").mkdir()
        (root / "sub" / "b.jpg").write_bytes(b"i" * 1000)
        outside = root.parent / "outside"
        outside.mkdir()
        (outside / "b.jpg").write_bytes(b"o" * 1000)
        os.utime(outside / "b.jpg", ns=(0, (root / "sub" / "b.jpg").stat().st_mtime_ns))  # same identity
        source = resolve(root, "sub/b.jpg", EXTENSIONS)
        os.rename(root / "sub", root / "sub-real")
        os.symlink(outside, root / "sub")
        store = FileStore(root, EXTENSIONS)
        with pytest.raises(NotFound):
            read_source(source, max_bytes=10_000, root=str(root))
        with pytest.raises(NotFound):
            store.open(source)
        with pytest.raises(NotFound):
            store.read(source, max_bytes=10_000)

    def test_symlinked_folder_inside_the_root_still_serves(self, root: Path) -> None:
        (root / "real").mkdir()
        (root / "real" / "c.jpg").write_bytes(b"c" * 10)
        os.symlink("real", root / "alias")
        store = FileStore(root, EXTENSIONS)
        source = store.resolve("alias/c.jpg")
        assert store.read(source, max_bytes=100) == b"c" * 10
        with store.open(source) as file:
            assert file.read() == b"c" * 10

    def test_directory(self, root: Path) -> None:
        source = resolve(root, "a.jpg", EXTENSIONS)
        (root / "a.jpg").unlink()
        (root / "a.jpg").mkdir()
        with pytest.raises(NotFound):
            read_source(source, max_bytes=10_000, root=str(root))

    def test_replaced_by_rename_is_a_change(self, root: Path) -> None:
        source = resolve(root, "a.jpg", EXTENSIONS)
        (root / "new.jpg").write_bytes(b"b" * 2000)
        os.replace(root / "new.jpg", root / "a.jpg")
        with pytest.raises(SourceChanged):
            read_source(source, max_bytes=10_000, root=str(root))


class TestOpenRegular:
    """open_regular() returns the open file and the stat of that very descriptor."""

    def test_stat_is_the_descriptors(self, root: Path) -> None:
        source = resolve(root, "a.jpg", EXTENSIONS)
        file, st = open_regular(source, root=str(root))
        with file:
            assert version_of(st) == source.version
            assert file.read() == b"a" * 1000

    def test_unrelated_errors_are_not_disguised_as_404(self, root: Path, monkeypatch) -> None:
        source = resolve(root, "a.jpg", EXTENSIONS)

        def too_many_open_files(*args, **kwargs):
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(os, "open", too_many_open_files)
        with pytest.raises(OSError) as caught:
            open_regular(source, root=str(root))
        assert not isinstance(caught.value, NotFound) and caught.value.errno == 24
