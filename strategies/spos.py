"""SPOS (Guo, Zhang, Mu, Heng, Liu, Wei, Sun: "Single Path One-Shot Neural Architecture Search
with Uniform Sampling", ECCV 2020).

Supernet training: every step draws one single path uniformly (one candidate op per choice
decision, k distinct inputs of a dense node that keeps k), computes only it (a sparse
relaxation) and takes a weights step; there are no arch parameters to learn. The draws come
from the strategy's own generator (its state): exact resume, the same path on every rank.

After the last step, `finish` runs the evolution of strategies/evolution.py over the trained
supernet: every candidate path is scored on the task's own metric (Task.best(): its name and
direction) with `task.evaluate` on the supernet fixed to that path, after recomputing the
BatchNorm running statistics of that path on a few fixed training batches where the space
has BatchNorm. Only paths under the run's `--budget` (params, madds, or latency from the
latency table) are admitted. Progress is checkpointed after every generation (Ctrl-C during
the evolution keeps the trained supernet and the generations done). The best path is the
run's chosen genotype (`nasflow derive RUN` derives it); RUN/spos/evolution.json holds
every scored path, the best and the Pareto set (cost vs metric), RUN/spos/pareto.txt its table.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Literal

import torch
from pydantic import Field
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from nasflow.compile.relaxation import Relaxation
from nasflow.compile.supernet import ArchParameters, Supernet
from nasflow.derive.genotype import Genotype
from nasflow.errors import NasflowError
from nasflow.runs.files import write_text_atomic
from nasflow.runs.optim import make_optimizer
from nasflow.search.budget import Budget
from nasflow.search.end import SearchEnd
from nasflow.search.latency_table import load_table
from nasflow.space.graph import Graph
from nasflow.tasks.contract import Batch, Metric, checked_metrics

from .base import Strategy, register_strategy
from .evolution import Evolution, EvolutionSettings, Path, PathSpace, Scored
from .options import StrategyOptions
from .sampling import OwnGenerator

OUT_DIR = "spos"
# The evolution's generator is seeded apart from the training draws'.
_EVOLUTION_SEED = 0x5E1EC7


class SPOSOptions(StrategyOptions):
    population: int = Field(8, ge=2, description="architectures per generation of the evolution")
    generations: int = Field(4, ge=1, description="generations of the evolution, the first one random")
    parents: int = Field(4, ge=1, description="the best architectures so far, from which each generation is bred")
    mutation_prob: float = Field(0.1, ge=0, le=1, description="probability a mutation redraws each decision")
    bn_batches: int = Field(4, ge=1, description="training batches BatchNorm statistics are recomputed on, "
                                                 "per architecture (spaces with BatchNorm)")
    executor: Literal["local", "ray"] = Field("local", description="where the evolution scores its candidates: "
                                              "here, or each generation's spread over a Ray cluster (nasflow[ray])")
    ray_address: str | None = Field(None, description="with executor=ray: a running cluster, auto or HOST:PORT "
                                                      "(default: a local Ray)")


class UniformPath(Relaxation):
    """Per decision, a uniformly drawn candidate (k distinct inputs of a dense node): weights
    exactly 1 there and 0 elsewhere, no gradient. With `fixed` set, that path instead."""

    sparse = True

    def __init__(self, space: PathSpace, draws: OwnGenerator) -> None:
        self.space, self.draws = space, draws
        self.fixed: Path | None = None

    def __call__(self, arch: ArchParameters) -> dict[str, Tensor]:
        out = {}
        for i, label in enumerate(self.space.labels):
            pick = self.fixed[i] if self.fixed is not None else self.space.draw(i, self.draws.generator)
            logits = arch.logits(label).detach()
            weights = torch.zeros_like(logits)
            weights[list(pick)] = 1.0
            out[label] = weights
        return out


@register_strategy("spos")
class SPOS(Strategy):
    """SPOS: a uniformly drawn single path per step, then an evolution under the budget."""

    Options = SPOSOptions
    options: SPOSOptions
    learns_arch = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.draws = OwnGenerator(self.config.seed)
        self.path_relaxation: UniformPath | None = None  # set by relaxation(), once the graph is known
        self.evolution: dict[str, Any] | None = None  # the last saved progress of the evolution

    def mixed_op(self) -> str:
        return "plain"  # one candidate per forward: nothing to fuse

    def attach(self, model: Supernet) -> None:
        self.path_relaxation = UniformPath(PathSpace(model.graph, self.derivation_rule()), self.draws)
        check_population(self.path_relaxation.space, self.options.population)
        if self.options.executor == "ray":  # before the search, not after it: Ray installed?
            from nasflow.runs.ray_tasks import require_ray

            require_ray()
        super().attach(model)

    def relaxation(self) -> Relaxation:
        assert self.path_relaxation is not None, "attach() builds the relaxation"
        return self.path_relaxation

    def optimizers(self, model: Supernet) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
        w = self.config.weights_optim  # no arch optimizer: SPOS learns no arch parameters
        return make_optimizer(model.weights(), "adam", lr=w.lr, betas=w.betas, weight_decay=w.weight_decay), None

    def step(self, model: Supernet, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        return self.weights_step(model, train_batch)

    def step_cost(self) -> float:
        return 1.0  # a strategy step is a warm-up step: one drawn path's forward / backward

    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        raise NasflowError("SPOS learns no architecture parameters: it has no arch gradient")

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(self.draws.state_dict())
        if self.evolution is not None:
            state["evolution"] = self.evolution
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.draws.load_state_dict(state)
        self.evolution = state.get("evolution")

    # --- the evolution ---------------------------------------------------------------------
    def finish(self, end: SearchEnd) -> Genotype | None:
        assert self.path_relaxation is not None, "attach() comes before finish()"
        space = self.path_relaxation.space
        metric = end.task.best()
        budget, costs = cost_model(end.config, end.graph)
        limit = budget.limit if end.config.budget is not None else None
        cheapest = check_budget(space, costs, budget, end.config.budget)
        o = self.options
        evo = Evolution(space, EvolutionSettings(o.population, o.generations, o.parents, o.mutation_prob),
                        metric.higher_is_better, lambda p: costs.of_genotype(end.graph, space.genotype(p)),
                        limit, self.config.seed + _EVOLUTION_SEED, floor=budget.floor)
        saved = self.evolution
        if saved is not None and saved["step"] == end.step:  # resumed: go on from the last generation saved
            evo.load_state(saved["state"])
        else:  # a fresh evolution (or the supernet trained on since the last one)
            evo.start(cheapest)
            self._commit(evo, end.step)

        def checkpoint() -> None:
            self._commit(evo, end.step)
            end.save()

        scorer = PathScorer(end, self.loss_fn, metric, self.path_relaxation, o.bn_batches)
        score, close = scorer.score, scorer.close
        if o.executor == "ray":
            score, close = _scores_on_ray(evo, scorer, o.ray_address, end.device)
        try:
            if not evo.run(score, checkpoint, end.stop_requested):
                return None
        finally:
            close()
        if not evo.scored:
            raise NasflowError("the evolution scored no architecture")
        _write_results(end, evo, metric, budget, space)
        return space.genotype(evo.best().path)

    def _commit(self, evo: Evolution, step: int) -> None:
        self.evolution = {"step": step, "state": evo.state()}


def _scores_on_ray(evo: Evolution, scorer: PathScorer, address: str | None,
                   device: torch.device) -> tuple[Callable[[Path], float], Callable[[], None]]:
    """The evolution's score hook on Ray (generation_scores over ray_scorer's pool); (score, close)."""
    pool = ray_scorer(scorer, address, gpus=1.0 if device.type == "cuda" else 0.0)

    def close() -> None:
        pool.close()
        scorer.close()

    return generation_scores(evo, pool), close


def ray_scorer(scorer: PathScorer, address: str | None, cpus: float = 1.0, gpus: float = 0.0,
               memory: int | None = None) -> Any:
    """A RayMap scoring paths as `scorer` does here: Ray tasks, each a PathScorer on a copy of
    its supernet (put once in Ray's object store) with the same fixed batches."""
    from nasflow.runs.ray_tasks import RayMap

    if scorer.end.ctx.enabled:  # every rank would spread the same candidates again
        raise NasflowError("--strategy-opt executor=ray scores the candidates on a Ray cluster: run the search "
                           "without torchrun, or score here (executor=local)")
    shared = (scorer.end.model, scorer.relaxation, scorer.end.task, scorer.loss_fn, scorer.metric, scorer.batches)
    return RayMap(_score_paths, shared, address, cpus=cpus, gpus=gpus, memory=memory)


def generation_scores(evo: Evolution, pool: Any) -> Callable[[Path], float]:
    """The evolution's score hook over `pool` (a RayMap): a generation's first call scores all
    its new paths at once, the others read the results."""
    done: dict[Path, float] = {}

    def score(path: Path) -> float:
        if path not in done:
            known = {s.path for s in evo.scored}
            todo = list(dict.fromkeys(p for p in evo.population if p not in known and p not in done))
            done.update(zip(todo, pool.map(todo)))
        return done.pop(path)

    return score


def _score_paths(shared: tuple[Any, ...], paths: list[Path]) -> list[float]:
    """A Ray task: `paths` scored as PathScorer scores them here, on this worker's copy."""
    model, relaxation, task, loss_fn, metric, batches = shared
    end = SimpleNamespace(model=model, task=task, train_batches=lambda n: batches)
    scorer = PathScorer(end, loss_fn, metric, relaxation, len(batches))  # type: ignore[arg-type]
    try:
        return [scorer.score(p) for p in paths]
    finally:
        scorer.close()


def check_population(space: PathSpace, population: int) -> None:
    """One error, before the search starts, for a population the space cannot fill: the
    evolution draws distinct paths, and drew on and on for ones that did not exist."""
    count = space.count()
    if population > count:
        raise NasflowError(f"--strategy-opt population={population} is more than the {count:,} paths space "
                           f"'{space.graph.space.name}' has: use population={count} or fewer")


def check_budget(space: PathSpace, costs: Any, budget: Budget, given: str | None) -> Path:
    """The cheapest path; one error when even it is over the budget, or even the dearest is
    below a band's floor (`given`: the budget as the user wrote it, None: no budget)."""
    cheapest = space.cheapest(costs)
    if given is not None:
        least = costs.of_genotype(space.graph, space.genotype(cheapest))
        if least > budget.limit:
            raise NasflowError(f"budget {given}: no architecture of this space is under it (the cheapest costs "
                               f"{budget.format(least)}); raise the budget")
        most = costs.of_genotype(space.graph, space.genotype(space.dearest(costs))) if budget.floor else 0.0
        if most < budget.floor:
            raise NasflowError(f"budget {given}: no architecture of this space reaches its floor (the dearest costs "
                               f"{budget.format(most)}); lower the floor")
    return cheapest


class PathScorer:
    """Scores a path: the supernet fixed to it, BatchNorm statistics recomputed on fixed
    training batches (when it has BatchNorm), the task's metric from task.evaluate; then the
    supernet's own BatchNorm buffers and relaxation are put back. close() puts back the global RNG."""

    def __init__(self, end: SearchEnd, loss_fn: Any, metric: Metric, relaxation: UniformPath, n_batches: int) -> None:
        self.end, self.loss_fn, self.metric, self.relaxation = end, loss_fn, metric, relaxation
        self.bn = batch_norms(end.model)
        ids = {id(bn) for bn in self.bn}
        self.saved_bn = {f"{name}.{b}": t.detach().clone() for name, m in end.model.named_modules()
                         if id(m) in ids for b, t in m.named_buffers(recurse=False)}
        self.batches = end.train_batches(n_batches) if self.bn else []
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def score(self, path: Path) -> float:
        model = self.end.model
        self.relaxation.fixed = path
        try:
            if self.bn:
                recalibrate(model, self.bn, self.batches, self.loss_fn)
            was_training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    values = checked_metrics(self.end.task, "evaluate", self.end.task.evaluate(model))
            finally:
                model.train(was_training)
        finally:
            self.relaxation.fixed = None
            if self.saved_bn:  # the trained supernet's own statistics: what every checkpoint holds
                model.load_state_dict(self.saved_bn, strict=False)
        if self.metric.name not in values:
            raise NasflowError(f"task '{self.end.task.name}' evaluate() returned {', '.join(values) or 'nothing'}, "
                               f"not its metric '{self.metric.name}'")
        return float(values[self.metric.name])

    def close(self) -> None:
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recalibrate(model: nn.Module, bns: list[nn.modules.batchnorm._BatchNorm], batches: list[Batch],
                loss_fn: Any) -> None:
    """Running statistics recomputed from scratch for the path the model is fixed to: reset,
    then the plain average over `batches` (momentum None) of forwards in training mode."""
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average: each batch counts alike
        model.train()
        with torch.no_grad():
            for batch in batches:
                loss_fn(model, batch)  # the task's forward; the loss itself is not used
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was_training)


