"""The report of a run: measurements, the targets they meet or miss, Markdown and JSON.

Everything here is pure formatting over :class:`Measurement` rows (rates) and :class:`Count`
rows (renders counted from our server's log), apart from :func:`write`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MB = 1000 * 1000
# A row during which other processes used more than this share of the CPU is flagged.
FOREIGN_CPU_NOTE = 0.10


@dataclass(frozen=True)
class Measurement:
    """One subject under one scenario. ``concurrency`` is connections, or threads in process.

    ``peak_rss`` is the summed RSS of the subject's process tree, ``process_rss`` the largest
    single process's high-water mark (bytes). ``failed`` counts requests answered >= 400 or
    not at all; ``reused_urls`` cold requests that had to repeat a name; ``foreign_cpu`` the
    share of the machine's CPU that processes outside the run used meanwhile.
    """

    scenario: str
    subject: str
    label: str
    concurrency: int
    rate: float
    p50_ms: float
    p99_ms: float
    peak_rss: int
    process_rss: int
    requests: int
    failed: int = 0
    reused_urls: int = 0
    foreign_cpu: float = 0.0
    notes: tuple[str, ...] = ()
    cpu_ms: float = 0.0  # CPU time of the subject's processes per request (0: not measured)


@dataclass(frozen=True)
class Count:
    """One setup of a render-count scenario: ``renders`` counted in our server's log(s) while it
    answered ``requests`` requests for ``distinct`` thumbnails (for ``restart``: after the
    restart; ``renders_before`` those of the first life). ``failed`` counts answers other than
    200, ``inconsistent`` URLs answered with more than one body or ETag."""

    scenario: str
    setup: str
    label: str
    requests: int
    distinct: int
    renders: int
    seconds: float
    renders_before: int | None = None
    failed: int = 0
    inconsistent: int = 0
    foreign_cpu: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def per_distinct(self) -> float:
        return self.renders / self.distinct if self.distinct else 0.0

    @property
    def sound(self) -> bool:
        """Every request answered 200, with one body and ETag per URL."""
        return not self.failed and not self.inconsistent


@dataclass(frozen=True)
class Memory:
    """The memory scenario's figures for our server (bytes); ``shared`` is its shared tier."""

    process_rss: int
    cache_bytes: int
    cache_max_bytes: int
    allowance: int
    shared: str = ""
    intermediate_bytes: int = 0  # limits.intermediate_bytes: what a render process may keep

    @property
    def limit(self) -> int:
        return self.cache_max_bytes + self.intermediate_bytes + self.allowance


@dataclass(frozen=True)
class Goal:
    """A target of the issue: ``value`` must reach ``threshold`` (or stay under it when
    ``at_most``, or equal it when ``exactly``); ``None`` when a subject it needs was not
    measured. A ``threshold`` of ``None`` is a figure the issue asks to see, with no target
    (verdict ``reported``). A goal whose measurement is not ``sound`` (failed requests,
    differing bodies) is not met whatever its value."""

    text: str
    value: float | None
    threshold: float | None
    detail: str = ""
    unit: str = "×"
    at_most: bool = False
    exactly: bool = False
    sound: bool = True

    @property
    def met(self) -> bool | None:
        if self.value is None or self.threshold is None:
            return None
        if not self.sound:
            return False
        if self.exactly:
            return abs(self.value - self.threshold) < 1e-9
        return self.value <= self.threshold if self.at_most else self.value >= self.threshold

    @property
    def verdict(self) -> str:
        if self.value is not None and self.threshold is None:
            return "reported"
        return {True: "met", False: "NOT met", None: "n/a"}[self.met]

    @property
    def shown(self) -> str:
        if self.value is None:
            return "–"
        if self.unit == "×":
            return f"{self.value:.2f}×"
        if self.unit == "per thumbnail":
            return f"{self.value:.2f}"
        return f"{self.value:,.0f} {self.unit}"


