"""The task-adapter protocol: what the engine needs from a problem, and nothing else.

The engine knows graphs, ops, costs and search loops; a task knows its data and loss. A
space names its task (`task: sr`); tasks are found in the TASKS registry, in the
`nasflow.tasks` entry-point group (so other packages can add theirs), or as "module:attr".
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol, runtime_checkable

from torch import Tensor, nn

from .errors import NasflowError
from .registry import Registry

Batch = Any  # whatever the task's loaders yield and its loss reads


@runtime_checkable
class Task(Protocol):
    """A problem to search and train on.

    `batches(split, batch_size, seed)` yields batches forever ("train" and "valid" are
    disjoint); `loss(model, batch)` returns the total and its named terms for logging;
    `evaluate(model)` scores a built model on the task's validation / benchmark data.
    """

    name: str

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]: ...

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...


TaskFactory = Callable[..., Task]
TASKS: Registry[TaskFactory] = Registry("task")


def get_task_factory(name: str) -> TaskFactory:
    """A task factory by registered name, entry point, or 'module:attr'."""
    if name in TASKS:
        return TASKS.get(name)
    for ep in entry_points(group="nasflow.tasks"):
        if ep.name == name:
            return ep.load()
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise NasflowError(f"cannot load task '{name}': {exc}") from None
    raise NasflowError(TASKS.unknown_message(name) + "; or name one as 'module:attr'")
