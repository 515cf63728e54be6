"""What only the disk tier promises: its layout, corrupt files dropped, the byte bound across
processes, lock files left by dead processes, and clear failures on an unusable folder."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cache
from cache import LAYOUT_VERSION, DiskStore, GuardedStore, UnusableStore
from tests.contract.conftest import digest_of, stored_result

KB = 1024
AS_ROOT = os.geteuid() == 0
METADATA = 1 * KB  # the .usage and .locks files, outside the budget


def folder_bytes(path: Path) -> int:
    """Bytes of every file under `path`: entries, temp files, lock and metadata files alike.
    Safe while other processes write: a file renamed or deleted since the listing is skipped."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def entry_files(path: Path) -> list[Path]:
    return [item for item in path.rglob("*") if item.is_file() and not item.name.startswith(".") and "." not in item.name]


@pytest.fixture
def results_path(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def disk_store(results_path: Path) -> DiskStore:
    return DiskStore(results_path, 64 * 1024 * 1024, namespace="thumbs")


class TestLayout:
    """Entries live at v{layout}/{namespace}/{d[:2]}/{d[2:4]}/{digest}, nothing else is left behind."""

    async def test_entry_path(self, disk_store: DiskStore, results_path: Path) -> None:
        digest = digest_of("a")
        await disk_store.put(digest, stored_result(b"body"))
        path = results_path / f"v{LAYOUT_VERSION}" / "thumbs" / digest[:2] / digest[2:4] / digest
        assert path.read_bytes() == stored_result(b"body").to_bytes()
        assert [item.name for item in path.parent.iterdir()] == [digest]  # no temp file left

    async def test_namespaces_are_separate(self, results_path: Path) -> None:
        first = DiskStore(results_path, 1024 * KB, namespace="one")
        second = DiskStore(results_path, 1024 * KB, namespace="two")
        await first.put(digest_of("a"), stored_result())
        assert await second.get(digest_of("a")) is None

    @pytest.mark.parametrize("namespace", ["", "..", ".hidden", "a/b", "a" * 65])
    def test_a_namespace_that_could_leave_the_folder_is_refused(self, results_path: Path, namespace: str) -> None:
        with pytest.raises(ValueError, match="namespace"):
            DiskStore(results_path, 1024 * KB, namespace=namespace)


class TestCorruptEntries:
    """A corrupt or truncated entry file is a miss, and is removed."""

    @pytest.mark.parametrize(
        "damage",
        [
            pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
            pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), id="flipped-bit"),
            pytest.param(lambda data: b"", id="empty"),
            pytest.param(lambda data: b"not a stored result at all", id="garbage"),
        ],
    )
    async def test_dropped(self, disk_store: DiskStore, results_path: Path, damage) -> None:
        digest = digest_of("a")
        await disk_store.put(digest, stored_result(b"x" * 5000))
        [path] = entry_files(results_path)
        path.write_bytes(damage(path.read_bytes()))
        assert await disk_store.get(digest) is None
        assert not path.exists()
        await disk_store.put(digest, stored_result(b"rendered again"))
        assert await disk_store.get(digest) == stored_result(b"rendered again")