# (scenario, subject) of ours divided by (scenario, subject) of the reference must reach
# the threshold.
RATIO_GOALS = (
    # Issue 14: one decode per source for a srcset, scaled JPEG decoding, the hit at the ceiling.
    ("srcset family ≥ 2.5× Pillow alone (the same 10 thumbnails each made from scratch)",
     ("srcset", "ours"), ("srcset", "pillow"), 2.5),
    ("cold 2 MP ≥ 1.15× Pillow alone (draft)", ("cold-2mp", "ours"), ("cold-2mp", "pillow"), 1.15),
    ("cold 24 MP ≥ 1.0× Pillow alone (all cores)", ("cold-24mp", "ours"), ("cold-24mp", "pillow"), 1.0),
    ("hit ≥ 1.0× the raw ASGI app (same bytes and headers)", ("hit", "ours"), ("hit", "asgi"), 1.0),
    ("original ≥ 0.8× nginx", ("original", "ours"), ("original", "nginx"), 0.8),
    ("srcset family ÷ baseline", ("srcset", "ours"), ("srcset", "baseline"), None),
    ("cold 24 MP ≥ 1.0× thumbor", ("cold-24mp", "ours"), ("cold-24mp", "thumbor"), 1.0),
    ("cold 2 MP ≥ 1.5× thumbor", ("cold-2mp", "ours"), ("cold-2mp", "thumbor"), 1.5),
    ("cold 2 MP ≥ 1.0× pyvips", ("cold-2mp", "ours"), ("cold-2mp", "pyvips"), 1.0),
    ("hit ≥ 0.4× nginx (same bytes)", ("hit", "ours"), ("hit", "nginx"), 0.4),
    ("revalidation ≥ 1.0× hit", ("revalidation", "ours"), ("hit", "ours"), 1.0),
    # With --baseline: this checkout against the other, same run (a change must not cost > 5%).
    ("hit ≥ 0.95× baseline", ("hit", "ours"), ("hit", "baseline"), 0.95),
    ("revalidation ≥ 0.95× baseline", ("revalidation", "ours"), ("revalidation", "baseline"), 0.95),
    ("original ≥ 0.95× baseline", ("original", "ours"), ("original", "baseline"), 0.95),
    ("cold 2 MP ≥ 0.95× baseline", ("cold-2mp", "ours"), ("cold-2mp", "baseline"), 0.95),
    # The shared tier (issue: "a shared-tier hit against a memory hit and against a render"):
    # figures to see, no threshold.
    ("shared-tier hit (disk) ÷ memory hit", ("shared-hit-disk", "ours"), ("hit", "ours"), None),
    ("shared-tier hit (Redis) ÷ memory hit", ("shared-hit-redis", "ours"), ("hit", "ours"), None),
    ("shared-tier hit (disk) ÷ render (cold 2 MP)", ("shared-hit-disk", "ours"), ("cold-2mp", "ours"),
     None),
    ("shared-tier hit (Redis) ÷ render (cold 2 MP)", ("shared-hit-redis", "ours"), ("cold-2mp", "ours"),
     None),
)

# (text, scenario, setup, figure, target): a render count of one setup. ``per_distinct`` is
# renders ÷ distinct thumbnails and must equal the target; ``renders`` must be at most it.
# A target of None: reported, not judged.
COUNT_GOALS = (
    ("renders per distinct thumbnail, 2 workers, cache.shared none (before)",
     "shared-renders", "none", "per_distinct", None),
    ("renders per distinct thumbnail, 2 workers, disk tier = 1.00",
     "shared-renders", "disk", "per_distinct", 1.0),
    ("renders per distinct thumbnail, 2 nodes on one Redis = 1.00",
     "shared-renders", "redis", "per_distinct", 1.0),
    ("after a restart, renders of thumbnails served before (disk) = 0", "restart", "disk", "renders", 0),
    ("after a restart, renders of thumbnails served before (Redis) = 0", "restart", "redis", "renders", 0),
)


def evaluate(rows: list[Measurement], memory: Memory | None, counts: list[Count] = ()) -> list[Goal]:
    """Every target of the issue, from one run's rows."""
    rates = {(row.scenario, row.subject): row for row in rows}
    goals = [_ratio_goal(text, rates.get(ours), rates.get(ref), threshold)
             for text, ours, ref, threshold in RATIO_GOALS]
    found = {(count.scenario, count.setup): count for count in counts}
    goals += [_count_goal(text, found.get((scenario, setup)), figure, target)
              for text, scenario, setup, figure, target in COUNT_GOALS]
    goals += [_cpu_goal(text, rates.get(ours), rates.get(ref)) for text, ours, ref in CPU_GOALS]
    goals.append(_memory_goal(memory))
    return goals


