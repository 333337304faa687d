"""`nasflow search` and `nasflow derive`: thin shells over nasflow.search.loop and nasflow.search.derive_run."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from nasflow.runs.config import OptionValue
from nasflow.search.config import SearchConfig
from nasflow.space.cost import parse_size
from nasflow.errors import NasflowError, hook_error
from nasflow.space.load import load_space

from .app import app, console, on_ranks, parse_sets, preset_line
from .population_view import CPUS_HELP, EXECUTOR_HELP, GPUS_HELP, MEMORY_HELP, RAY_ADDRESS_HELP, population_options
from .strategy_help import options_help, strategy_names

# The search machinery imports torch: it is imported where a command runs, so `nasflow search
# --help` and `derive --help` import none (tests/test_torch_free.py).
if TYPE_CHECKING:
    from .search_view import RichReporter

def parse_options(items: list[str] | None, flag: str = "--task-opt",
                  example: str = "patch=64") -> dict[str, OptionValue]:
    """`--task-opt mu=0.2 --task-opt root=data` -> {"mu": 0.2, "root": "data"}: ints, floats
    and true/false are converted, anything else stays a string."""
    out: dict[str, OptionValue] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise NasflowError(f"{flag} '{item}' must look like name=value, e.g. {flag} {example}")
        value: OptionValue = text
        for convert in (int, float):
            try:
                value = convert(text)
                break
            except ValueError:
                pass
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        out[key.strip()] = value
    return out


def parse_steps(text: str) -> list[int]:
    """'5e4,1e5,1.5e5' -> [50000, 100000, 150000]; 'none' -> []."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        steps = [float(t) for t in text.split(",")]
    except ValueError:
        raise NasflowError(f"--snapshot-steps '{text}' must be steps separated by commas, e.g. 5e4,1e5") from None
    if any(s != int(s) or s < 1 for s in steps):
        raise NasflowError(f"--snapshot-steps '{text}': steps must be positive whole numbers")
    return [int(s) for s in steps]


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:  # the task's cost size
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise NasflowError(f"--size: {exc}") from None


# Config fields and the flags that set them: errors name what the user typed.
SEARCH_FLAGS = {"steps": "--steps", "warmup": "--warmup", "batch_size": "--batch", "gamma": "--gamma",
                "weights_optim.lr": "--lr", "arch_optim.lr": "--arch-lr", "weights_schedule": "--lr-schedule",
                "seed": "--seed", "log_every": "--log-every", "checkpoint_every": "--checkpoint-every", "device": "--device",
                "amp": "--amp", "strategy": "--strategy", "regularizer": "--regularizer", "budget": "--budget",
                "snapshot_steps": "--snapshot-steps"}


