"""How many CPU threads a run's math uses when the user has not said.

PyTorch's intra-op threads meet at a barrier after every parallel region (each conv, each
matrix product). When another process holds one of the cores, the thread on it is
descheduled and every region waits for it: on a 2-core machine shared with other jobs, two
threads ran the DLSR search ~10x slower than one (spaces/dlsr/presets.py). So a CPU run
takes as many threads as there are idle cores (the cores this process may use minus the
1-minute load average, rounded, at least 1). It leaves the count alone when the user chose
it: OMP_NUM_THREADS or MKL_NUM_THREADS set, or torch.set_num_threads called (the count then
differs from torch's default, one thread per available core).
"""
from __future__ import annotations

import os

import torch

USER_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def idle_cores(cores: int) -> int:
    """Cores not busy with other work, by the 1-minute load average (all of them where the
    platform has none)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, round(cores - load)))


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
    return threads, (f"{cores - threads} of {cores} cores busy with other work (load average); "
                     "set OMP_NUM_THREADS to choose")
