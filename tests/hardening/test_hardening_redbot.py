"""REDbot's HTTP caching lint on a real server: an original, a thumbnail and a negotiated one
carry no "bad" note and no warning. `make lint-http` runs this module with its output shown."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.probe import LoggedServer, write_config

REPO = Path(__file__).resolve().parent.parent.parent
REDLINT = REPO / "tests" / "support" / "redlint.py"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("redbot") is None, reason="redbot is not installed")

# (path, request headers, media type expected): REDbot repeats each with its own conditional,
# ranged and compressed follow-ups.
TARGETS = [
    ("/landscape.jpg", [], "image/jpeg"),
    ("/thumb/320x240,cover/landscape.jpg", [], "image/jpeg"),
    ("/thumb/320x/landscape.jpg", ["Accept: image/avif,image/webp,image/apng,image/*,*/*;q=0.8"], "image/webp"),
    ("/thumb/160x,png/logo.png", [], "image/png"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("redbot")
    shutil.copytree(REPO / "examples" / "images", work / "images")
    with LoggedServer(write_config(work / "config.yaml"), work / "images", log=work / "server.log") as live:
        yield live


class TestRedbot:
    """No "bad" and no "warning" notes; validators and ranges work as REDbot probes them."""

    def test_no_bad_notes_and_no_warnings(self, server: LoggedServer) -> None:
        command = [sys.executable, str(REDLINT)]
        for path, headers, _ in TARGETS:
            command.append(server.url + path)
            for header in headers:
                command += ["-H", header]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.skip("REDbot did not finish within a minute on this machine")
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        assert len(lines) == len(TARGETS), result.stdout[-2000:] + result.stderr[-2000:]
        for (path, _, media_type), report in zip(TARGETS, lines):
            shown = [f"{note['level']:7} {note['id']}: {note['summary']}" for note in report["notes"]]
            print(f"{path} -> {report['status']}\n  " + "\n  ".join(shown))
            assert report["finished"] and report["fetch_error"] is None, report
            assert report["status"] == 200
            assert report["failing"] == [], report["failing"]
            ids = {note["id"] for note in report["notes"]}
            assert {"INM_304", "IMS_304", "CL_CORRECT"} <= ids, (path, ids)
        assert result.returncode == 0
        assert "Traceback" not in server.log_text()
