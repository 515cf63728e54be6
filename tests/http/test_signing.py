"""Signed URLs end to end in process: the only form accepted when keys are set, 403 otherwise,
the signature never part of a key or ETag, and `thumbserver sign` printing what the server takes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import images
from tests.support.app import client_for

KEY, SALT = "943b421c9eb07c83", "520f986b998545b4"
OLD_KEY, OLD_SALT = "00112233", "44556677"


def signed(rest: str, key: str = KEY, salt: str = SALT) -> str:
    """The signature, written here from the scheme's text (DESIGN.md §Signed URLs), not the server's code:
    base64url(HMAC-SHA256(key, salt + "/" + rest)) without "=" padding, rest as sent (percent-encoded)."""
    digest = hmac.new(bytes.fromhex(key), bytes.fromhex(salt) + b"/" + rest.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@pytest.fixture
def photo(image_root: Path) -> Path:
    return images.write(image_root / "photo one.jpg", images.jpeg_bytes((320, 240)))


@pytest.fixture
def secure(make_settings):
    return make_settings(security={"keys": [KEY, OLD_KEY], "salts": [SALT, OLD_SALT]})


class TestSignedThumbnails:
    """With keys set, a thumbnail URL needs a good signature over the raw rest of its path."""

    async def test_signed_url_is_served(self, secure, photo: Path) -> None:
        rest = "64x/photo%20one.jpg"
        async with client_for(secure) as http:
            response = await http.get(f"/thumb/{signed(rest)}/{rest}")
            assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"

    async def test_rotated_key_still_verifies_and_shares_the_entry(self, secure, photo: Path) -> None:
        rest = "64x/photo%20one.jpg"
        async with client_for(secure) as http:
            new = await http.get(f"/thumb/{signed(rest)}/{rest}")
            old = await http.get(f"/thumb/{signed(rest, OLD_KEY, OLD_SALT)}/{rest}")
            assert old.status_code == 200 and old.headers["etag"] == new.headers["etag"]
            assert http.app.state.thumbnails.renders == 1  # the signature is in no key

    @pytest.mark.parametrize("target", [
        "/thumb/64x/photo%20one.jpg",                                   # unsigned
        "/thumb/{sig}/65x/photo%20one.jpg",                             # signature of another spec
        "/thumb/{sig}/64x/photo%20one%2Ejpg",                           # the same file, another raw path
        "/thumb/AAAA/64x/photo%20one.jpg",                              # garbage
        "/thumb/{sig}",                                                 # nothing signed
    ])
    async def test_bad_or_missing_signature_is_403(self, secure, photo: Path, target: str) -> None:
        async with client_for(secure) as http:
            response = await http.get(target.format(sig=signed("64x/photo%20one.jpg")))
            assert response.status_code == 403
            assert response.json() == {"detail": "Forbidden"} and response.headers["cache-control"] == "no-store"
            assert http.app.state.thumbnails.renders == 0

    async def test_originals_stay_unsigned_by_default(self, secure, photo: Path) -> None:
        async with client_for(secure) as http:
            assert (await http.get("/photo%20one.jpg")).status_code == 200


class TestSignedOriginals:
    """With sign_originals, originals are `/{signature}/{path}` and an unsigned one is 403."""

    async def test_signed_and_unsigned(self, make_settings, photo: Path) -> None:
        settings = make_settings(security={"keys": [KEY], "salts": [SALT], "sign_originals": True})
        async with client_for(settings) as http:
            assert (await http.get(f"/{signed('photo%20one.jpg')}/photo%20one.jpg")).status_code == 200
            assert (await http.get("/photo%20one.jpg")).status_code == 403
            assert (await http.get("/healthz")).status_code == 200  # other routes need no signature


class TestSignCommand:
    """`thumbserver sign PATH` prints the path the server accepts."""

    def test_printed_path_is_served(self, tmp_path: Path, image_root: Path, photo: Path) -> None:
        config = tmp_path / "config.yaml"
        config.write_text(f"storage: {{root: {image_root}}}\ncache: {{shared: none}}\n"
                          f"security: {{keys: ['{KEY}'], salts: ['{SALT}']}}\n")
        done = subprocess.run([sys.executable, "-m", "server", "sign", "--config", str(config),
                               "/thumb/64x/photo one.jpg"], capture_output=True, text=True, check=True)
        printed = done.stdout.strip()
        assert printed == f"/thumb/{signed('64x/photo%20one.jpg')}/64x/photo%20one.jpg"

    def test_without_keys_it_says_so(self, tmp_path: Path, image_root: Path) -> None:
        config = tmp_path / "config.yaml"
        config.write_text(f"storage: {{root: {image_root}}}\n")
        done = subprocess.run([sys.executable, "-m", "server", "sign", "--config", str(config), "/thumb/64x/a.jpg"],
                              capture_output=True, text=True)
        assert done.returncode == 2 and "security.keys" in done.stderr and done.stdout == ""
