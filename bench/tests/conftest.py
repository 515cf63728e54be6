"""The harness's modules import each other as top-level modules (run.py is a script)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