# CPU time per request of a reference ÷ ours: how much less work ours does for the same output,
# a figure other load on the machine hardly moves (rates are what the targets judge).
CPU_GOALS = (
    ("srcset family, CPU per thumbnail: Pillow alone ÷ ours", ("srcset", "pillow"), ("srcset", "ours")),
    ("cold 2 MP, CPU per thumbnail: Pillow alone ÷ ours", ("cold-2mp", "pillow"), ("cold-2mp", "ours")),
    ("cold 24 MP, CPU per thumbnail: Pillow alone ÷ ours", ("cold-24mp", "pillow"), ("cold-24mp", "ours")),
)


def _cpu_goal(text: str, ref: Measurement | None, ours: Measurement | None) -> Goal:
    if ours is None or ref is None or not ours.cpu_ms or not ref.cpu_ms:
        return Goal(text, None, None, "not measured")
    return Goal(text, ref.cpu_ms / ours.cpu_ms, None, f"{ref.cpu_ms:.1f} / {ours.cpu_ms:.1f} CPU ms")


def _count_goal(text: str, count: Count | None, figure: str, target: float | None) -> Goal:
    unit = "per thumbnail" if figure == "per_distinct" else "renders"
    if count is None:
        return Goal(text, None, target, "not measured", unit=unit)
    if figure == "per_distinct":
        value, detail = count.per_distinct, f"{count.renders} renders / {count.distinct} thumbnails " \
                                            f"({count.requests} requests at once)"
    else:
        value = count.renders
        detail = f"{count.renders} renders for {count.distinct} thumbnails served before the restart"
        if count.renders_before is not None:
            detail += f" (first life: {count.renders_before} renders)"
    if count.failed:
        detail += f" (**{count.failed} of {count.requests} requests failed**)"
    if count.inconsistent:
        detail += f" (**{count.inconsistent} URLs answered with differing bytes or ETags**)"
    if count.foreign_cpu > FOREIGN_CPU_NOTE:
        detail += " (disturbed by other processes)"
    return Goal(text, value, target, detail, unit=unit, exactly=figure == "per_distinct",
                at_most=figure == "renders", sound=count.sound)


def _ratio_goal(text: str, ours: Measurement | None, ref: Measurement | None,
                threshold: float | None) -> Goal:
    if ours is None or ref is None or not ref.rate:
        return Goal(text, None, threshold, "not measured")
    detail = f"{ours.rate:,.0f} / {ref.rate:,.0f} req/s"
    if ours.failed or ref.failed:
        detail += " (runs with failed requests)"
    if max(ours.foreign_cpu, ref.foreign_cpu) > FOREIGN_CPU_NOTE:
        detail += " (disturbed by other processes: rerun)"
    return Goal(text, ours.rate / ref.rate, threshold, detail)


def _memory_goal(memory: Memory | None) -> Goal:
    text = "peak RSS per process ≤ cache.max_bytes + limits.intermediate_bytes + 150 MB"
    if memory is None:
        return Goal(text, None, 0, "not measured", unit="MB", at_most=True)
    shared = f"cache.shared {memory.shared}; " if memory.shared else ""
    detail = (f"{shared}limit {memory.limit / MB:,.0f} MB; peak RSS − cache bytes = "
              f"{(memory.process_rss - memory.cache_bytes) / MB:,.0f} MB "
              f"({memory.cache_bytes / MB:.1f} MB cached of max_bytes {memory.cache_max_bytes / MB:.1f} MB; "
              f"intermediates on, {memory.intermediate_bytes / MB:.0f} MB per render process)")
    return Goal(text, memory.process_rss / MB, memory.limit / MB, detail, unit="MB", at_most=True)