def cost_model(config: Any, graph: Graph) -> tuple[Budget, Any]:
    """The run's budget (its metric and limit) and the costs by decision; without a budget,
    parameters with no limit (the Pareto set's cost axis)."""
    budget = Budget.parse(config.budget) if config.budget is not None else Budget("params", math.inf)
    table = load_table(config.latency_table) if config.latency_table is not None else None
    return budget, budget.costs(graph, table)


def _row(s: Scored, space: PathSpace, metric: Metric) -> dict[str, Any]:
    return {"genotype": space.genotype(s.path).to_json(), metric.name: s.score, "cost": s.cost,
            "generation": s.generation}


def _write_results(end: SearchEnd, evo: Evolution, metric: Metric, budget: Budget, space: PathSpace) -> None:
    """RUN/spos/evolution.json and pareto.txt (rank 0), and the table as the search's note."""
    best, front = evo.best(), evo.pareto()
    direction = "higher" if metric.higher_is_better else "lower"
    table = Table(title=f"SPOS evolution: Pareto set of {len(evo.scored)} architectures "
                        f"({budget.metric} vs {metric.name}, {direction} is better)")
    table.add_column(budget.metric, justify="right")
    table.add_column(metric.name, justify="right")
    table.add_column("gen", justify="right")
    table.add_column("genotype")
    for s in front:
        mark = " (best)" if s.path == best.path else ""
        table.add_row(budget.format(s.cost), f"{s.score:.4f}", str(s.generation), f"{space.genotype(s.path)}{mark}")
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(table)
    text = console.export_text()
    line = f"SPOS best: {metric.name} {best.score:.4f}, {budget.metric} {budget.format(best.cost)}" + \
        (f" (budget {end.config.budget})" if end.config.budget is not None else "") + f": {space.genotype(best.path)}"
    end.notes += [table, line]
    if not end.ctx.is_main:
        return
    out = end.run_dir / OUT_DIR
    out.mkdir(exist_ok=True)
    data = {"metric": metric.name, "higher_is_better": metric.higher_is_better, "cost": budget.metric,
            "budget": end.config.budget, "supernet_step": end.step, "generations": evo.generation,
            "best": _row(best, space, metric), "pareto": [_row(s, space, metric) for s in front],
            "scored": [_row(s, space, metric) for s in evo.scored]}
    write_text_atomic(out / "evolution.json", json.dumps(data, indent=1) + "\n")
    write_text_atomic(out / "pareto.txt", text)
