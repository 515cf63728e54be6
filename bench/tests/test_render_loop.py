"""The in-process loop, run as the script the harness runs."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image
from render_loop import UNBOUNDED, contain

SCRIPT = Path(__file__).resolve().parent.parent / "render_loop.py"


class TestRenderLoop:
    """Pillow renders distinct names for the given time and reports JSON."""

    def test_pillow_reports_images_and_latency(self, tmp_path):
        for index in range(4):
            Image.new("RGB", (1200, 800), (index * 60, 90, 30)).save(tmp_path / f"p{index:05d}.jpg")
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--engine", "pillow", "--dir", str(tmp_path),
             "--pattern", "p%05d.jpg", "--count", "4", "--width", "320", "--threads", "2",
             "--seconds", "0.5", "--warmup", "0"],
            capture_output=True, text=True, check=True,
        )
        result = json.loads(done.stdout.splitlines()[-1])
        assert result["images"] > 4 and result["reused_names"] == result["images"] - 4
        assert 0 < result["p50_ms"] <= result["p99_ms"]
        assert result["peak_rss"] > 0 and result["version"].startswith("Pillow")
        assert result["sizes"] == [[320, 213]]


class TestContain:
    """The size every subject must render: the box's tighter side, rounded half up."""

    def test_free_height(self):
        assert contain((6000, 4000), (320, UNBOUNDED)) == (320, 213)

    def test_box_binds_the_height(self):
        assert contain((1280, 1920), (512, 512)) == (341, 512)

    def test_never_upscales(self):
        assert contain((300, 200), (512, 512)) == (300, 200)
