"""HTTP load from ``wrk`` on loopback, bounded in time, and what it measured.

A :class:`Target` says which requests to send; :func:`run_wrk` sends them for a fixed number of
seconds and returns a :class:`LoadResult` parsed from the JSON line that ``wrk_target.lua``
prints when wrk is done.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_target.lua")
# One wrk thread for every subject: the load generator then takes at most one of the
# machine's cores, the same one for servers and ceilings alike.
WRK_THREADS = 1


class LoadFailed(Exception):
    """wrk could not run or printed no result. ``str(error)`` is a one-line reason."""


@dataclass(frozen=True)
class Target:
    """The requests of one run: a fixed ``path`` or a printf ``pattern`` over distinct names.

    ``first``/``count`` bound the indices a distinct run may use; ``header`` is sent with every
    fixed request (used for ``If-None-Match``).
    """

    path: str = ""
    pattern: str = ""
    first: int = 0
    count: int = 0
    header: tuple[str, str] | None = None
    # A family target: the pattern has "%s" for one of these specs, then the name's index;
    # request k asks for name first + k // len(specs) as specs[k % len(specs)].
    specs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.path) == bool(self.pattern):
            raise ValueError("a Target has either a path or a pattern")

    def script_args(self, threads: int) -> list[str]:
        """The arguments ``wrk_target.lua`` expects after ``--``."""
        if self.path:
            return ["fixed", self.path, *(self.header or ())]
        if self.specs:
            return ["family", self.pattern, str(self.first), str(self.count), str(threads), *self.specs]
        return ["distinct", self.pattern, str(self.first), str(self.count), str(threads)]

    def shifted(self, first: int, count: int) -> Target:
        """The same pattern over another index range (warm-ups use names a run won't)."""
        return Target(pattern=self.pattern, first=first, count=count, specs=self.specs)


@dataclass(frozen=True)
class LoadResult:
    """What wrk measured. Latencies in milliseconds; ``errors`` counts failed requests."""

    requests: int
    seconds: float
    bytes: int
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    reused_urls: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Requests that got a status >= 400 or no response at all."""
        return sum(self.errors.values())


def run_wrk(base_url: str, target: Target, *, concurrency: int, seconds: float) -> LoadResult:
    """Load ``base_url`` with ``target`` from ``concurrency`` connections for ``seconds``."""
    threads = min(WRK_THREADS, concurrency)
    command = [
        "wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
        "--timeout", "30s", "-s", str(SCRIPT), base_url, "--", *target.script_args(threads),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LoadFailed(f"wrk did not run: {error}") from error
    return parse_wrk_output(done.stdout, done.stderr)


def parse_wrk_output(stdout: str, stderr: str = "") -> LoadResult:
    """Build a :class:`LoadResult` from the ``BENCH_JSON`` line of wrk's output."""
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            return _result_from(raw)
    reason = (stderr.strip() or stdout.strip() or "no output").splitlines()[-1]
    raise LoadFailed(f"wrk printed no result: {reason}")


def _result_from(raw: dict) -> LoadResult:
    latency = raw["latency_us"]
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        bytes=raw["bytes"],
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        errors={kind: n for kind, n in raw["errors"].items() if n},
        reused_urls=raw["reused_urls"],
    )


@dataclass(frozen=True)
class Probe:
    """One response fetched with urllib: enough to check a target before loading it."""

    status: int
    headers: dict[str, str]
    body: bytes


def probe(url: str, headers: dict[str, str] | None = None, *, timeout: float = 120) -> Probe:
    """GET ``url`` once; HTTP errors are returned as probes, not raised."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Probe(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Probe(error.code, _lower(error.headers), error.read())


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
