"""Issue 12's modifiers through a real `thumbserver serve` (uvicorn on 127.0.0.1): one test per
family — crops (gravity, focal point, smart), pad and filters, animated thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import images
from tests.support.images import FRAME_COLOURS
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("features")
    images.write(root / "corner.png", images.to_bytes(images.subject_at((300, 100), (0, 1)), "PNG"))
    images.write(root / "detail.png", images.to_bytes(images.detail_on_flat((600, 200), (20, 40, 120, 140)), "PNG"))
    images.write(root / "edge.png", images.to_bytes(images.step_edge((200, 40), low=64, high=192), "PNG"))
    images.write(root / "anim.gif", images.numbered_animation("gif", frames=4, durations=(100, 200, 300, 400)))
    # Env overrides: no config file, default settings (auto_formats: webp).
    with LiveServer(None, root, env={"THUMBSERVER_LIMITS_MAX_ANIMATION_FRAMES": "10"}) as live:
        yield live


def fetch(server: LiveServer, path: str, **headers: str) -> tuple[httpx.Response, Image.Image]:
    response = httpx.get(f"{server.url}{path}", headers=headers)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return response, image


class TestFeaturesOverHttp:
    """Each family of modifiers, end to end."""

    def test_crops(self, server: LiveServer) -> None:
        _, kept = fetch(server, "/thumb/50x50,cover,g:sw/corner.png")
        assert min(kept.convert("RGB").getpixel((4, 45))) > 200
        _, focal = fetch(server, "/thumb/50x50,cover,fp:0.02:0.9/corner.png")
        assert min(focal.convert("RGB").getpixel((4, 45))) > 200
        _, smart = fetch(server, "/thumb/100x100,cover,g:smart/detail.png")
        assert sum(1 for v in smart.convert("L").tobytes() if abs(v - 128) > 2) >= 40 * 40
        bad = httpx.get(f"{server.url}/thumb/50x50,g:sw/corner.png")
        assert bad.status_code == 400 and "cover" in bad.json()["detail"]

    def test_pad_and_filters(self, server: LiveServer) -> None:
        _, padded = fetch(server, "/thumb/120x120,pad,bg:0000ff,jpeg/corner.png")
        assert padded.size == (120, 120)
        r, g, b = padded.convert("RGB").getpixel((60, 5))
        assert b > 230 and r < 25 and g < 25
        _, blurred = fetch(server, "/thumb/200x,blur:3,gray/edge.png")
        row = [blurred.convert("RGB").getpixel((x, 20)) for x in range(200)]
        assert all(r == g == b for r, g, b in row)
        assert sum(1 for r, _, _ in row if 70 < r < 186) >= 6

    def test_animation(self, server: LiveServer) -> None:
        response, out = fetch(server, "/thumb/32x/anim.gif", Accept="image/webp,*/*")
        assert response.headers["content-type"] == "image/webp"
        assert (out.size, out.n_frames) == ((32, 24), 4)
        durations = []
        for index in range(4):
            out.seek(index)
            out.load()
            durations.append(out.info["duration"])
            colour = out.convert("RGB").getpixel((20, 16))
            assert all(abs(a - b) <= 24 for a, b in zip(colour, FRAME_COLOURS[index], strict=True))
        assert durations == [100, 200, 300, 400]
        still_response, still = fetch(server, "/thumb/32x,still/anim.gif", Accept="image/webp,*/*")
        assert getattr(still, "n_frames", 1) == 1
        assert still_response.headers["etag"] != response.headers["etag"]
