"""Fixtures of the end-to-end tests: an image root with one 640x480 photo."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import images


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    images.write(folder / "photo.jpg", images.jpeg_bytes((640, 480), image=images.textured((640, 480))))
    return folder