class TestUnusableFolder:
    """A folder that cannot be created or written fails at construction with a message naming it;
    one that breaks later makes calls raise, which GuardedStore turns into misses."""

    def test_folder_under_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "a-file").write_text("not a folder")
        with pytest.raises(UnusableStore, match=r"disk cache folder .*a-file/results.* cannot be created or written"):
            DiskStore(tmp_path / "a-file" / "results", 1024 * KB, namespace="thumbs")

    def test_a_bad_budget(self, results_path: Path) -> None:
        with pytest.raises(ValueError, match="max_bytes"):
            DiskStore(results_path, 0, namespace="thumbs")

    def test_read_only_folder_at_construction(self, permission_report: dict) -> None:
        report = permission_report
        assert report["read_only_parent"].startswith("UnusableStore: disk cache folder")
        assert "Permission denied" in report["read_only_parent"]

    def test_chmod_000_at_run_time(self, permission_report: dict) -> None:
        report = permission_report
        assert report["get"] == "PermissionError"
        assert report["put"] == "PermissionError"
        assert report["guarded"] == {"get": None, "lock": True, "errors": 1, "skipped": 2, "available": False}
        assert report["check"].startswith("UnusableStore: disk cache folder")
        assert report["after_chmod_back"] == "found"

    async def test_folder_replaced_by_a_file_at_run_time(self, disk_store: DiskStore) -> None:
        digest = digest_of("a")
        await disk_store.put(digest, stored_result())
        shutil.rmtree(disk_store.root)
        disk_store.root.write_text("a file where the folder was")
        with pytest.raises(NotADirectoryError):
            await disk_store.get(digest)
        with pytest.raises(OSError):
            await disk_store.put(digest, stored_result())
        with pytest.raises(OSError):
            await disk_store.lock(digest, 1.0)
        guarded = GuardedStore(disk_store, logger=logging.getLogger("test"))
        assert await guarded.get(digest) is None
        assert await guarded.lock(digest, 1.0) is True  # the caller renders itself
        assert (guarded.errors, guarded.skipped, guarded.available) == (1, 1, False)
        assert (await guarded.stats())["reachable"] is False
        with pytest.raises(UnusableStore, match="cannot be created or written"):
            await disk_store.check()


@pytest.fixture(scope="module")
def permission_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the PERMISSIONS script saw, run once for the tests that read it."""
    return run_without_permission_override(PERMISSIONS, tmp_path_factory.mktemp("permissions"))


def run_without_permission_override(script: str, workdir: Path) -> dict:
    """Run `script` (with `workdir` as argv[1]) in a process where permission bits bind: as
    root, one without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv); it prints JSON."""
    command = [sys.executable, "-c", script, str(workdir)]
    if AS_ROOT:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("as root, permission bits bind only without CAP_DAC_OVERRIDE: setpriv (util-linux) is missing")
        dropped = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={dropped}", f"--bounding-set={dropped}", "--", *command]
    package_root = Path(cache.__file__).resolve().parent.parent
    done = subprocess.run(
        command, env=os.environ | {"PYTHONPATH": str(package_root)}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# Permission failures, seen from a process that cannot override permission bits.
PERMISSIONS = """
import asyncio, json, logging, sys
from pathlib import Path
from cache import DiskStore, GuardedStore, StoredResult, UnusableStore

async def outcome(call):
    try:
        await call
    except UnusableStore as error:
        return f"UnusableStore: {error}"
    except Exception as error:
        return type(error).__name__
    return "no error"

async def main(workdir):
    report = {}
    read_only = workdir / "read-only"
    read_only.mkdir(mode=0o500)
    try:
        DiskStore(read_only / "results", 1 << 20, namespace="thumbs")
        report["read_only_parent"] = "no error"
    except UnusableStore as error:
        report["read_only_parent"] = f"UnusableStore: {error}"

    folder = workdir / "results"
    store = DiskStore(folder, 1 << 20, namespace="thumbs")
    digest, entry = "ab" * 16, StoredResult(b"body", "image/webp", '"x"', 1, None)
    await store.put(digest, entry)
    folder.chmod(0o000)
    try:
        report["get"] = await outcome(store.get(digest))
        report["put"] = await outcome(store.put(digest, entry))
        report["check"] = await outcome(store.check())
        guarded = GuardedStore(store, logger=logging.getLogger("test"))
        found, locked = await guarded.get(digest), await guarded.lock(digest, 1.0)
        await guarded.put(digest, entry)
        report["guarded"] = {
            "get": found, "lock": locked, "errors": guarded.errors, "skipped": guarded.skipped,
            "available": guarded.available,
        }
    finally:
        folder.chmod(0o700)
    report["after_chmod_back"] = "found" if await store.get(digest) == entry else "missing"
    print(json.dumps(report))