@app.command()
def search(
    space: Annotated[Optional[Path], typer.Argument(
        help="The space file to search, or a built-in space's name: dlsr, darts ... (nasflow spaces; "
             "optional with --resume).")] = None,
    strategy: Annotated[Optional[str], typer.Option(
        help=f"{', '.join(strategy_names())}, or a registered strategy (default milenas; "
             "list: nasflow strategies).")] = None,
    strategy_opt: Annotated[Optional[list[str]], typer.Option("--strategy-opt",
        help=f"A strategy option: --strategy-opt lambda=0.5. Options (default): {options_help()}.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Steps in all, warm-up included. Default: the preset's (--preset); paper 200000.")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Steps that update only the weights. Default: the preset's (--preset); paper 20000.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Batch size. Default: the preset's (--preset); paper 64.")] = None,
    lam: Annotated[Optional[float], typer.Option("--lambda",
        help="MiLeNAS weight of grad_A L_val (default 1): short for --strategy-opt lambda=X.")] = None,
    gamma: Annotated[Optional[float], typer.Option(help="Weight of the cost regularizer. Default: the preset's (--preset); paper 0.2.")] = None,
    regularizer: Annotated[Optional[str], typer.Option(
        help="params, madds, latency (needs --latency-table) or none (default params).")] = None,
    latency_table: Annotated[Optional[Path], typer.Option(
        help="A latency table of this space on this machine (nasflow profile SPACE -o FILE).")] = None,
    budget: Annotated[Optional[str], typer.Option(
        help="Steer the search below a budget: latency=40ms (needs --latency-table), params=300k, madds=20G; "
             "a band params=50k..56k (spos, sandwich) picks within it.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Weights' Adam learning rate. Default: the preset's (--preset); paper 3e-4.")] = None,
    arch_lr: Annotated[Optional[float], typer.Option(help="Arch params' Adam learning rate. Default: the preset's (--preset); paper 3e-4.")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(
        help="The weights' lr schedule: constant, or cosine to 0 over --steps (SPOS and the sandwich only train "
             "weights, as a retraining does). Default: the preset's (--preset); paper constant.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the run: same seed, same search (default 0).")] = None,
    seeds: Annotated[Optional[str], typer.Option(
        help="Independent searches, one per seed, in OUT/seed-N: --seeds 0,1,2,3,4,5 or 0-5.")] = None,
    parallel: Annotated[Optional[int], typer.Option(
        help="With --seeds: searches at a time (default: one per GPU, else one per 8 CPU cores).")] = None,
    executor: Annotated[str, typer.Option(help="With --seeds: " + EXECUTOR_HELP)] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help=RAY_ADDRESS_HELP)] = None,
    cpus_per_run: Annotated[Optional[float], typer.Option(help=CPUS_HELP)] = None,
    gpus_per_run: Annotated[Optional[float], typer.Option(help=GPUS_HELP)] = None,
    memory_per_run: Annotated[Optional[str], typer.Option(help=MEMORY_HELP)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o",
        help="Run directory (default runs/SPACE-TIME).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set",
        help="Override a space param: --set channels=18")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out where it stopped.")] = False,
    task: Annotated[Optional[str], typer.Option(help="Task adapter (default: the space's `task:`).")] = None,
    task_opt: Annotated[Optional[list[str]], typer.Option("--task-opt",
        help="A task option: --task-opt patch=64")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Folder of training images (the task option `data`).")] = None,
    snapshot_steps: Annotated[Optional[str], typer.Option(
        help="Genotype snapshots, e.g. 5e4,1e5,1.5e5 or none. Default: the preset's (--preset).")] = None,
    log_every: Annotated[Optional[int], typer.Option(help="Steps between metrics.jsonl records. Default: the preset's (--preset); without one 50.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Steps between checkpoints. Default: the preset's (--preset); without one 1000.")] = None,
    device: Annotated[Optional[str], typer.Option(
        help="auto, cpu, cuda, cuda:1 ... (default auto: cuda if there is one).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard",
        help="Also write TensorBoard logs to RUN/tensorboard (pip install 'nasflow\\[tensorboard]').")] = False,
    fuse: Annotated[Optional[bool], typer.Option("--fuse/--no-fuse",
        help="Fused mixed-op kernels (default on); --no-fuse: every candidate separately. A strategy "
             "computing one candidate at a time (GDAS, SPOS) runs, and records, fuse off.")] = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last",
        help="NHWC memory format (default: on for the CPU).")] = None,
    reuse_forward: Annotated[Optional[bool], typer.Option("--reuse-forward/--no-reuse-forward",
        help="MiLeNAS: grad_A L_train from the weights step's backward (at the weights before "
             "their update); one forward/backward fewer per step (default off). Short for "
             "--strategy-opt reuse_forward=true.")] = None,
    amp: Annotated[Optional[str], typer.Option(help="none or bf16 autocast (default none; not exact).")] = None,
    kernel_transform: Annotated[Optional[bool], typer.Option("--kernel-transform/--no-kernel-transform",
        help="A searched kernel size reads the larger kernel's centre through a learned matrix (Once-for-All).")] = None,
    levers: Annotated[str, typer.Option(help=(
        "auto: time the exact speed levers (fused or plain mixed ops, channels-last or NCHW) on "
        "this machine once and use the fastest (cached; recorded in the run's config), unless the "
        "run is too short to repay the timing (then the defaults, or a cached choice); given: "
        "--fuse / --channels-last as set. Inexact levers (--amp bf16, MiLeNAS reuse_forward) only when asked."))] = "auto",
    preset: Annotated[Optional[str], typer.Option(
        help="The task's named settings, e.g. quick or paper; flags override them. Default: the "
             "task's quick preset if it has one; none: no preset.")] = None,
) -> None:
    """Search a space: warm-up, then strategy steps (MiLeNAS by default; `nasflow strategies`
    lists them); writes a resumable run directory.

    Ctrl-C stops after the current step and saves a checkpoint; --resume continues it.
    """
    from nasflow.search.derive_run import derive_genotype
    from nasflow.search.loop import fuse_that_runs, run_search
    from nasflow.search.multiseed import parse_seeds, seed_dir
    from nasflow.search.run_dir import RunDir
    from nasflow.tasks.presets import apply_preset, exclusive_options, preset_section

    from .search_view import cost_table, softmax_table

    strategy_options = parse_options(strategy_opt, "--strategy-opt", "lambda=0.5")
    for key, value in (("lambda", lam), ("reuse_forward", reuse_forward)):  # MiLeNAS's shortcuts
        if value is not None:
            strategy_options[key] = value
    given: dict[str, Any] = {
        "strategy": strategy, "steps": steps, "warmup": warmup, "batch_size": batch,
        "gamma": gamma, "seed": seed, "task": task, "log_every": log_every, "weights_schedule": lr_schedule,
        "checkpoint_every": checkpoint_every, "device": device, "fuse": fuse,
        "channels_last": channels_last, "amp": amp, "kernel_transform": kernel_transform,
        "tensorboard": True if tensorboard else None,
        "regularizer": None if regularizer in ("none", "") else regularizer,
        "latency_table": str(latency_table) if latency_table is not None else None, "budget": budget,
        "snapshot_steps": parse_steps(snapshot_steps) if snapshot_steps is not None else None,
        "overrides": parse_sets(set_) if set_ else None,
        "task_options": {**parse_options(task_opt), **({"data": str(data)} if data is not None else {})}
        if task_opt or data is not None else None,
        "strategy_options": strategy_options or None,
        "space": str(space) if space is not None else None,
    }
    changes = {k: v for k, v in given.items() if v is not None or (k == "regularizer" and regularizer is not None)}
    if resume:
        if out is None:
            raise NasflowError("--resume needs the run directory: --out RUN_DIR")
        if preset is not None:
            raise NasflowError("--preset is for a new run; a resumed run keeps its own settings")
        # With --seeds, the seeds' runs share their config but for the seed: read one of them.
        runs = [seed_dir(out, s) for s in parse_seeds(seeds)] if seeds else [out]
        run = next((r for r in runs if (r / "config.json").is_file()), runs[0])
        base = RunDir.open(run).config().to_json()
        if strategy_options:  # merged into the run's, so a changed one is reported by name
            changes["strategy_options"] = {**base["strategy_options"], **strategy_options}
        for key, value in (("lr", lr), ("arch_lr", arch_lr)):
            if value is not None:
                group = "weights_optim" if key == "lr" else "arch_optim"
                changes[group] = {**base[group], "lr": value}
        # An inert --fuse / --no-fuse (GDAS, SPOS) keeps the run's record: no change.
        config = fuse_that_runs(SearchConfig.build({**base, **changes}, SEARCH_FLAGS), run, base["fuse"])
        given_space = load_space(space) if space is not None else None
    else:
        if space is None:
            raise NasflowError("give a space file to search (or --resume --out RUN_DIR)")
        space_file = load_space(space)
        used, settings = preset_section(task or space_file.task, preset, "search")
        if used is not None:
            SearchConfig.check_preset(settings, used, task or space_file.task)
            changes = apply_preset(settings, changes, space_file.params, exclusive_options(task or space_file.task))
            console.print(preset_line(used, task or space_file.task), highlight=False)
        # --lr / --arch-lr change the preset's learning rate, not its other optimizer settings.
        if lr is not None:
            changes["weights_optim"] = {**(changes.get("weights_optim") or {}), "lr": lr}
        if arch_lr is not None:
            changes["arch_optim"] = {"betas": (0.5, 0.999), **(changes.get("arch_optim") or {}), "lr": arch_lr}
        config = SearchConfig.build(changes, SEARCH_FLAGS)
        given_space = None
        out = out or Path("runs") / f"{space.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not resume and levers == "auto" and fuse is None and channels_last is None:
        config = _auto_levers(config, given_space or load_space(space, config.overrides))
    elif levers not in ("auto", "given"):
        raise NasflowError(f"--levers must be auto or given, not '{levers}'")
    if not resume:  # a resumed run keeps the fuse its config recorded (an older run's inert True)
        config = _fuse_that_runs(config, asked=fuse)
    if seeds is not None:
        if seed is not None:
            raise NasflowError("give --seed for one search or --seeds for several, not both")
        _search_seeds(config, out, parse_seeds(seeds), given_space, resume, parallel, quiet,
                      (executor, ray_address, cpus_per_run, gpus_per_run, memory_per_run))
        return
    if parallel is not None:
        raise NasflowError("--parallel runs several seeds at a time: give --seeds too")
    if executor != "local" or any(v is not None for v in (ray_address, cpus_per_run, gpus_per_run, memory_per_run)):
        raise NasflowError("--executor ray runs a population: give --seeds (or use nasflow sweep); one search "
                           "over several GPUs or machines runs under torchrun")
    result = on_ranks(config.device, out, lambda out, ctx: run_search(
        config, out, space=given_space, resume=resume, ctx=ctx,
        reporter=None if quiet or not ctx.is_main else search_reporter(config, out if resume else None)))
    if result is None:  # rank 0 alone reports
        return
    console.print(f"run directory: [bold]{result.run_dir}[/]")
    for note in result.notes:  # what the strategy's end (SPOS's evolution) had to say
        if isinstance(note, str):
            console.print(note, highlight=False, markup=False)
        else:  # a rich renderable: drawn at the console's width
            console.print(note)
    what = (f"genotype chosen by {config.strategy} after step {result.step}" if result.chosen
            else f"genotype at step {result.step}")
    try:
        derived = derive_genotype(result.graph.space, result.genotype)
        console.print(cost_table(derived, what))
    except NasflowError as exc:  # e.g. a scale the task's cost size is not a multiple of
        console.print(f"{what}: {result.genotype} (cost: {exc})")
    if not result.chosen:
        console.print(softmax_table(result))
    if config.budget is not None:
        from nasflow.search.budget import derived_against_budget

        table = RunDir(result.run_dir).latency_table(config.latency_table, say=False)  # the run's copy
        console.print(derived_against_budget(result.graph, result.genotype, config.budget, table))
    if not result.finished:
        where = (f"after the last step, in {config.strategy}'s end (its progress so far is saved)"
                 if result.step >= config.steps else f"at step {result.step} of {config.steps}")
        console.print(f"[yellow]stopped {where}[/]; checkpoint saved. "
                      f"Continue with: nasflow search --resume --out {result.run_dir}")
        raise typer.Exit(130)


