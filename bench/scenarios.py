"""The scenarios of a run and how long each lasts.

A scenario fixes the work (which source, which box, cold or cached) and the load (concurrency,
duration); the subjects it lists are measured one after the other under the same conditions.
Which URL a subject is sent for a scenario is the subject's business (``peers.py``).

Most scenarios are rates measured with wrk. The render-count scenarios (``count`` set) measure
no rate: they start our server in each of their :class:`Setup` s, send it a burst of requests
and count the renders its log shows (``shared-renders``), or serve thumbnails, restart it on the
same shared tier and count the renders of the second life (``restart``).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
DEFAULT_CACHE_BYTES = 256 * MIB  # our server's cache.max_bytes everywhere but the memory run
# cache.max_bytes of our server in the memory scenario: small enough that 20 s of 24 MP
# renders fill it, so "peak RSS minus the cache" subtracts a known, full budget.
MEMORY_CACHE_BYTES = 8 * MIB
MEMORY_ALLOWANCE_BYTES = 150 * 1000 * 1000  # the target: RSS <= cache.max_bytes + 150 MB
# limits.intermediate_bytes of our server (its default): each render process may keep this much
# on top, so the memory target adds it.
INTERMEDIATE_BYTES = 64 * MIB
# cache.max_bytes of the shared-hit scenarios: every entry is larger, so the memory tier keeps
# nothing and every request is answered from the (warm) shared tier.
MEMORY_OFF_BYTES = 1
# The burst of shared-renders: this many requests at once, each on a fresh connection, over
# BURST_DISTINCT distinct thumbnails of the 2 MP source (each asked for 6 times at once).
BURST_REQUESTS = 120
BURST_DISTINCT = 20
RESTART_THUMBNAILS = 20  # thumbnails served before the restart and asked for again after it
# The srcset family (issue 14): every source asked for at these widths in both formats, one
# after the other (a page's srcset, or a CDN filling its variants); Pillow alone makes the same
# thumbnails each from scratch.
SRCSET_WIDTHS = (160, 320, 640, 960, 1280)
SRCSET_FORMATS = ("jpeg", "webp")
SRCSET = tuple(f"{width}x,{output}" for width in SRCSET_WIDTHS for output in SRCSET_FORMATS)


@dataclass(frozen=True)
class Timing:
    """Seconds of measured load per scenario, of warm-up before it, and of the memory run."""

    seconds: float
    warmup: float
    memory_seconds: float


FULL = Timing(seconds=10, warmup=2, memory_seconds=20)
QUICK = Timing(seconds=3, warmup=1, memory_seconds=5)


@dataclass(frozen=True)
class Setup:
    """How a render-count row runs our server: ``cache.shared``, worker processes per node
    (``None``: the run's ``--workers``) and how many nodes (servers) share the tier."""

    name: str
    label: str
    shared: str
    workers: int | None = None
    nodes: int = 1


@dataclass(frozen=True)
class Scenario:
    """One row group of the report.

    ``source`` names the corpus folder of distinct names (``None`` for cached scenarios) and
    ``box`` the thumbnail box (``None`` side = free). ``sends`` names what a cached scenario
    requests (``hit``, ``revalidation``, ``original``; default: its key). ``shared`` and
    ``memory_bytes`` set our server's ``cache.shared`` and ``cache.max_bytes`` (``None``: the
    default budget). ``count`` makes it a render-count scenario (``burst`` or ``restart``), run
    once in each of its ``setups``; ``concurrency`` is then the requests sent at once.
    """

    key: str
    title: str
    concurrency: int
    subjects: tuple[str, ...]
    source: str | None = None
    box: tuple[int, int | None] = (320, None)
    sends: str = ""
    shared: str = "disk"
    memory_bytes: int | None = None
    count: str | None = None
    setups: tuple[Setup, ...] = ()

    @property
    def family(self) -> bool:
        """Every source is asked for as each spec of SRCSET (thumbnails, not sources, counted)."""
        return self.sends == "srcset"

    @property
    def cold(self) -> bool:
        """A wrk run over distinct names (a render-count scenario's source is not loaded by wrk)."""
        return self.source is not None and self.count is None

    @property
    def request(self) -> str:
        """What a cached scenario asks for: ``hit``, ``revalidation`` or ``original``."""
        return self.sends or self.key

    @property
    def needs_redis(self) -> bool:
        return self.shared == "redis" or any(setup.shared == "redis" for setup in self.setups)

    def seconds(self, timing: Timing) -> float:
        """Seconds of measured load; for a render-count scenario, the bound on each burst."""
        return timing.memory_seconds if self.key == "memory" else timing.seconds


SCENARIOS = (
    Scenario("cold-24mp", "cold 24 MP → 320 px wide", 4,
             ("ours", "baseline", "pillow", "pyvips", "thumbor"), source="24mp", box=(320, None)),
    Scenario("cold-2mp", "cold 2 MP → 512x512", 4,
             ("ours", "baseline", "pillow", "pyvips", "thumbor"), source="2mp", box=(512, 512)),
    Scenario("srcset", f"srcset family: 24 MP → {len(SRCSET)} thumbnails per source "
             f"({', '.join(str(w) for w in SRCSET_WIDTHS)} px × JPEG, WebP)", 4,
             ("ours", "baseline", "pillow"), source="24mp", box=(SRCSET_WIDTHS[0], None), sends="srcset"),
    Scenario("hit", "cache hit, one 320 px thumbnail", 32,
             ("ours", "baseline", "thumbor", "nginx", "starlette", "asgi")),
    Scenario("revalidation", "If-None-Match → 304", 32, ("ours", "baseline", "nginx", "starlette", "asgi")),
    Scenario("original", "original, 2 MB JPEG", 32, ("ours", "baseline", "nginx", "starlette", "asgi")),
    Scenario("shared-renders", f"renders per thumbnail: {BURST_REQUESTS} requests at once "
             f"for {BURST_DISTINCT} 2 MP → 512x512", BURST_REQUESTS, ("ours",),
             source="2mp", box=(512, 512), count="burst", setups=(
                 Setup("none", "2 workers, cache.shared none (before)", "none", workers=2),
                 Setup("disk", "2 workers, disk tier", "disk", workers=2),
                 Setup("redis", "2 nodes × 1 worker, one Redis", "redis", workers=1, nodes=2),
             )),
    Scenario("shared-hit-disk", "shared-tier hit (disk), memory tier off", 32, ("ours",),
             sends="hit", shared="disk", memory_bytes=MEMORY_OFF_BYTES),
    Scenario("shared-hit-redis", "shared-tier hit (Redis), memory tier off", 32, ("ours",),
             sends="hit", shared="redis", memory_bytes=MEMORY_OFF_BYTES),
    Scenario("restart", f"restart: {RESTART_THUMBNAILS} thumbnails served, server restarted, "
             "asked for again", RESTART_THUMBNAILS, ("ours",),
             source="2mp", box=(512, 512), count="restart", setups=(
                 Setup("disk", "disk tier, same folder", "disk"),
                 Setup("redis", "Redis, same redis-server", "redis"),
             )),
    Scenario("memory", "memory: cold 24 MP → 320 px, conc 8", 8,
             ("ours",), source="24mp", box=(320, None), memory_bytes=MEMORY_CACHE_BYTES),
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
