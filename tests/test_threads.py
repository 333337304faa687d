"""A CPU run takes as many threads as there are idle cores unless the user chose a count."""
from __future__ import annotations

import pytest
import torch

from nasflow.runs import threads


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine whose busy cores the test sets; torch's count restored after."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    for name in threads.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)

    def load(value: float) -> None:
        monkeypatch.setattr(threads, "busy_cores", lambda: value)

    yield load
    torch.set_num_threads(before)


def test_a_busy_core_is_left_to_the_other_work(machine):
    torch.set_num_threads(2)  # torch's default on 2 cores
    machine(1.2)
    assert threads.choose_threads() == (1, "1 of 2 cores busy with other work; "
                                           "set OMP_NUM_THREADS to choose")
    assert torch.get_num_threads() == 1


def test_an_idle_machine_keeps_every_core(machine):
    torch.set_num_threads(2)
    machine(0.3)
    assert threads.choose_threads() is None and torch.get_num_threads() == 2


def test_the_users_choice_stands(machine, monkeypatch):
    machine(1.9)
    torch.set_num_threads(1)  # torch.set_num_threads called: not the default for 2 cores
    assert threads.choose_threads() is None and torch.get_num_threads() == 1
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose_threads() is None and torch.get_num_threads() == 2


def test_busy_cores_reads_the_cpus_now(monkeypatch):
    """Two samples of /proc/stat: a core busy for the whole window counts 1, an idle one 0."""
    samples = iter([{0: (100, 1000), 1: (50, 1000)}, {0: (125, 1025), 1: (50, 1025)}])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.busy_cores() == pytest.approx(1.0)


def test_busy_cores_on_this_machine_is_a_share_of_its_cores():
    assert 0.0 <= threads.busy_cores(0.05) <= threads.available_cores() + 1e-9
