"""Score a model directory with its own task: what `nasflow eval MODEL` runs.

    result = evaluate_model("runs/a-x2/model", eval_options={"bench": ["Set14"]})
    result.evaluation.metrics      # {"psnr": ..., "ssim": ...} for an SR model

The task is the one the model's meta.json records (else its architecture's `task:`), built
with the options it was trained with (updated by `task_options`); its `benchmark` hook does
the scoring, with a fast Predictor it may use. Costs are counted at the task's cost size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from nasflow.deploy.predictor import Predictor, default_backend
from nasflow.errors import NasflowError
from nasflow.runs.modeldir import load_model, read_meta
from nasflow.space.load import ARCH_FILE
from nasflow.space.cost import graph_cost, input_size_for_output
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space
from nasflow.tasks.contract import Evaluation, Task, checked_evaluation, make_task, task_class_for


@dataclass
class ModelEvaluation:
    model_dir: Path
    space: Space = field(repr=False)
    meta: dict[str, Any]
    task: Task = field(repr=False)
    evaluation: Evaluation
    backend: str
    dtype: str
    params: int
    madds: int
    cost_output_size: tuple[int, int]  # (h, w) the Multi-Adds are counted for
    cost_input_size: tuple[int, int]  # (h, w) of the input that gives that output

    def to_json(self) -> dict[str, Any]:
        h, w = self.cost_output_size
        return {"model": str(self.model_dir), "arch": self.space.name, "task": type(self.task).name,
                "paper_model": self.meta.get("paper_model"), "backend": self.backend, "dtype": self.dtype,
                "params": self.params, "madds": self.madds, "madds_output_size": [w, h],
                "madds_input_size": list(reversed(self.cost_input_size)),
                "metrics": self.evaluation.metrics, **self.evaluation.details}


def model_task(space: Space, meta: Mapping[str, Any], task_options: Mapping[str, Any] | None = None) -> Task:
    """The task a model directory was made for, with the options it was trained with."""
    name = meta.get("task") or space.task
    if not name:
        raise NasflowError(f"model '{space.name}' names no task (neither its meta.json nor its arch.yaml "
                           "has `task`): add `task: NAME` to its arch.yaml")
    options = {**(meta.get("task_options") or {}), **(task_options or {})}
    return make_task(name, options, space)


def model_task_class(model_dir: str | Path) -> type[Task]:
    """The class of the task a model directory names (meta.json, else arch.yaml), without
    loading its weights; the base Task when it names none."""
    path = Path(model_dir) / ARCH_FILE
    space = Space.from_yaml(path) if path.is_file() else None
    return task_class_for(space, read_meta(model_dir).get("task") if Path(model_dir).is_dir() else None)


def evaluate_model(model_dir: str | Path, *, device: str | None = None, backend: str | None = None,
                   dtype: str = "fp32", task_options: Mapping[str, Any] | None = None,
                   eval_options: Mapping[str, Any] | None = None) -> ModelEvaluation:
    """Load the model, build its task, and run the task's benchmark on it."""
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, space, meta = load_model(model_dir, map_location=dev)
    task = model_task(space, meta, task_options)
    options = type(task).parse_eval_options(eval_options or {})
    graph = build_graph(space)
    size = type(task).cost_size
    try:
        input_size = input_size_for_output(graph, size)
        cost = graph_cost(graph, input_size)
    except ValueError as exc:
        raise NasflowError(f"model '{space.name}': {exc}") from None
    predict = Predictor(model, backend or default_backend(dev), dtype, task=task)
    evaluation = checked_evaluation(task, task.benchmark(model, predict, options))
    return ModelEvaluation(Path(model_dir), space, meta, task, evaluation, predict.backend, dtype,
                           cost.params, cost.madds, size, input_size)
