"""schemathesis against /openapi.json of a real server: no 5xx, and every response has a status
and a media type that the schema documents for it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.probe import LoggedServer, budget, write_config

REPO = Path(__file__).resolve().parent.parent.parent
SCHEMATHESIS = shutil.which("schemathesis") or str(Path(__import__("sys").executable).parent / "schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"

pytestmark = pytest.mark.skipif(not Path(SCHEMATHESIS).exists(), reason="schemathesis is not installed")

# A second pass pins `path` to a real image, so generated specs reach the renderer and the
# originals' 200 is checked against its documented image media types too.
PINNED = """
[[operations]]
include-name = "GET /thumb/{spec}/{path}"
parameters = { path = "landscape.jpg" }

[[operations]]
include-name = "GET /{path}"
parameters = { path = "portrait.jpg" }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("openapi")
    shutil.copytree(REPO / "examples" / "images", work / "images")
    with LoggedServer(write_config(work / "config.yaml"), work / "images", log=work / "server.log") as live:
        yield live


class TestOpenApiContract:
    """Generated requests for every documented operation get documented answers, never a 5xx."""

    @pytest.mark.parametrize("pinned", [False, True], ids=["free", "pinned-path"])
    def test_schemathesis(self, server: LoggedServer, tmp_path: Path, pinned: bool) -> None:
        examples = budget(150, 2000)
        command = [SCHEMATHESIS]
        if pinned:
            (tmp_path / "schemathesis.toml").write_text(PINNED)
            command += ["--config-file", str(tmp_path / "schemathesis.toml")]
        command += [
            "run", f"{server.url}/openapi.json", "--checks", CHECKS, "--max-examples", str(examples),
            "--seed", "20261121", "--generation-database", "none", "--workers", "2", "--request-timeout", "20",
            "--report", "json", "--report-dir", str(tmp_path / "report"), "--no-color",
        ]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=budget(240, 3600))
        reports = list((tmp_path / "report").glob("*.json"))
        assert reports, result.stdout[-3000:] + result.stderr[-2000:]
        report = json.loads(reports[0].read_text())
        assert report["failures"] == [] and report["errors"] == [], json.dumps(report["failures"][:3])[:3000]
        assert result.returncode == 0, result.stdout[-3000:]
        assert report["operations"]["tested"] == 5  # /healthz, /metrics, thumbnails, info, originals
        assert report["test_cases"]["generated"] >= 4 * min(examples, 20)
        print(f"schemathesis ({'pinned' if pinned else 'free'}): {report['test_cases']['generated']} cases, "
              f"{report['running_time']:.0f} s")
        assert "Traceback" not in server.log_text()
