"""The task-adapter protocol: what the engine needs from a problem, and nothing else.

The engine knows graphs, ops, costs and search loops; a task knows its data and loss. A
space names its task (`task: sr`); tasks are found in the TASKS registry, in the
`nasflow.tasks` entry-point group (so other packages can add theirs), or as "module:attr".

A task factory (usually the task class) is called by `make_task(name, options, space)`:
  - with the user's options (`--task-opt key=value`) as keywords; an unknown option is one
    clear error that lists the accepted ones;
  - with `space_params=` the searched (or trained) space's resolved params, but only if the
    factory has a parameter of that name: a task whose data depend on the model (the SR
    task's scale) reads them there instead of asking the user to repeat them.
A factory may declare `presets`: {preset name: {"search": {...}, "train": {...}}}, named
budgets the commands apply before explicit flags (nasflow.tasks.presets).

Distributed runs: `batches(split, batch_size, seed, *, rank=0, world_size=1)` yields this
rank's share (batch_size / world_size samples) of each global batch, such that the union
over ranks is the single-process batch. Tasks whose `batches` takes no rank / world_size
keep working: the engine then cuts each rank's share from the global batch itself
(nasflow/search.py), which reads every sample on every rank.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Protocol, runtime_checkable

from torch import Tensor, nn

from nasflow.errors import NasflowError
from nasflow._plugins import lookup
from nasflow.registry import Registry
from nasflow.space.schema import Space

Batch = Any  # whatever the task's loaders yield and its loss reads


@runtime_checkable
class Task(Protocol):
    """A problem to search and train on.

    `batches(split, batch_size, seed)` yields batches forever ("train" and "valid" are
    disjoint); it may take keywords `rank` and `world_size` (see the module docstring), and
    its iterator may have state_dict() / load_state_dict() for exact resume.
    `loss(model, batch)` returns the total and its named terms for logging;
    `evaluate(model)` scores a built model on the task's validation / benchmark data.
    """

    name: str

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]: ...

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...


TaskFactory = Callable[..., Task]
TASKS: Registry[TaskFactory] = Registry("task")


def get_task_factory(name: str) -> TaskFactory:
    """A task factory by registered name, `nasflow.tasks` entry point, or 'module:attr'."""
    return lookup(TASKS, "nasflow.tasks", name)


def accepted_options(factory: TaskFactory) -> list[str] | None:
    """The keyword options a factory takes (space_params excluded); None if it takes any."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: cannot tell
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "space_params"]


def takes_space_params(factory: TaskFactory) -> bool:
    try:
        return "space_params" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def make_task(name: str | None, options: Mapping[str, Any], space: Space) -> Task:
    """Build the task `name` (None: the one `space` names) with the user's options, passing
    the space's params as `space_params` to a factory that accepts them."""
    name = name or space.task
    if name is None:
        raise NasflowError(f"space '{space.name}' names no task; add `task: NAME` to it or pass --task NAME")
    factory = get_task_factory(name)
    accepted = accepted_options(factory)
    if accepted is not None:
        for key in options:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise NasflowError(f"task '{name}' does not accept options {dict(options)}: no option "
                                   f"'{key}'; {hint}its options: {', '.join(accepted) or 'none'}")
    kwargs = dict(options)
    if takes_space_params(factory):
        kwargs["space_params"] = dict(space.params)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise NasflowError(f"task '{name}' does not accept options {dict(options)}: {exc}") from None
