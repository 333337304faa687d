"""How many CPU threads a run's math uses when the user has not said, at start and as it runs.

PyTorch's intra-op threads meet at a barrier after every parallel region (each conv, each
matrix product). When another process holds one of the cores, the thread on it is
descheduled and every region waits for it: on a 2-core machine shared with other jobs, two
threads ran the DLSR search ~10x slower than one (spaces/dlsr/presets.py). So a CPU run
takes as many threads as there are idle cores: the cores this process may use minus those
busy right now (their busy share over a quarter of a second, from /proc/stat; at least 1).
Not the load average: it trails the last minute, so a run started right after an install or
a test run would give up a core that is free by then.

One look at start-up is not enough: work that arrives a minute later finds the run on two
threads (5x slower seen). So the CLI installs a ThreadGovernor for the run (adaptive_threads),
and the step loop calls recheck() between steps: at most every `every` seconds it reads
/proc/stat again, subtracts this process's own CPU time over the same interval (its threads
keep cores busy too), and follows the idle cores with hysteresis: fewer threads as soon as
the other work would round the idle cores below the count (the start-up rule), more only once
the other work is clearly gone (under `margin` of a core above the count's rounding point).
Each change is said once. DataLoader worker processes count as other work: they
compete for the same cores. Changing the count between steps changes a run's floats exactly as
starting it with that count would (sums split differently), nothing else.

It leaves the count alone when the user chose it: OMP_NUM_THREADS or MKL_NUM_THREADS set, or
torch.set_num_threads called (the count then differs from torch's default, one thread per
available core); and on one core, where there is nothing to choose.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

USER_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
CpuTimes = dict[int, tuple[int, int]]  # {cpu: (busy, total) jiffies}


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_times() -> CpuTimes:
    """{cpu: (busy, total) jiffies} from /proc/stat's per-cpu lines."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], sum(v))
    return out


def _my_cpus() -> set[int] | None:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def busy_between(before: CpuTimes, after: CpuTimes, mine: set[int] | None) -> float:
    """How many of the cores in `mine` (None: all) were busy between two samples, in cores."""
    busy = 0.0
    for cpu, (b1, t1) in after.items():
        if (mine is None or cpu in mine) and cpu in before and t1 > before[cpu][1]:
            busy += (b1 - before[cpu][0]) / (t1 - before[cpu][1])
    return busy


def busy_cores(window: float = 0.25) -> float:
    """How many of this process's cores other work keeps busy now (this process sleeps while
    it looks). Falls back to the 1-minute load average where /proc/stat is missing."""
    try:
        mine = _my_cpus()
        before = _cpu_times()
        time.sleep(window)
        after = _cpu_times()
    except OSError:
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
    return busy_between(before, after, mine)


def idle_cores(cores: int) -> int:
    """Cores not busy with other work right now (at least 1)."""
    return max(1, min(cores, round(cores - busy_cores())))


def user_chose() -> bool:
    """The user set the count (an environment variable, or torch.set_num_threads)."""
    return any(os.environ.get(name) for name in USER_SETTINGS) or torch.get_num_threads() != available_cores()


def choose_threads() -> tuple[int, str] | None:
    """Set torch's thread count to the idle cores; (count, why) when it changed it, None when
    the user's choice (or the count already equal) stands."""
    if user_chose():
        return None
    cores = available_cores()
    current = torch.get_num_threads()
    threads = idle_cores(cores)
    if threads == current:
        return None
    torch.set_num_threads(threads)
    return threads, (f"{cores - threads} of {cores} cores busy with other work; "
                     "set OMP_NUM_THREADS to choose")


class ThreadGovernor:
    """Follows the idle cores during a run: check() between steps, cheap unless `every`
    seconds have passed since its last sample. Everything it reads is injected (tests give
    samples, a clock and a CPU clock, never timings)."""

    def __init__(self, cores: int, threads: int, *, every: float = 5.0, margin: float = 0.25,
                 read: Callable[[], CpuTimes] | None = None, clock: Callable[[], float] = time.monotonic,
                 cpu_time: Callable[[], float] = time.process_time,
                 set_threads: Callable[[int], None] = torch.set_num_threads,
                 say: Callable[[str], None] = lambda line: None, mine: set[int] | None = None) -> None:
        self.cores, self.threads, self.every, self.margin = cores, threads, every, margin
        self.read = read or _cpu_times  # None: /proc/stat
        self.clock, self.cpu_time = clock, cpu_time
        self.set_threads, self.say, self.mine = set_threads, say, mine
        self._last = (clock(), cpu_time(), self.read())
        self.others = 0.0  # cores other work kept busy over the last interval

    def target(self, others: float) -> int:
        """The count for `others` busy cores: down at the start-up rule's rounding point, up only
        `margin` of a core past it (hysteresis: a load near the point does not flip it)."""
        idle = self.cores - others
        down = max(1, round(idle))
        if down < self.threads:
            return down
        up = min(self.cores, int(idle + 0.5 - self.margin))
        return max(up, self.threads)

    def check(self) -> int | None:
        """Re-read the cores if `every` seconds have passed; the new count when it changed it."""
        now = self.clock()
        then, cpu_then, before = self._last
        if now - then < self.every:
            return None
        try:
            after = self.read()
        except OSError:  # no /proc/stat any more: keep the count
            return None
        cpu_now = self.cpu_time()
        self._last = (now, cpu_now, after)
        own = (cpu_now - cpu_then) / (now - then)  # this process's threads, in cores
        self.others = max(0.0, busy_between(before, after, self.mine) - own)
        threads = self.target(self.others)
        if threads == self.threads:
            return None
        self.say(f"threads: {self.threads} -> {threads} ({self.others:.1f} of {self.cores} cores busy "
                 "with other work; set OMP_NUM_THREADS to choose)")
        self.threads = threads
        self.set_threads(threads)
        return threads


_governor: ThreadGovernor | None = None


def recheck() -> None:
    """A cheap point of a run (the step loop calls it between steps): let the installed
    governor follow the idle cores; nothing when none is installed."""
    if _governor is not None:
        _governor.check()


@contextmanager
def adaptive_threads(say: Callable[[str], None], **options) -> Iterator[tuple[int, str] | None]:
    """For one CPU run: choose the count now (choose_threads) and, unless the user chose it,
    follow the idle cores between steps (recheck). Yields choose_threads' answer; the count
    is torch's default again afterwards."""
    global _governor
    automatic, cores = not user_chose(), available_cores()
    chosen = choose_threads()
    if not automatic or cores == 1:
        yield chosen
        return
    _governor = ThreadGovernor(cores, torch.get_num_threads(), say=say, mine=_my_cpus(), **options)
    try:
        yield chosen
    finally:
        _governor = None
        torch.set_num_threads(cores)
