"""Configuration: defaults, file, environment and CLI precedence, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class TestDefaults:
    """With no file and no environment, the settings are DESIGN.md's defaults."""

    def test_defaults(self, image_root: Path) -> None:
        settings = load_settings(None, environ={}, overrides={"storage": {"root": str(image_root)}})
        assert (settings.server.host, settings.server.port, settings.server.workers) == ("127.0.0.1", 8000, "auto")
        assert settings.storage.extensions == ("jpg", "jpeg", "png", "webp", "gif", "avif", "tif", "tiff", "bmp")
        assert settings.cache.max_bytes == 268435456
        assert settings.thumbnails.prefix == "/thumb"
        assert (settings.thumbnails.max_width, settings.thumbnails.max_height) == (4096, 4096)
        assert settings.thumbnails.allowed_sizes == ()
        assert settings.thumbnails.presets["small"].model_dump() == {"width": 160, "height": 160, "fit": "cover"}
        assert settings.thumbnails.auto_formats == ("webp",)
        assert settings.thumbnails.quality.model_dump() == {"jpeg": 82, "webp": 80, "avif": 60}
        assert settings.limits.max_source_pixels == 50_000_000
        assert settings.limits.max_source_bytes == 104857600
        assert (settings.limits.render_workers, settings.limits.render_queue) == (2, 64)
        assert settings.limits.max_animation_frames == 100
        assert settings.http.cache_control_originals == "max-age=86400"
        assert settings.http.cache_control_thumbnails == "max-age=604800"

    def test_settings_are_frozen(self, settings) -> None:
        with pytest.raises(Exception):
            settings.server.port = 1

    def test_bundled_config_serves_the_examples(self) -> None:
        settings = load_settings(REPO / "config.yaml", environ={})
        assert settings.storage.root == (REPO / "examples" / "images").resolve()
        assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8000)


class TestSources:
    """File < environment < command line, and a relative root is taken from the file's folder."""

    def test_file_values(self, tmp_path: Path, image_root: Path) -> None:
        config = write(tmp_path / "c.yaml", "server: {port: 9001}\nstorage: {root: images}\ncache: {max_bytes: 1000}\n")
        settings = load_settings(config, environ={})
        assert settings.server.port == 9001
        assert settings.cache.max_bytes == 1000
        assert settings.storage.root == image_root

    def test_environment_overrides_file(self, tmp_path: Path, image_root: Path) -> None:
        config = write(tmp_path / "c.yaml", "server: {port: 9001}\nstorage: {root: images}\n")
        environ = {
            "THUMBSERVER_SERVER_PORT": "9002",
            "THUMBSERVER_LIMITS_MAX_SOURCE_BYTES": "5000",
            "THUMBSERVER_THUMBNAILS_AUTO_FORMATS": "[avif, webp]",
            "OTHER_VARIABLE": "ignored",
        }
        settings = load_settings(config, environ=environ)
        assert settings.server.port == 9002
        assert settings.limits.max_source_bytes == 5000
        assert settings.thumbnails.auto_formats == ("avif", "webp")

    def test_cli_overrides_environment(self, image_root: Path) -> None:
        settings = load_settings(
            None,
            environ={"THUMBSERVER_SERVER_PORT": "9002", "THUMBSERVER_STORAGE_ROOT": "/nonexistent"},
            overrides={"server": {"port": 9003}, "storage": {"root": str(image_root)}},
        )
        assert settings.server.port == 9003
        assert settings.storage.root == image_root


ERRORS = [
    ("server: {port: 8000, colour: blue}\n", {}, "server.colour: unknown key"),
    ("serverr: {port: 8000}\n", {}, "serverr: unknown key"),
    ("server: {port: eighty}\n", {}, "server.port:"),
    ("server: {workers: 0}\n", {}, "server.workers: input should be greater than 0"),
    ("cache: {max_bytes: -1}\n", {}, "cache.max_bytes: input should be greater than 0"),
    ("limits: {max_source_pixels: 0}\n", {}, "limits.max_source_pixels:"),
    ("limits: {max_animation_frames: 0}\n", {}, "limits.max_animation_frames:"),
    ("thumbnails: {quality: {jpeg: 101}}\n", {}, "thumbnails.quality.jpeg:"),
    ("thumbnails: {auto_formats: [gif]}\n", {}, "thumbnails.auto_formats.0:"),
    ("thumbnails: {allowed_sizes: [big]}\n", {}, "thumbnails.allowed_sizes:"),
    ("thumbnails: {presets: {tiny: {fit: cover}}}\n", {}, "thumbnails.presets.tiny:"),
    ("thumbnails: {prefix: thumb}\n", {}, "thumbnails.prefix:"),
    ("storage: {root: nowhere}\n", {}, "storage.root: "),
    ("storage: {root: file.txt}\n", {}, "storage.root: "),
    ("server: [1, 2]\n", {}, "server:"),
    ("- just a list\n", {}, "must be a mapping"),
    ("server: {port: [unclosed\n", {}, "not valid YAML"),
    ("", {"THUMBSERVER_SERVER_PORTT": "1"}, "THUMBSERVER_SERVER_PORTT"),
    ("", {"THUMBSERVER_NOPE_PORT": "1"}, "THUMBSERVER_NOPE_PORT: not a setting"),
    ("", {"THUMBSERVER_CACHE_MAX_BYTES": "0"}, "cache.max_bytes:"),
]


class TestErrors:
    """Each kind of bad configuration is one line naming the key."""

    @pytest.mark.parametrize(("text", "environ", "expected"), ERRORS)
    def test_error_names_key(self, tmp_path: Path, text: str, environ: dict[str, str], expected: str) -> None:
        (tmp_path / "images").mkdir()
        (tmp_path / "file.txt").write_text("x")
        config = write(tmp_path / "c.yaml", text or "storage: {root: images}\n")
        with pytest.raises(ConfigError) as raised:
            load_settings(config, environ=environ)
        message = str(raised.value)
        assert expected in message
        assert "\n" not in message

    def test_missing_config_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot be read"):
            load_settings(tmp_path / "absent.yaml", environ={})


class TestCommandLine:
    """`thumbserver check-config` prints the settings, or one line and exit code 2."""

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", **(env or {})},
        )

    def test_check_config_prints_effective_settings(self, tmp_path: Path, image_root: Path) -> None:
        write(tmp_path / "config.yaml", "server: {port: 9100}\nstorage: {root: images}\n")
        result = self.run("check-config", cwd=tmp_path, env={"THUMBSERVER_LIMITS_RENDER_QUEUE": "5"})
        assert result.returncode == 0, result.stderr
        assert "port: 9100" in result.stdout
        assert "render_queue: 5" in result.stdout
        assert str(image_root) in result.stdout

    def test_bad_config_exits_2_with_one_line(self, tmp_path: Path) -> None:
        write(tmp_path / "bad.yaml", "server: {workers: -3}\n")
        result = self.run("serve", "--config", str(tmp_path / "bad.yaml"), "--root", str(tmp_path), cwd=tmp_path)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "server.workers" in lines[0]

    def test_root_flag_must_be_a_directory(self, tmp_path: Path) -> None:
        result = self.run("serve", "--root", str(tmp_path / "none"), cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith("thumbserver: configuration error: storage.root:")
