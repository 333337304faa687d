"""The one run loop search and training both run: steps from where a run is to its total,
logging windows, checkpoints, Ctrl-C / SIGTERM, progress display and exact resume.

    class _Train(RunLoop):
        def one_step(self) -> dict[str, float]: ...          # one optimisation step, its logs
        def checkpoint(self) -> tuple[tensors, state]: ...   # what this loop adds to a checkpoint
        def restore(self, tensors, state) -> None: ...      # and puts back from one
        def log(self, losses, steps_per_s) -> None: ...      # the record of a logging window
        def after_step(self) -> None: ...                    # validation, snapshots

    loop.run(run_dir, resume=True, stop_at=None)

A caller differs only in its step and its state; everything that decides when things happen,
and what a resumed run continues from, is here, so both loops stop, save and resume alike.
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from typing import Any, Protocol

from torch import Tensor

from nasflow.errors import RunError
from nasflow.runs import threads
from nasflow.runs.distributed import DistContext, any_rank, mean_scalars, on_main
from nasflow.runs.files import RunFiles
from nasflow.runs.loop import BatchStream, LogWindow, StopFlag, gather_rank_states, rank_state, restore_rank_state
from nasflow.tasks.contract import Task


class Progress(Protocol):
    """What the loop tells a progress display (the CLI's rich progress bars). `news`: what the
    step produced for the display (the search's genotype, training's validation), or None."""

    def update(self, step: int, logs: dict[str, float], news: Any) -> None: ...

    def stop(self) -> None: ...


class RecordSink(Protocol):
    """Something that sees every metrics record rank 0 writes (a TensorBoard log, say)."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class RunLoop(ABC):
    """The step loop of a run; search and training subclass it with their step and state.

    Every rank runs it in step; rank 0 alone writes the run directory and shows progress.
    `streams` are the task's batch streams the step reads (their positions are checkpointed);
    `reporter` the progress display (None on other ranks or when quiet). Metrics records are
    averaged over `log_every` steps (a LogWindow, checkpointed: a resumed run writes the
    records of one that never stopped) and also go to the sinks open_sinks() gives.
    """

    run_dir: RunFiles[Any]  # set by run(): the directory is created once the loop is built

    def __init__(self, *, ctx: DistContext, task: Task, streams: dict[str, BatchStream], total: int,
                 log_every: int, checkpoint_every: int, reporter: Progress | None = None) -> None:
        self.ctx, self.task, self.streams = ctx, task, streams
        self.total, self.log_every, self.checkpoint_every = total, log_every, checkpoint_every
        self.reporter = reporter
        self.sinks: list[RecordSink] = []  # set by run(), from open_sinks()
        self.window = LogWindow()  # the steps since the last metrics record
        self.step = 0
        self.saved_step = -1  # the step the last checkpoint written or read holds
        self.news: Any = None  # what this step produced for the display (set by the hooks)

    # --- what a loop provides -------------------------------------------------------------
    @abstractmethod
    def one_step(self) -> dict[str, float]:
        """Step number `self.step` (0-based): update the model, return the numbers to log."""

    @abstractmethod
    def checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """This loop's tensors and state for a checkpoint (rank 0 only). The loop adds the step,
        the RNG, data streams and logging window of every rank."""

    @abstractmethod
    def restore(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        """Put back what checkpoint() gave, on every rank; a checkpoint that does not fit is a
        CheckpointError. Called before the RNG and data streams are restored."""

    @abstractmethod
    def log(self, losses: dict[str, float], steps_per_s: float) -> None:
        """Write the record of a logging window (every rank calls it; rank 0 writes)."""

    def open_sinks(self) -> list[RecordSink]:
        """What else sees the metrics records (opened once run_dir is set; rank 0 only)."""
        return []

    def begin(self) -> None:
        """Before the first step of this call (after any resume): e.g. a step-0 record."""

    def after_step(self) -> None:
        """After each step's record, before its checkpoint: validation, snapshots."""

    def report_start(self) -> None:
        assert self.reporter is not None
        self.reporter.start(self.step, self.total)  # type: ignore[attr-defined]

    # --- records and checkpoints ----------------------------------------------------------
    def record(self, record: dict[str, Any]) -> None:
        """Append a metrics record (rank 0) and hand it to every sink."""
        if not self.ctx.is_main:
            return
        self.run_dir.append_metrics(record)
        for sink in self.sinks:
            sink.write(record)

    def save(self) -> None:
        """A checkpoint of the step just done. A collective: every rank calls it."""
        state = gather_rank_states(rank_state(self.streams, self.task, self.window), self.ctx)
        self.saved_step = self.step
        if state is None:  # not rank 0
            return
        tensors, extra = self.checkpoint()
        state.update(step=self.step, **extra)
        self.run_dir.save_checkpoint(tensors, state)

    def load(self) -> None:
        tensors, state = on_main(self.run_dir.load_checkpoint, self.ctx)
        self.restore(tensors, state)
        restore_rank_state(state, self.streams, self.task, self.ctx, self.window)
        self.step = self.saved_step = int(state["step"])

    # --- running --------------------------------------------------------------------------
    def check_finite(self, logs: dict[str, Any]) -> None:
        """Stop at the first step whose loss or any logged term is not finite (NaN, inf; on any
        rank), before it reaches a checkpoint: a run that went on filled every weight with NaN,
        exited 0 and derived from NaN. The last checkpoint stays the last good one."""
        bad = {k: v for k, v in logs.items() if isinstance(v, (int, float)) and not math.isfinite(v)}
        if not any_rank(bool(bad), self.ctx) if self.ctx.enabled else not bad:
            return
        terms = ", ".join(f"{k} = {v}" for k, v in list(bad.items())[:3]) or "a term on another process"
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        kept = (f"its last checkpoint (step {self.saved_step}) is kept and --resume continues from it"
                if self.saved_step > 0 else "nothing was saved")
        raise RunError(f"step {self.step + 1}: {terms}{more}, not finite; the run stopped there: {kept}. Lower the "
                       "learning rates (--lr, --arch-lr) or check what feeds that term (a latency table, a "
                       "regularizer's weight)")

    def run(self, run_dir: RunFiles[Any], resume: bool, stop_at: int | None = None) -> bool:
        """Run to `total` steps (from the checkpoint when resuming and there is one). Stops
        early after `stop_at`, or after the step during which SIGINT or SIGTERM came (on any
        rank: all stop after the same step); the step reached is saved either way. A second
        signal interrupts at once. Returns whether the run reached its total."""
        self.run_dir = run_dir
        ctx = self.ctx
        self.sinks = self.open_sinks() if ctx.is_main else []
        if resume and on_main(run_dir.has_checkpoint, ctx):
            self.load()
        if resume and ctx.is_main and run_dir.metrics_path.exists():
            run_dir.truncate_metrics(self.step)  # a killed run's records past its checkpoint come again
        try:
            self.begin()
            if self.reporter is not None:
                self.report_start()
            if not self.window.count:  # a fresh window (a resumed one keeps its time): steps/s from here
                self.window.tick = time.perf_counter()
            with StopFlag() as stop:
                while self.step < self.total and self.step != stop_at and not any_rank(stop.requested, ctx):
                    self.news = None
                    logs = self.one_step()
                    self.check_finite(logs)
                    self.step += 1
                    self.window.add(logs)
                    if self.step % self.log_every == 0 or self.step == self.total:
                        means, rate = self.window.take()
                        self.log(mean_scalars(means, ctx), rate)  # each rank's are on its share: the mean
                    began = time.perf_counter()
                    self.after_step()
                    threads.recheck()  # the idle cores may have changed (nothing unless the CLI chose the count)
                    self.window.exclude(time.perf_counter() - began)  # steps/s counts the steps
                    if self.step % self.checkpoint_every == 0:
                        self.save()
                    if self.reporter is not None:
                        self.reporter.update(self.step, logs, self.news)
                if self.saved_step != self.step:  # the same on every rank: save() is a collective
                    self.save()  # where it stopped: the end, a signal or stop_at
        finally:
            if self.reporter is not None:
                self.reporter.stop()
            for sink in self.sinks:
                sink.close()
        return self.step >= self.total
