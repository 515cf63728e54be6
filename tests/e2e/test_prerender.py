"""`thumbserver prerender` as an operator runs it: a real process rendering into a disk tier, a
rerun that skips what is there, Ctrl-C and a resume, and then a real server that serves every
prerendered thumbnail, negotiated ones included, without rendering any.

Renders of the server are counted from its log (one `rendered …` line each), as in test_shared_tier.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.probe import LoggedServer, write_config

SPECS = ("small", "200x")
PUBLIC_UNDECODABLE = "The source is not an image that can be decoded."

# `python -m server prerender …` with Ctrl-C delivered as a terminal would even when the test
# runner was started with SIGINT ignored (a background job): children inherit an ignored signal.
WITH_CTRL_C = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from server.cli import main
sys.exit(main(["prerender", *sys.argv[1:]]))
"""


def renders(server: LoggedServer) -> int:
    return server.log_text().count(" rendered ")


class Setup:
    """One image root, one disk tier and one config, shared by prerender runs and servers."""

    def __init__(self, tmp_path: Path, root: Path, **cache: object) -> None:
        self.tmp_path = tmp_path
        self.root = root
        self.results = tmp_path / "results"
        self.config = write_config(tmp_path / "config.yaml", cache={"shared": "disk", **cache})
        self.env = {**os.environ, "THUMBSERVER_STORAGE_ROOT": str(root),
                    "THUMBSERVER_CACHE_DISK_PATH": str(self.results)}

    def command(self, *args: str, ctrl_c: bool = False) -> list[str]:
        run = ["-c", WITH_CTRL_C] if ctrl_c else ["-m", "server", "prerender"]
        return [sys.executable, *run, "--config", str(self.config), *args]

    def prerender(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), env=self.env, cwd=self.tmp_path, capture_output=True,
                              text=True, timeout=timeout)

    def server(self, name: str) -> LoggedServer:
        return LoggedServer(self.config, self.root, log=self.tmp_path / f"{name}.log",
                            env={"THUMBSERVER_CACHE_DISK_PATH": str(self.results)})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Twelve images of four formats at three depths (one with a space in its name), and a corrupt one."""
    folder = tmp_path / "images"
    for n, relative in enumerate(("a.jpg", "b.jpg", "album/c.jpg", "album/d.jpg", "album/two words.jpg",
                                  "album/2024/e.jpg", "album/2024/f.jpg", "album/2024/g.jpg")):
        images.write(folder / relative, images.jpeg_bytes((320, 240), image=images.textured((320, 240), seed=n)))
    images.write(folder / "logo.png", images.png_bytes((300, 200), mode="RGBA"))
    images.write(folder / "album/chart.png", images.png_bytes((300, 200), mode="RGB"))
    images.write(folder / "album/photo.webp", images.webp_bytes((320, 240), image=images.textured((320, 240))))
    images.write(folder / "album/2024/anim.gif", images.gif_bytes(size=(240, 180)))
    images.write(folder / "corrupt.jpg", images.truncated(images.jpeg_bytes((320, 240)), keep=0.1))
    (folder / "notes.txt").write_text("not an image")
    return folder


def good_images(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*")
                  if p.suffix in (".jpg", ".png", ".webp", ".gif") and p.name != "corrupt.jpg")


def failure_rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "corrupt.jpg" in line]


class TestPrerenderThenServe:
    """Prerender, rerun, then a server answers every one of those thumbnails without rendering."""

    async def test_render_skip_and_serve_without_rendering(self, tmp_path: Path, root: Path) -> None:
        setup = Setup(tmp_path, root)
        spec_args = [arg for spec in SPECS for arg in ("--spec", spec)]

        first = setup.prerender(*spec_args, "--jobs", "2")
        assert first.returncode == 1, first.stderr  # the corrupt image
        assert first.stdout.splitlines()[0].startswith("prerender: 48 rendered, 0 skipped, 4 failed in ")
        rows = failure_rows(first.stdout)
        assert len(rows) == 4 and all(PUBLIC_UNDECODABLE in row for row in rows)
        assert {tuple(row.split()[1:3]) for row in rows} == {(s, f) for s in SPECS for f in ("source", "webp")}
        progress = first.stderr.splitlines()
        assert progress[0] == ("prerender: 52 thumbnails of 13 images (specs small, 200x; formats source, webp) "
                               "into the disk tier, 2 render processes")
        assert re.fullmatch(r"prerender: 52/52 done, 4 failed, [0-9.]+/s", progress[-1])
        assert "\x1b" not in first.stdout + first.stderr  # not a terminal: no escape codes

        again = setup.prerender(*spec_args)
        assert again.returncode == 1
        assert again.stdout.splitlines()[0].startswith("prerender: 0 rendered, 48 skipped, 4 failed in ")
        assert len(failure_rows(again.stdout)) == 4

        with setup.server("serve") as live:
            async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
                for path in good_images(root):
                    for spec in SPECS:
                        plain = await http.get(f"/thumb/{spec}/{path}")
                        webp = await http.get(f"/thumb/{spec}/{path}", headers={"Accept": "image/webp,*/*"})
                        assert (plain.status_code, webp.status_code) == (200, 200), (path, spec)
                        assert webp.headers["content-type"] == "image/webp"
                        assert plain.headers["vary"] == webp.headers["vary"] == "Accept"
                assert renders(live) == 0
                # The count would see a render: a spec that was not prerendered costs one.
                assert (await http.get(f"/thumb/90x/{good_images(root)[0]}")).status_code == 200
                assert renders(live) == 1

    async def test_only_the_paths_specs_and_formats_asked_for(self, tmp_path: Path, root: Path) -> None:
        setup = Setup(tmp_path, root)
        album = [path for path in good_images(root) if path.startswith("album/")]
        done = setup.prerender("--spec", "150x", "--spec", "120x,png", "--format", "webp", "album")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"prerender: {2 * len(album)} rendered, 0 skipped, 0 failed in ")
        with setup.server("serve") as live:
            async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
                for path in album:
                    negotiated = await http.get(f"/thumb/150x/{path}", headers={"Accept": "image/webp"})
                    named = await http.get(f"/thumb/120x,png/{path}")
                    assert (negotiated.status_code, named.status_code) == (200, 200)
                    assert (negotiated.headers["content-type"], named.headers["content-type"]) == (
                        "image/webp", "image/png")
                assert renders(live) == 0
                # Not asked for: the source-family variant, and images outside album/.
                assert (await http.get(f"/thumb/150x/{album[0]}")).status_code == 200
                assert (await http.get("/thumb/150x/a.jpg", headers={"Accept": "image/webp"})).status_code == 200
                assert renders(live) == 2


class TestInterrupt:
    """Ctrl-C stops cleanly (exit 130, a summary) and a rerun renders only what was left."""

    def test_ctrl_c_then_resume(self, tmp_path: Path) -> None:
        folder = tmp_path / "images"
        source = images.write(folder / "original.png", images.png_bytes((1000, 750), mode="RGB",
                                                                        image=images.textured((1000, 750))))
        for n in range(60):  # distinct names, identical work: each is a render of its own
            os.link(source, folder / f"copy-{n:03d}.png")
        setup = Setup(tmp_path, folder)
        out, err = tmp_path / "out.txt", tmp_path / "err.txt"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            process = subprocess.Popen(setup.command("--spec", "320x", "--format", "source", "--jobs", "1", ctrl_c=True),
                                       env=setup.env, cwd=tmp_path, stdout=stdout, stderr=stderr,
                                       start_new_session=True)
            try:
                deadline = time.monotonic() + 60
                while not any(setup.results.rglob("????????????????????????????????")):
                    assert process.poll() is None and time.monotonic() < deadline, err.read_text()
                    time.sleep(0.05)
                os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
                assert process.wait(timeout=60) == 130
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
        summary = re.match(r"prerender: interrupted at (\d+)/61, a rerun resumes: (\d+) rendered, 0 skipped, "
                           r"0 failed in ", out.read_text())
        assert summary is not None, out.read_text() + err.read_text()
        rendered = int(summary[2])
        assert 0 < rendered < 61 and int(summary[1]) == rendered
        assert "interrupted; finishing the" in err.read_text()
        assert "Traceback" not in err.read_text()

        rest = setup.prerender("--spec", "320x", "--format", "source")
        assert rest.returncode == 0, rest.stderr
        assert rest.stdout.startswith(f"prerender: {61 - rendered} rendered, {rendered} skipped, 0 failed in ")


class TestTierTooSmall:
    """A disk tier whose budget cannot hold the run: a warning naming the key to raise."""

    def test_evictions_are_reported(self, tmp_path: Path, root: Path) -> None:
        done = Setup(tmp_path, root, disk_max_bytes=40_000).prerender("--spec", "300x", "--format", "source")
        assert done.returncode == 1  # the corrupt image
        warning = done.stdout.splitlines()[1]
        assert re.fullmatch(r"prerender: warning: the shared tier evicted \d+ entries .*raise cache.disk_max_bytes",
                            warning), done.stdout


class TestRefusals:
    """Nothing to do as asked: exit 2 and one line naming what is wrong."""

    def test_no_shared_tier(self, tmp_path: Path, root: Path) -> None:
        done = Setup(tmp_path, root, shared="none").prerender("--spec", "small")
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("thumbserver: configuration error: cache.shared: none")
        assert len(done.stderr.splitlines()) == 1

    @pytest.mark.parametrize(("args", "named"), [
        (["--spec", "99999x"], "--spec 99999x"),
        (["--spec", "small", "--format", "jpeg"], "--format jpeg"),
        (["--spec", "small", "../elsewhere"], "../elsewhere"),
    ])
    def test_usage_errors(self, tmp_path: Path, root: Path, args: list[str], named: str) -> None:
        done = Setup(tmp_path, root).prerender(*args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith(f"thumbserver: prerender: {named}: ")
        assert len(done.stderr.splitlines()) == 1
