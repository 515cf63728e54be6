"""POST /thumb/{spec} in process: the image in the body (raw or multipart) made into a thumbnail,
the body bounded while it is read, every refusal through the one error table."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import images
from tests.support.app import client_for
from tests.support.metrics import samples, value

MAX_BYTES = 200_000
PHOTO = images.jpeg_bytes((640, 480), image=images.textured((640, 480)))
KEY, SALT = "943b421c9eb07c83", "520f986b998545b4"


def decode(response: httpx.Response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def signed(rest: str) -> str:
    """DESIGN.md §Signed URLs, written from the text: base64url(HMAC-SHA256(key, salt + "/" + rest))."""
    digest = hmac.new(bytes.fromhex(KEY), bytes.fromhex(SALT) + b"/" + rest.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.fixture
def uploads_on(make_settings):
    def build(**sections):
        uploads = {"enabled": True, "max_bytes": MAX_BYTES, **sections.pop("uploads", {})}
        return make_settings(uploads=uploads, **sections)

    return build


class ASGICall:
    """One request straight into the app, with a `receive` the test controls (how much of the
    body the app asked for is observable, unlike through a client)."""

    def __init__(self, app, path: str, headers: dict[str, str], chunks, *, method: str = "POST") -> None:
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {},
        }
        self.app = app
        self._chunks = chunks
        self.delivered = 0  # body bytes handed to the app
        self.messages: list[dict] = []

    async def receive(self) -> dict:
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.delivered += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message: dict) -> None:
        self.messages.append(message)

    async def run(self) -> tuple[int, dict[str, str], bytes]:
        await self.app(self.scope, self.receive, self.send)
        start = self.messages[0]
        headers = {name.decode(): value.decode() for name, value in start["headers"]}
        return start["status"], headers, b"".join(m.get("body", b"") for m in self.messages[1:])


FORM_HEAD = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'


async def endless(chunk_size: int = 16 * 1024, *, limit: int = 100 * MAX_BYTES, first: bytes = b""):
    """Body chunks until `limit` bytes: far more than any bound, never all read by a good server."""
    if first:
        yield first
    sent = len(first)
    while sent < limit:
        sent += chunk_size
        yield b"\0" * chunk_size


class TestUploaded:
    """Raw and multipart uploads give the thumbnail's bytes, sized, typed and never cached."""

    @pytest.mark.parametrize("front", [True, False])
    async def test_raw_body(self, uploads_on, front: bool) -> None:
        async with client_for(uploads_on(), front=front) as http:
            response = await http.post("/thumb/320x240", content=PHOTO, headers={"Content-Type": "image/jpeg"})
            assert response.status_code == 200
            image = decode(response)
            assert (image.format, image.size) == ("JPEG", (320, 240))
            headers = response.headers
            assert headers["content-type"] == "image/jpeg"
            assert headers["content-length"] == str(len(response.content))
            assert headers["cache-control"] == "no-store" and "etag" not in headers and "last-modified" not in headers
            assert headers["content-disposition"] == 'inline; filename="upload_320x240.jpg"'
            assert headers["x-content-type-options"] == "nosniff"

    @pytest.mark.parametrize("front", [True, False])
    async def test_multipart_field_file(self, uploads_on, front: bool) -> None:
        async with client_for(uploads_on(), front=front) as http:
            response = await http.post("/thumb/100x100,cover,png", data={"note": "ignored"},
                                       files={"file": ("cat photo.jpg", PHOTO, "image/jpeg")})
            assert response.status_code == 200
            image = decode(response)
            assert (image.format, image.size) == ("PNG", (100, 100))
            assert response.headers["content-length"] == str(len(response.content))
            assert response.headers["content-disposition"] == 'inline; filename="cat photo_100x100.png"'

    async def test_percent_encoded_spec(self, uploads_on) -> None:
        """Swagger UI's "Try it out" percent-encodes the commas of a path parameter."""
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/100x100%2Ccover%2Cpng", content=PHOTO, headers={"Content-Type": "image/jpeg"})
            assert response.status_code == 200 and decode(response).size == (100, 100)
            assert response.headers["content-type"] == "image/png"
            assert (await http.post("/thumb/64x%2F", content=PHOTO, headers={"Content-Type": "image/jpeg"})).status_code == 404

    async def test_format_from_accept_else_the_uploads_family(self, uploads_on) -> None:
        logo = images.png_bytes((300, 200), mode="RGBA", color=(0, 0, 255, 0))
        async with client_for(uploads_on()) as http:
            negotiated = await http.post("/thumb/150x", content=logo,
                                         headers={"Content-Type": "image/png", "Accept": "image/webp,*/*"})
            family = await http.post("/thumb/150x", content=logo, headers={"Content-Type": "image/png"})
        assert negotiated.headers["content-type"] == "image/webp" and negotiated.headers["vary"] == "Accept"
        assert decode(negotiated).size == (150, 100)
        assert family.headers["content-type"] == "image/png" and decode(family).mode == "RGBA"

    async def test_nothing_reaches_a_result_tier(self, uploads_on, tmp_path: Path) -> None:
        async with client_for(uploads_on()) as http:
            for _ in range(2):
                response = await http.post("/thumb/64x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
                assert response.status_code == 200
            service = http.app.state.thumbnails
            assert service.memory.stats().entries == 0 and service.renders == 0
        # The disk tier's own bookkeeping (.usage) aside, no file: no result was stored.
        stored = [path for path in (tmp_path / "results").rglob("*") if path.is_file() and not path.name.startswith(".")]
        assert stored == []


class TestBounds:
    """A body over uploads.max_bytes is refused while it is read, never read whole."""

    @pytest.mark.parametrize("content_type", ["image/jpeg", "multipart/form-data; boundary=x"])
    async def test_declared_length_refused_before_any_byte(self, uploads_on, content_type: str) -> None:
        async with client_for(uploads_on()) as http:
            call = ASGICall(http.app, "/thumb/64x", {"content-type": content_type,
                                                     "content-length": str(MAX_BYTES + 20_000)}, endless())
            status, headers, body = await call.run()
        assert status == 413 and call.delivered == 0
        assert json.loads(body) == {"detail": f"The upload is larger than {MAX_BYTES} bytes."}
        assert headers["cache-control"] == "no-store" and headers["connection"] == "close"

    @pytest.mark.parametrize("content_type", ["image/jpeg", "multipart/form-data; boundary=x"])
    async def test_streamed_body_refused_once_past_the_bound(self, uploads_on, content_type: str) -> None:
        async with client_for(uploads_on()) as http:
            first = FORM_HEAD if content_type.startswith("multipart/") else b""
            call = ASGICall(http.app, "/thumb/64x", {"content-type": content_type}, endless(first=first))
            status, _, _ = await call.run()
        assert status == 413
        # The raw bound, or the form's (the file's bytes plus 16 KiB of form overhead), plus one chunk.
        assert MAX_BYTES < call.delivered <= MAX_BYTES + 16 * 1024 + 16 * 1024

    async def test_multipart_file_over_the_bound(self, uploads_on) -> None:
        big = b"\xff\xd8" + bytes(MAX_BYTES)
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/64x", files={"file": ("big.jpg", big, "image/jpeg")})
        assert response.status_code == 413

    async def test_slow_body_is_408(self, uploads_on) -> None:
        async def stalled():
            yield PHOTO[:1000]
            await asyncio.Event().wait()  # never: the server's read deadline ends the wait
            yield b""

        async with client_for(uploads_on(uploads={"read_timeout_s": 0.2})) as http:
            call = ASGICall(http.app, "/thumb/64x", {"content-type": "image/jpeg"}, stalled())
            status, headers, body = await call.run()
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body) == {"detail": "The upload did not arrive within 0.2 s."}


