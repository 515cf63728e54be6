"""Peak resident memory of a process tree, read from ``/proc`` while a scenario runs.

Two figures are kept: the peak of the tree's summed ``VmRSS`` (sampled, so a spike shorter
than the interval can be missed) and the largest single-process ``VmHWM`` (the kernel's own
high-water mark, exact). With one server process the second is the better of the two.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class RssPeak:
    """Peaks in bytes: ``tree`` of summed RSS over all processes, ``process`` of any one."""

    tree: int
    process: int


class RssSampler:
    """Samples the tree rooted at ``pid`` every ``interval`` seconds inside a ``with`` block."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._tree_peak = 0
        self._hwm: dict[int, int] = {}

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak(self) -> RssPeak:
        return RssPeak(tree=self._tree_peak, process=max(self._hwm.values(), default=0))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        total = 0
        for pid in process_tree(self._pid):
            status = read_status(pid)
            total += status.get("VmRSS", 0)
            self._hwm[pid] = max(self._hwm.get(pid, 0), status.get("VmHWM", 0))
        self._tree_peak = max(self._tree_peak, total)


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (empty if ``root`` is gone)."""
    if not Path(f"/proc/{root}").exists():
        return []
    found, frontier = [root], [root]
    while frontier:
        children = _children(frontier.pop())
        found.extend(children)
        frontier.extend(children)
    return found


def cpu_seconds(root: int) -> float:
    """CPU time (user + system, with reaped children's) used so far by ``root``'s live tree.

    On a shared machine this moves far less with other load than a rate does: the work per
    request, not how much of the CPU the subject got.
    """
    ticks = 0
    for pid in process_tree(root):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def read_status(pid: int) -> dict[str, int]:
    """The ``kB`` fields of ``/proc/PID/status`` in bytes; empty if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[key] = int(parts[0]) * 1024
    return fields


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return children
    for task in tasks:
        try:
            children.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return children
