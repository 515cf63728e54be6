"""The scenarios of a run and how long each lasts.

A scenario fixes the work (which source, which box, cold or cached) and the load (concurrency,
duration); the subjects it lists are measured one after the other under the same conditions.
Which URL a subject is sent for a scenario is the subject's business (``peers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
DEFAULT_CACHE_BYTES = 256 * MIB  # our server's cache.max_bytes everywhere but the memory run
# cache.max_bytes of our server in the memory scenario: small enough that 20 s of 24 MP
# renders fill it, so "peak RSS minus the cache" subtracts a known, full budget.
MEMORY_CACHE_BYTES = 8 * MIB
MEMORY_ALLOWANCE_BYTES = 150 * 1000 * 1000  # the target: RSS <= cache.max_bytes + 150 MB


@dataclass(frozen=True)
class Timing:
    """Seconds of measured load per scenario, of warm-up before it, and of the memory run."""

    seconds: float
    warmup: float
    memory_seconds: float


FULL = Timing(seconds=10, warmup=2, memory_seconds=20)
QUICK = Timing(seconds=3, warmup=1, memory_seconds=5)


@dataclass(frozen=True)
class Scenario:
    """One row group of the report.

    ``source`` names the corpus folder of distinct names for cold scenarios (``None``
    otherwise) and ``box`` the thumbnail box (``None`` side = free).
    """

    key: str
    title: str
    concurrency: int
    subjects: tuple[str, ...]
    source: str | None = None
    box: tuple[int, int | None] = (320, None)

    @property
    def cold(self) -> bool:
        return self.source is not None

    def seconds(self, timing: Timing) -> float:
        return timing.memory_seconds if self.key == "memory" else timing.seconds


SCENARIOS = (
    Scenario("cold-24mp", "cold 24 MP → 320 px wide", 4,
             ("ours", "baseline", "pillow", "pyvips", "thumbor"), source="24mp", box=(320, None)),
    Scenario("cold-2mp", "cold 2 MP → 512x512", 4,
             ("ours", "baseline", "pillow", "pyvips", "thumbor"), source="2mp", box=(512, 512)),
    Scenario("hit", "cache hit, one 320 px thumbnail", 32,
             ("ours", "baseline", "thumbor", "nginx", "starlette")),
    Scenario("revalidation", "If-None-Match → 304", 32, ("ours", "baseline", "nginx", "starlette")),
    Scenario("original", "original, 2 MB JPEG", 32, ("ours", "baseline", "nginx", "starlette")),
    Scenario("memory", "memory: cold 24 MP → 320 px, conc 8", 8,
             ("ours",), source="24mp", box=(320, None)),
)


def select(only: list[str] | None) -> tuple[Scenario, ...]:
    """The scenarios named in ``only`` (all when empty), in the canonical order.

    Raises ``ValueError`` naming the valid keys when a name is unknown.
    """
    if not only:
        return SCENARIOS
    keys = {scenario.key for scenario in SCENARIOS}
    unknown = [name for name in only if name not in keys]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(sorted(keys))}")
    return tuple(scenario for scenario in SCENARIOS if scenario.key in only)
