"""What the search loop and the training loop share: opening or claiming the run directory,
the batch-size check, the device, each rank's checkpointed state, batch streams that resume
exactly, and Ctrl-C / SIGTERM. The loop itself is nasflow.runs.run_loop.RunLoop.

    space = open_run(TrainRunDir, run_dir, config, resume, ctx, lambda: ..., given=arch is not None)
    ...   # build the loop: a bad config or space fails here, before any file is written
    record_run(TrainRunDir, run_dir, config, space, resume, ctx)
"""
from __future__ import annotations

import inspect
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nasflow.runs.checkpoint import rng_state, set_rng_state
from nasflow.runs.config import RunConfig
from nasflow.runs.distributed import DistContext, gather_object, on_main, resolve_device, shard
from nasflow.errors import NasflowError, NasflowWarning, RunError
from nasflow.runs.files import RunFiles
from nasflow.space.schema import Space
from nasflow.tasks.contract import Batch, Task, checked_batches, checked_state


# --- the run directory ------------------------------------------------------------------------
def check_batch_splits(batch_size: int, ctx: DistContext) -> None:
    """The global batch must split evenly over the processes; checked before any rank waits."""
    if batch_size % ctx.world_size:
        raise NasflowError(f"batch size {batch_size} does not split over {ctx.world_size} processes: "
                           f"use a multiple of {ctx.world_size} (--batch is the global batch)")


def open_run(run_cls: type[RunFiles[Any]], run_dir: str | Path, config: RunConfig, resume: bool,
             ctx: DistContext, space: Callable[[], Space], given: bool) -> Space:
    """The space the run works on. `space` resolves the one the caller means (passed in, or
    the config's file); `given`: whether one was passed in.

    Starting: that space, once the directory is known to hold no run. Resuming: the run's own
    space.yaml, after checking that `config` (and a given space) agree with the run's. Rank 0
    reads the directory; every rank gets the space."""
    if not resume:
        on_main(lambda: run_cls.check_free(run_dir), ctx)
        return space()

    def read() -> Space:
        run = run_cls.open(run_dir)
        diff = run.config().differences(config)
        if diff:
            detail = "; ".join(f"{k}: run {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise RunError(f"cannot resume '{run.path}': the config differs ({detail}); resume with "
                           "the run's settings or start a new run with another --out")
        for note in config.resume_consequences(run.config()):
            warnings.warn(NasflowWarning(f"resuming '{run.path}': {note}"), stacklevel=2)
        if given:
            mine = space()
            if mine.to_data() != run.space().to_data():
                raise RunError(f"cannot resume '{run.path}': {run.HOLDS} '{mine.name}' differs from the "
                               f"run's {run.space_path.name}; resume without giving one, or start a new run")
        return run.space()

    return on_main(read, ctx)


def record_run(run_cls: type[RunFiles[Any]], run_dir: str | Path, config: RunConfig, space: Space, resume: bool,
               ctx: DistContext) -> None:
    """Write the run's config (a resumed run's too: e.g. more steps) and, new, its space."""
    if resume:
        on_main(lambda: run_cls(run_dir).write_config(config), ctx)
    else:
        on_main(lambda: run_cls.create(run_dir, config, space), ctx)


def run_device(config_device: str, ctx: DistContext) -> torch.device:
    """Under torchrun the process's device; else the config's ('auto': cuda when present)."""
    return ctx.device if ctx.enabled else resolve_device(config_device)


# --- checkpointed state of each rank -----------------------------------------------------------
class LogWindow:
    """The steps since the last metrics record: their summed logs, their count and the time
    they took. Checkpointed (per rank: each rank's losses are on its share), so the first
    record after a resume averages the same steps as an uninterrupted run's."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.tick = time.perf_counter()

    def add(self, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def exclude(self, seconds: float) -> None:
        """Leave time spent outside the steps (validation, say) out of steps/s."""
        self.tick += seconds

    def take(self) -> tuple[dict[str, float], float]:
        """(mean of each log over the window, steps per second), and a new window."""
        now = time.perf_counter()
        means = {k: v / self.count for k, v in self.sums.items()}
        rate = self.count / max(now - self.tick, 1e-9)
        self.sums, self.count, self.tick = {}, 0, now
        return means, rate

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count, "seconds": time.perf_counter() - self.tick}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = dict(state["sums"]), int(state["count"])
        self.tick = time.perf_counter() - float(state["seconds"])


def rank_state(streams: dict[str, BatchStream], task: Task, window: LogWindow | None = None) -> dict[str, Any]:
    """What may differ between ranks: the RNG, the data streams, the task's own state, the
    logging window."""
    state: dict[str, Any] = {"rng": rng_state(), "data": {name: s.state_dict() for name, s in streams.items()}}
    if hasattr(task, "state_dict"):  # a task with its own RNG (augmentation, say)
        state["task"] = checked_state(f"task '{type(task).name or type(task).__name__}'", task.state_dict())
    if window is not None:
        state["log_window"] = window.state_dict()
    return state


def gather_rank_states(local: dict[str, Any], ctx: DistContext) -> dict[str, Any] | None:
    """On rank 0, its own state with every rank's beside it (distributed); None elsewhere.
    A collective: every rank must call it."""
    ranks = gather_object(local, ctx)
    if not ctx.is_main:
        return None
    return {**local, "ranks": ranks} if ctx.enabled else local


def restore_rank_state(state: dict[str, Any], streams: dict[str, BatchStream], task: Task,
                       ctx: DistContext, window: LogWindow | None = None) -> None:
    """Each rank continues from its own state; resumed on another number of processes (or
    from a single-process run), every rank takes rank 0's, as a fresh run starts them alike."""
    ranks = state.get("ranks") or []
    local = ranks[ctx.rank] if len(ranks) == ctx.world_size else state
    data = local["data"]
    if "consumed" in data:  # older training checkpoints kept their one stream bare
        data = {"train": data}
    for name, stream in streams.items():
        stream.load_state_dict(data[name])
    if "task" in local and hasattr(task, "load_state_dict"):
        task.load_state_dict(local["task"])
    if window is not None and "log_window" in local:  # absent from checkpoints before it was kept
        window.load_state_dict(local["log_window"])
    set_rng_state(local["rng"])  # last: the replay above may draw from the global RNG


# --- data streams -----------------------------------------------------------------------------
class BatchStream:
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
            state["iterator"] = checked_state("the batch iterator's", self.iterator.state_dict())
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
        return checked_batches(task, task.batches(split, batch_size, seed))
    params = inspect.signature(task.batches).parameters
    if {"rank", "world_size"} <= params.keys():
        return checked_batches(task, task.batches(split, batch_size, seed, rank=ctx.rank, world_size=ctx.world_size))
    return _Sharded(checked_batches(task, task.batches(split, batch_size, seed)), ctx)


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


# --- Ctrl-C -----------------------------------------------------------------------------------
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """The first Ctrl-C or SIGTERM asks the loop to stop after the current step (and save); a
    second one interrupts at once. Only the main thread can install signal handlers.

    SIGTERM counts as Ctrl-C: torchrun answers a Ctrl-C by sending its workers SIGTERM (and
    SIGKILL 30 s later), and batch schedulers send it before they kill a job; either would
    otherwise end the run before it saves.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.requested = False
        self.signals = signals
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signum, self._previous[signum])

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
