"""The task contract: what the engine needs from a problem, written down in one class.

The engine knows graphs, ops, costs and loops; a task knows its data, its loss, how a model
is scored and what its inputs look like. Subclass `Task`, override what your problem needs
(every hook is documented on the class below, with its default), and name the task in a
space (`task: NAME`) or on the command line (`--task NAME`). Tasks are found in the TASKS
registry, in the `nasflow.tasks` entry-point group (so other packages can add theirs), or
as "module:attr". docs/writing-a-task.md walks through a complete example.
"""
from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor, nn

from nasflow.errors import NasflowError, check_return, hook_error
from nasflow._plugins import lookup
from nasflow.registry import Registry
from nasflow.space.imports import import_named_module, import_space_modules
from nasflow.space.schema import Space
from nasflow.space.task_facts import declared_cost_size

Batch = Any  # whatever the task's batches yield and its loss reads


@dataclass(frozen=True)
class Metric:
    """A number `Task.evaluate` returns, and which way is better.

    The engine never guesses a direction from a name: the best model of a training run is
    the one with the best value of the task's `best_metric`, in its declared direction.
    """

    name: str
    higher_is_better: bool
    doc: str = ""

    def better(self, value: float, than: float) -> bool:
        return value > than if self.higher_is_better else value < than


class NoOptions(BaseModel):
    """The evaluation options of a task that declares none."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Evaluation:
    """What `Task.benchmark` hands `nasflow eval`: the metrics, extra JSON fields, and what
    to print (rich renderables; empty: the CLI prints a table of the metrics)."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)  # merged into `nasflow eval --json`
    tables: list[Any] = field(default_factory=list)


