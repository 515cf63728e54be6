"""Hostile request targets against a real server: nothing outside the root is served, no 5xx.

Targets are composed by hypothesis from dot segments, single and double percent-encoding,
backslashes, NUL, CR/LF, Unicode (raw and encoded, overlong and full-width dots), very long
segments and the names of real symlinks that lead in and out of the root. They are sent byte
for byte on a raw socket, so neither the client nor httpx normalises anything first.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.support import images
from tests.support.probe import LoggedServer, budget, exchange, raw_request, write_config

# Sizes tell the thumbnails apart: a 200 thumbnail of "2000x" keeps its source's size.
INSIDE_SIZES = {"inside.jpg": (32, 24), "sub/inner.png": (20, 10)}
OUTSIDE_SIZE = (41, 17)


class Tree:
    """An image root with symlinks in and out, next to secrets it must never serve."""

    def __init__(self, base: Path) -> None:
        self.marker = b"OUTSIDE-" + secrets.token_hex(8).encode()
        self.root = base / "images"
        (self.root / "sub").mkdir(parents=True)
        outside = base / "outside"
        outside.mkdir()
        sibling = base / "images-private"  # shares the root's name as a string prefix
        sibling.mkdir()

        inside = images.jpeg_bytes(INSIDE_SIZES["inside.jpg"], comment=b"inside")
        inner = images.png_bytes(INSIDE_SIZES["sub/inner.png"], mode="RGB")
        images.write(self.root / "inside.jpg", inside)
        images.write(self.root / "sub" / "inner.png", inner)
        secret = images.jpeg_bytes(OUTSIDE_SIZE, comment=self.marker)
        for place in (outside / "secret.jpg", sibling / "secret.jpg", base / "secret.jpg",
                      self.root / ".hidden.jpg", self.root / "sub" / ".env.jpg"):
            images.write(place, secret)
        (self.root / ".git").mkdir()
        images.write(self.root / ".git" / "config.jpg", secret)

        os.symlink("../inside.jpg", self.root / "sub" / "link-in.jpg")  # inside: allowed
        os.symlink(outside / "secret.jpg", self.root / "link-out.jpg")
        os.symlink(outside, self.root / "outdir")
        os.symlink("..", self.root / "updir")
        os.symlink(sibling, self.root / "sub" / "private")
        os.symlink("/etc/passwd", self.root / "passwd.jpg")
        os.symlink("/", self.root / "slash")

        # What a 200 may carry: exactly the bytes of a file inside the root.
        self.servable = {inside, inner}
        self.forbidden = [self.marker, b"root:x:0:0", b"root:*:0:0"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return Tree(tmp_path_factory.mktemp("paths"))


@pytest.fixture(scope="module")
def server(tree: Tree, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("paths-server")
    config = write_config(work / "config.yaml", thumbnails={"auto_formats": []})
    with LoggedServer(config, tree.root, log=work / "server.log") as live:
        yield live


NAMES = ["inside.jpg", "sub", "inner.png", "link-in.jpg", "link-out.jpg", "outdir", "updir", "slash", "private",
         "secret.jpg", "images-private", "images", "outside", "passwd.jpg", "etc", "passwd", ".hidden.jpg",
         ".git", "config.jpg", ".env.jpg", "thumb", "2000x", "healthz"]

DOTS = ["..", ".", "...", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2e", "%252e%252e", "%252e", "%25252e%25252e",
        "%c0%ae%c0%ae", "%e0%80%ae", "%ef%bc%8e%ef%bc%8e", "\uff0e\uff0e", "%u002e%u002e", "..;", "..%00", "..%0d%0a",
        "..\\", "..%5c", "..%255c", "..%c0%af", "~", "%7e"]

SEPARATORS = ["/", "/", "/", "//", "%2f", "%2F", "%252f", "\\", "%5c", "%5C", "%255c", "/./", "/%2e/", ";/", "%00/"]

SPECIALS = ["%00", "\x00", "%0d%0a", "\r\n", "\n", "%0a", "\r", "%09", "\t", " ", "%20", "?", "#", "%3f", "%23",
            "%ff", "%", "%%", "%zz", "\u202e", "é", "%C3%A9", "\U0001f600", "%F0%9F%98%80", "\x7f", "*", ":"]


def _encode(text: str, how: str) -> str:
    if how == "raw":
        return text
    if how == "once":
        return quote(text, safe="")
    return quote(quote(text, safe=""), safe="")


@st.composite
def segments(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["name", "name", "dots", "special", "text", "long", "mixed"]))
    if kind == "name":
        return draw(st.sampled_from(NAMES))
    if kind == "dots":
        return draw(st.sampled_from(DOTS))
    if kind == "special":
        return draw(st.sampled_from(SPECIALS))
    if kind == "long":
        return draw(st.sampled_from(["a", "%2e", "..", "é"])) * draw(st.integers(200, 20_000)) + ".jpg"
    if kind == "text":
        text = draw(st.text(min_size=1, max_size=12))
        return _encode(text, draw(st.sampled_from(["raw", "once", "twice"])))
    name = draw(st.sampled_from(NAMES))
    return draw(st.sampled_from(SPECIALS + DOTS)) + name if draw(st.booleans()) else name + draw(st.sampled_from(SPECIALS))


REAL = ["inside.jpg", "sub/inner.png", "sub/link-in.jpg", "link-out.jpg", "outdir/secret.jpg",
        "updir/outside/secret.jpg", "updir/images-private/secret.jpg", "sub/private/secret.jpg", "passwd.jpg",
        "slash/etc/passwd", ".hidden.jpg", "sub/.env.jpg", ".git/config.jpg"]


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A real path (inside or a way out) with a few edits: most decisions are made on these."""
    path = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["encode", "encode-twice", "dots", "separator", "case", "suffix"]))
        at = draw(st.integers(0, len(path)))
        if edit in ("encode", "encode-twice") and at < len(path):
            encoded = quote(path[at], safe="")
            if encoded == path[at]:
                encoded = f"%{ord(path[at]):02x}" if ord(path[at]) < 128 else encoded
            path = path[:at] + (quote(encoded, safe="") if edit == "encode-twice" else encoded) + path[at + 1 :]
        elif edit == "dots":
            path = path[:at] + draw(st.sampled_from(["./", "../", "x/../", "sub/../", "%2e%2e/", "..%2f"])) + path[at:]
        elif edit == "separator":
            path = path.replace("/", draw(st.sampled_from(SEPARATORS)), 1)
        elif edit == "case":
            path = path.upper() if draw(st.booleans()) else path.swapcase()
        else:
            path += draw(st.sampled_from(SPECIALS + ["/", ".", ".png", "%00.jpg"]))
    return path


