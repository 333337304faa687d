"""One run of a population (OUT/seed-N, OUT/gamma-G, OUT/budget-..., a retraining RUN/retrained)
and what the population records about itself, whatever stage its runs are of.

A run is a Job: a function that runs it into its own run directory (search/population.py's
`_search_one`, or train/population.py's retraining), its outcome a SeedOutcome, the same
whichever executor runs it (processes here: runs/population_local.py, multiseed.py; Ray
tasks: runs/population_ray.py). Plan decides what a population's command has left to do from
its record and the runs' checkpoints; BoardReporter is the progress a run posts, one line per
run in the command's table.

    OUT/population.json   {"format": 1, "executor": "ray",
                           "runs": {"seed-1": {"finished": true, "restarts": [{"step": 4, "reason": "..."}]}}}

Written by the driver of a population run on an executor that can lose workers (Ray,
runs/population_ray.py) and by a retraining population on either executor
(OUT/population-train.json, its runs named by their path under OUT), never by the runs themselves: which runs finished (so the same
command run again skips them and writes nothing into them) and, per run, each restart (a
lost worker, or the whole population stopped and started again) with the checkpoint step it
continued from. `nasflow report` shows the restarts beside each run.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasflow.errors import RunError
from nasflow.runs.durable import write_atomic, write_failure

POPULATION_FILE = "population.json"
FORMAT = 1
CPU_CORES_PER_SEARCH = 8  # a search's convolutions use this many threads well; fewer is slow


@dataclass
class SeedOutcome:
    seed: int
    run_dir: Path
    step: int = 0
    finished: bool = False
    error: str | None = None  # the error that stopped this seed's search
    remedy: str | None = None  # when that error is a full disk or a read-only folder: its fix (runs/durable.py)
    index: int = 0  # its place in the searches run together
    restarts: list[int] = field(default_factory=list)  # steps it continued from after a lost worker (Ray)


def failed_outcome(seed: int, path: Path, exc: Exception) -> SeedOutcome:
    """A run's failure as its outcome; a full disk or read-only folder says which file and the fix."""
    failure = write_failure(exc)
    if failure is not None:
        return SeedOutcome(seed, path, error=failure.what, remedy=failure.remedy)
    return SeedOutcome(seed, path, error=f"{type(exc).__name__}: {exc}")


@dataclass
class PopulationRecord:
    out: Path
    executor: str = "ray"
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    file: str = POPULATION_FILE

    @property
    def path(self) -> Path:
        return self.out / self.file

    @classmethod
    def load(cls, out: str | Path, executor: str = "ray", file: str = POPULATION_FILE) -> PopulationRecord:
        """OUT's record, or an empty one when it has none."""
        path = Path(out) / file
        if not path.is_file():
            return cls(Path(out), executor, file=file)
        try:
            data = json.loads(path.read_text())
            runs = data["runs"]
            if not isinstance(runs, dict):
                raise TypeError("runs is not a mapping")
        except (ValueError, KeyError, TypeError) as exc:
            raise RunError(f"'{path}' is not a population record ({exc}); delete it and run the same "
                           "command again (finished runs are then continued, not redone)") from None
        return cls(Path(out), str(data.get("executor", executor)), runs, file)

    def save(self) -> None:
        data = {"format": FORMAT, "executor": self.executor, "runs": self.runs}
        self.out.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))

    def _run(self, name: str) -> dict[str, Any]:
        return self.runs.setdefault(name, {"finished": False, "restarts": []})

    def finished(self, name: str) -> bool:
        return bool(self.runs.get(name, {}).get("finished"))

    def mark(self, name: str, finished: bool) -> None:
        self._run(name)["finished"] = finished

    def restart(self, name: str, step: int, reason: str) -> None:
        self._run(name)["restarts"].append({"step": step, "reason": reason})

    def restarts(self, name: str) -> list[int]:
        """The checkpoint steps run `name` was restarted from, in order."""
        return [int(r["step"]) for r in self.runs.get(name, {}).get("restarts", [])]


