"""The report of a run: measurements, the targets they meet or miss, Markdown and JSON.

Everything here is pure formatting over :class:`Measurement` rows, apart from :func:`write`.
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


@dataclass(frozen=True)
class Memory:
    """The memory scenario's figures for our server (bytes)."""

    process_rss: int
    cache_bytes: int
    cache_max_bytes: int
    allowance: int

    @property
    def limit(self) -> int:
        return self.cache_max_bytes + self.allowance


@dataclass(frozen=True)
class Goal:
    """A target of the issue: ``value`` must reach ``threshold`` (or stay under it when
    ``at_most``); ``None`` when a subject it needs was not measured."""

    text: str
    value: float | None
    threshold: float
    detail: str = ""
    unit: str = "×"
    at_most: bool = False

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.threshold if self.at_most else self.value >= self.threshold

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: "n/a"}[self.met]

    @property
    def shown(self) -> str:
        if self.value is None:
            return "–"
        return f"{self.value:.2f}×" if self.unit == "×" else f"{self.value:,.0f} {self.unit}"


# (scenario, subject) of ours divided by (scenario, subject) of the reference must reach
# the threshold.
RATIO_GOALS = (
    ("cold 24 MP ≥ 0.9× Pillow alone (all cores)", ("cold-24mp", "ours"), ("cold-24mp", "pillow"), 0.9),
    ("cold 24 MP ≥ 1.0× thumbor", ("cold-24mp", "ours"), ("cold-24mp", "thumbor"), 1.0),
    ("cold 2 MP ≥ 1.5× thumbor", ("cold-2mp", "ours"), ("cold-2mp", "thumbor"), 1.5),
    ("cold 2 MP ≥ 1.0× pyvips", ("cold-2mp", "ours"), ("cold-2mp", "pyvips"), 1.0),
    ("hit ≥ 0.4× nginx (same bytes)", ("hit", "ours"), ("hit", "nginx"), 0.4),
    ("revalidation ≥ 1.0× hit", ("revalidation", "ours"), ("hit", "ours"), 1.0),
    ("original ≥ 0.5× nginx", ("original", "ours"), ("original", "nginx"), 0.5),
    # With --baseline: this checkout against the other, same run (a change must not cost > 5%).
    ("hit ≥ 0.95× baseline", ("hit", "ours"), ("hit", "baseline"), 0.95),
    ("revalidation ≥ 0.95× baseline", ("revalidation", "ours"), ("revalidation", "baseline"), 0.95),
    ("original ≥ 0.95× baseline", ("original", "ours"), ("original", "baseline"), 0.95),
    ("cold 2 MP ≥ 0.95× baseline", ("cold-2mp", "ours"), ("cold-2mp", "baseline"), 0.95),
)


def evaluate(rows: list[Measurement], memory: Memory | None) -> list[Goal]:
    """Every target of the issue, from one run's rows."""
    rates = {(row.scenario, row.subject): row for row in rows}
    goals = [_ratio_goal(text, rates.get(ours), rates.get(ref), threshold)
             for text, ours, ref, threshold in RATIO_GOALS]
    goals.append(_memory_goal(memory))
    return goals


def _ratio_goal(text: str, ours: Measurement | None, ref: Measurement | None, threshold: float) -> Goal:
    if ours is None or ref is None or not ref.rate:
        return Goal(text, None, threshold, "not measured")
    detail = f"{ours.rate:,.0f} / {ref.rate:,.0f} req/s"
    if ours.failed or ref.failed:
        detail += " (runs with failed requests)"
    if max(ours.foreign_cpu, ref.foreign_cpu) > FOREIGN_CPU_NOTE:
        detail += " (disturbed by other processes: rerun)"
    return Goal(text, ours.rate / ref.rate, threshold, detail)


def _memory_goal(memory: Memory | None) -> Goal:
    text = "peak RSS per worker ≤ cache.max_bytes + 150 MB"
    if memory is None:
        return Goal(text, None, 0, "not measured", unit="MB", at_most=True)
    detail = (f"limit {memory.limit / MB:,.0f} MB; peak RSS − cache bytes = "
              f"{(memory.process_rss - memory.cache_bytes) / MB:,.0f} MB "
              f"({memory.cache_bytes / MB:.1f} MB cached of max_bytes {memory.cache_max_bytes / MB:.1f} MB)")
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

    @property
    def goals(self) -> list[Goal]:
        return evaluate(self.rows, self.memory)

    def markdown(self) -> str:
        parts = [
            "# Benchmark results\n",
            _bullets(self.machine | self.settings),
            "## Measurements\n",
            _table(self.rows, self.titles),
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
        "| scenario | subject | conc | req/s | p50 ms | p99 ms | peak RSS MB | notes |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {titles.get(row.scenario, row.scenario)} | {row.label} | {row.concurrency} "
            f"| {row.rate:,.1f} | {row.p50_ms:.2f} | {row.p99_ms:.2f} "
            f"| {row.peak_rss / MB:.0f} | {'; '.join(_row_notes(row))} |"
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
