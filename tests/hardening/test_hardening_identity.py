"""A source's identity names its bytes: a same-size file renamed into place with the same mtime
gets new ETags and new thumbnails, while copies of one file on two machines (other inodes, other
ctimes) keep one identity, so a fleet still shares its result tier."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import threading
from pathlib import Path

import httpx
from PIL import Image

from storage import FileStore, Fingerprints, MemoryStore, SourceChanged
from tests.support import images
from tests.support.app import client_for
from tests.support.live import LiveServer

EXTENSIONS = frozenset({"jpg", "png"})
PINNED_NS = 1_600_000_000_123_456_789  # a build's pinned mtime


def same_size_pair() -> tuple[bytes, bytes]:
    """Two different JPEGs of exactly one length (the shorter padded after its end marker,
    which decoders ignore): red and blue."""
    red = images.jpeg_bytes((64, 48), color=(220, 20, 20))
    blue = images.jpeg_bytes((64, 48), color=(20, 20, 220))
    length = max(len(red), len(blue))
    return red.ljust(length, b"\0"), blue.ljust(length, b"\0")


def replace_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """What `cp -p new tmp && mv tmp path` does with pinned mtimes: a new inode, same size and mtime."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.utime(temporary, ns=(PINNED_NS, PINNED_NS))
    os.replace(temporary, path)


def dominant_blue(data: bytes) -> bool:
    red, green, blue = Image.open(io.BytesIO(data)).convert("RGB").resize((1, 1)).getpixel((0, 0))
    return blue > 150 and red < 100


class TestSameSizeReplace:
    """A file replaced by other bytes of the same size and mtime is a new version everywhere."""

    async def test_etags_and_thumbnails_change(self, make_settings, image_root: Path) -> None:
        red, blue = same_size_pair()
        photo = images.write(image_root / "photo.jpg", red)
        os.utime(photo, ns=(PINNED_NS, PINNED_NS))
        async with client_for(make_settings()) as http:
            before = {url: await http.get(url) for url in ("/photo.jpg", "/thumb/32x/photo.jpg", "/info/photo.jpg")}
            assert {response.status_code for response in before.values()} == {200}
            assert not dominant_blue(before["/thumb/32x/photo.jpg"].content)

            replace_keeping_size_and_mtime(photo, blue)
            after = {url: await http.get(url) for url in before}
            for url in before:
                assert after[url].status_code == 200, url
                assert after[url].headers["etag"] != before[url].headers["etag"], url
                assert after[url].headers["last-modified"] == before[url].headers["last-modified"], url
            assert after["/photo.jpg"].content == blue
            assert dominant_blue(after["/thumb/32x/photo.jpg"].content)
            # A client revalidating with the old ETag gets the new bytes, not a 304.
            old = before["/thumb/32x/photo.jpg"].headers["etag"]
            revalidated = await http.get("/thumb/32x/photo.jpg", headers={"If-None-Match": old})
            assert revalidated.status_code == 200 and dominant_blue(revalidated.content)

    def test_through_a_live_server_with_its_disk_tier(self, tmp_path: Path) -> None:
        """Across a restart too: the shared disk tier never hands back the old bytes' thumbnail."""
        root = tmp_path / "images"
        red, blue = same_size_pair()
        photo = images.write(root / "photo.jpg", red)
        os.utime(photo, ns=(PINNED_NS, PINNED_NS))
        env = {"THUMBSERVER_CACHE_SHARED": "disk"}
        with LiveServer(None, root, env=env) as server:
            first = httpx.get(f"{server.url}/thumb/32x/photo.jpg", timeout=30)
        assert first.status_code == 200 and not dominant_blue(first.content)
        replace_keeping_size_and_mtime(photo, blue)
        with LiveServer(None, root, env=env) as server:  # a fresh process: nothing memoised
            second = httpx.get(f"{server.url}/thumb/32x/photo.jpg", timeout=30)
        assert second.status_code == 200
        assert dominant_blue(second.content)
        assert second.headers["etag"] != first.headers["etag"]


