"""A run follows the idle cores between steps (nasflow.runs.threads.ThreadGovernor): fewer
threads when other work arrives, more when it leaves, with hysteresis, said once per change,
and nothing when the user chose the count. /proc/stat samples, the clock and the process's CPU
time are injected: no timing."""
from __future__ import annotations

import pytest
import torch

from nasflow.runs import threads

HZ = 100  # jiffies per second in the samples below


class Machine:
    """Two cores; each advance(seconds, busy0, busy1) adds a /proc/stat sample in which core i
    was busy `busy_i` of the time, and this process used `own` cores over the same time."""

    def __init__(self) -> None:
        self.now, self.cpu = 0.0, 0.0
        self.jiffies = {0: (0, 0), 1: (0, 0)}
        self.reads = 0
        self.set_to: list[int] = []
        self.said: list[str] = []

    def read(self) -> threads.CpuTimes:
        self.reads += 1
        return dict(self.jiffies)

    def advance(self, seconds: float, busy: tuple[float, float], own: float) -> None:
        self.now += seconds
        self.cpu += own * seconds
        total = round(seconds * HZ)
        self.jiffies = {i: (b + round(busy[i] * total), t + total) for i, (b, t) in self.jiffies.items()}

    def governor(self, start: int = 2, **options) -> threads.ThreadGovernor:
        options = {"set_threads": self.set_to.append, **options}
        return threads.ThreadGovernor(2, start, read=self.read, clock=lambda: self.now,
                                      cpu_time=lambda: self.cpu, say=self.said.append, **options)


def test_other_work_arriving_lowers_the_count_and_leaving_raises_it_said_once_each() -> None:
    m = Machine()
    g = m.governor(every=5.0)
    m.advance(5, (1.0, 1.0), own=2.0)  # our two threads alone
    assert g.check() is None and g.others == pytest.approx(0.0)
    m.advance(5, (1.0, 1.0), own=1.3)  # another job took 0.7 of a core from our two threads
    assert g.check() == 1 and m.set_to == [1]
    assert m.said == ["threads: 2 -> 1 (0.7 of 2 cores busy with other work; set OMP_NUM_THREADS to choose)"]
    m.advance(5, (1.0, 1.0), own=1.0)  # it goes on: one core each, nothing to say
    assert g.check() is None and g.others == pytest.approx(1.0) and len(m.said) == 1
    m.advance(5, (1.0, 0.0), own=1.0)  # it ended: the other core is idle
    assert g.check() == 2 and m.set_to == [1, 2] and m.said[-1].startswith("threads: 1 -> 2 (0.0 of 2")


def test_a_load_near_the_rounding_point_does_not_flip_the_count() -> None:
    m = Machine()
    g = m.governor(start=1, every=5.0, margin=0.25)
    m.advance(5, (1.0, 0.4), own=1.0)  # 0.4 of a core busy: would round to 2 idle, within the margin
    assert g.check() is None and g.threads == 1
    m.advance(5, (1.0, 0.2), own=1.0)  # 0.2: clearly free
    assert g.check() == 2
    m.advance(5, (0.9, 0.9), own=1.4)  # 0.4 busy beside our two threads: stays at 2
    assert g.check() is None and g.threads == 2 and m.set_to == [2]


def test_between_samples_a_check_reads_nothing() -> None:
    m = Machine()
    g = m.governor(every=5.0)
    reads = m.reads
    m.advance(4.9, (1.0, 1.0), own=0.0)
    assert g.check() is None and m.reads == reads and m.set_to == []


def test_this_process_own_threads_are_not_other_work() -> None:
    m = Machine()
    g = m.governor(every=1.0)
    m.advance(10, (1.0, 0.95), own=1.95)
    assert g.check() is None and g.others == pytest.approx(0.0, abs=0.01) and g.threads == 2


@pytest.fixture
def two_cores(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    for name in threads.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    yield
    torch.set_num_threads(before)


def test_recheck_follows_the_installed_governor_only_during_the_run(two_cores, monkeypatch) -> None:
    m = Machine()
    monkeypatch.setattr(threads, "_cpu_times", m.read)
    torch.set_num_threads(2)  # torch's default on 2 cores: automatic
    said: list[str] = []
    with threads.adaptive_threads(said.append, every=5.0, clock=lambda: m.now, cpu_time=lambda: m.cpu) as chosen:
        assert chosen is None and torch.get_num_threads() == 2
        m.advance(5, (1.0, 1.0), own=1.0)
        threads.recheck()
        assert torch.get_num_threads() == 1 and len(said) == 1
    assert torch.get_num_threads() == 2  # torch's default again
    m.advance(5, (1.0, 1.0), own=0.0)
    threads.recheck()  # no governor: nothing
    assert torch.get_num_threads() == 2 and len(said) == 1


@pytest.mark.parametrize("chose", ["env", "torch", "one core"])
def test_off_when_the_user_chose_or_there_is_nothing_to_choose(two_cores, monkeypatch, chose) -> None:
    if chose == "env":
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
    elif chose == "torch":
        torch.set_num_threads(1)  # not the default for 2 cores
    else:
        monkeypatch.setattr(threads, "available_cores", lambda: 1)
        torch.set_num_threads(1)
    before = torch.get_num_threads()
    with threads.adaptive_threads(lambda line: None):
        assert threads._governor is None
        threads.recheck()
    assert torch.get_num_threads() == before


def test_a_search_rechecks_between_its_steps_and_takes_the_new_count(tmp_path, monkeypatch) -> None:
    """The step loop (RunLoop.run) asks the installed governor after every step; a count it
    sets mid-run is the one the next steps use."""
    from synthetic import PlantedTask, fast_config, planted_space

    from nasflow.search.loop import run_search

    before = torch.get_num_threads()
    m = Machine()
    g = m.governor(start=2, every=0.0, set_threads=torch.set_num_threads)
    seen: list[int] = []
    check = g.check

    def step_point() -> int | None:
        seen.append(torch.get_num_threads())
        if len(seen) == 2:  # another job arrives during the second step
            m.advance(1, (1.0, 1.0), own=1.0)
        else:
            m.advance(1, (1.0, 1.0), own=2.0 if g.threads == 2 else 1.0)
        return check()

    monkeypatch.setattr(g, "check", step_point)
    monkeypatch.setattr(threads, "_governor", g)
    torch.set_num_threads(2)
    try:
        assert run_search(fast_config(steps=4, warmup=1), tmp_path / "s", space=planted_space(),
                          task=PlantedTask()).finished
    finally:
        torch.set_num_threads(before)
    assert seen == [2, 2, 1, 1] and len(m.said) == 1
