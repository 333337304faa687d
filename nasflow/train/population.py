"""Retraining a population: every architecture of a set of searches, trained as one population.

Each retraining (search/retrain_targets.py finds them: RUN/derived -> RUN/retrained) is
exactly `nasflow train ARCH --out RUN/retrained` with the same options, whichever executor runs
it. They share nothing, so they run as a population of Jobs (runs/population.py): one after
another or `parallel` processes at a time (`executor="local"`, runs/population_local.py), or
each a Ray task (`executor="ray"`, runs/population_ray.py: a lost worker continues from its
checkpoint). Either way ROOT/population-train.json (ROOT: the folder holding the runs) records
which retrainings finished and each restart, so the same call run again skips the finished
ones, continues the started ones and starts the rest.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nasflow.errors import NasflowError
from nasflow.runs.population import Job, Plan, PopulationRecord, SeedOutcome, failed_outcome
from nasflow.train.config import TrainConfig
from nasflow.train.run_dir import TrainRunDir

if TYPE_CHECKING:
    from nasflow.runs.population_ray import RayOptions

TRAIN_RECORD = "population-train.json"


class Retraining(Protocol):
    """One retraining (search/retrain_targets.py's Target): the architecture file and the run
    directory it is trained into."""

    @property
    def arch(self) -> Path: ...

    @property
    def out(self) -> Path: ...


def record_root(found: Sequence[Retraining]) -> Path:
    """The folder holding every retraining's run (their search runs' population folder)."""
    runs = [str(t.out.parent.resolve()) for t in found]
    return Path(os.path.commonpath(runs)) if len(runs) > 1 else Path(runs[0]).parent


def run_name(root: Path, target: Retraining) -> str:
    return target.out.resolve().relative_to(root.resolve()).as_posix()


def _train_one(config: TrainConfig, out: str, reporter: Any = None) -> SeedOutcome:
    """Train `config` into `out`, continuing what is there as --resume does."""
    from nasflow.train.loop import run_train  # heavy to import; workers need it anyway

    path = Path(out)
    try:
        result = run_train(config, path, resume=TrainRunDir(path).config_path.is_file(), reporter=reporter)
        return SeedOutcome(config.seed, path, result.step, result.finished)
    except Exception as exc:  # noqa: BLE001 - one failed retraining must not lose the others
        return failed_outcome(config.seed, path, exc)


def jobs_for(configs: list[TrainConfig], found: Sequence[Retraining], root: Path) -> list[Job]:
    return [Job(run_name(root, t), t.out, _train_one, (c.model_copy(update={"arch": str(t.arch)}), str(t.out)),
                c.seed, c.device, "train", TrainRunDir) for c, t in zip(configs, found)]


def run_population(configs: list[TrainConfig], found: Sequence[Retraining], *, executor: str = "local",
                   parallel: int | None = None, ray: RayOptions | None = None,
                   progress: Callable[[dict[str, dict[str, Any]]], None] | None = None,
                   on_done: Callable[[SeedOutcome], None] | None = None,
                   on_restart: Callable[[str, int, str], None] | None = None) -> list[SeedOutcome]:
    """configs[i] (its arch set to found[i].arch) trained into found[i].out; outcomes in order.
    `progress` hears every run's state (step, total, stage, node) as it changes."""
    from nasflow.runs.population_local import run_population_local
    from nasflow.runs.population_ray import check_executor, run_population_ray

    check_executor(executor)
    if not found:
        raise NasflowError("no architectures to retrain")
    root = record_root(found)
    jobs = jobs_for(configs, found, root)
    record = PopulationRecord.load(root, executor, TRAIN_RECORD)
    record.executor = executor
    if executor == "ray":
        options = ray if ray is not None else _ray_options()
        options.progress = options.progress or progress
        options.on_restart = options.on_restart or on_restart
        return run_population_ray(jobs, record, parallel=parallel, options=options, on_done=on_done)
    if ray is not None:
        raise NasflowError("Ray options (--ray-address, --cpus-per-run, ...) need --executor ray")
    plan = Plan(jobs, record, on_done, on_restart)
    run_population_local(jobs, plan, parallel, progress)
    return plan.results()


def _ray_options() -> RayOptions:
    from nasflow.runs.population_ray import RayOptions

    return RayOptions()