def search_reporter(config: SearchConfig, run_dir: Path | None = None) -> RichReporter:
    """The progress bar of a search with `config` (`run_dir`: the run resumed): its ETA prices
    a strategy step as the strategy says (Strategy.step_cost) until strategy steps are timed."""
    from nasflow.search.loop import strategy_class

    from .search_view import RichReporter

    cls = strategy_class(config, run_dir)
    cost = cls(config=config).step_cost()
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not cost > 0:
        raise hook_error(f"strategy '{cls.name}' step_cost", "a number > 0 (a step's cost in warm-up steps)", cost)
    return RichReporter(console, step_cost=cost)


def _fuse_that_runs(config: SearchConfig, asked: bool | None) -> SearchConfig:
    """The config with fuse as the strategy runs it (the library's fuse_that_runs, which
    run_search applies anyway), said in a line when --fuse was asked for and does nothing."""
    from nasflow.search.loop import fuse_that_runs

    runs = fuse_that_runs(config)
    if asked and runs.fuse != config.fuse:
        console.print(f"--fuse: {config.strategy}'s mixed op does not fuse; it runs plain (fuse=False)",
                      highlight=False)
    return runs


def _auto_levers(config: SearchConfig, space: Any) -> SearchConfig:
    """`--levers auto`: the fastest exact levers on this machine, recorded in the config."""
    from nasflow.hardware.auto import bf16_warning, choose_search_levers
    from nasflow.runs import distributed
    from nasflow.search.loop import fuse_that_runs
    from nasflow.tasks.contract import make_task

    warning = bf16_warning(config)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if distributed.launched_by_torchrun():
        return config  # every rank must agree: the given levers, no timing
    from nasflow.hardware.auto import run_threads
    from nasflow.hardware.timing import threads

    with console.status("levers auto: timing the exact configurations on this machine (once)"), threads(run_threads()):
        choice = choose_search_levers(config, space, make_task(config.task, config.task_options, space))
    shown = ", ".join(f"{k} {v:.3f} s/step" for k, v in choice.timings.items())
    if choice.source == "short run":
        shown = "timing them would cost more than they could save in a run this short"
    # What runs: a strategy whose mixed op ignores fuse (one candidate at a time) runs plain.
    timed = config.model_copy(update={**choice.value, "levers": "auto"})
    runs = fuse_that_runs(timed)
    inert = "" if runs.fuse == timed.fuse else f" ({config.strategy}'s mixed op does not fuse)"
    console.print(f"levers auto ({choice.source}): fuse={runs.fuse}{inert}, "
                  f"channels_last={runs.channels_last}" + (f" [dim]({shown})[/]" if shown else ""),
                  highlight=False)
    return runs


