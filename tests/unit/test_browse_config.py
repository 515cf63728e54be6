"""browse.* and info.*: off by default, on in the bundled config.yaml, prefixes that cannot clash."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


class TestBrowseAndInfoKeys:
    """Defaults, the bundled file, and the errors that stop start-up."""

    def test_defaults(self, image_root: Path) -> None:
        settings = load_settings(None, environ={}, overrides={"storage": {"root": str(image_root)}})
        assert (settings.browse.enabled, settings.browse.page_size, settings.browse.view_prefix) == (False, 200, "/view")
        assert settings.info.prefix == "/info"

    def test_bundled_config_browses(self) -> None:
        assert load_settings(REPO / "config.yaml", environ={}).browse.enabled is True

    @pytest.mark.parametrize(("overrides", "named"), [
        ({"info": {"prefix": "/thumb"}}, "info.prefix"),
        ({"browse": {"view_prefix": "/info"}}, "browse.view_prefix"),
        ({"browse": {"page_size": 0}}, "browse.page_size"),
        ({"info": {"prefix": "info/x"}}, "info.prefix"),
        ({"browse": {"colour": "red"}}, "browse.colour"),
    ])
    def test_errors_name_the_key(self, image_root: Path, overrides: dict, named: str) -> None:
        with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
            load_settings(None, environ={}, overrides={"storage": {"root": str(image_root)}, **overrides})

    def test_environment(self, image_root: Path) -> None:
        settings = load_settings(None, environ={"THUMBSERVER_BROWSE_ENABLED": "true",
                                                "THUMBSERVER_BROWSE_PAGE_SIZE": "50"},
                                 overrides={"storage": {"root": str(image_root)}})
        assert (settings.browse.enabled, settings.browse.page_size) == (True, 50)