@dataclass
class Report:
    """A run's rows, goals and context, rendered as Markdown or JSON."""

    machine: dict[str, str]
    settings: dict[str, str]
    versions: dict[str, str]
    titles: dict[str, str]
    rows: list[Measurement] = field(default_factory=list)
    memory: Memory | None = None
    skips: list[str] = field(default_factory=list)
    counts: list[Count] = field(default_factory=list)

    @property
    def goals(self) -> list[Goal]:
        return evaluate(self.rows, self.memory, self.counts)

    def markdown(self) -> str:
        parts = [
            "# Benchmark results\n",
            _bullets(self.machine | self.settings),
            "## Measurements\n",
            _table(self.rows, self.titles),
        ]
        if self.counts:
            parts += ["## Render counts\n", _count_table(self.counts, self.titles)]
        parts += [
            "## Targets\n",
            _goal_table(self.goals),
        ]
        if self.skips:
            parts += ["## Skipped\n", "".join(f"- {line}\n" for line in self.skips)]
        parts += ["## Versions\n", _bullets(self.versions)]
        return "\n".join(parts)

    def to_json(self) -> dict:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "versions": self.versions,
            "rows": [asdict(row) for row in self.rows],
            "counts": [asdict(count) | {"per_distinct": count.per_distinct} for count in self.counts],
            "memory": asdict(self.memory) if self.memory else None,
            "goals": [asdict(goal) | {"met": goal.met} for goal in self.goals],
            "skips": self.skips,
        }


def write(report: Report, directory: Path, stem: str) -> list[Path]:
    """Write ``stem.md`` and ``stem.json`` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    markdown, data = directory / f"{stem}.md", directory / f"{stem}.json"
    markdown.write_text(report.markdown())
    data.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    return [markdown, data]


def _bullets(pairs: dict[str, str]) -> str:
    return "".join(f"- {key}: {value}\n" for key, value in pairs.items())


def _table(rows: list[Measurement], titles: dict[str, str]) -> str:
    lines = [
        "| scenario | subject | conc | req/s | p50 ms | p99 ms | CPU ms/req | peak RSS MB | notes |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {titles.get(row.scenario, row.scenario)} | {row.label} | {row.concurrency} "
            f"| {row.rate:,.1f} | {row.p50_ms:.2f} | {row.p99_ms:.2f} "
            f"| {row.cpu_ms:.1f} | {row.peak_rss / MB:.0f} | {'; '.join(_row_notes(row))} |"
        )
    return "\n".join(lines) + "\n"


def _count_table(counts: list[Count], titles: dict[str, str]) -> str:
    lines = [
        "| scenario | setup | requests | distinct | renders | renders/distinct | s | notes |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for count in counts:
        notes = list(count.notes)
        if count.failed:
            notes.insert(0, f"**{count.failed} of {count.requests} requests failed**")
        if count.inconsistent:
            notes.insert(0, f"**{count.inconsistent} URLs answered with differing bytes or ETags**")
        if count.foreign_cpu > FOREIGN_CPU_NOTE:
            notes.append(f"other processes used {count.foreign_cpu:.0%} of the CPU meanwhile")
        lines.append(
            f"| {titles.get(count.scenario, count.scenario)} | {count.label} | {count.requests} "
            f"| {count.distinct} | {count.renders} | {count.per_distinct:.2f} | {count.seconds:.2f} "
            f"| {'; '.join(notes)} |"
        )
    return "\n".join(lines) + "\n"


def _row_notes(row: Measurement) -> list[str]:
    notes = list(row.notes)
    if row.failed:
        notes.insert(0, f"**{row.failed} of {row.requests} requests failed**")
    if row.reused_urls:
        notes.append(f"{row.reused_urls} requests reused a name (corpus too small)")
    if row.foreign_cpu > FOREIGN_CPU_NOTE:
        notes.append(f"other processes used {row.foreign_cpu:.0%} of the CPU meanwhile")
    return notes


def _goal_table(goals: list[Goal]) -> str:
    lines = ["| target | value | verdict | detail |", "|---|--:|---|---|"]
    for goal in goals:
        lines.append(f"| {goal.text} | {goal.shown} | {goal.verdict} | {goal.detail} |")
    return "\n".join(lines) + "\n"
