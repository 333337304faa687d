"""The search loop: warm-up steps on the weights only, then strategy steps, with logging,
genotype snapshots, checkpoints and exact resume.

    result = run_search(SearchConfig(space="space.yaml", steps=1000, warmup=100), "runs/a")

The run loop it shares with training (nasflow.runs.run_loop.RunLoop) owns the order of
things: logging windows, checkpoints, Ctrl-C / SIGTERM and exact resume; this module adds the
search's step and state; a Strategy owns one step; the task owns data and loss; RunDir owns
the files. A run is repeatable from its seed, and a resumed run continues from
its checkpoint exactly as if it had not stopped (RNG and data streams included).

After the last step the strategy's `finish` hook runs (nasflow.search.end): a strategy that
picks its architecture itself (SPOS's evolution) returns it, and the loop saves it as the
run's chosen genotype (RUN/chosen.json), which `nasflow derive RUN` then derives.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

from nasflow.runs.checkpoint import seed_everything
from nasflow.search.budget import check_budget_floor
from nasflow.search.config import SearchConfig
from nasflow.derive.genotype import Genotype, genotype_from_arch
from nasflow.derive.rule import checked_rule
from nasflow.runs.distributed import DistContext, any_rank, broadcast_, current, on_main, wrap
from nasflow.errors import CheckpointError, NasflowError, check_return, hook_error
from nasflow.space.graph import Graph, build_graph
from nasflow.accel.levers import keep_freed_memory, prepare_model, use_channels_last, wrap_loss
from nasflow.space.load import load_space
from nasflow.runs.lock import hold_run
from nasflow.runs.loop import BatchStream, StopFlag, check_batch_splits, open_run, record_run, run_device
from nasflow.runs.optim import load_optimizer_state
from nasflow.runs.records import WEIGHTS, decision_weights
from nasflow.runs.run_loop import RecordSink, RunLoop
from nasflow.runs.tensorboard import open_tensorboard
from nasflow.search.end import SearchEnd
from nasflow.search.regularizers import make_regularizer
from nasflow.search.run_dir import RunDir
from nasflow.space.schema import Space
from nasflow.compile.relaxation import checked_weights
from nasflow.compile.state import arch_names, from_checkpoint, to_checkpoint
from nasflow.compile.supernet import Supernet, compile_graph
from nasflow.tasks.contract import Task, checked_loss_fn, checked_state, make_task

if TYPE_CHECKING:
    from nasflow.strategies import Strategy


class Reporter(Protocol):
    """What the loop tells a progress display (the CLI's is a rich progress bar)."""

    def start(self, step: int, total: int, warmup: int) -> None: ...  # step: where a resumed run is

    def update(self, step: int, logs: dict[str, float], genotype: Genotype | None) -> None: ...

    def stop(self) -> None: ...


@dataclass
class SearchResult:
    run_dir: Path
    step: int
    finished: bool  # False when stopped early (Ctrl-C, stop_at); the checkpoint is saved
    genotype: Genotype  # the strategy's chosen one (chosen True), else the derivation rule's
    softmax: dict[str, list[float]]  # final decision weights (the relaxation's: softmax by default)
    initial_softmax: dict[str, list[float]]  # the step-0 record's
    graph: Graph = field(repr=False)
    chosen: bool = False  # the strategy's finish hook chose the genotype (not the arch params)
    notes: list[Any] = field(default_factory=list)  # what the finish hook had to say (text, rich tables)
    weights_name: str = "softmax"  # the relaxation's weights function, which `softmax` holds


def run_search(config: SearchConfig, run_dir: str | Path, *, space: Space | None = None,
               task: Task | None = None, resume: bool = False, stop_at: int | None = None,
               reporter: Reporter | None = None, ctx: DistContext | None = None) -> SearchResult:
    """Search `config.steps` steps in `run_dir` (created, or continued with resume=True).

    `space` defaults to the file `config.space`; `task` to the one the config or the space
    names. When resuming, the run's own space.yaml is used and `config` must agree with the
    run's config except in fields that do not change the search (SearchConfig.RESUMABLE).
    `stop_at` stops after that step as Ctrl-C does: checkpoint saved, finished False.

    Under torchrun (`ctx`, default: the initialised process group if any) every rank calls
    this with the same arguments; `config.batch_size` is the global batch, of which each rank
    computes its share. Rank 0 alone reads and writes the run directory (it need only exist
    where rank 0 runs) and reports progress; the others get what they need from it.
    """
    ctx = ctx if ctx is not None else current(config.device)
    check_batch_splits(config.batch_size, ctx)
    with hold_run(run_dir, ctx, new=not resume):  # one writer per run (runs/lock.py)
        if resume:  # before the configs are compared: an inert fuse differing from the record is no change
            config = fuse_that_runs(config, run_dir, on_main(lambda: RunDir.open(run_dir).config().fuse, ctx))
        searched = open_run(RunDir, run_dir, config, resume, ctx, lambda: _resolve_space(config, space),
                            given=space is not None)
        # After the space is read (its imports may register the strategy); a bad option: no run written.
        strategy_class(config, run_dir if resume else None).parse_options(config.strategy_options)
        if not resume:
            config = fuse_that_runs(config)  # what config.json records is what runs
        used = _with_run_table(config, run_dir, ctx) if resume else config
        task = task if task is not None else make_task(config.task, config.task_options, searched)
        # Built before any file is written, so a bad strategy or space leaves no run behind.
        search = _Search(used, searched, task, reporter if ctx.is_main else None, ctx, run_dir if resume else None)
        record_run(RunDir, run_dir, config, searched, resume, ctx)
        return search.run_search(RunDir(run_dir), resume, stop_at)


def strategy_class(config: SearchConfig, run_dir: str | Path | None = None) -> type[Strategy]:
    """The strategy `config` names; `run_dir`: a run to resume, whose space may register it
    and whose folder carries the module of a 'module:Class' one."""
    if run_dir is not None and RunDir(run_dir).config_path.is_file():
        return RunDir(run_dir).strategy_class(config)
    # Imported here: the strategies package builds on nasflow.search itself.
    from nasflow.strategies import get_strategy

    return get_strategy(config.strategy)


def fuse_that_runs(config: SearchConfig, run_dir: str | Path | None = None,
                   recorded: bool | None = None) -> SearchConfig:
    """`config` with `fuse` as its strategy runs it, so a run records what runs (every entry
    point: the CLI, sweeps, populations, Python). A strategy whose mixed op is the same with
    fuse on and off (GDAS, SPOS: one candidate at a time; Strategy.fuse_acts) never runs the
    fused kernels: a new run records fuse=False. Resuming (`run_dir`, `recorded`: the fuse
    its config.json holds), an inert fuse other than the record keeps the record (a run from
    before this recorded an inert True), since changing it would change nothing."""
    target = False if recorded is None else recorded
    if config.fuse == target or strategy_class(config, run_dir).fuse_acts(config):
        return config
    return config.model_copy(update={"fuse": target})


def _with_run_table(config: SearchConfig, run_dir: str | Path, ctx: DistContext) -> SearchConfig:
    """A resumed search reads the run's own copy of its latency table (RunDir.latency_table:
    checked, and a changed original said), where this rank can read it; the config the run
    records keeps the table's path as given."""
    if config.latency_table is None:
        return config
    path = on_main(lambda: RunDir(run_dir).latency_table(config.latency_table), ctx)
    if path is None or path == config.latency_table or not Path(path).is_file():
        return config
    return config.model_copy(update={"latency_table": path})


def _resolve_space(config: SearchConfig, space: Space | None) -> Space:
    if space is None:
        if config.space is None:
            raise NasflowError("no space to search: give a space file")
        return load_space(config.space, config.overrides)
    return space.with_params(config.overrides) if config.overrides else space


# --- the strategy's hooks, their returns checked where they enter the loop --------------------
def _hooks(strategy: Strategy) -> Callable[[str], str]:
    return lambda hook: f"strategy '{strategy.name or type(strategy).__name__}' {hook}"


def checked_schedule(hook: str, value: Any) -> Any:
    """A schedule: None (a constant lr) or an object with step() and state_dict()."""
    if value is not None and not all(callable(getattr(value, m, None)) for m in ("step", "state_dict", "load_state_dict")):
        raise hook_error(hook, "None or an lr scheduler (step(), state_dict(), load_state_dict())", value)
    return value


def checked_logs(hook: str, value: Any) -> dict[str, float]:
    """What a step returned to log: {name: number}."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, numbers.Real) and not isinstance(v, bool)
                                              for k, v in value.items()):
        raise hook_error(hook, "a dict {name: float} of what to log", value)
    return value


# --- the loop -------------------------------------------------------------------------------
def softmax_table(model: Supernet) -> dict[str, list[float]]:
    """Each decision's weights as the strategy's relaxation has them (its decision_weights:
    softmax by default, a sigmoid relaxation's sigmoid), for the log and the end table."""
    relaxation = model.relaxation
    weights = checked_weights(relaxation, model.arch.decisions, relaxation.decision_weights(model.arch))
    return {label: p.detach().cpu().tolist() for label, p in weights.items()}


def entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


class _Search(RunLoop):
    """The search as a RunLoop: its step (the strategy's, after warm-up steps on the weights),
    its state (weights, arch, optimizers, the strategy's own), the step-0 record, snapshots."""

    run_dir: RunDir  # set by run(): the run directory is created once the search is built

    def __init__(self, config: SearchConfig, space: Space, task: Task, reporter: Reporter | None,
                 ctx: DistContext, run_dir: str | Path | None = None) -> None:
        self.config = config
        self.device = run_device(config.device, ctx)
        self.graph = build_graph(space)
        if not self.graph.decisions:
            raise NasflowError(f"space '{space.name}' has no choice and no dense node with topk "
                               "below its inputs: no architecture parameters, nothing to search")
        strategy = strategy_class(config, run_dir)
        check_budget_floor(config.budget, config.strategy, strategy.learns_arch)
        regularizer = make_regularizer(self.graph, config.regularizer, config.latency_table, config.budget)
        channels_last = use_channels_last(config.channels_last, self.device)
        loss = wrap_loss(checked_loss_fn(task), channels_last=channels_last, amp=config.amp, device=self.device)
        # The strategy first: it picks the mixed op, relaxation and optimizers (built by attach).
        self.strategy = strategy(loss, regularizer, None, None, config)
        seed_everything(config.seed)
        hook = _hooks(self.strategy)
        mixed = check_return(hook("mixed_op"), self.strategy.mixed_op(), str, "a mixed-op name (str)")
        self.model = compile_graph(self.graph, mixed_op=mixed, kernel_transform=config.kernel_transform).to(self.device)
        prepare_model(self.model, channels_last)
        keep_freed_memory(self.device)
        self.model.train()
        self.strategy.attach(self.model)
        self.w_opt, self.a_opt = self.strategy.w_optimizer, self.strategy.a_optimizer
        self.w_sched = checked_schedule(hook("schedule"), self.strategy.schedule(self.w_opt))  # None: constant lr
        self.rule = checked_rule(hook("derivation_rule"), self.strategy.derivation_rule())
        if ctx.enabled:
            # Every rank seeded alike, so this only guards against a stray draw; DDP does the
            # same for the weights. DDP leaves arch params alone: the strategy averages them.
            broadcast_(self.model.arch_parameters(), ctx)
            ignore = arch_names(n for n, _ in self.model.named_parameters())
            # A sparse relaxation leaves the unsampled candidates without a gradient.
            ddp = wrap(self.model, ctx, ignore=ignore, find_unused_parameters=self.model.relaxation.sparse)
            self.strategy.distribute(ddp, ctx)
        self.train = BatchStream(task, "train", config.batch_size, config.seed, self.device, ctx)
        self.valid = BatchStream(task, "valid", config.batch_size, config.seed, self.device, ctx)
        super().__init__(ctx=ctx, task=task, streams={"train": self.train, "valid": self.valid},
                         total=config.steps, log_every=config.log_every,
                         checkpoint_every=config.checkpoint_every, reporter=reporter)

    # --- state ------------------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        state: dict[str, Any] = {"optim_weights": self.w_opt.state_dict(), "strategy": checked_state(
            f"strategy '{self.strategy.name}'", self.strategy.state_dict())}
        if self.a_opt is not None:
            state["optim_arch"] = self.a_opt.state_dict()
        if self.w_sched is not None:
            state["sched_weights"] = self.w_sched.state_dict()
        return to_checkpoint(self.model.state_dict()), state

    def restore(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        weights, arch = from_checkpoint(tensors)
        try:
            self.model.load_state_dict({**weights, **arch}, strict=True)
            load_optimizer_state(self.w_opt, state["optim_weights"])
            if self.a_opt is not None:
                load_optimizer_state(self.a_opt, state["optim_arch"])
            if self.w_sched is not None:
                self.w_sched.load_state_dict(state["sched_weights"])
            self.strategy.load_state_dict(state.get("strategy", {}))  # none before strategies had state
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint '{self.run_dir.checkpoint_path}' does not fit this "
                                  f"run's supernet: {exc}") from None

    def genotype(self) -> Genotype:
        return genotype_from_arch(self.graph, {label: self.model.arch.logits(label) for label in self.graph.decisions},
                                  rule=self.rule)

    # --- running ----------------------------------------------------------------------------
    def run_search(self, run_dir: RunDir, resume: bool, stop_at: int | None) -> SearchResult:
        finished = self.run(run_dir, resume, stop_at)
        chosen, notes = None, []
        if finished:
            chosen, notes, finished = self.finish()
        if self.ctx.is_main:
            if chosen is not None:
                self.run_dir.save_chosen(chosen, self.config.strategy, self.step)
            else:  # one from before more steps were asked for is stale
                self.run_dir.clear_chosen()
        # Read on rank 0 once every file is written: every rank returns after that.
        initial = on_main(self.initial_softmax, self.ctx)
        genotype = chosen if chosen is not None else self.genotype()
        return SearchResult(self.run_dir.path, self.step, finished, genotype, softmax_table(self.model), initial,
                            self.graph, chosen is not None, notes, self.model.relaxation.weights_name)

    def finish(self) -> tuple[Genotype | None, list[Any], bool]:
        """The strategy's end-of-search hook: (its chosen genotype or None, its notes,
        whether it finished). Ctrl-C or SIGTERM during it saves and stops the run."""
        with StopFlag() as stop:
            end = SearchEnd(self.model, self.graph, self.task, self.config, self.run_dir.path, self.ctx,
                            self.step, self.device, self.save, lambda: any_rank(stop.requested, self.ctx))
            chosen = check_return(_hooks(self.strategy)("finish"), self.strategy.finish(end), (Genotype, type(None)),
                                  "a nasflow.derive.genotype.Genotype or None")
            if chosen is None and any_rank(stop.requested, self.ctx):
                self.save()
                return None, end.notes, False
        return chosen, end.notes, True

    def initial_softmax(self) -> dict[str, list[float]]:
        first = self.run_dir.read_metrics()
        return (decision_weights(first[0]) or {}) if first else {}  # an older run's record: `softmax`

    def open_sinks(self) -> list[RecordSink]:
        tensorboard = open_tensorboard(self.config.tensorboard, self.run_dir.path, self.graph)
        return [tensorboard] if tensorboard is not None else []

    def begin(self) -> None:
        if not on_main(lambda: bool(self.run_dir.read_metrics()), self.ctx):
            self.log({}, 0.0)  # step 0: where alpha and beta start

    def report_start(self) -> None:
        assert self.reporter is not None
        self.reporter.start(self.step, self.total, self.config.warmup)  # type: ignore[attr-defined]

    def after_step(self) -> None:
        if self.step in self.config.snapshot_steps:
            self.news = self.genotype()
            if self.ctx.is_main:
                self.run_dir.save_snapshot(self.step, self.model.arch_state_dict(), self.news)

    def one_step(self) -> dict[str, float]:
        self.strategy.on_step(self.step, self.config.steps)
        train = self.train.next()
        if self.step < self.config.warmup:
            logs = checked_logs(_hooks(self.strategy)("weights_step"), self.strategy.weights_step(self.model, train))
        else:
            logs = checked_logs(_hooks(self.strategy)("step"), self.strategy.step(self.model, train, self.valid.next()))
        if self.w_sched is not None:
            self.w_sched.step()
        return logs

    def log(self, losses: dict[str, float], steps_per_s: float) -> None:
        soft = softmax_table(self.model)
        self.news = geno = self.genotype()
        if not self.ctx.is_main:
            return
        self.record({
            "step": self.step,
            "phase": "start" if self.step == 0 else "warmup" if self.step <= self.config.warmup else "search",
            "steps_per_s": round(steps_per_s, 3),
            "losses": losses,
            WEIGHTS: soft,  # the relaxation's weights (`softmax` in runs written before: runs/records.py)
            # their function when it is not softmax (nasflow plot labels it)
            **({"weights_name": name} if (name := self.model.relaxation.weights_name) != "softmax" else {}),
            "entropy": {label: entropy(p) for label, p in soft.items()},
            "genotype": geno.to_json(),
        })


__all__ = ["Reporter", "SearchConfig", "SearchResult", "fuse_that_runs", "make_task", "run_search"]
