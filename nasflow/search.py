"""The search loop: warm-up steps on the weights only, then strategy steps, with logging,
genotype snapshots, checkpoints and exact resume.

    result = run_search(SearchConfig(space="space.yaml", steps=1000, warmup=100), "runs/a")

The loop owns the order of things; a Strategy owns one step; the task owns data and loss;
RunDir owns the files. A run is repeatable from its seed, and a resumed run continues from
its checkpoint exactly as if it had not stopped (RNG and data streams included).
"""
from __future__ import annotations

import inspect
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from .checkpoint import rng_state, seed_everything, set_rng_state
from .config import SearchConfig
from .derive import Genotype, genotype_from_arch
from .distributed import (DistContext, any_rank, broadcast_, current, gather_object, mean_scalars, on_main,
                          shard, wrap)
from .errors import CheckpointError, NasflowError, RunError
from .graph import Graph, build_graph
from .levers import keep_freed_memory, prepare_model, use_channels_last, wrap_loss
from .load import load_space
from .regularizers import get_regularizer
from .runs import RunDir
from .space import Space
from .supernet import Supernet, compile_graph
from .task import Batch, Task, make_task


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
    genotype: Genotype
    softmax: dict[str, list[float]]  # final softmax(alpha) / softmax(beta) per decision
    initial_softmax: dict[str, list[float]]
    graph: Graph = field(repr=False)


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
    if config.batch_size % ctx.world_size:  # checked before any rank waits on another
        raise NasflowError(f"batch size {config.batch_size} does not split over {ctx.world_size} "
                           f"processes: use a multiple of {ctx.world_size} (--batch is the global batch)")
    if resume:
        def open_run() -> Space:
            run = RunDir.open(run_dir)
            _check_resumable(run, config, space)
            return run.space()

        space = on_main(open_run, ctx)
    else:
        on_main(lambda: RunDir.check_free(run_dir), ctx)
        space = _resolve_space(config, space)
    task = task if task is not None else make_task(config.task, config.task_options, space)
    # Built before any file is written, so a bad strategy or space leaves no run behind.
    search = _Search(config, space, task, reporter if ctx.is_main else None, ctx)
    if resume:
        on_main(lambda: RunDir(run_dir).write_config(config), ctx)  # e.g. more steps
    else:
        on_main(lambda: RunDir.create(run_dir, config, space), ctx)
    return search.run(RunDir(run_dir), resume, stop_at)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _resolve_space(config: SearchConfig, space: Space | None) -> Space:
    if space is None:
        if config.space is None:
            raise NasflowError("no space to search: give a space file")
        return load_space(config.space, config.overrides)
    return space.with_params(config.overrides) if config.overrides else space


def _check_resumable(run: RunDir, config: SearchConfig, space: Space | None) -> None:
    diff = run.config().differences(config)
    if diff:
        detail = "; ".join(f"{k}: run {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise RunError(f"cannot resume '{run.path}': the config differs ({detail}); resume with "
                       "the run's settings or start a new run with another --out")
    if space is not None:  # otherwise the run's own space.yaml is the space
        given = _resolve_space(config, space)
        if given.to_data() != run.space().to_data():
            raise RunError(f"cannot resume '{run.path}': space '{given.name}' differs from the "
                           f"run's {run.space_path.name}; resume without a space or start a new run")


# --- data streams ---------------------------------------------------------------------------
class _Stream:
    """A task's endless batch iterator, counted so a resumed run reads the same batches.

    If the iterator has state_dict() / load_state_dict() (say, the state of its RNG), that
    state is checkpointed; otherwise resuming replays the stream to where it stopped.
    """

    def __init__(self, task: Task, split: str, batch_size: int, seed: int, device: torch.device,
                 ctx: DistContext) -> None:
        self.iterator: Iterator[Batch] = iter(_rank_batches(task, split, batch_size, seed, ctx))
        self.split, self.device, self.consumed = split, device, 0

    def next(self) -> Batch:
        batch = next(self.iterator)
        self.consumed += 1
        return _to_device(batch, self.device)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"consumed": self.consumed}
        if hasattr(self.iterator, "state_dict"):
            state["iterator"] = self.iterator.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "iterator" in state and hasattr(self.iterator, "load_state_dict"):
            self.iterator.load_state_dict(state["iterator"])
        else:
            for _ in range(state["consumed"]):
                next(self.iterator)
        self.consumed = state["consumed"]


def _rank_batches(task: Task, split: str, batch_size: int, seed: int, ctx: DistContext) -> Iterator[Batch]:
    """This rank's share of each global batch of `batch_size`: from the task itself when its
    batches() takes rank / world_size, else cut from the global batch (samples i = rank mod W)."""
    if not ctx.enabled:
        return task.batches(split, batch_size, seed)
    params = inspect.signature(task.batches).parameters
    if {"rank", "world_size"} <= params.keys():
        return task.batches(split, batch_size, seed, rank=ctx.rank, world_size=ctx.world_size)
    return _Sharded(iter(task.batches(split, batch_size, seed)), ctx)


