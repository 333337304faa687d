"""Train once, deploy many: the best subnets of a trained supernet under budgets, each with
the weights it inherits (Once-for-All, BigNAS).

    nasflow derive RUN --budget params=56k --budget params=30k

For each budget, SPOS's evolution (strategies/evolution.py) scores architectures of the run's
final supernet under it on the task's metric (BatchNorm statistics recomputed per
architecture on fixed training batches, as strategies/spos.py does); the best is derived
(RUN/subnets/<budget>/arch.yaml, genotype.json) and written as a model directory with the
weights it inherits from the supernet (sliced at its values: nasflow.compile.values, with
its own BatchNorm statistics), so `nasflow eval RUN/subnets/<budget>/model` scores it
without retraining. Its metric is measured again on that model: the same number the
evolution saw, since a subnet with inherited weights computes what the supernet restricted
to it computes. RUN/subnets/subnets.json lists them all: the Pareto set of one command.

With executor="ray" (`--executor ray`) the evolutions score their candidates as Ray tasks, as
SPOS's evolution on Ray does (spos.ray_scorer: copies of the supernet and the same fixed
batches, one pool for every budget): the same scores, subnets and subnets.json as here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasflow.compile.state import from_checkpoint
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype, derive_space, inherit_weights
from nasflow.errors import NasflowError
from nasflow.runs.distributed import single
from nasflow.runs.durable import write_failure
from nasflow.runs.files import write_text_atomic
from nasflow.runs.modeldir import save_model
from nasflow.search.budget import Budget
from nasflow.search.end import SearchEnd
from nasflow.search.latency_table import load_table
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.tasks.contract import checked_loss_fn, checked_metrics, make_task

from .evolution import Evolution, EvolutionSettings, PathSpace
from .sampling import OwnGenerator
from .spos import (_EVOLUTION_SEED, PathScorer, SPOSOptions, UniformPath, batch_norms, check_budget, check_population,
                   generation_scores, ray_scorer, recalibrate)

if TYPE_CHECKING:
    from nasflow.runs.population_ray import RayOptions

OUT_DIR = "subnets"
# Where the candidates are scored is the command's choice, not the run's: a run searched with
# SPOS's executor=ray does not send derive --budget to Ray.
_WHERE = ("executor", "ray_address")


@dataclass
class Subnet:
    budget: str
    genotype: Genotype
    cost: float  # in the budget's metric
    metric: str
    score: float  # the task's metric of the model directory, inherited weights
    model_dir: Path


def pick_subnets(run_dir: str | Path, budgets: list[str], out: str | Path | None = None,
                 options: dict[str, Any] | None = None, executor: str = "local",
                 ray: RayOptions | None = None) -> list[Subnet]:
    """The best architecture of run `run_dir`'s supernet under each budget, derived and
    written with its inherited weights under `out` (default RUN/subnets). `options`: the
    evolution's (SPOSOptions: population, generations, ...; default the run's own when it
    is an SPOS or sandwich run). executor="ray": candidates scored as Ray tasks, each asking
    for `ray`'s CPUs (default 1) and memory, on its cluster (default a local Ray)."""
    _check_executor(executor, ray)
    run = RunDir.open(run_dir)
    config = run.config()
    if not run.has_checkpoint():
        raise NasflowError(f"run '{run.path}' has no checkpoint yet: no supernet to pick subnets from")
    parsed = [Budget.parse(b) for b in budgets]
    if not parsed:
        raise NasflowError("give at least one budget: --budget params=56k (repeat it for a Pareto set)")
    space = run.space()
    graph = build_graph(space)
    if graph.is_derived:
        raise NasflowError(f"run '{run.path}' searched no decisions: its space is one architecture")
    task = make_task(config.task, config.task_options, space)
    own = config.strategy_options if config.strategy in ("spos", "sandwich") else {}
    settings = SPOSOptions.parse("the evolution", {k: v for k, v in {**own, **(options or {})}.items()
                                                   if k in SPOSOptions.model_fields and k not in _WHERE})
    device = torch.device("cpu")
    model = compile_graph(graph, mixed_op="plain", kernel_transform=config.kernel_transform)
    tensors, state = run.load_checkpoint()
    weights, arch = from_checkpoint(tensors)
    model.load_state_dict({**weights, **arch})
    rule = _rule(config)
    space_paths = PathSpace(graph, rule)
    check_population(space_paths, settings.population)
    relaxation = UniformPath(space_paths, OwnGenerator(config.seed))
    model.relaxation = relaxation
    end = SearchEnd(model, graph, task, config, run.path, single(device), int(state.get("step", 0)), device,
                    save=lambda: None, stop_requested=lambda: False)
    table = load_table(run.latency_table(config.latency_table)) if config.latency_table is not None else None
    metric = task.best()
    root = Path(out) if out is not None else run.path / OUT_DIR
    found: list[Subnet] = []
    scorer = PathScorer(end, checked_loss_fn(task), metric, relaxation, settings.bn_batches)
    pool = None
    try:
        if executor == "ray":  # one pool, the supernet put in Ray's object store once for every budget
            ray = ray or _ray_options()
            pool = ray_scorer(scorer, ray.address, cpus=ray.cpus_per_run or 1.0, memory=ray.memory_per_run)
        for budget, text in zip(parsed, budgets):
            costs = budget.costs(graph, table)
            cost = lambda p: costs.of_genotype(graph, space_paths.genotype(p))  # noqa: E731
            cheapest = check_budget(space_paths, costs, budget, text)
            evo = Evolution(space_paths, EvolutionSettings(settings.population, settings.generations, settings.parents,
                                                           settings.mutation_prob),
                            metric.higher_is_better, cost, budget.limit, config.seed + _EVOLUTION_SEED,
                            floor=budget.floor)
            evo.start(cheapest)
            evo.run(generation_scores(evo, pool) if pool is not None else scorer.score)
            best = evo.best()
            genotype = space_paths.genotype(best.path)
            where = root / _folder(text)
            try:
                model_dir = _write(model, graph, space, genotype, best.path, relaxation, scorer, where, text)
            except OSError as exc:  # a full disk, a read-only folder: say which subnets are written
                raise _write_failed(exc, text, found) from exc
            score = _score(model_dir, task, metric.name)
            found.append(Subnet(text, genotype, best.cost, metric.name, score, model_dir))
    finally:
        if pool is not None:
            pool.close()
        scorer.close()
    _save_list(root, found, metric.higher_is_better)
    return found


