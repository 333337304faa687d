"""Retraining a population: every derived architecture of a set of searches, one command.

    nasflow train runs/seeds/*/derived            each runs/seeds/seed-N/derived -> seed-N/retrained
    nasflow train runs/seeds --executor ray       a population folder stands for its runs' derived/

Each architecture RUN/derived (or RUN/derived/arch.yaml, or a search run RUN, or a population
folder of them) is retrained into RUN/retrained, where `nasflow report` looks for it. The
retrainings share nothing, so they run as a population (search/population.py): here, one after
another or `parallel` processes at a time (`--executor local`), or each a Ray task
(`--executor ray`, search/ray_executor.py: a lost worker continues from its checkpoint). Either
way the command records in ROOT/population-train.json (ROOT: the folder holding the runs) which
retrainings finished and each restart, so the same command run again skips the finished ones,
continues the started ones and starts the rest. A retraining is exactly `nasflow train ARCH
--out RUN/retrained` with the same options, whichever executor runs it.

It lives in cli/ because it joins the two peers search/ (populations, report) and train/
(the retraining), which the layering keeps from importing each other.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow.errors import NasflowError
from nasflow.search.population import BoardReporter, Job, Plan, PopulationRecord, SeedOutcome, failed_outcome
from nasflow.train.config import TrainConfig
from nasflow.train.run_dir import TrainRunDir

if TYPE_CHECKING:
    from nasflow.search.ray_executor import RayOptions

RETRAINED = "retrained"  # RUN/retrained, where `nasflow report` finds a run's retrained model
DERIVED = "derived"
TRAIN_RECORD = "population-train.json"
ARCH_FILE = "arch.yaml"


@dataclass(frozen=True)
class Target:
    """One retraining: the architecture file and the run directory it is trained into."""

    arch: Path
    out: Path
    derived_now: bool = False  # its search run had no derived/: derived here, as `nasflow derive RUN` does


def _derived_of(run: Path, derive: bool) -> Target:
    """RUN/derived/arch.yaml; with `derive`, a finished search run without one is derived first."""
    from nasflow.search.derive_run import derive_run
    from nasflow.search.population import checkpoint_step
    from nasflow.search.run_dir import RunDir

    arch = run / DERIVED / ARCH_FILE
    if arch.is_file():
        return Target(arch, run / RETRAINED)
    if "arch" in _config_keys(run):  # a TrainConfig's field, not a search's
        raise NasflowError(f"'{run}' is a training run, not a search run: its model is {run / 'model'}; give the "
                           "search runs (or their population folder) to retrain")
    if not derive:
        raise NasflowError(f"search run '{run}' has no derived architecture ({arch}); derive it first: "
                           f"nasflow derive {run}")
    step, steps = checkpoint_step(run), RunDir.open(run).config().steps
    if step is None or step < steps:
        raise NasflowError(f"search run '{run}' stopped at step {step or 0} of {steps} and has no derived "
                           f"architecture: finish the search, or derive it as it is (nasflow derive {run})")
    derive_run(run)
    return Target(arch, run / RETRAINED, derived_now=True)


def _config_keys(run: Path) -> set[str]:
    try:
        data = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def targets(paths: list[Path], derive: bool = False) -> list[Target]:
    """What `nasflow train P1 P2 ...` retrains: each P a derived folder (RUN/derived), its
    arch.yaml, a search run (RUN) or a population folder (OUT/seed-N, OUT/gamma-G, ...); each
    into RUN/retrained. In the order given, populations in their runs' order. `derive`: a
    finished search run not derived yet is derived first (RUN/derived, the run's own rule)."""
    from nasflow.search.report import expand_runs

    found: list[Target] = []
    for p in paths:
        if p.is_file() and p.name == ARCH_FILE and p.parent.name == DERIVED:
            arch = p
        elif p.is_dir() and p.name == DERIVED and (p / ARCH_FILE).is_file():
            arch = p / ARCH_FILE
        elif p.is_dir():
            runs = [r for r in expand_runs([p]) if (r / "config.json").is_file()]
            if not runs:
                raise NasflowError(f"'{p}' is neither a derived folder (RUN/derived with arch.yaml), a search run "
                                   "nor a population folder (seed-N, gamma-G, budget-...); give RUN/derived")
            found += [_derived_of(r, derive) for r in runs]
            continue
        elif not p.exists():
            raise NasflowError(f"'{p}' does not exist: give each run's derived folder (RUN/derived), a search run or "
                               "a population folder")
        else:
            raise NasflowError(f"'{p}': with several architectures each must be a run's derived folder "
                               "(RUN/derived, retrained into RUN/retrained), a search run or a population "
                               "folder; train another architecture on its own with --out")
        found.append(Target(arch, arch.parent.parent / RETRAINED))
    outs = [t.out.resolve() for t in found]
    twice = sorted({str(o) for o in outs if outs.count(o) > 1})
    if twice:
        raise NasflowError(f"each architecture once: {', '.join(twice)} would be trained twice")
    return found


def record_root(found: list[Target]) -> Path:
    """The folder holding every retraining's run (their search runs' population folder)."""
    runs = [str(t.out.parent.resolve()) for t in found]
    return Path(os.path.commonpath(runs)) if len(runs) > 1 else Path(runs[0]).parent


def run_name(root: Path, target: Target) -> str:
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


def jobs_for(configs: list[TrainConfig], found: list[Target], root: Path) -> list[Job]:
    return [Job(run_name(root, t), t.out, _train_one, (c.model_copy(update={"arch": str(t.arch)}), str(t.out)),
                c.seed, c.device, "train", TrainRunDir) for c, t in zip(configs, found)]


def run_population(configs: list[TrainConfig], found: list[Target], *, executor: str = "local",
                   parallel: int | None = None, ray: RayOptions | None = None,
                   progress: Callable[[dict[str, dict[str, Any]]], None] | None = None,
                   on_done: Callable[[SeedOutcome], None] | None = None,
                   on_restart: Callable[[str, int, str], None] | None = None) -> list[SeedOutcome]:
    """configs[i] (its arch set to found[i].arch) trained into found[i].out; outcomes in order.
    `progress` hears every run's state (step, total, stage, node) as it changes."""
    from nasflow.search.ray_executor import check_executor, run_population_ray

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
    k = 1 if parallel is None else parallel
    if k < 1:
        raise NasflowError(f"--parallel must be at least 1, got {k}")
    if k == 1 or len(plan.todo) <= 1:
        _run_here(jobs, plan, progress)
    else:
        _run_processes(jobs, plan, min(k, len(plan.todo)), progress)
    return plan.results()


def _ray_options() -> RayOptions:
    from nasflow.search.ray_executor import RayOptions

    return RayOptions()


def _run_here(jobs: list[Job], plan: Plan, progress: Callable[[dict[str, dict[str, Any]]], None] | None) -> None:
    board: dict[str, dict[str, Any]] = {}

    def post(name: str, info: dict[str, Any]) -> None:
        board[name] = {**board.get(name, {}), **info}
        if progress:
            progress(board)

    for i in list(plan.todo):
        job = jobs[i]
        outcome = job.fn(*job.args, reporter=BoardReporter(post, job.name, platform.node(), job.stage))
        plan.finish(i, outcome)
        if not outcome.finished and outcome.error is None:  # stopped by Ctrl-C: stop here
            break


def _init_worker(devices: Any, threads: int) -> None:
    """Each worker process takes one GPU (CUDA_VISIBLE_DEVICES, before CUDA starts) and `threads` cores."""
    import torch

    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices.get()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _worker_run(job: Job, board: Any) -> SeedOutcome:
    def post(name: str, info: dict[str, Any]) -> None:
        board[name] = {**board.get(name, {}), **info}

    return job.fn(*job.args, reporter=BoardReporter(post, job.name, platform.node(), job.stage))


def _run_processes(jobs: list[Job], plan: Plan, k: int,
                   progress: Callable[[dict[str, dict[str, Any]]], None] | None) -> None:
    import torch

    ctx = multiprocessing.get_context("spawn")  # no fork: torch's threads and CUDA do not survive it
    devices = None
    if jobs[0].device != "cpu" and torch.cuda.is_available():
        devices = ctx.Queue()
        for i in range(k):
            devices.put(str(i % torch.cuda.device_count()))
    threads = max(1, (os.cpu_count() or 1) // k)
    with ctx.Manager() as manager, ProcessPoolExecutor(k, mp_context=ctx, initializer=_init_worker,
                                                       initargs=(devices, threads)) as pool:
        board = manager.dict()
        futures: dict[Future[SeedOutcome], int] = {pool.submit(_worker_run, jobs[i], board): i for i in plan.todo}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    plan.finish(futures[future], future.result())
                if progress:
                    progress(dict(board))
        except KeyboardInterrupt:
            # The running retrainings got the Ctrl-C too: they save a checkpoint and return.
            pool.shutdown(wait=True, cancel_futures=True)
            raise


# --- the command line ----------------------------------------------------------------------
def is_population(archs: list[Path], executor: str, parallel: int | None, ray_address: str | None,
                  cpus_per_run: float | None, gpus_per_run: float | None, memory_per_run: str | None = None) -> bool:
    """Whether `nasflow train ARCH...` retrains a population: several architectures, a search run
    or population folder, or an executor's option given. Ray's options are checked here, each
    mistake one line before any architecture is looked at."""
    ray_options = (ray_address, cpus_per_run, gpus_per_run, memory_per_run)
    if executor == "local" and any(v is not None for v in ray_options):
        from .population_view import RAY_ONLY

        raise NasflowError(RAY_ONLY)
    if memory_per_run is not None:
        from nasflow.search.ray_tasks import parse_memory

        parse_memory(memory_per_run)
    if len(archs) > 1 or executor != "local" or any(
            v is not None for v in (parallel, *ray_options)):
        return True
    return bool(archs) and archs[0].is_dir() and not (archs[0] / ARCH_FILE).is_file() and (
        (archs[0] / "config.json").is_file() or any(archs[0].glob(f"*/{DERIVED}")))


def train_population(configs: list[TrainConfig], found: list[Target], executor: str, parallel: int | None,
                     on: tuple[str | None, float | None, float | None, str | None], quiet: bool) -> list[SeedOutcome]:
    """The command: a line per run while they run, one as each ends, a table at the end."""
    import typer

    from nasflow.runs import distributed
    from nasflow.search.ray_executor import RayOptions, check_executor
    from nasflow.search.ray_tasks import parse_memory

    from .app import console
    from .population_failure import population_failure
    from .population_view import RAY_ONLY, live_runs

    if distributed.launched_by_torchrun():
        raise NasflowError("a population starts its own processes (--parallel, --executor); run it without torchrun")
    check_executor(executor)
    ray_address, cpus_per_run, gpus_per_run, memory_per_run = on
    ray = None
    if executor == "ray":
        memory = parse_memory(memory_per_run) if memory_per_run is not None else None
        ray = RayOptions(address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                         memory_per_run=memory)
    elif any(v is not None for v in on):
        raise NasflowError(RAY_ONLY)
    root = record_root(found)
    names = [run_name(root, t) for t in found]
    finished: dict[str, str] = {}
    for t in found:
        if t.derived_now:
            console.print(f"{t.arch.parent.parent}: derived into {t.arch.parent} (nasflow derive)", highlight=False)

    def done(o: SeedOutcome) -> None:
        state = f"[red]failed: {o.error}[/]" if o.error else "done" if o.finished else f"[yellow]stopped at {o.step}[/]"
        finished[names[o.index]] = state
        again = f", restarted from step {', '.join(map(str, o.restarts))}" if o.restarts else ""
        console.print(f"{names[o.index]}: {state} ({o.run_dir}{again})", highlight=False)

    def restarted(name: str, step: int, why: str) -> None:
        console.print(f"{name}: [yellow]continues from its checkpoint at step {step}[/] ({why})", highlight=False)

    title = f"retraining {len(found)} architectures ({executor})"
    with live_runs(names, title, finished) if not quiet else _nothing() as progress:
        outcomes = run_population(configs, found, executor=executor, parallel=parallel, ray=ray,
                                  progress=progress, on_done=done, on_restart=restarted)
    console.print(population_table(outcomes, names, title))
    failed = [(names[o.index], o) for o in outcomes if o.error]
    if failed:  # the same command continues the rest: started retrainings from their checkpoints
        raise NasflowError(population_failure("retrainings", len(found), failed,
                                              [names[o.index] for o in outcomes if o.finished],
                                              "run the same command again: it continues the rest"))
    if len(outcomes) < len(found) or any(not o.finished for o in outcomes):
        console.print("[yellow]stopped[/]; continue with the same command (finished retrainings are kept)")
        raise typer.Exit(130)
    shown = os.path.relpath(root) if root.is_relative_to(Path.cwd()) else root
    console.print(f"each RUN/{RETRAINED} holds its model; compare them: nasflow report {shown}", highlight=False)
    return outcomes


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def population_table(outcomes: list[SeedOutcome], names: list[str], title: str) -> Any:
    """A row per retraining: steps, its best validation (best/meta.json), restarts, state."""
    from rich.table import Table

    from nasflow.runs.modeldir import read_meta

    table = Table(title=title, title_justify="left")
    for col in ("run", "steps", "best", "restarted from", "state"):
        table.add_column(col, justify="right" if col == "steps" else "left")
    for o in outcomes:
        best = ""
        meta_dir = TrainRunDir(o.run_dir).best_path
        if (meta_dir / "meta.json").is_file():
            b = read_meta(meta_dir).get("best") or {}
            if isinstance(b.get("value"), (int, float)):
                best = f"{b['metric']} {b['value']:.4f} (step {b['step']:,})"
        state = "failed" if o.error else "done" if o.finished else "stopped"
        table.add_row(names[o.index], f"{o.step:,}", best, ", ".join(map(str, o.restarts)), state)
    return table
