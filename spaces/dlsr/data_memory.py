"""Anonymous memory of a process and its descendants: the measure the decoded-image store is
judged by (a training process's own memory must not grow with the data set).

Pss_Anon (from /proc/PID/smaps_rollup) counts a process's anonymous pages (heap, decoded
arrays, tensors), each page shared by k processes as 1/k, so summing it over a process and
its forked DataLoader workers counts shared copy-on-write pages once. Pages of memory-mapped
files (the store, the page cache) are not anonymous and are not counted. Linux only.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["descendants", "pss_anon", "tree_pss_anon"]

_PROC = Path("/proc")


def pss_anon(pid: int) -> int:
    """Pss_Anon of one process in bytes (0 if it has exited)."""
    try:
        text = (_PROC / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for line in text.splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/smaps_rollup has no Pss_Anon line (Linux 5.7 or later has it)")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in (_PROC / str(pid) / "task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass  # exited meanwhile
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...), from
    /proc/PID/task/TID/children."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def tree_pss_anon(pid: int | None = None) -> int:
    """Pss_Anon summed over ``pid`` (default: this process) and its descendants, in bytes."""
    root = os.getpid() if pid is None else pid
    return sum(pss_anon(p) for p in [root, *descendants(root)])