def _write_failed(exc: OSError, budget: str, found: list[Subnet]) -> Exception:
    failure = write_failure(exc)
    if failure is None:
        return exc
    kept = (f"Written and kept: {', '.join(f'{s.budget} ({s.model_dir})' for s in found)}" if found
            else "No subnet was written")
    return NasflowError(f"the subnet under {budget}: {failure.what}. {kept}. "
                        f"{failure.remedy[:1].upper()}{failure.remedy[1:]}, then run the same command again")


def _check_executor(executor: str, ray: RayOptions | None) -> None:
    from nasflow.runs.population_ray import check_executor
    from nasflow.runs.ray_tasks import require_ray

    check_executor(executor)
    if executor == "ray":
        require_ray()  # before anything is loaded: the install line
    elif ray is not None:
        raise NasflowError("--ray-address, --cpus-per-run and --memory-per-run need --executor ray")


def _ray_options() -> RayOptions:
    from nasflow.runs.population_ray import RayOptions

    return RayOptions()


def _rule(config: Any) -> Any:
    from nasflow.search.derive_run import derivation_rule_of

    return derivation_rule_of(config)


def _folder(budget: str) -> str:
    return budget.replace("=", "-").replace(" ", "")


def _write(model: Any, graph: Any, space: Any, genotype: Genotype, path: Any, relaxation: UniformPath,
           scorer: PathScorer, where: Path, budget: str) -> Path:
    """arch.yaml, genotype.json and model/ (inherited weights, the subnet's own BatchNorm statistics)."""
    derived_space = derive_space(space, genotype)
    derived = build_graph(derived_space)
    target = compile_graph(derived)
    bns = batch_norms(model)
    relaxation.fixed = path
    try:
        if bns:
            recalibrate(model, bns, scorer.batches, scorer.loss_fn)
        state = inherit_weights(graph, model.state_dict(), derived, target.state_dict(), genotype.values)
    finally:
        relaxation.fixed = None
        if scorer.saved_bn:
            model.load_state_dict(scorer.saved_bn, strict=False)
    where.mkdir(parents=True, exist_ok=True)
    write_text_atomic(where / "arch.yaml", derived_space.to_yaml())
    write_text_atomic(where / "genotype.json", json.dumps(genotype.to_json(), indent=2) + "\n")
    return save_model(where / "model", derived_space, state,
                      {"source": "inherited from a supernet (nasflow derive --budget)", "budget": budget,
                       "genotype": genotype.to_json()})


def _score(model_dir: Path, task: Any, metric: str) -> float:
    from nasflow.runs.modeldir import load_model

    model = load_model(model_dir)[0].eval()
    with torch.no_grad():
        values = checked_metrics(task, "evaluate", task.evaluate(model))
    if metric not in values:
        raise NasflowError(f"task '{task.name}' evaluate() returned {', '.join(values) or 'nothing'}, not '{metric}'")
    return float(values[metric])


def _save_list(root: Path, found: list[Subnet], higher: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"budget": s.budget, "cost": s.cost, s.metric: s.score, "genotype": s.genotype.to_json(),
             "model": str(s.model_dir)} for s in found]
    write_text_atomic(root / "subnets.json", json.dumps({"higher_is_better": higher, "subnets": rows}, indent=1) + "\n")