def _search_seeds(config: SearchConfig, out: Path | None, seeds: list[int], space: Any, resume: bool,
                  parallel: int | None, quiet: bool,
                  on: tuple[str, Optional[str], Optional[float], Optional[float], Optional[str]]) -> None:
    """`--seeds`: independent searches into OUT/seed-N, then a table of what each found."""
    from nasflow.runs import distributed
    from nasflow.search.multiseed import SeedOutcome, run_seeds, seed_dir
    from nasflow.search.report import build_report

    from .report_cmds import report_table

    if distributed.launched_by_torchrun():
        raise NasflowError("--seeds starts its own processes (--parallel); run it without torchrun, or run "
                           "one seed per torchrun job with --seed")
    if out is None:
        raise NasflowError("--seeds needs --out DIR (the seeds' runs go into DIR/seed-N)")

    executor = on[0]
    with population_options(*on, [seed_dir(out, s).name for s in seeds], quiet) as (ray, finished):
        def done(outcome: SeedOutcome) -> None:
            state = (f"[red]failed: {outcome.error}[/]" if outcome.error else
                     "done" if outcome.finished else f"[yellow]stopped at step {outcome.step}[/]")
            finished[outcome.run_dir.name] = state
            again = f", restarted from step {', '.join(map(str, outcome.restarts))}" if outcome.restarts else ""
            console.print(f"seed {outcome.seed}: {state} ({outcome.run_dir}{again})", highlight=False)

        reporter = None if quiet or executor != "local" else (lambda seed: search_reporter(config))
        outcomes = run_seeds(config, out, seeds, space=space, resume=resume, parallel=parallel,
                             reporter=reporter, on_done=done, executor=executor, ray=ray)
    searched = [o.run_dir for o in outcomes if o.error is None and o.step > 0]
    if searched:
        console.print(report_table(build_report(searched), f"{len(searched)} searches in {out}"))
    failed = [(f"seed {o.seed}", o) for o in outcomes if o.error]
    if failed:  # which finished, and (a full disk, a read-only folder) how to continue the rest
        from .population_failure import population_failure

        started = executor == "ray" or any((seed_dir(out, s) / "config.json").is_file() for s in seeds)
        again = (f"continue the rest with: nasflow search --seeds {','.join(map(str, seeds))} --resume --out {out}"
                 if started else "run the same command again")
        raise NasflowError(population_failure("seeds", len(seeds), failed,
                                              [f"seed {o.seed}" for o in outcomes if o.finished], again))
    if any(not o.finished for o in outcomes) or len(outcomes) < len(seeds):
        if executor == "ray":
            console.print("[yellow]stopped[/]; continue with the same command (started runs continue, "
                          "finished ones are kept)")
            raise typer.Exit(130)
        console.print(f"[yellow]stopped[/]; continue with: nasflow search --seeds {','.join(map(str, seeds))} "
                      f"--resume --out {out}")
        raise typer.Exit(130)


