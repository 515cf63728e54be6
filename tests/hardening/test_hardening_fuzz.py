"""The atheris harnesses of tests/fuzz/ run clean for a while: ~12 s each here, 10 min each under
`make fuzz` (TS_TEST_BUDGET=full; TS_FUZZ_SECONDS overrides either)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.probe import budget

from tests.support import fuzz_seeds as seeds

FUZZ_DIR = Path(__file__).resolve().parents[1] / "fuzz"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install atheris; it ships wheels for CPython 3.8-3.12 on Linux x86-64)",
)


def _seconds() -> int:
    return int(os.environ.get("TS_FUZZ_SECONDS") or budget(12, 600))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    render, spec = seeds.write_corpora(tmp_path_factory.mktemp("corpus"))
    return {"fuzz_render.py": render, "fuzz_spec.py": spec}


class TestFuzzHarnesses:
    """Each harness runs for its time budget without a crash, a hang or a memory blow-up."""

    @pytest.mark.parametrize("harness", ["fuzz_spec.py", "fuzz_render.py"])
    def test_runs_clean(self, harness: str, corpora: dict[str, Path], tmp_path: Path) -> None:
        seconds = _seconds()
        command = [
            sys.executable, str(FUZZ_DIR / harness),
            f"-max_total_time={seconds}",
            "-timeout=20",  # one input: a hang is a finding
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpora[harness]),
        ]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 120)
        output = result.stdout + result.stderr
        crashes = sorted(str(path) for path in tmp_path.glob("*-*") if path.name.split("-")[0] in
                         ("crash", "timeout", "oom", "leak", "slow-unit"))
        assert result.returncode == 0, (
            f"{harness} found a problem; reproduce with `python {FUZZ_DIR / harness} {' '.join(crashes)}`\n"
            + output[-4000:]
        )
        runs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", output).group(1))
        print(f"{harness}: {runs} inputs in {seconds} s")
        assert runs >= 100, output[-2000:]