class TestRefusals:
    """Wrong types, missing images and bad images get a clear JSON error."""

    @pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "image/svg+xml", None])
    async def test_raw_body_of_another_type_is_415(self, uploads_on, content_type: str | None) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/64x", content=PHOTO, headers=headers)
        assert response.status_code == 415 and response.headers["cache-control"] == "no-store"
        assert "image/jpeg" in response.json()["detail"]

    async def test_multipart_part_of_another_type_is_415(self, uploads_on) -> None:
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/64x", files={"file": ("notes.txt", b"hello", "text/plain")})
        assert response.status_code == 415 and response.json()["detail"].startswith("text/plain is not an image type")

    async def test_empty_body_is_400(self, uploads_on) -> None:
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/64x", content=b"", headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 400 and "no image" in response.json()["detail"]

    async def test_form_without_file_is_400(self, uploads_on) -> None:
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/64x", files={"image": ("a.jpg", PHOTO, "image/jpeg")})
        assert response.status_code == 400 and response.json()["detail"].startswith("The form has no field 'file'")

    async def test_form_cut_short_is_400(self, uploads_on) -> None:
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/64x", content=FORM_HEAD + PHOTO[:500],
                                       headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert response.status_code == 400 and "closing boundary" in response.json()["detail"]

    @pytest.mark.parametrize("data", [images.truncated(PHOTO), b"\x89PNG not really", images.eps_bytes()],
                             ids=["truncated", "garbage", "postscript"])
    async def test_undecodable_is_422(self, uploads_on, data: bytes) -> None:
        async with client_for(uploads_on()) as http:
            raw = await http.post("/thumb/64x", content=data, headers={"Content-Type": "image/jpeg"})
            form = await http.post("/thumb/64x", files={"file": ("a.jpg", data, "image/jpeg")})
        for response in (raw, form):
            assert response.status_code == 422
            assert response.json() == {"detail": "The source is not an image that can be decoded."}

    async def test_over_the_pixel_limit_is_422(self, uploads_on) -> None:
        async with client_for(uploads_on(limits={"max_source_pixels": 10_000})) as http:
            response = await http.post("/thumb/64x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 422 and "10000 pixels" in response.json()["detail"]

    async def test_bad_spec_is_400_before_the_body_is_read(self, uploads_on) -> None:
        async with client_for(uploads_on()) as http:
            call = ASGICall(http.app, "/thumb/64x,sepia", {"content-type": "image/jpeg"}, endless())
            status, _, body = await call.run()
        assert status == 400 and call.delivered == 0
        assert json.loads(body)["detail"].startswith("Invalid thumbnail spec")


class TestMethods:
    """Uploads off, POST answers 405 as on any thumbnail URL; on, the upload URL takes POST only."""

    @pytest.mark.parametrize("front", [True, False])
    async def test_off(self, make_settings, front: bool) -> None:
        async with client_for(make_settings(), front=front) as http:
            upload = await http.post("/thumb/64x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
            assert upload.status_code == 405 and upload.headers["allow"] == "GET, HEAD"
            assert (await http.get("/thumb/64x")).status_code == 404
            assert "post" not in (await http.get("/openapi.json")).json()["paths"].get("/thumb/{spec}", {})

    @pytest.mark.parametrize("front", [True, False])
    async def test_get_and_head_of_the_upload_url(self, uploads_on, front: bool) -> None:
        async with client_for(uploads_on(), front=front) as http:
            for method in ("GET", "HEAD"):
                response = await http.request(method, "/thumb/64x")
                assert response.status_code == 405 and response.headers["allow"] == "POST"

    async def test_post_to_a_thumbnail_url_stays_405(self, uploads_on, image_root: Path) -> None:
        images.write(image_root / "photo.jpg", PHOTO)
        async with client_for(uploads_on()) as http:
            response = await http.post("/thumb/64x/photo.jpg", content=PHOTO, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"


class TestSigned:
    """With security.keys, the upload URL is `{prefix}/{signature}/{spec}`, signed over the spec."""

    @pytest.mark.parametrize("front", [True, False])
    async def test_signed_and_unsigned(self, uploads_on, front: bool) -> None:
        settings = uploads_on(security={"keys": [KEY], "salts": [SALT]})
        async with client_for(settings, front=front) as http:
            jpeg = {"Content-Type": "image/jpeg"}
            good = await http.post(f"/thumb/{signed('64x')}/64x", content=PHOTO, headers=jpeg)
            assert good.status_code == 200 and decode(good).size == (64, 48)
            for target in ("/thumb/64x", f"/thumb/{signed('65x')}/64x", "/thumb/AAAA/64x"):
                response = await http.post(target, content=PHOTO, headers=jpeg)
                assert response.status_code == 403 and response.json() == {"detail": "Forbidden"}
            paths = (await http.get("/openapi.json")).json()["paths"]
            assert "post" in paths["/thumb/{signature}/{spec}"]

    def test_thumbserver_sign_prints_the_upload_url(self, uploads_on, capsys) -> None:
        from server.cli import sign

        assert sign(uploads_on(security={"keys": [KEY], "salts": [SALT]}), "/thumb/64x") == 0
        assert capsys.readouterr().out.strip() == f"/thumb/{signed('64x')}/64x"


class TestQueue:
    """An upload holds a render slot from its first byte; with none free, 503 before reading."""

    async def test_full_queue_is_503(self, uploads_on) -> None:
        release = asyncio.Event()

        async def held():
            yield PHOTO[:1000]
            await release.wait()
            yield PHOTO[1000:]

        async with client_for(uploads_on(limits={"render_workers": 1, "render_queue": 0})) as http:
            first = asyncio.create_task(http.post("/thumb/64x", content=held(), headers={"Content-Type": "image/jpeg"}))
            renderer = http.app.state.uploads
            for _ in range(1000):  # until the first upload is being read (bounded: no clock involved)
                if renderer.reading:
                    break
                await asyncio.sleep(0)
            assert renderer.reading == 1
            refused = await http.post("/thumb/64x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
            release.set()
            done = await first
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.headers["cache-control"] == "no-store" and "detail" in refused.json()
        assert done.status_code == 200 and decode(done).size == (64, 48)


class TestObserved:
    """Uploads are their own kind in the metrics and the access log."""

    async def test_metrics_and_access_log(self, uploads_on, capsys) -> None:
        async with client_for(uploads_on(server={"access_log": "json"})) as http:
            await http.post("/thumb/64x", content=PHOTO, headers={"Content-Type": "image/jpeg"})
            await http.post("/thumb/64x", content=b"text", headers={"Content-Type": "text/plain"})
            found = samples((await http.get("/metrics")).text)
        assert value(found, "thumbserver_requests_total", kind="upload", status="200") == 1
        assert value(found, "thumbserver_requests_total", kind="upload", status="415") == 1
        assert value(found, "thumbserver_renders_total", format="jpeg") == 1
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        uploads = [line for line in lines if line["kind"] == "upload"]
        assert [(line["status"], line["cache"]) for line in uploads] == [(200, "render"), (415, None)]
        assert uploads[0]["render_ms"] > 0 and uploads[0]["bytes"] > 0


class TestOpenAPI:
    """The upload route is documented with both bodies and image responses, so Swagger UI's
    "Try it out" offers a file picker and sends a multipart form."""

    async def test_documented(self, uploads_on) -> None:
        async with client_for(uploads_on()) as http:
            document = (await http.get("/openapi.json")).json()
        operation = document["paths"]["/thumb/{spec}"]["post"]
        body = operation["requestBody"]["content"]
        form = body["multipart/form-data"]["schema"]
        assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
        assert body["image/jpeg"]["schema"]["format"] == "binary" and "image/png" in body
        assert "image/webp" in operation["responses"]["200"]["content"]
        assert {"413", "415", "422", "503"} <= set(operation["responses"])
        assert [p["name"] for p in operation["parameters"]] == ["spec"]