class Task:
    """A problem to search and train on. Subclass it; every hook below has a default except
    `batches`, `loss` and `evaluate`, which a task must define.

    Construction (`make_task` calls `from_options`):
      - The user's options (`--task-opt key=value`, a preset's `task_options`, the run's
        config) arrive as keywords of `__init__`. `options()` lists them (read from the
        signature); an unknown one is one clear error that names the accepted ones.
      - `space_params`: when `__init__` has a keyword of that name, the engine passes the
        searched or trained space's resolved params (a dict), so a task whose data depend
        on the model (SR's scale) reads them instead of asking the user to repeat them.
      - Check options in `__init__` and raise NasflowError naming the option and the fix.

    Class attributes (declarations the engine reads without building the task):
      name               the name it is registered under (informative)
      metrics            the Metric(s) `evaluate` returns, each with its direction
      best_metric        the metric that picks the best model (train's best/); None: the
                         first of `metrics`. `nasflow train --best-metric` overrides it.
      presets            {preset: {"search": {...}, "train": {...}}}: named budgets the
                         commands apply before explicit flags (nasflow.tasks.presets); a
                         "quick" preset is used when the user names none
      exclusive_options  groups of options of which at most one may be given; a user's
                         option of a group replaces a preset's options of that group
                         (SR: (("patch", "lr_patch"),))
      eval_options       a pydantic model of the options `nasflow eval MODEL` accepts for
                         this task, given as `--NAME VALUE` (repeatable for list fields);
                         `benchmark` receives the parsed model
      cost_size          the output (h, w) Multi-Adds are quoted at by `nasflow cost`,
                         `derive` and `report` when the user gives no --size ((1, 1): one
                         sample of feature vectors; SR: 1280x720)
      input_name, output_name  names of the model's input and output in exports (ONNX)
      export_size, check_size  the dims after N and C of the sample an export is traced on
                         and of the one it is checked on (they differ, to test the dynamic
                         axes); () for feature vectors, SR: (32, 32) and (48, 64)

    Data: `batches(split, batch_size, seed, *, rank=0, world_size=1)` returns an endless
    iterator of batches of "train" or "valid" (disjoint). Under torchrun each rank gets its
    share (batch_size / world_size samples) of every global batch, such that the union over
    ranks is the single-process batch. If the iterator has `state_dict()` and
    `load_state_dict(state)` (say, its RNG and position), checkpoints save it and a resumed
    run continues the stream exactly; without them a resumed run restarts the stream.
    (A `batches` that takes no rank / world_size still works: the engine then cuts each
    rank's share from the global batch, which reads every sample on every rank.)

    Training: `loss(model, batch) -> (total, {term: float})`; the terms are logged. A model
    may return more than its output in the future (auxiliary heads): the loss reads them.

    Scoring: `evaluate(model) -> {metric: float}` scores a built model (in eval mode, under
    no_grad) on the task's validation or benchmark data; training validates with it and
    keeps best/ by `best_metric`. `benchmark(model, predict, options)` is what
    `nasflow eval MODEL` runs (default: `evaluate`); `predict` is a fast inference callable
    (nasflow.deploy.predictor) the task may use instead of the model.

    Model directories: `model_meta(space)` adds the task's facts to every trained model's
    meta.json (SR: its scale). Exports: the classmethods `sample_input(channels, size,
    generator, batch=1)` and `dynamic_axes()` describe the input a model takes.

    State: `state_dict()` / `load_state_dict(state)` save and restore the task's own state
    (an RNG it draws from in `loss`, say) in every checkpoint, per rank. Default: none.
    """

    name: ClassVar[str] = ""
    metrics: ClassVar[tuple[Metric, ...]] = ()
    best_metric: ClassVar[str | None] = None
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    exclusive_options: ClassVar[tuple[tuple[str, ...], ...]] = ()
    eval_options: ClassVar[type[BaseModel]] = NoOptions
    cost_size: ClassVar[tuple[int, int]] = (1, 1)
    input_name: ClassVar[str] = "input"
    output_name: ClassVar[str] = "output"
    export_size: ClassVar[tuple[int, ...]] = ()
    check_size: ClassVar[tuple[int, ...]] = ()

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def options(cls) -> list[str] | None:
        """The keyword options `__init__` takes (space_params excluded); None if any."""
        return accepted_options(cls)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], space_params: Mapping[str, int]) -> Task:
        """Build the task from the user's options; `space_params` is passed to an `__init__`
        that takes it. Override to build from options some other way."""
        kwargs = dict(options)
        if takes_space_params(cls):
            kwargs["space_params"] = dict(space_params)
        return cls(**kwargs)

    # --- what every task defines -----------------------------------------------------------
    def batches(self, split: str, batch_size: int, seed: int, *, rank: int = 0,
                world_size: int = 1) -> Iterator[Batch]:
        raise NotImplementedError(f"task '{self.name}' defines no batches()")

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError(f"task '{self.name}' defines no loss()")

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        raise NotImplementedError(f"task '{self.name}' defines no evaluate()")

    # --- hooks with defaults ---------------------------------------------------------------
    def benchmark(self, model: nn.Module, predict: Callable[[Tensor], Tensor] | None,
                  options: BaseModel) -> Evaluation:
        """`nasflow eval MODEL`: by default the task's evaluate() in eval mode."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return Evaluation(checked_metrics(self, "evaluate", self.evaluate(model)))
        finally:
            model.train(was_training)

    def model_meta(self, space: Space) -> dict[str, Any]:
        """Extra fields for a trained model's meta.json (JSON values). Default: none."""
        return {}

    @classmethod
    def sample_input(cls, channels: int, size: tuple[int, ...], generator: torch.Generator, *,
                     batch: int = 1) -> Tensor:
        """A random input of the kind the model reads, `batch` x `channels` x *size, drawn
        from `generator` (exports trace it at export_size and check it at check_size).
        Default: standard normal values."""
        return torch.randn(batch, channels, *size, generator=generator)

    @classmethod
    def dynamic_axes(cls) -> tuple[dict[int, str], dict[int, str]]:
        """(input axes, output axes) that may change size in an export. Default: the batch."""
        return {0: "n"}, {0: "n"}

    def state_dict(self) -> dict[str, Any]:
        """The task's own state for checkpoints (per rank). Default: none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned. Default: nothing to restore."""

    # --- reading the declarations ----------------------------------------------------------
    @classmethod
    def metric(cls, name: str) -> Metric:
        for m in cls.metrics:
            if m.name == name:
                return m
        declared = ", ".join(m.name for m in cls.metrics) or "none"
        raise NasflowError(f"task '{cls.name or cls.__name__}' declares no metric '{name}' (its metrics: "
                           f"{declared}); pick one of them, or declare it in the task's `metrics`")

    @classmethod
    def best(cls, override: str | None = None) -> Metric:
        """The metric that picks the best model: `override`, else `best_metric`, else the
        first declared metric."""
        name = override or cls.best_metric or (cls.metrics[0].name if cls.metrics else None)
        if name is None:
            raise NasflowError(f"task '{cls.name or cls.__name__}' declares no metrics, so no best model "
                               "can be picked: declare `metrics = (Metric(NAME, higher_is_better=...),)`")
        return cls.metric(name)

    @classmethod
    def parse_eval_options(cls, given: Mapping[str, Any]) -> BaseModel:
        """The task's eval_options from `nasflow eval`'s extra options; one clear error.

        An option the model does not declare is refused, whatever pydantic's default (which
        ignores it): a misspelt `--bench` must not evaluate on the default data unnoticed. A
        model that means to take more says so (`model_config = ConfigDict(extra="allow")`)."""
        model = cls.eval_options
        fields = ", ".join(f"--{f.replace('_', '-')}" for f in model.model_fields) or "none"
        if model.model_config.get("extra") is None:
            names = {f.alias or n for n, f in model.model_fields.items()} | set(model.model_fields)
            unknown = [k for k in given if k not in names]
            if unknown:
                raise NasflowError(f"task '{cls.name or cls.__name__}' evaluation options: unknown option "
                                   f"{', '.join('--' + k.replace('_', '-') for k in unknown)} (its options: {fields})")
        try:
            return model.model_validate(dict(given))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
            raise NasflowError(f"task '{cls.name or cls.__name__}' evaluation options: {problems} "
                               f"(its options: {fields})") from None


