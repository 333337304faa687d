"""The task contract's declarations: metric directions pick the best model (never a name),
defaults of the hooks, and one clear error for a factory that is not a Task."""
from __future__ import annotations

import pytest
import torch
from synthetic import planted_space

from nasflow.errors import NasflowError
from nasflow.spaces.dlsr.task import SRTask
from nasflow.tasks.contract import TASKS, Metric, Task, default_cost_size, make_task, register_task


class _Scored(Task):
    name = "scored"
    metrics = (Metric("loss", higher_is_better=True), Metric("acc", higher_is_better=True))
    best_metric = "acc"


def test_the_declared_direction_decides_not_the_name():
    # "loss" would have been guessed lower-better; the task says higher is better
    assert _Scored.metric("loss").better(2.0, 1.0) and not Metric("err", False).better(2.0, 1.0)
    assert _Scored.best().name == "acc" and _Scored.best("loss").name == "loss"
    assert SRTask.best().name == "psnr" and SRTask.best().higher_is_better


def test_missing_declarations_are_one_clear_error():
    with pytest.raises(NasflowError, match="declares no metrics, so no best model can be picked"):
        Task.best()
    with pytest.raises(NasflowError, match=r"declares no metric 'f1' \(its metrics: loss, acc\)"):
        _Scored.best("f1")


def test_defaults_of_the_hooks():
    task = _Scored()
    assert task.state_dict() == {} and task.model_meta(planted_space()) == {}
    x = Task.sample_input(5, (), torch.Generator().manual_seed(0), batch=2)
    assert x.shape == (2, 5) and Task.dynamic_axes() == ({0: "n"}, {0: "n"})
    assert Task.cost_size == (1, 1) and SRTask.cost_size == (720, 1280)
    assert default_cost_size(planted_space()) == (1, 1)  # a space without a task
    with pytest.raises(NotImplementedError, match="defines no batches"):
        task.batches("train", 4, 0)


def test_a_factory_that_is_not_a_task_is_refused():
    if "not-a-task" not in TASKS:
        register_task("not-a-task")(lambda **_: object())
    with pytest.raises(NasflowError, match="not a subclass of nasflow.tasks.Task"):
        make_task("not-a-task", {}, planted_space())
