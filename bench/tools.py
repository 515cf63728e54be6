"""External tools the peers need: Debian packages and one virtualenv per Python peer.

Every function here either returns what was asked for or raises :class:`Unavailable` with a
one-line reason; the caller turns that into a ``skip:`` line and the run goes on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


class Unavailable(Exception):
    """A tool could not be found or installed. ``str(error)`` is the one-line reason."""


class Debian:
    """Installs Debian packages on demand, running ``apt-get update`` at most once."""

    def __init__(self) -> None:
        self._updated = False

    def ensure(self, *packages: str) -> None:
        """Make sure ``packages`` are installed, or raise :class:`Unavailable`."""
        missing = [p for p in packages if not _dpkg_installed(p)]
        if not missing:
            return
        if shutil.which("apt-get") is None:
            raise Unavailable(f"{' '.join(missing)} not installed and no apt-get here")
        if os.geteuid() != 0:
            raise Unavailable(f"{' '.join(missing)} not installed and not root to apt-get it")
        if self._install(missing):
            return
        if not self._updated:
            self._updated = True
            print("tools: apt-get update", flush=True)
            _quiet(["apt-get", "update", "-qq"])
            if self._install(missing):
                return
        raise Unavailable(f"apt-get install {' '.join(missing)} failed")

    @staticmethod
    def _install(packages: list[str]) -> bool:
        print(f"tools: apt-get install {' '.join(packages)}", flush=True)
        done = _quiet(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages])
        return done and all(_dpkg_installed(p) for p in packages)


def ensure_venv(directory: Path, requirements: list[str], probe: str) -> Path:
    """Return the Python of a venv at ``directory`` in which ``probe`` (code) runs cleanly.

    The venv is created and ``requirements`` pip-installed only when the probe fails, so
    later runs start at once. Raises :class:`Unavailable` with pip's last error line.
    """
    python = directory / "bin" / "python"
    if python.exists() and _runs(python, probe):
        return python
    print(f"tools: creating {directory} with {' '.join(requirements)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(directory)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        raise Unavailable(f"pip install {' '.join(requirements)} failed: {_last_line(pip.stderr)}")
    probed = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if probed.returncode != 0:
        raise Unavailable(f"installed but does not import: {_last_line(probed.stderr)}")
    return python


def version_of(command: list[str]) -> str:
    """The first line a ``--version``-style command prints (stdout or stderr), or ``?``."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _dpkg_installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
    )
    return done.returncode == 0 and done.stdout.split()[-1:] == ["installed"]


def _quiet(command: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    return done.returncode == 0


def _runs(python: Path, code: str) -> bool:
    return subprocess.run([str(python), "-c", code], capture_output=True).returncode == 0


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