asyncio.run(main(Path(sys.argv[1])))
"""


class TestByteBudget:
    """The folder stays within max_bytes (plus one entry), least recently used entries out first."""

    async def test_a_long_run_of_writes(self, results_path: Path) -> None:
        store = DiskStore(results_path, 300 * KB, namespace="thumbs")
        digests = [digest_of(f"entry {n}") for n in range(200)]
        largest = 0
        for n, digest in enumerate(digests):
            stored = stored_result(os.urandom(10 * KB))
            largest = max(largest, len(stored.to_bytes()))
            await store.put(digest, stored)
            assert folder_bytes(results_path) <= 300 * KB + largest, f"after {n + 1} writes"
        present = [digest for digest in digests if await store.get(digest) is not None]
        assert 20 <= len(present) <= 30
        # The newest kept, the oldest evicted (entries written within one tick of the file
        # clock share an mtime, so the order at the boundary is not exact).
        assert set(digests[-20:]) <= set(present)
        assert not set(digests[:150]) & set(present)
        facts = await store.stats()
        assert facts["bytes"] <= 300 * KB and facts["evictions"] >= 170

    async def test_a_read_keeps_an_entry(self, results_path: Path) -> None:
        store = DiskStore(results_path, 100 * KB, namespace="thumbs")
        digests = [digest_of(f"entry {n}") for n in range(12)]
        for digest in digests[:8]:
            await store.put(digest, stored_result(os.urandom(10 * KB)))
        await asyncio.sleep(0.05)  # file times tick coarsely: make the read clearly the latest use
        assert await store.get(digests[0]) is not None
        await asyncio.sleep(0.05)
        for digest in digests[8:]:
            await store.put(digest, stored_result(os.urandom(10 * KB)))
        assert await store.get(digests[0]) is not None
        assert await store.get(digests[1]) is None

    async def test_a_result_larger_than_the_budget_is_not_kept(self, results_path: Path) -> None:
        store = DiskStore(results_path, 100 * KB, namespace="thumbs")
        await store.put(digest_of("small"), stored_result(b"small"))
        await store.put(digest_of("huge"), stored_result(os.urandom(200 * KB)))
        assert await store.get(digest_of("huge")) is None
        assert await store.get(digest_of("small")) == stored_result(b"small")
        assert (await store.stats())["oversize"] == 1

    async def test_a_smaller_budget_on_an_existing_folder(self, results_path: Path) -> None:
        large = DiskStore(results_path, 1024 * KB, namespace="thumbs")
        for n in range(50):
            await large.put(digest_of(f"entry {n}"), stored_result(os.urandom(10 * KB)))
        assert folder_bytes(results_path) > 450 * KB
        small = DiskStore(results_path, 200 * KB, namespace="thumbs")
        await small.put(digest_of("one more"), stored_result(os.urandom(10 * KB)))
        assert folder_bytes(results_path) <= 200 * KB
        assert await small.get(digest_of("one more")) is not None

    async def test_files_removed_behind_its_back_are_recounted(self, results_path: Path) -> None:
        store = DiskStore(results_path, 1024 * KB, namespace="thumbs", rescan_interval_s=0.0)
        for n in range(20):
            await store.put(digest_of(f"entry {n}"), stored_result(os.urandom(10 * KB)))
        for path in entry_files(results_path):
            path.unlink()
        await store.put(digest_of("after"), stored_result(os.urandom(10 * KB)))
        assert (await store.stats())["bytes"] == len(stored_result(os.urandom(10 * KB)).to_bytes())

    async def test_two_processes_writing_at_once(self, results_path: Path) -> None:
        """Each process writes 200 entries of ~10 KB into one 300 KB folder, at the same time."""
        package_root = Path(cache.__file__).resolve().parent.parent
        environment = os.environ | {"PYTHONPATH": str(package_root)}
        barrier = results_path.parent / "barrier"
        barrier.mkdir()
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(results_path), name, "200", str(barrier)],
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for name in ("first", "second")
        ]
        deadline = time.monotonic() + 60
        while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
            if any(writer.poll() is not None for writer in writers):
                break
            await asyncio.sleep(0.01)
        (barrier / "go").touch()  # both imported and ready: start writing at once
        largest = len(stored_result(os.urandom(10 * KB)).to_bytes())
        highest = 0
        deadline = time.monotonic() + 120
        while any(writer.poll() is None for writer in writers) and time.monotonic() < deadline:
            highest = max(highest, folder_bytes(results_path))
            await asyncio.sleep(0.005)
        outputs = [writer.communicate(timeout=10) for writer in writers]
        assert [writer.returncode for writer in writers] == [0, 0], outputs
        # Both wrote concurrently: each saw the other's entries at some point.
        assert all(b"interleaved" in stdout for stdout, _ in outputs), outputs
        # Once they are done, the bound is strict. While they write, each may have one temp file
        # written and not yet counted in, and a sample is no snapshot: walking the tree takes a
        # while, so it can count entries that an eviction (10 % of the budget) deletes meanwhile.
        assert folder_bytes(results_path) <= 300 * KB + largest
        assert highest <= 300 * KB * 1.1 + 2 * largest + METADATA
        store = DiskStore(results_path, 300 * KB, namespace="thumbs")
        counted = (await store.stats())["bytes"]
        assert sum(path.stat().st_size for path in entry_files(results_path)) <= counted <= 300 * KB
        digests = [digest_of(f"{name} {n}") for name in ("first", "second") for n in range(200)]
        kept = [digest for digest in digests if await store.get(digest) is not None]
        assert 20 <= len(kept) <= 30
        assert digest_of("first 199") in kept or digest_of("second 199") in kept  # the very last write


# Run by each writer process: get ready, wait for "go", put `count` entries of ~10 KB, then say
# whether it ever found one of the other writer's entries while it was writing.
WRITER = """
import asyncio, os, sys, time
from hashlib import blake2b
from pathlib import Path
from cache import DiskStore, StoredResult