# --- what a task's hooks return, checked where it enters the engine ---------------------------
def _hook(task: Task | type[Task], hook: str) -> str:
    cls = task if isinstance(task, type) else type(task)
    return f"task '{cls.name or cls.__name__}' {hook}"


def _number(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.dtype.is_complex
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def checked_metrics(task: Task | type[Task], hook: str, value: Any) -> dict[str, float]:
    """{name: float} from what `hook` (evaluate, a loss's terms) returned: a dict of str to
    numbers (a one-element tensor counts); else one HookError naming the hook and the value."""
    if not isinstance(value, Mapping):
        raise hook_error(_hook(task, hook), "a dict {metric name: number}", value)
    for k, v in value.items():
        if not isinstance(k, str) or not _number(v):
            raise hook_error(_hook(task, hook), "a dict {metric name: number}", value,
                             f"entry {k!r} is {type(v).__name__} {v!r}")
    return {k: float(v) for k, v in value.items()}


def checked_loss(task: Task | type[Task], value: Any) -> tuple[Tensor, dict[str, float]]:
    """What `loss(model, batch)` returned when it is (a scalar tensor, {term: number}); the
    terms as floats. Else one HookError."""
    expected = "a tuple (scalar tensor, {term: number})"
    if not (isinstance(value, tuple) and len(value) == 2):
        raise hook_error(_hook(task, "loss"), expected, value)
    total, terms = value
    if not isinstance(total, Tensor) or total.numel() != 1:
        raise hook_error(_hook(task, "loss"), expected, value, f"its total is {type(total).__name__}, "
                         f"shape {tuple(total.shape)}" if isinstance(total, Tensor) else "its total is no tensor")
    return total, checked_metrics(task, "loss's terms", terms)


def checked_loss_fn(task: Task) -> Callable[[nn.Module, Batch], tuple[Tensor, dict[str, float]]]:
    """`task.loss`, its every return checked (checked_loss)."""
    def loss(model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        return checked_loss(task, task.loss(model, batch))
    return loss


def checked_evaluation(task: Task, value: Any) -> Evaluation:
    """What `benchmark` returned when it is an Evaluation (its metrics checked)."""
    if not isinstance(value, Evaluation):
        raise hook_error(_hook(task, "benchmark"), "a nasflow.tasks.Evaluation", value,
                         "wrap the metrics: Evaluation({'name': value, ...})" if isinstance(value, Mapping) else "")
    value.metrics = checked_metrics(task, "benchmark's Evaluation.metrics", value.metrics)
    check_return(_hook(task, "benchmark's Evaluation.details"), value.details, dict, "a dict")
    check_return(_hook(task, "benchmark's Evaluation.tables"), value.tables, list, "a list")
    return value


def checked_batches(task: Task, value: Any) -> Any:
    """What `batches(...)` returned when it is an iterator (next() works on it)."""
    if not isinstance(value, Iterator):
        raise hook_error(_hook(task, "batches"), "an iterator of batches (a generator, or a class with "
                         "__iter__ and __next__)", value)
    return value


def checked_sample(task: type[Task], value: Any) -> Tensor:
    check_return(_hook(task, "sample_input"), value, Tensor, "a torch.Tensor, N x C x *size")
    return value


def checked_axes(task: type[Task], value: Any) -> tuple[dict[int, str], dict[int, str]]:
    expected = "a tuple (input axes, output axes) of dicts {axis: name}"
    if not (isinstance(value, tuple) and len(value) == 2
            and all(isinstance(d, dict) and all(isinstance(a, int) and isinstance(n, str) for a, n in d.items())
                    for d in value)):
        raise hook_error(_hook(task, "dynamic_axes"), expected, value)
    return value


def checked_state(owner: str, value: Any) -> dict[str, Any]:
    """What a `state_dict()` (a task's, a strategy's, a batch iterator's) returned: a dict."""
    check_return(f"{owner} state_dict", value, dict, "a dict")
    return value


TaskFactory = Callable[..., Task]
TASKS: Registry[TaskFactory] = Registry("task")
# `@register_task("name")` on a Task subclass makes `task: name` / `--task name` find it.
register_task: Callable[[str], Callable[[TaskFactory], TaskFactory]] = TASKS.decorator()


def get_task_factory(name: str, space: Space | None = None) -> TaskFactory:
    """A task class by registered name, `nasflow.tasks` entry point, or 'module:attr'. A
    'module:attr' whose module is found only beside `space`'s file or in the current folder
    is code that came with the space: imported only when trusted (nasflow.space.imports)."""
    module, colon, _ = name.partition(":")
    if colon and name not in TASKS and not entry_points(group="nasflow.tasks", name=name):
        import_named_module(module, f"task '{name}'", space.source if space is not None else None)
    return lookup(TASKS, "nasflow.tasks", name)


def get_task_class(name: str, space: Space | None = None) -> type[Task]:
    """The Task subclass registered as `name`; one clear error for anything else."""
    factory = get_task_factory(name, space)
    if not (isinstance(factory, type) and issubclass(factory, Task)):
        raise NasflowError(f"task '{name}' is {factory!r}, not a subclass of nasflow.tasks.Task; "
                           "see docs/writing-a-task.md")
    return factory


def accepted_options(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword options a factory takes (space_params excluded); None if it takes any."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: cannot tell
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "space_params"]


def takes_space_params(factory: Callable[..., Any]) -> bool:
    try:
        return "space_params" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def make_task(name: str | None, options: Mapping[str, Any], space: Space) -> Task:
    """Build the task `name` (None: the one `space` names) with the user's options, passing
    the space's params as `space_params` to a task that takes them."""
    name = name or space.task
    if name is None:
        raise NasflowError(f"space '{space.name}' names no task; add `task: NAME` to it or pass --task NAME")
    import_space_modules(space)  # a module it imports may register the task
    cls = get_task_class(name, space)
    accepted = cls.options()
    if accepted is not None:
        for key in options:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise NasflowError(f"task '{name}' does not accept options {dict(options)}: no option "
                                   f"'{key}'; {hint}its options: {', '.join(accepted) or 'none'}")
    try:
        return cls.from_options(options, space.params)
    except TypeError as exc:
        raise NasflowError(f"task '{name}' does not accept options {dict(options)}: {exc}") from None


def task_class_for(space: Space | None, task: str | None = None) -> type[Task]:
    """The class of task `task`, else of the one `space` names; the base Task (feature
    vectors) when neither names one."""
    name = task or (space.task if space is not None else None)
    if name and space is not None:
        import_space_modules(space)  # a module it imports may register the task
    return get_task_class(name, space) if name else Task


def default_cost_size(space: Space, task: str | None = None) -> tuple[int, int]:
    """The output (h, w) Multi-Adds are quoted at: the task's `cost_size` (the task named,
    else the space's), (1, 1) for a space without a task. A task that also declares it
    torch-free (nasflow.space.task_facts, what `nasflow cost` reads) must declare the same."""
    cls = task_class_for(space, task)
    declared = declared_cost_size(space, task)
    if declared is not None and tuple(declared) != tuple(cls.cost_size):
        name = task or space.task
        raise NasflowError(f"task '{name}' declares cost_size {tuple(declared)} in its facts "
                           f"(nasflow.space.task_facts) but {tuple(cls.cost_size)} on its class; "
                           "set the class attribute from the facts (docs/writing-a-task.md)")
    return cls.cost_size
