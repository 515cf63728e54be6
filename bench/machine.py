"""The machine a run happens on: what it is, and how much of it other work is using.

Figures from a shared machine are only as good as its quiet: :class:`ForeignLoad` measures,
over a block, the CPU time spent by processes that are neither this harness nor anything it
started (servers, wrk, render loops), so a row disturbed by someone's test suite says so.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from memory import process_tree

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")  # the unit of /proc/stat and /proc/PID/stat


def describe_machine() -> dict[str, str]:
    """Date, core count, CPU model, memory and OS of this machine."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores (nproc)": str(os.cpu_count()),
        "CPU": _cpu_model(),
        "memory": f"{_mem_total() / 2**30:.0f} GiB",
        "OS": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
    }


def cpu_busy_share(interval: float = 1.0) -> float:
    """The share (0..1) of all cores' time spent busy during the next ``interval`` seconds."""
    with ForeignLoad() as load:
        time.sleep(interval)
    return load.busy


class ForeignLoad:
    """Inside a ``with`` block, track CPU time; afterwards ``busy`` and ``foreign`` (0..1).

    ``busy`` is the share of all cores' time spent in user or system mode; ``foreign`` the part
    of it not spent by this process and its descendants, live or already reaped, whose CPU
    time is ``own_seconds``.
    """

    def __init__(self) -> None:
        self.busy = 0.0
        self.foreign = 0.0
        self.own_seconds = 0.0

    def __enter__(self) -> ForeignLoad:
        self._start = (_system_ticks(), _own_ticks())
        return self

    def __exit__(self, *exc_info: object) -> None:
        (busy0, total0), own0 = self._start
        (busy1, total1), own1 = _system_ticks(), _own_ticks()
        total = total1 - total0
        self.own_seconds = (own1 - own0) / TICKS_PER_SECOND
        if total > 0:
            self.busy = (busy1 - busy0) / total
            self.foreign = max(0.0, (busy1 - busy0) - (own1 - own0)) / total


def _system_ticks() -> tuple[int, int]:
    """(user + nice + system, all) ticks of every core since boot, from ``/proc/stat``.

    Interrupt time is left out of busy: loopback traffic lands there, whoever caused it.
    """
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    user, nice, system = fields[0], fields[1], fields[2]
    return user + nice + system, sum(fields)


def _own_ticks() -> int:
    """CPU ticks of this process, its live descendants and every descendant already reaped.

    A process's cutime/cstime hold its reaped children's time (theirs included), so summing
    all four fields over the live tree counts every descendant exactly once.
    """
    return sum(_process_ticks(pid) for pid in process_tree(os.getpid()))


def _process_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of ``pid`` (its own and its reaped children's)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # The command name may hold spaces and parentheses: fields resume after the last ')'.
    fields = text.rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