class _Sharded:
    """A global batch stream cut to this rank's share; its state is the global stream's."""

    def __init__(self, iterator: Iterator[Batch], ctx: DistContext) -> None:
        self.iterator, self.ctx = iterator, ctx
        if hasattr(iterator, "state_dict") and hasattr(iterator, "load_state_dict"):
            self.state_dict = iterator.state_dict
            self.load_state_dict = iterator.load_state_dict

    def __iter__(self) -> _Sharded:
        return self

    def __next__(self) -> Batch:
        return shard(next(self.iterator), self.ctx)


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


# --- Ctrl-C -------------------------------------------------------------------------------
class _StopFlag:
    """The first Ctrl-C asks the loop to stop after the current step (and save); a second
    one interrupts at once. Only the main thread can install signal handlers.

    Under torchrun SIGTERM counts too: torchrun answers a Ctrl-C by sending its workers
    SIGTERM (and SIGKILL 30 s later), which would otherwise end them before they save.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGINT,)) -> None:
        self.requested = False
        self.signals = signals
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signum, self._previous[signum])

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


# --- the loop -------------------------------------------------------------------------------
def softmax_table(model: Supernet) -> dict[str, list[float]]:
    return {label: p.detach().cpu().tolist() for label, p in model.arch.softmax().items()}


def entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


class _Search:
    run_dir: RunDir  # set by run(): the run directory is created once the search is built

    def __init__(self, config: SearchConfig, space: Space, task: Task, reporter: Reporter | None,
                 ctx: DistContext) -> None:
        # Imported here: the strategies package imports nasflow modules itself.
        from nasflow.strategies import get_strategy

        self.config, self.task, self.reporter, self.ctx = config, task, reporter, ctx
        self.device = ctx.device if ctx.enabled else resolve_device(config.device)
        self.graph = build_graph(space)
        if not self.graph.decisions:
            raise NasflowError(f"space '{space.name}' has no choice and no dense node with topk "
                               "below its inputs: no architecture parameters, nothing to search")
        strategy_cls = get_strategy(config.strategy)
        regularizer = get_regularizer(config.regularizer)(self.graph) if config.regularizer else None
        seed_everything(config.seed)
        self.model = compile_graph(self.graph, fuse=config.fuse).to(self.device)
        channels_last = use_channels_last(config.channels_last, self.device)
        prepare_model(self.model, channels_last)
        keep_freed_memory(self.device)
        self.model.train()
        w, a = config.weights_optim, config.arch_optim
        # Two optimizers over disjoint parameter sets: arch params never get a weights step.
        self.w_opt = torch.optim.Adam(self.model.weights(), lr=w.lr, betas=w.betas, weight_decay=w.weight_decay)
        self.a_opt = torch.optim.Adam(self.model.arch_parameters(), lr=a.lr, betas=a.betas,
                                      weight_decay=a.weight_decay)
        loss = wrap_loss(task.loss, channels_last=channels_last, amp=config.amp, device=self.device)
        self.strategy = strategy_cls(loss, regularizer, self.w_opt, self.a_opt, config)
        if ctx.enabled:
            # Every rank seeded alike, so this only guards against a stray draw; DDP does the
            # same for the weights. DDP leaves arch params alone: the strategy averages them.
            broadcast_(self.model.arch_parameters(), ctx)
            arch_names = [n for n, _ in self.model.named_parameters() if n.startswith("arch.")]
            self.strategy.distribute(wrap(self.model, ctx, ignore=arch_names), ctx)
        self.train = _Stream(task, "train", config.batch_size, config.seed, self.device, ctx)
        self.valid = _Stream(task, "valid", config.batch_size, config.seed, self.device, ctx)
        self.step = 0
        self.saved_step = -1  # the step the last checkpoint written or read holds

    # --- state ------------------------------------------------------------------------------
    def local_state(self) -> dict[str, Any]:
        """What may differ between ranks: RNG, data streams, the task's own state."""
        state: dict[str, Any] = {
            "rng": rng_state(),
            "data": {"train": self.train.state_dict(), "valid": self.valid.state_dict()},
        }
        if hasattr(self.task, "state_dict"):  # a task with its own RNG (augmentation, say)
            state["task"] = self.task.state_dict()
        return state

    def save(self) -> None:
        local = self.local_state()
        ranks = gather_object(local, self.ctx)  # a collective: every rank takes part
        self.saved_step = self.step
        if not self.ctx.is_main:
            return
        tensors = {f"weights.{k}": v for k, v in self.model.weights_state_dict().items()}
        tensors.update(self.model.arch_state_dict())
        state: dict[str, Any] = {
            "step": self.step,
            "optim_weights": self.w_opt.state_dict(),
            "optim_arch": self.a_opt.state_dict(),
            **local,  # rank 0's, where a single-process run keeps its own
        }
        if self.ctx.enabled:
            state["ranks"] = ranks
        self.run_dir.save_checkpoint(tensors, state)

    def load(self) -> None:
        tensors, state = on_main(self.run_dir.load_checkpoint, self.ctx)
        weights = {k.removeprefix("weights."): v for k, v in tensors.items() if k.startswith("weights.")}
        arch = {k: v for k, v in tensors.items() if k.startswith("arch.")}
        try:
            self.model.load_state_dict({**weights, **arch}, strict=True)
            self.w_opt.load_state_dict(state["optim_weights"])
            self.a_opt.load_state_dict(state["optim_arch"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint '{self.run_dir.checkpoint_path}' does not fit this "
                                  f"run's supernet: {exc}") from None
        # Each rank continues from its own state; resumed on another number of processes (or
        # from a single-process run), every rank takes rank 0's, as a fresh run starts them alike.
        ranks = state.get("ranks") or []
        local = ranks[self.ctx.rank] if len(ranks) == self.ctx.world_size else state
        self.train.load_state_dict(local["data"]["train"])
        self.valid.load_state_dict(local["data"]["valid"])
        if "task" in local and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(local["task"])
        set_rng_state(local["rng"])  # last: the replay above may draw from the global RNG
        self.step = self.saved_step = int(state["step"])

    def genotype(self) -> Genotype:
        return genotype_from_arch(self.graph, {label: self.model.arch.logits(label) for label in self.graph.decisions})

    # --- running ----------------------------------------------------------------------------
    def run(self, run_dir: RunDir, resume: bool, stop_at: int | None) -> SearchResult:
        self.run_dir = run_dir
        main = self.ctx.is_main
        if resume and on_main(self.run_dir.has_checkpoint, self.ctx):
            self.load()
        if resume and main:  # records a killed run wrote after its last checkpoint come again
            self.run_dir.truncate_metrics(self.step)
        if not on_main(lambda: bool(self.run_dir.read_metrics()), self.ctx):
            self.log({}, 0.0)  # step 0: where alpha and beta start
        cfg = self.config
        if self.reporter:
            self.reporter.start(self.step, cfg.steps, cfg.warmup)
        sums: dict[str, float] = {}
        count, tick = 0, time.perf_counter()
        try:
            stop_signals = (signal.SIGINT, signal.SIGTERM) if self.ctx.enabled else (signal.SIGINT,)
            with _StopFlag(stop_signals) as stop:
                while self.step < cfg.steps and not self.stopping(stop) and self.step != stop_at:
                    logs = self.one_step()
                    self.step += 1
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    geno = None
                    if self.step in cfg.snapshot_steps:
                        geno = self.genotype()
                        if main:
                            self.run_dir.save_snapshot(self.step, self.model.arch_state_dict(), geno)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        now = time.perf_counter()
                        # Each rank's losses are on its share: log the mean over ranks.
                        losses = mean_scalars({k: v / count for k, v in sums.items()}, self.ctx)
                        geno = self.log(losses, count / max(now - tick, 1e-9))
                        sums, count, tick = {}, 0, now
                    if self.step % cfg.checkpoint_every == 0:
                        self.save()
                    if self.reporter:
                        self.reporter.update(self.step, logs, geno)
                if self.saved_step != self.step:
                    self.save()  # where it stopped: the end, Ctrl-C or stop_at
        finally:
            if self.reporter:
                self.reporter.stop()
        # Read on rank 0 once every file is written: every rank returns after that.
        initial = on_main(self.initial_softmax, self.ctx)
        return SearchResult(self.run_dir.path, self.step, self.step >= cfg.steps, self.genotype(),
                            softmax_table(self.model), initial, self.graph)

    def initial_softmax(self) -> dict[str, list[float]]:
        first = self.run_dir.read_metrics()
        return first[0]["softmax"] if first else {}

    def stopping(self, stop: _StopFlag) -> bool:
        """Ctrl-C may reach some ranks only, or at different steps: all stop when one asks."""
        return any_rank(stop.requested, self.ctx)

    def one_step(self) -> dict[str, float]:
        train = self.train.next()
        if self.step < self.config.warmup:
            return self.strategy.weights_step(self.model, train)
        return self.strategy.step(self.model, train, self.valid.next())

    def log(self, losses: dict[str, float], steps_per_s: float) -> Genotype:
        soft = softmax_table(self.model)
        geno = self.genotype()
        if not self.ctx.is_main:
            return geno
        self.run_dir.append_metrics({
            "step": self.step,
            "phase": "start" if self.step == 0 else "warmup" if self.step <= self.config.warmup else "search",
            "steps_per_s": round(steps_per_s, 3),
            "losses": losses,
            "softmax": soft,
            "entropy": {label: entropy(p) for label, p in soft.items()},
            "genotype": geno.to_json(),
        })
        return geno


__all__ = ["Reporter", "SearchConfig", "SearchResult", "make_task", "resolve_device", "run_search"]
