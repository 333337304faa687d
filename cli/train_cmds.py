"""`nasflow train`: a thin shell over nasflow.train.loop.run_train; several architectures (or a
population folder) are retrained as one population (cli/train_population.py over
nasflow/train/population.py)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nasflow.errors import NasflowError
from nasflow.space.load import load_space
from nasflow.tasks.presets import apply_preset, exclusive_options, preset_section
from nasflow.space.schema import Space
from nasflow.search.retrain_targets import targets
from nasflow.train.loop import run_train
from nasflow.train.config import TrainConfig, preset_changes
from nasflow.train.run_dir import TrainRunDir

from .app import app, console, on_ranks, parse_sets, preset_line
from .population_view import CPUS_HELP, EXECUTOR_HELP, GPUS_HELP, MEMORY_HELP, RAY_ADDRESS_HELP
from .search_cmds import parse_options
from .train_population import is_population, train_population
from .train_view import TrainReporter, summary_table, warm_start_lines


# Config fields and the flags that set them: errors name what the user typed.
TRAIN_FLAGS = {"steps": "--steps", "batch_size": "--batch", "optim.lr": "--lr", "lr_halve_every": "--lr-halve-every",
               "seed": "--seed", "validate_every": "--validate-every", "log_every": "--log-every",
               "checkpoint_every": "--checkpoint-every", "device": "--device"}


@app.command()
def train(
    archs: Annotated[Optional[list[Path]], typer.Argument(metavar="ARCH...",
        help="The architecture to train: a derived arch.yaml, spaces/dlsr/dlsr.yaml or a built-in name "
             "such as dlsr/dlsr-s (nasflow spaces; optional with --resume). Several (RUN/derived ...) or a "
             "population folder: each retrained into RUN/retrained, as one population.")] = None,
    scale: Annotated[Optional[int], typer.Option(help="Set the architecture's `scale` param (2, 3, 4).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Folder of training images (the task option `data`).")] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", metavar="MODEL",
        help="Warm-start from a model directory: every tensor whose name and shape match.")] = None,
    preset: Annotated[Optional[str], typer.Option(
        help="The task's named settings, e.g. quick or paper; flags override them. Default: the "
             "task's quick preset if it has one; none: no preset.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps. Default: the preset's (--preset); paper 2e6.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Global batch size. Default: the preset's (--preset); paper 32.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate. Default: the preset's (--preset); paper 3e-4.")] = None,
    lr_halve_every: Annotated[Optional[int], typer.Option(help="Halve the lr every N steps. Default: the preset's (--preset); paper 4e5.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the run: same seed, same weights (default 0).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o",
        help="Run directory (default runs/ARCH-train-TIME).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out where it stopped.")] = False,
    task: Annotated[Optional[str], typer.Option(help="Task adapter (default: the architecture's `task:`).")] = None,
    task_opt: Annotated[Optional[list[str]], typer.Option("--task-opt",
        help="A task option: --task-opt mu=0.1")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set",
        help="Override an architecture param: --set channels=18")] = None,
    validate_every: Annotated[Optional[int], typer.Option(help="Steps between validations. Default: the preset's (--preset).")] = None,
    log_every: Annotated[Optional[int], typer.Option(help="Steps between metrics.jsonl records.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Steps between checkpoints.")] = None,
    device: Annotated[Optional[str], typer.Option(
        help="auto, cpu, cuda, cuda:1 ... (default auto: cuda if there is one).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard",
        help="Also write TensorBoard logs to RUN/tensorboard (pip install 'nasflow\\[tensorboard]').")] = False,
    parallel: Annotated[Optional[int], typer.Option(
        help="A population: retrainings at a time (local: processes, default 1; ray: default all).")] = None,
    executor: Annotated[str, typer.Option(help="A population: " + EXECUTOR_HELP)] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help=RAY_ADDRESS_HELP)] = None,
    cpus_per_run: Annotated[Optional[float], typer.Option(help=CPUS_HELP)] = None,
    gpus_per_run: Annotated[Optional[float], typer.Option(help=GPUS_HELP)] = None,
    memory_per_run: Annotated[Optional[str], typer.Option(help=MEMORY_HELP)] = None,
) -> None:
    """Retrain a derived architecture: Adam, lr halved every N steps, periodic validation;
    writes a resumable run directory and, at the end, RUN/model (and RUN/best).

    Ctrl-C stops after the current step and saves a checkpoint; --resume continues it.
    Under torchrun, each process trains on its share of every batch (DDP).

    A population: `nasflow train runs/seeds/*/derived` (or `nasflow train runs/seeds`) retrains
    each RUN/derived into RUN/retrained, --parallel K at a time or on Ray (--executor ray), with
    a line per run and a table at the end; the same command continues a stopped population.
    """
    population = is_population(archs or [], executor, parallel, ray_address, cpus_per_run, gpus_per_run,
                               memory_per_run)
    arch = archs[0] if archs and not population else None
    overrides = parse_sets(set_)
    if scale is not None:
        overrides["scale"] = scale
    options = parse_options(task_opt)
    if data is not None:
        options["data"] = str(data)
    given: dict[str, Any] = {
        "steps": steps, "batch_size": batch, "lr_halve_every": lr_halve_every, "seed": seed, "task": task,
        "validate_every": validate_every, "log_every": log_every, "checkpoint_every": checkpoint_every,
        "device": device, "init_from": str(init_from) if init_from is not None else None,
        "overrides": overrides or None, "arch": str(arch) if arch is not None else None,
        "tensorboard": True if tensorboard else None,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    given_arch: Space | None = None
    if population:
        if out is not None or resume:
            raise NasflowError("a population retrains each RUN/derived into RUN/retrained: drop --out / --resume "
                               "(the same command continues a stopped population)")
        found = targets(archs or [], derive=True)  # a finished search not derived yet is derived first
        configs = [_new_config(t.arch, changes, options, lr, preset, task, echo=i == 0) for i, t in enumerate(found)]
        train_population(configs, found, executor, parallel, (ray_address, cpus_per_run, gpus_per_run, memory_per_run),
                         quiet)
        return
    if resume:
        if out is None:
            raise NasflowError("--resume needs the run directory: --out RUN_DIR")
        if preset is not None:
            raise NasflowError("--preset sets up a new run; a resumed run keeps its own settings")
        base = TrainRunDir.open(out).config().to_json()
        if options:
            changes["task_options"] = {**base["task_options"], **options}
        if lr is not None:
            changes["optim"] = {**base["optim"], "lr": lr}
        config = TrainConfig.build({**base, **changes}, TRAIN_FLAGS)
        given_arch = load_space(arch) if arch is not None else None
    else:
        if arch is None:
            raise NasflowError("give an architecture to train (a derived arch.yaml), or --resume --out RUN_DIR")
        config = _new_config(arch, changes, options, lr, preset, task)
        out = out or Path("runs") / f"{arch.stem}-train-{time.strftime('%Y%m%d-%H%M%S')}"
    result = on_ranks(config.device, out, lambda out, ctx: run_train(
        config, out, arch=given_arch, resume=resume, ctx=ctx,
        reporter=None if quiet or not ctx.is_main else TrainReporter(console, validate_every=config.validate_every)))
    if result is None:  # rank 0 alone reports
        return
    console.print(summary_table(result))
    if result.init is not None:
        for line in warm_start_lines(result.init):
            console.print(line, highlight=False, soft_wrap=True)
    if result.model_dir is not None:
        console.print(f"model directory: [bold]{result.model_dir}[/] (nasflow eval {result.model_dir})")
    console.print(f"run directory: [bold]{result.run_dir}[/]")
    if not result.finished:
        console.print(f"[yellow]stopped at step {result.step} of {config.steps}[/]; checkpoint saved. "
                      f"Continue with: nasflow train --resume --out {result.run_dir}")
        raise typer.Exit(130)


def _new_config(arch: Path, changes: dict[str, Any], options: dict[str, Any], lr: float | None, preset: str | None,
                task: str | None, echo: bool = True) -> TrainConfig:
    """A new run's config: the arch's task preset, then the flags (`changes`)."""
    space = load_space(arch)
    changes = {**changes, "arch": str(arch)}
    if options:
        changes["task_options"] = options
    used, settings = preset_section(task or space.task, preset, "train")
    base = preset_changes(used, settings, task or space.task) if used is not None else {}
    if lr is not None:
        changes["optim"] = {**base.get("optim", {}), "lr": lr}
    changes = apply_preset(base, changes, space.params, exclusive_options(task or space.task))
    if used is not None and echo:
        console.print(preset_line(used, task or space.task), highlight=False)
    return TrainConfig.build(changes, TRAIN_FLAGS)
