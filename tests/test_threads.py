"""A CPU run takes as many threads as there are idle cores unless the user chose a count."""
from __future__ import annotations

import pytest
import torch

from nasflow.runs import threads


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine whose load average the test sets; torch's count restored after."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    for name in threads.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)

    def load(value: float) -> None:
        monkeypatch.setattr(threads.os, "getloadavg", lambda: (value, value, value))

    yield load
    torch.set_num_threads(before)


def test_a_busy_core_is_left_to_the_other_work(machine):
    torch.set_num_threads(2)  # torch's default on 2 cores
    machine(1.2)
    assert threads.choose_threads() == (1, "1 of 2 cores busy with other work (load average); "
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