def restarts_of(run_dir: str | Path) -> list[int]:
    """The steps the run at `run_dir` restarted from, from its population's record (none: [])."""
    run_dir = Path(run_dir)
    if not (run_dir.parent / POPULATION_FILE).is_file():
        return []
    return PopulationRecord.load(run_dir.parent).restarts(run_dir.name)


# --- a population's runs, whatever runs them ------------------------------------------------
@dataclass
class Job:
    """One run of a population: `fn(*args, reporter=...)` runs it into `path` (continuing what
    is there, as --resume does) and returns its SeedOutcome. `fn` is a module-level function so
    that worker processes and Ray tasks can import it."""

    name: str  # its key in the population record
    path: Path  # its run directory
    fn: Callable[..., SeedOutcome]
    args: tuple[Any, ...]
    seed: int
    device: str = "cpu"
    stage: str = "search"  # what the progress calls its main phase
    kind: Any = None  # its run-directory class (RunFiles), for the checkpoint's step; None: RunFiles itself


def checkpoint_step(path: Path, kind: Any = None) -> int | None:
    """The step of the checkpoint of the run at `path`, None without one. `kind`: the run's
    directory class; None reads the files every run has (a search's and a training's alike)."""
    if kind is None:
        from nasflow.runs.files import RunFiles as kind  # imports torch: only when a run is looked at
    run = kind(path)
    if not (run.config_path.is_file() and run.has_checkpoint()):
        return None
    return int(run.load_checkpoint()[1]["step"])


class Plan:
    """What a population's command has left to do: finished runs (recorded so, with a
    checkpoint) are done and untouched; started ones continue, recorded as a restart; the
    others start. The record is saved as runs finish or restart."""

    def __init__(self, jobs: list[Job], record: PopulationRecord,
                 on_done: Callable[[SeedOutcome], None] | None = None,
                 on_restart: Callable[[str, int, str], None] | None = None) -> None:
        self.jobs, self.record, self.on_done, self.on_restart = jobs, record, on_done, on_restart
        self.outcomes: dict[int, SeedOutcome] = {}
        self.todo: list[int] = []
        for i, job in enumerate(jobs):
            step = checkpoint_step(job.path, job.kind)
            if record.finished(job.name) and step is not None:  # done before: nothing run, nothing written
                self.finish(i, SeedOutcome(job.seed, job.path, step, True))
                continue
            if step is not None:
                self.restart(i, step, "the population was started again")
            self.todo.append(i)

    def finish(self, i: int, outcome: SeedOutcome) -> None:
        name = self.jobs[i].name
        outcome.index, outcome.restarts = i, self.record.restarts(name)
        if outcome.error is None and self.record.finished(name) != outcome.finished:
            self.record.mark(name, outcome.finished)
            self.record.save()
        self.outcomes[i] = outcome
        if self.on_done:
            self.on_done(outcome)

    def restart(self, i: int, step: int, why: str) -> None:
        self.record.restart(self.jobs[i].name, step, why)
        self.record.save()
        if self.on_restart:
            self.on_restart(self.jobs[i].name, step, why)

    def results(self) -> list[SeedOutcome]:
        return [self.outcomes[i] for i in sorted(self.outcomes)]


class BoardReporter:
    """A run's progress reporter (a search's or a training's) that posts, throttled, to the
    command's table of runs: `post(name, info)` with step, total, stage, node and times."""

    def __init__(self, post: Callable[[str, dict[str, Any]], None], name: str, node: str,
                 stage: str = "search") -> None:
        self.post, self.name, self.node, self.stage = post, name, node, stage
        self.last = 0.0

    def _post(self, step: int) -> None:
        self.post(self.name, {"node": self.node, "time": time.time(), "step": step, "total": self.total,
                              "stage": "warm-up" if step < self.warmup else self.stage, "first": self.first,
                              "began": self.began})

    def start(self, step: int, total: int, warmup: int = 0) -> None:
        self.first, self.total, self.warmup, self.began = step, total, warmup, time.time()
        self._post(step)

    def update(self, step: int, logs: dict[str, float], news: Any = None) -> None:
        now = time.time()
        if now - self.last < 0.5 and step < self.total:
            return
        self.last = now
        self._post(step)

    def stop(self) -> None:
        pass