@app.command()
def derive(
    source: Annotated[Path, typer.Argument(help="A run directory, or a space file with --arch.")],
    arch: Annotated[Optional[Path], typer.Option(
        help="Arch safetensors (a checkpoint or snapshot) for a space file.")] = None,
    step: Annotated[Optional[int], typer.Option(
        help="Derive from the snapshot at this step, not the latest checkpoint.")] = None,
    topk_edges: Annotated[Optional[int], typer.Option("--topk-edges",
        help="Inputs kept per dense node (default: its topk).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o",
        help="Output directory (default RUN_DIR/derived or RUN_DIR/derived_step_N).")] = None,
    size: Annotated[Optional[str], typer.Option(
        help="Output size WIDTHxHEIGHT Multi-Adds are counted for (default: the task's, SR: 1280x720).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set",
        help="Override a param of the derived architecture: --set layers=20 --set C=36 rebuilds the searched cells deeper and wider.")] = None,
    budget: Annotated[Optional[list[str]], typer.Option(
        help="Pick the best subnet of the run's trained supernet under this budget (params=56k, madds=5G, "
             "latency=20ms) or within a band (params=50k..56k), with inherited weights; repeat for a Pareto set.")] = None,
    executor: Annotated[str, typer.Option(help="With --budget: where the evolutions score their candidates: local "
                                               "(here) or ray (Ray tasks; pip install 'nasflow\\[ray]').")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help=RAY_ADDRESS_HELP)] = None,
    cpus_per_run: Annotated[Optional[float], typer.Option(
        help="With --executor ray: CPUs each scoring task asks for (default 1).")] = None,
    memory_per_run: Annotated[Optional[str], typer.Option(
        help="With --executor ray: memory each scoring task asks for, 512M or 2G (default: none reserved).")] = None,
) -> None:
    """Derive the architecture a search found: writes OUT/arch.yaml and OUT/genotype.json."""
    from nasflow.search.derive_run import derive_from_arch, derive_run

    from .search_view import cost_table

    on_ray = (executor, ray_address, cpus_per_run, memory_per_run)
    if budget:
        _subnets(source, budget, out, on_ray)
        return
    if on_ray != ("local", None, None, None):
        raise NasflowError("--executor and its Ray options score the candidates of derive --budget: give --budget")
    hw = _size(size)
    if source.is_dir():
        if arch is not None:
            raise NasflowError("--arch is for a space file; a run directory has its own")
        # --set on a run: the searched cells rebuilt at another size (--set C=36)
        derived = derive_run(source, step=step, topk=topk_edges, out=out, size=hw, overrides=parse_sets(set_))
    else:
        if arch is None:
            raise NasflowError(f"'{source}' is not a run directory; to derive from a space file, "
                               "pass --arch ARCH.safetensors")
        if step is not None:
            raise NasflowError("--step picks a snapshot of a run directory; with --arch, pass the snapshot file itself")
        derived = derive_from_arch(source, arch, overrides=parse_sets(set_), topk=topk_edges, out=out, size=hw)
    at = f" (step {derived.step})" if derived.step is not None else ""
    console.print(cost_table(derived, f"{derived.space.name}{at}"))
    console.print(f"genotype: {derived.genotype}")
    console.print(f"wrote [bold]{derived.out_dir}/arch.yaml[/] and genotype.json")