async def main(path, name, count, barrier):
    store = DiskStore(path, 300 * 1024, namespace="thumbs")
    (barrier / name).touch()
    deadline = time.monotonic() + 30
    while not (barrier / "go").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    other = "second" if name == "first" else "first"
    seen = False
    for n in range(count):
        digest = blake2b(f"{name} {n}".encode(), digest_size=16).hexdigest()
        body = os.urandom(10 * 1024)
        await store.put(digest, StoredResult(body, "image/webp", '"x"', 1, "Accept"))
        if not seen and n % 10 == 0:
            for m in range(max(0, n - 20), n + 20):
                if await store.get(blake2b(f"{other} {m}".encode(), digest_size=16).hexdigest()):
                    seen = True
                    break
    print("interleaved" if seen else "alone")

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
"""


class TestLockFiles:
    """A lock file left by a process that died is taken over once expired, and only then."""

    def lock_path(self, store: DiskStore, digest: str) -> Path:
        return store.root / digest[:2] / digest[2:4] / f"{digest}.lock"

    async def test_an_expired_lock_file_is_taken_over(self, disk_store: DiskStore) -> None:
        digest = digest_of("a")
        path = self.lock_path(disk_store, digest)
        path.parent.mkdir(parents=True)
        path.write_text(f"{time.time() - 1:.6f} deadbeef\n")
        assert await disk_store.lock(digest, 30.0) is True
        assert b"deadbeef" not in path.read_bytes()
        await disk_store.unlock(digest)
        assert not path.exists()

    async def test_a_live_lock_file_is_respected(self, disk_store: DiskStore) -> None:
        digest = digest_of("a")
        path = self.lock_path(disk_store, digest)
        path.parent.mkdir(parents=True)
        path.write_text(f"{time.time() + 30:.6f} deadbeef\n")
        assert await disk_store.lock(digest, 30.0) is False
        await disk_store.unlock(digest)
        assert b"deadbeef" in path.read_bytes()

    async def test_a_lock_file_being_written_counts_as_fresh(self, disk_store: DiskStore) -> None:
        digest = digest_of("a")
        path = self.lock_path(disk_store, digest)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")  # created with O_EXCL, content not written yet
        assert await disk_store.lock(digest, 30.0) is False

    async def test_one_taker_of_an_expired_lock(self, results_path: Path) -> None:
        stores = [DiskStore(results_path, 1024 * KB, namespace="thumbs") for _ in range(4)]
        digest = digest_of("a")
        path = self.lock_path(stores[0], digest)
        path.parent.mkdir(parents=True)
        path.write_text(f"{time.time() - 1:.6f} deadbeef\n")
        results = await asyncio.gather(*(store.lock(digest, 30.0) for store in stores for _ in range(5)))
        assert results.count(True) == 1
