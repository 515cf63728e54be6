"""CORS (`http.cors_origins`): every image response carries it, hits and misses, 200/206/304."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import images
from tests.support.app import client_for

SITE = "https://example.com"
WEBP_ACCEPT = "image/webp,*/*"


@pytest.fixture
def photo(image_root: Path) -> Path:
    return images.write(image_root / "photo.jpg", images.jpeg_bytes((200, 150)))


class TestListedOrigins:
    """A listed Origin is echoed with Vary: Origin merged into Vary: Accept; others get nothing."""

    @pytest.mark.parametrize("target", ["/photo.jpg", "/thumb/64x/photo.jpg"])
    async def test_every_kind_of_answer(self, make_settings, photo: Path, target: str) -> None:
        async with client_for(make_settings(http={"cors_origins": [SITE]})) as http:
            origin = {"Origin": SITE, "Accept": WEBP_ACCEPT}
            miss = await http.get(target, headers=origin)
            hit = await http.get(target, headers=origin)
            revalidated = await http.get(target, headers={**origin, "If-None-Match": hit.headers["etag"]})
            ranged = await http.get(target, headers={**origin, "Range": "bytes=0-9"})
            for response in (miss, hit, revalidated, ranged):
                assert response.headers["access-control-allow-origin"] == SITE
                assert response.headers["timing-allow-origin"] == SITE
                vary = [v.strip() for v in response.headers["vary"].split(",")]
                assert "Origin" in vary and len(response.headers.get_list("vary")) == 1
            assert {miss.status_code, revalidated.status_code} == {200, 304}
            if target.startswith("/thumb"):
                assert [v.strip() for v in hit.headers["vary"].split(",")] == ["Accept", "Origin"]

    async def test_other_origins_get_no_grant(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(http={"cors_origins": [SITE]})) as http:
            response = await http.get("/thumb/64x/photo.jpg", headers={"Origin": "https://evil.example"})
            assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
            assert "Origin" in response.headers["vary"]

    async def test_errors_carry_it_too(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(http={"cors_origins": [SITE]})) as http:
            response = await http.get("/thumb/64x/missing.jpg", headers={"Origin": SITE})
            assert response.status_code == 404 and response.headers["access-control-allow-origin"] == SITE


class TestAnyOrigin:
    """`*` needs no Vary: the answer is the same for every origin."""

    async def test_star(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(http={"cors_origins": ["*"]})) as http:
            response = await http.get("/thumb/64x/photo.jpg", headers={"Origin": SITE})
            assert response.headers["access-control-allow-origin"] == "*"
            assert "Origin" not in response.headers.get("vary", "")

    async def test_preflight(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(http={"cors_origins": ["*"]})) as http:
            response = await http.options("/thumb/64x/photo.jpg", headers={
                "Origin": SITE, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "if-none-match"})
            assert response.status_code == 204
            assert response.headers["access-control-allow-methods"] == "GET, HEAD"
            assert response.headers["access-control-allow-headers"] == "if-none-match"
            assert response.headers["access-control-allow-origin"] == "*"


class TestOff:
    """Without cors_origins nothing is added and OPTIONS is a 405."""

    async def test_default(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings()) as http:
            response = await http.get("/thumb/64x/photo.jpg", headers={"Origin": SITE})
            assert "access-control-allow-origin" not in response.headers
            assert (await http.options("/photo.jpg")).status_code == 405

    def test_bad_origin_is_a_config_error(self, make_settings) -> None:
        from server.config import ConfigError

        with pytest.raises(ConfigError, match="http.cors_origins"):
            make_settings(http={"cors_origins": ["example.com/path"]})