def _subnets(source: Path, budgets: list[str], out: Optional[Path],
             on_ray: tuple[str, Optional[str], Optional[float], Optional[str]]) -> None:
    """`derive RUN --budget ...`: the best subnet under each budget, inherited weights."""
    from rich.table import Table

    from nasflow.runs.population_ray import RayOptions
    from nasflow.runs.ray_tasks import parse_memory
    from nasflow.strategies.subnets import pick_subnets
    from nasflow.search.budget import Budget

    if not source.is_dir():
        raise NasflowError(f"'{source}' is not a run directory; --budget picks subnets of a run's trained supernet")
    executor, address, cpus, memory = on_ray
    ray = None
    if any(v is not None for v in (address, cpus, memory)):
        ray = RayOptions(address=address, cpus_per_run=cpus,
                         memory_per_run=parse_memory(memory) if memory is not None else None)
    found = pick_subnets(source, budgets, out, executor=executor, ray=ray)
    table = Table(title=f"subnets of {source} (inherited weights, not retrained)")
    for col in ("budget", "cost", found[0].metric if found else "metric", "genotype", "model"):
        table.add_column(col)
    for s in found:
        b = Budget.parse(s.budget)
        table.add_row(s.budget, b.format(s.cost), f"{s.score:.4f}", str(s.genotype), str(s.model_dir))
    console.print(table)
