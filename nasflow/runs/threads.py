"""How many CPU threads a run's math uses when the user has not said.

PyTorch's intra-op threads meet at a barrier after every parallel region (each conv, each
matrix product). When another process holds one of the cores, the thread on it is
descheduled and every region waits for it: on a 2-core machine shared with other jobs, two
threads ran the DLSR search ~10x slower than one (spaces/dlsr/presets.py). So a CPU run
takes as many threads as there are idle cores: the cores this process may use minus those
busy right now (their busy share over a quarter of a second, from /proc/stat; at least 1).
Not the load average: it trails the last minute, so a run started right after an install or
a test run would give up a core that is free by then. It leaves the count alone when the user chose
it: OMP_NUM_THREADS or MKL_NUM_THREADS set, or torch.set_num_threads called (the count then
differs from torch's default, one thread per available core).
"""
from __future__ import annotations

import os
import time

import torch

USER_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_times() -> dict[int, tuple[int, int]]:
    """{cpu: (busy, total) jiffies} from /proc/stat's per-cpu lines."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], sum(v))
    return out


def busy_cores(window: float = 0.25) -> float:
    """How many of this process's cores other work keeps busy now (this process sleeps while
    it looks). Falls back to the 1-minute load average where /proc/stat is missing."""
    try:
        mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        before = _cpu_times()
        time.sleep(window)
        after = _cpu_times()
    except OSError:
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
    busy = 0.0
    for cpu, (b1, t1) in after.items():
        if (mine is None or cpu in mine) and cpu in before and t1 > before[cpu][1]:
            busy += (b1 - before[cpu][0]) / (t1 - before[cpu][1])
    return busy


def idle_cores(cores: int) -> int:
    """Cores not busy with other work right now (at least 1)."""
    return max(1, min(cores, round(cores - busy_cores())))


def choose_threads() -> tuple[int, str] | None:
    """Set torch's thread count to the idle cores; (count, why) when it changed it, None when
    the user's choice (or the count already equal) stands."""
    if any(os.environ.get(name) for name in USER_SETTINGS):
        return None
    cores = available_cores()
    current = torch.get_num_threads()
    if current != cores:  # set by torch.set_num_threads (or a default we do not second-guess)
        return None
    threads = idle_cores(cores)
    if threads == current:
        return None
    torch.set_num_threads(threads)
    return threads, (f"{cores - threads} of {cores} cores busy with other work; "
                     "set OMP_NUM_THREADS to choose")