class TestCopiesOnTwoNodes:
    """Copies of one file with their mtime kept have one identity, whatever their inode or ctime."""

    async def test_one_identity_and_etag(self, tmp_path: Path) -> None:
        node_a, node_b = tmp_path / "a", tmp_path / "b"
        images.write(node_a / "photo.jpg", images.jpeg_bytes((64, 48)))
        node_b.mkdir()
        shutil.copy2(node_a / "photo.jpg", node_b / "photo.jpg")  # as rsync -a does
        a, b = FileStore(node_a, EXTENSIONS), FileStore(node_b, EXTENSIONS)
        source_a = await a.identify(a.resolve("photo.jpg"))
        source_b = await b.identify(b.resolve("photo.jpg"))
        assert source_a.version != source_b.version  # other inode, other ctime
        assert source_a.identity == source_b.identity
        assert source_a.fingerprint is not None and len(source_a.fingerprint) == 32

    async def test_memory_store_agrees_with_files(self, tmp_path: Path) -> None:
        data = images.jpeg_bytes((64, 48))
        files = FileStore(images.write(tmp_path / "r" / "photo.jpg", data).parent, EXTENSIONS)
        memory = MemoryStore(EXTENSIONS)
        memory.put("photo.jpg", data)
        on_disk = await files.identify(files.resolve("photo.jpg"))
        in_memory = await memory.identify(memory.resolve("photo.jpg"))
        assert on_disk.fingerprint == in_memory.fingerprint


class TestHashedOncePerVersion:
    """The bytes are hashed once per version per process, however many requests ask at once."""

    async def test_concurrent_requests_share_one_hash(self) -> None:
        calls = []
        gate = threading.Event()

        def compute() -> str:
            calls.append(1)
            gate.wait(5)
            return "f" * 32

        fingerprints = Fingerprints()
        waiting = [asyncio.create_task(fingerprints.of(("v", 1), compute)) for _ in range(20)]
        await asyncio.sleep(0.05)
        gate.set()
        assert set(await asyncio.gather(*waiting)) == {"f" * 32}
        assert len(calls) == 1
        assert fingerprints.known(("v", 1)) == "f" * 32
        assert await fingerprints.of(("v", 1), compute) == "f" * 32 and len(calls) == 1

    async def test_a_file_changed_while_hashed_is_not_remembered(self, tmp_path: Path) -> None:
        store = FileStore(images.write(tmp_path / "r" / "photo.jpg", b"x" * 1000).parent, EXTENSIONS)
        source = store.resolve("photo.jpg")
        path = tmp_path / "r" / "photo.jpg"
        stat = path.stat()
        path.write_bytes(b"y" * 1000)  # in place: same inode and size; the mtime set back by hand
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        try:
            await store.identify(source)
        except SourceChanged:
            pass
        else:
            raise AssertionError("a version whose ctime moved was hashed under the old version")
        fresh = await store.identify(store.resolve("photo.jpg"))
        assert fresh.version != source.version


class TestStoreTravelsToRenderProcesses:
    """The store is pickled with every render job: its fingerprints stay behind, pending or known."""

    async def test_pickles_while_a_hash_is_pending(self, tmp_path: Path) -> None:
        import pickle

        store = FileStore(images.write(tmp_path / "r" / "photo.jpg", b"x" * 1000).parent, EXTENSIONS)
        gate = threading.Event()
        pending = asyncio.create_task(store._fingerprints.of(("v",), lambda: gate.wait(5) and "f" * 32))
        await asyncio.sleep(0.05)
        for number in range(1000):
            store._fingerprints._known[("known", number)] = "0" * 32
        copy = pickle.loads(pickle.dumps(store))
        gate.set()
        assert await pending == "f" * 32
        assert len(pickle.dumps(store)) < 1000  # not one entry per known version
        source = await copy.identify(copy.resolve("photo.jpg"))
        assert source.fingerprint == (await store.identify(store.resolve("photo.jpg"))).fingerprint


class TestReadChecks:
    """Reads check the file they hold was not written; a rename over it or an unlink (which move
    only its ctime) do not change its bytes, so a transfer or render of it may finish."""

    def test_unlinked_while_open_still_holds(self, tmp_path: Path) -> None:
        from storage import holds

        store = FileStore(images.write(tmp_path / "r" / "photo.jpg", b"x" * 1000).parent, EXTENSIONS)
        source = store.resolve("photo.jpg")
        with store.open(source) as file:
            (tmp_path / "r" / "photo.jpg.new").write_bytes(b"y" * 1000)
            os.replace(tmp_path / "r" / "photo.jpg.new", tmp_path / "r" / "photo.jpg")
            assert store.unchanged(source, file)
            assert holds(os.fstat(file.fileno()), source)
            assert file.read() == b"x" * 1000
        assert store.resolve("photo.jpg").version != source.version

    def test_written_in_place_does_not_hold(self, tmp_path: Path) -> None:
        path = images.write(tmp_path / "r" / "photo.jpg", b"x" * 1000)
        store = FileStore(path.parent, EXTENSIONS)
        source = store.resolve("photo.jpg")
        with store.open(source) as file:
            with open(path, "r+b") as writer:
                writer.write(b"y" * 10)
            os.utime(path, ns=(source.mtime_ns + 10**9, source.mtime_ns + 10**9))
            assert not store.unchanged(source, file)
