"""What a task declares without torch: the facts `nasflow cost` needs before any model exists.

A task class (nasflow.tasks.Task) imports torch, so asking it for its `cost_size` costs the
~1.3 s torch import; `validate` and `cost --size` need none. A task may therefore also declare
its facts in a torch-free module, found by the task's name in TASK_FACTS (a module the space
imports may use `register_task_facts`) or in the `nasflow.task_facts` entry-point group
(installed packages: `sr = "nasflow.spaces.dlsr.facts:FACTS"`). The task class keeps the same
values (set its attributes from the facts); nasflow.tasks.contract checks they agree whenever
it loads the class. A task that declares no facts still works: its class is asked (torch).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from nasflow.errors import NasflowError
from nasflow.registry import Registry
from nasflow.space.schema import Space

GROUP = "nasflow.task_facts"


@dataclass(frozen=True)
class TaskFacts:
    """cost_size: the output (h, w) Multi-Adds are quoted at (the task class's `cost_size`)."""

    cost_size: tuple[int, int] = (1, 1)


TASK_FACTS: Registry[TaskFacts] = Registry("task facts")
# `FACTS = register_task_facts("name")(TaskFacts(...))` in a module the space imports.
register_task_facts: Callable[[str], Callable[[TaskFacts], TaskFacts]] = TASK_FACTS.decorator()


def task_facts(name: str) -> TaskFacts | None:
    """The facts task `name` declares (registry, then entry point), None when it declares none."""
    if name in TASK_FACTS:
        return TASK_FACTS.get(name)
    for ep in entry_points(group=GROUP, name=name):
        facts = ep.load()
        if not isinstance(facts, TaskFacts):
            raise NasflowError(f"entry point '{name}' of {GROUP} ({ep.value}) is {facts!r}, not a "
                               "nasflow.space.task_facts.TaskFacts; see docs/writing-a-task.md")
        return facts
    return None


def declared_cost_size(space: Space, task: str | None = None) -> tuple[int, int] | None:
    """The cost size of task `task` (else the space's) read without torch: (1, 1) for a space
    without a task, None when the task declares no facts (ask its class then)."""
    name = task or space.task
    if not name:
        return (1, 1)
    facts = task_facts(name)
    return facts.cost_size if facts is not None else None