@st.composite
def composed(draw: st.DrawFn) -> str:
    parts = draw(st.lists(segments(), min_size=1, max_size=8))
    path = parts[0]
    for part in parts[1:]:
        path += draw(st.sampled_from(SEPARATORS)) + part
    return path


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, bytes]:
    """(route, request-target bytes); route is "original" or "thumb"."""
    path = draw(st.one_of(near_misses(), composed()))
    route = draw(st.sampled_from(["original", "original", "thumb"]))
    prefix = draw(st.sampled_from(["/", "/", "//", "/./", "/%2e/", "\\", "", "http://127.0.0.1/"]))
    if route == "thumb":
        prefix = draw(st.sampled_from(["/thumb/2000x/", "/thumb/2000x,png/", "/thumb/2000x/%2e%2e/", "/thumb%2f2000x/"]))
    return route, (prefix + path).encode("utf-8", "surrogatepass")


class TestHostilePaths:
    """Whatever the request target, a 200 is a file inside the root and nothing is a 5xx."""

    @settings(max_examples=budget(1_500, 20_000), deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(target=targets())
    def test_nothing_outside_the_root(self, server: LoggedServer, tree: Tree, target: tuple[str, bytes]) -> None:
        route, raw_target = target
        response = exchange(server.port, raw_request(raw_target))
        assert response is not None, f"no answer to {raw_target[:200]!r}"
        assert response.status < 500, (raw_target[:200], response.status, response.body[:200])
        event(f"{route} {response.status}")
        for secret in tree.forbidden:
            assert secret not in response.body and secret not in response.raw_head
        if 300 <= response.status < 400:
            # Starlette's slash redirect for a target such as "?x": back to this very server.
            assert response.headers["location"].startswith("http://127.0.0.1/")
        if response.status == 200:
            assert response.complete
            content_type = response.headers.get("content-type", "")
            if response.body in tree.servable:
                pass  # an original inside the root, byte for byte
            elif content_type.startswith("image/"):
                # A thumbnail: its size says which source it was made from.
                assert Image.open(io.BytesIO(response.body)).size in INSIDE_SIZES.values(), (route, raw_target[:200])
            else:
                assert content_type == "application/json", (raw_target[:200], content_type)  # /healthz

    @pytest.mark.parametrize("target", [b"/%74humb/50x/inside.jpg", b"/thumb%2F50x%2Finside.jpg", b"/thumb/50x%2Cwebp/inside.jpg"])
    def test_encoded_prefix_or_spec_is_no_thumbnail(self, server: LoggedServer, tree: Tree, target: bytes) -> None:
        """What an edge rule matching `/thumb/` on the raw path sees is what the origin routes."""
        response = exchange(server.port, raw_request(target))
        assert response is not None and response.status == 404, target
        assert response.headers["content-type"] == "application/json"

    @pytest.mark.parametrize(
        "target",
        [
            b"/link-out.jpg", b"/outdir/secret.jpg", b"/updir/outside/secret.jpg", b"/updir/images-private/secret.jpg",
            b"/sub/private/secret.jpg", b"/passwd.jpg", b"/slash/etc/passwd", b"/.hidden.jpg", b"/.git/config.jpg",
            b"/sub/.env.jpg", b"/../secret.jpg", b"/%2e%2e/secret.jpg", b"/%252e%252e/secret.jpg",
            b"/..%2fsecret.jpg", b"/..%5csecret.jpg", b"/..\\secret.jpg", b"/%2e%2e%2fimages-private%2fsecret.jpg",
            b"/thumb/2000x/link-out.jpg", b"/thumb/2000x/..%2fsecret.jpg", b"/thumb/2000x/%2e%2e/secret.jpg",
            b"/thumb/2000x/updir/outside/secret.jpg", b"/inside.jpg%00.png", b"/inside.jpg\x00",
            # One URL per resource: routing on the raw path, each segment decoded once.
            b"/sub%2finner.png", b"/sub%2Finner.png", b"/inside.jpg%0A", b"/inside.jpg%0d",
        ],
    )
    def test_known_escapes_are_404_or_400(self, server: LoggedServer, tree: Tree, target: bytes) -> None:
        response = exchange(server.port, raw_request(target))
        assert response is not None
        assert response.status in (400, 404)
        assert tree.marker not in response.body

    @pytest.mark.parametrize(
        ("target", "name"),
        [(b"/inside.jpg", "inside.jpg"), (b"/sub/inner.png", "sub/inner.png"), (b"/sub/link-in.jpg", "inside.jpg"),
         (b"/%69nside.jpg", "inside.jpg"), (b"/sub/inner%2Epng", "sub/inner.png")],
    )
    def test_real_files_and_inside_links_are_served(self, server: LoggedServer, tree: Tree, target: bytes, name: str) -> None:
        response = exchange(server.port, raw_request(target))
        assert response is not None and response.status == 200
        assert response.body == (tree.root / name).read_bytes()

    def test_server_is_still_healthy(self, server: LoggedServer) -> None:
        response = exchange(server.port, raw_request(b"/healthz"))
        assert response is not None and response.status == 200
        assert server.process is not None and server.process.poll() is None
