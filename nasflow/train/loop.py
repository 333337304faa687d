"""The retraining loop: train a derived architecture (a space with no choices) from scratch
or from another model's weights, with validation, checkpoints and exact resume.

    result = run_train(TrainConfig(arch="runs/a/derived/arch.yaml", steps=1000), "runs/a-train")

The run loop it shares with the search (nasflow.runs.run_loop.RunLoop) owns the order of
things: logging windows, checkpoints, Ctrl-C / SIGTERM and exact resume; this module adds the
training step and state; the task owns data, loss and validation; TrainRunDir owns the
files. Under torchrun each process trains on its share of every global batch through DDP;
rank 0 alone validates and writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from nasflow.runs.checkpoint import rng_state, seed_everything, set_rng_state
from nasflow.accel.depthwise import use_fast_depthwise
from nasflow.runs.distributed import DistContext, current, on_main, wrap
from nasflow.errors import CheckpointError, NasflowError, check_return
from nasflow.space.graph import Graph, build_graph
from nasflow.accel.levers import keep_freed_memory, prepare_model, use_channels_last, wrap_loss
from nasflow.space.load import load_space
from nasflow.runs.lock import hold_run
from nasflow.runs.loop import BatchStream, check_batch_splits, open_run, record_run, run_device
from nasflow.runs.run_loop import RecordSink, RunLoop
from nasflow.runs.tensorboard import open_tensorboard
from nasflow.runs.modeldir import save_model
from nasflow.runs.optim import load_optimizer_state, make_optimizer, make_schedule
from nasflow.space.schema import Space
from nasflow.compile.state import from_checkpoint, to_checkpoint
from nasflow.compile.supernet import Supernet, compile_graph
from nasflow.tasks.contract import Task, checked_loss_fn, checked_metrics, make_task
from nasflow.train.config import TrainConfig
from nasflow.train.run_dir import TrainRunDir
from nasflow.train.warmstart import InitReport, warm_start

class TrainReporter(Protocol):
    """What the loop tells a progress display (the CLI's is a rich progress bar)."""

    def start(self, step: int, total: int) -> None: ...  # step: where a resumed run is

    def update(self, step: int, logs: dict[str, float], valid: dict[str, float] | None) -> None: ...

    def stop(self) -> None: ...


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    finished: bool  # False when stopped early (Ctrl-C, stop_at); the checkpoint is saved
    model_dir: Path | None  # RUN/model, the final weights; None until the run finishes
    best_dir: Path | None  # RUN/best, the best validation so far
    valid: dict[str, float]  # the last validation
    best: dict[str, Any] | None  # {"step", "metric", "value", "valid"} of best/
    params: int
    space: Space = field(repr=False)
    init: InitReport | None = None


def run_train(config: TrainConfig, run_dir: str | Path, *, arch: Space | None = None,
              task: Task | None = None, resume: bool = False, stop_at: int | None = None,
              reporter: TrainReporter | None = None, ctx: DistContext | None = None) -> TrainResult:
    """Train `config.steps` steps in `run_dir` (created, or continued with resume=True).

    `arch` defaults to the file `config.arch`; `task` to the one the config or the arch
    names. When resuming, the run's own space.yaml is used and `config` must agree with the
    run's config except in TrainConfig.RESUMABLE fields. `stop_at` stops after that step as
    Ctrl-C does: checkpoint saved, finished False.

    Under torchrun (`ctx`, default: the initialised process group if any) every rank calls
    this with the same arguments; `config.batch_size` is the global batch, of which each rank
    computes its share. Rank 0 alone reads and writes the run directory, validates and reports.
    """
    ctx = ctx if ctx is not None else current(config.device)
    check_batch_splits(config.batch_size, ctx)
    with hold_run(run_dir, ctx, new=not resume):  # one writer per run (runs/lock.py)
        space = open_run(TrainRunDir, run_dir, config, resume, ctx, lambda: resolve_arch(config, arch),
                         given=arch is not None)
        graph = build_graph(space)
        check_no_choices(graph)
        task = task if task is not None else make_task(config.task, config.task_options, space)
        if not isinstance(task, Task):  # best/ needs the metric directions the base class declares
            raise NasflowError(f"task {task!r} is not a subclass of nasflow.tasks.Task; see docs/writing-a-task.md")
        # A resumed run with a checkpoint takes its weights from there, not from --init-from again.
        restart = resume and on_main(TrainRunDir(run_dir).has_checkpoint, ctx)
        # Built before any file is written, so a bad arch, task or --init-from leaves no run behind.
        loop = _Train(config, graph, task, ctx, reporter if ctx.is_main else None, warm=not restart)
        record_run(TrainRunDir, run_dir, config, space, resume, ctx)
        return loop.run_train(TrainRunDir(run_dir), resume, stop_at)


# --- the pieces run_train checks and builds -------------------------------------------------
def optimizer_and_schedule(config: TrainConfig, model: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    """The config's optimizer (Adam, or SGD with momentum) and schedule (the lr halved every
    lr_halve_every steps, or cosine to 0 over `steps`), stepped once per step."""
    o = config.optim
    opt = make_optimizer(model.parameters(), config.optimizer, lr=o.lr, betas=o.betas, momentum=config.momentum,
                         weight_decay=o.weight_decay)
    return opt, make_schedule(opt, config.schedule, steps=config.steps, halve_every=config.lr_halve_every)


def resolve_arch(config: TrainConfig, arch: Space | None) -> Space:
    if arch is None:
        if config.arch is None:
            raise NasflowError("no architecture to train: give an architecture file (a derived arch.yaml)")
        arch = load_space(config.arch)
    if "scale" in config.overrides and "scale" not in arch.params:
        have = ", ".join(arch.params) or "none"
        raise NasflowError(f"--scale: architecture '{arch.name}' has no `scale` param (its params: {have}); "
                           "drop --scale, or add `scale` to its params")
    return arch.with_params(config.overrides) if config.overrides else arch


def check_no_choices(graph: Graph) -> None:
    if graph.decisions:
        labels = ", ".join(graph.decisions)
        raise NasflowError(f"'{graph.space.name}' still has choices ({labels}): it is a search space, not an "
                           "architecture; derive it first with `nasflow derive RUN_DIR` and train the "
                           "derived arch.yaml")


# --- the loop -------------------------------------------------------------------------------
class _Train(RunLoop):
    """Training as a RunLoop: its step (one Adam step through DDP), its state (weights,
    optimizer, schedule, best model, last validation) and its validation after the steps."""

    run_dir: TrainRunDir  # set by run(): the run directory is created once the loop is built

    def __init__(self, config: TrainConfig, graph: Graph, task: Task, ctx: DistContext,
                 reporter: TrainReporter | None, warm: bool = True) -> None:
        self.config, self.graph = config, graph
        self.device = run_device(config.device, ctx)
        seed_everything(config.seed)
        if config.auxiliary and not graph.auxiliary:
            raise NasflowError(f"auxiliary is on, but architecture '{graph.space.name}' declares no auxiliary "
                               "output; add `auxiliary: [NODE]` to it (a node only training reads, e.g. DARTS' "
                               "darts_aux_head) or turn auxiliary off")
        self.model: Supernet = compile_graph(graph, auxiliary=config.auxiliary).to(self.device)
        self.init = warm_start(self.model, config.init_from) if config.init_from and warm else None
        # What the warm start did, for the models' meta (kept in checkpoints for a resumed run).
        self.init_meta: dict[str, Any] | None = self.init.to_json() if self.init is not None else None
        channels_last = use_channels_last(config.channels_last, self.device)
        prepare_model(self.model, channels_last)
        keep_freed_memory(self.device)
        use_fast_depthwise(self.model)  # its faster CPU backward; the stock conv elsewhere
        self.model.train()
        self.ddp = wrap(self.model, ctx)  # DDP broadcasts rank 0's weights to every rank
        self.loss = wrap_loss(checked_loss_fn(task), channels_last=channels_last, amp=config.amp, device=self.device)
        self.opt, self.sched = optimizer_and_schedule(config, self.model)
        self.train = BatchStream(task, "train", config.batch_size, config.seed, self.device, ctx)
        super().__init__(ctx=ctx, task=task, streams={"train": self.train}, total=config.steps,
                         log_every=config.log_every, checkpoint_every=config.checkpoint_every,
                         reporter=reporter)
        self.valid: dict[str, float] = {}  # the last validation (rank 0's, on every rank)
        self.best: dict[str, Any] | None = None

    # --- state ------------------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return to_checkpoint(self.model.state_dict()), {
            "optim": self.opt.state_dict(), "sched": self.sched.state_dict(), "best": self.best,
            "valid": self.valid, "init": self.init_meta}

    def restore(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        weights = from_checkpoint(tensors)[0]
        try:
            self.model.load_state_dict(weights, strict=True)
            load_optimizer_state(self.opt, state["optim"])
            self.sched.load_state_dict(state["sched"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint '{self.run_dir.checkpoint_path}' does not fit this "
                                  f"run's architecture: {exc}") from None
        self.best, self.valid, self.init_meta = state["best"], state["valid"], state.get("init")

    # --- running ----------------------------------------------------------------------------
    def run_train(self, run_dir: TrainRunDir, resume: bool, stop_at: int | None) -> TrainResult:
        finished = self.run(run_dir, resume, stop_at)
        if finished:
            on_main(lambda: self.write_model(run_dir.model_path, {"weights": "final"}), self.ctx)
        return TrainResult(
            run_dir.path, self.step, finished, run_dir.model_path if finished else None,
            run_dir.best_path if self.best is not None else None, dict(self.valid), self.best,
            sum(p.numel() for p in self.model.eval_parameters()), self.graph.space, self.init)

    def open_sinks(self) -> list[RecordSink]:
        tensorboard = open_tensorboard(self.config.tensorboard, self.run_dir.path)
        return [tensorboard] if tensorboard is not None else []

    def after_step(self) -> None:
        if self.step % self.config.validate_every == 0 or self.step == self.total:
            self.news = self.validate()

    def one_step(self) -> dict[str, float]:
        batch = self.train.next()
        self.model.drop_path = self.config.drop_path_at(self.step)  # from the step: a resume agrees
        self.opt.zero_grad(set_to_none=True)
        loss, terms = self.loss(self.ddp, batch)  # through DDP: its hooks average the gradients
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.opt.step()
        self.sched.step()
        return {"train/loss": float(loss.detach()), **{f"train/{k}": float(v) for k, v in terms.items()}}

    def log(self, losses: dict[str, float], steps_per_s: float) -> None:
        self.record({"step": self.step, "lr": self.opt.param_groups[0]["lr"],
                     "steps_per_s": round(steps_per_s, 3), "losses": losses})

    def validate(self) -> dict[str, float]:
        """The task's evaluate() on rank 0 while the others wait (an error there stops every
        rank); the RNG is put back after it, so how often a run validates never changes the
        weights."""
        def evaluate() -> dict[str, float]:
            saved = rng_state()
            self.model.eval()
            try:
                with torch.no_grad():
                    self.valid = checked_metrics(self.task, "evaluate", self.task.evaluate(self.model))
            finally:
                self.model.train()
                set_rng_state(saved)
            self.record({"step": self.step, "valid": self.valid})
            self.update_best()
            return self.valid

        self.valid = on_main(evaluate, self.ctx)
        return self.valid

    def update_best(self) -> None:
        """best/ by the task's declared best metric (or --best-metric), in its declared direction."""
        if not self.valid:
            return
        metric = type(self.task).best(self.config.best_metric)
        if metric.name not in self.valid:
            raise NasflowError(f"best_metric '{metric.name}' is not among the metrics the task's evaluate() "
                               f"returned ({', '.join(self.valid)}); pick one of them")
        value = self.valid[metric.name]
        if self.best is None or metric.better(value, self.best["value"]):
            self.best = {"step": self.step, "metric": metric.name, "value": value, "valid": dict(self.valid)}
            self.write_model(self.run_dir.best_path, {"weights": "best", "best": self.best})

    def write_model(self, path: Path, extra: dict[str, Any]) -> None:
        space, cfg = self.graph.space, self.config
        meta: dict[str, Any] = {
            "trained_by": "nasflow train", "arch": space.name, "arch_file": cfg.arch,
            "task": cfg.task or space.task, "task_options": dict(cfg.task_options),
            "steps": self.step, "valid": dict(self.valid), "run_dir": str(self.run_dir.path),
            "init_from": self.init_meta, **check_return(f"task '{type(self.task).name or type(self.task).__name__}' model_meta",
                                 self.task.model_meta(space), dict, "a dict of JSON values"), **extra,
        }
        save_model(path, space, self.model.eval_state_dict(), meta)  # auxiliary outputs: training only


__all__ = ["TrainConfig", "TrainReporter", "TrainResult", "check_no_choices", "resolve_arch", "run_train"]
