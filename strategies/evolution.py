"""SPOS's evolutionary architecture search over a trained supernet (Guo et al., ECCV 2020,
section 3.3 and Algorithm 1), as plain data and a generator the caller owns.

A path is one pick per decision: the index of one candidate op of an alpha decision, the
sorted indices of k distinct candidate inputs of a beta one (a dense node keeping k). The
first generation is `population` random paths under the budget; each later one is bred from
the best `parents` found so far: half by mutation (each decision redrawn uniformly with
probability `mutation_prob`), the rest by crossover (each decision from either parent). A
child must be new (never scored) and under the budget (within it, for a band with a floor);
rejected draws are retried. Every path is scored once (by the caller: the task's metric on
the supernet); the best is the best score, ties to the cheaper. The Pareto set is every
scored path no other beats on both cost and score.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nasflow.derive.genotype import Genotype
from nasflow.derive.rule import DerivationRule
from nasflow.errors import NasflowError
from nasflow.search.decision_costs import DecisionCosts
from nasflow.space.graph import Graph

Path = tuple[tuple[int, ...], ...]  # per decision (graph.decisions' order), the picked indices
# Draws tried per child before one that is new and under the budget is given up on.
TRIES = 200


class PathSpace:
    """The single paths of a graph: drawing, mutating and crossing them, their genotype and cost.
    Only options the derivation rule allows are drawn (a `never_derive` op is never a path's)."""

    def __init__(self, graph: Graph, rule: DerivationRule) -> None:
        self.graph = graph
        self.labels = list(graph.decisions)
        self.allowed: list[list[int]] = []
        self.k: list[int] = []
        for label, d in graph.decisions.items():
            allowed = [i for i, o in enumerate(d.options) if rule.eligible(d, o)]
            k = d.topk if d.kind == "beta" else 1
            if len(allowed) < k:
                raise NasflowError(f"decision '{label}' has {len(allowed)} option(s) that may be derived but "
                                   f"needs {k}: no single path exists")
            self.allowed.append(allowed)
            self.k.append(k)

    def draw(self, i: int, g: torch.Generator) -> tuple[int, ...]:
        """k distinct allowed options of decision i, uniformly."""
        order = torch.randperm(len(self.allowed[i]), generator=g)[: self.k[i]].tolist()
        return tuple(sorted(self.allowed[i][j] for j in order))

    def random(self, g: torch.Generator) -> Path:
        return tuple(self.draw(i, g) for i in range(len(self.labels)))

    def mutate(self, path: Path, prob: float, g: torch.Generator) -> Path:
        redraw = torch.rand(len(path), generator=g).tolist()
        return tuple(self.draw(i, g) if r < prob else pick for i, (pick, r) in enumerate(zip(path, redraw)))

    def crossover(self, a: Path, b: Path, g: torch.Generator) -> Path:
        coins = torch.rand(len(a), generator=g).tolist()
        return tuple(x if c < 0.5 else y for x, y, c in zip(a, b, coins))

    def count(self) -> int:
        return math.prod(math.comb(len(a), k) for a, k in zip(self.allowed, self.k))

    def genotype(self, path: Path) -> Genotype:
        geno = Genotype()
        for label, pick in zip(self.labels, path):
            d = self.graph.decisions[label]
            if d.kind == "alpha":
                geno.choices[label] = d.options[pick[0]]
            elif d.kind == "value":
                geno.values[label] = d.values[pick[0]]
            else:
                geno.edges[label] = [d.options[j] for j in pick]
        return geno

    def cheapest(self, costs: DecisionCosts) -> Path:
        """The path of least cost among the allowed options (DecisionCosts.extreme: exact over
        the value decisions' assignments when they are few)."""
        return self._extreme(costs, dearest=False)

    def dearest(self, costs: DecisionCosts) -> Path:
        """The path of most cost, as `cheapest` finds the least."""
        return self._extreme(costs, dearest=True)

    def _extreme(self, costs: DecisionCosts, dearest: bool) -> Path:
        picks = costs.extreme(self.graph, dearest, dict(zip(self.labels, self.allowed)))[1]
        return tuple(picks[label] for label in self.labels)


@dataclass
class Scored:
    path: Path
    score: float  # the task's metric
    cost: float
    generation: int


@dataclass
class EvolutionSettings:
    population: int
    generations: int
    parents: int
    mutation_prob: float


class Evolution:
    """The evolution's progress as data (`state()` / `from_state()` for checkpoints): the
    generation to score next, its population, every path scored so far, the generator."""

    def __init__(self, space: PathSpace, settings: EvolutionSettings, higher_is_better: bool,
                 cost: Callable[[Path], float], limit: float | None, seed: int, floor: float = 0.0) -> None:
        self.space, self.settings, self.higher = space, settings, higher_is_better
        self.cost, self.limit, self.floor = cost, limit, floor
        self.generator = torch.Generator().manual_seed(seed)
        self.generation = 0
        self.scored: list[Scored] = []
        self.population: list[Path] = []

    # --- the search ------------------------------------------------------------------------
    def admitted(self, path: Path) -> bool:
        if self.limit is None:
            return True
        cost = self.cost(path)
        return self.floor <= cost <= self.limit

    def start(self, fallback: Path) -> None:
        """The first generation: random paths under the budget, or `fallback` (the cheapest
        path) when a budget is so tight that random draws found none under it. A band that
        no random draw falls in is refused: there is no path to fall back on."""
        population = self._fill([], lambda: self.space.random(self.generator))
        if not population and self.floor:
            raise NasflowError(f"no random architecture of {TRIES * self.settings.population:,} drawn costs between "
                               f"{self.floor:,.6g} and {self.limit:,.6g}: widen the budget's band (lower its floor)")
        self.population = population or [fallback]

    def run(self, score: Callable[[Path], float], after_generation: Callable[[], None] = lambda: None,
            stop: Callable[[], bool] = lambda: False) -> bool:
        """Score every path not scored yet, generation by generation, breeding the next after
        each (`after_generation` then: a checkpoint); False when `stop()` ended it early (the
        generation is done again on resume: scores are repeatable)."""
        while self.generation < self.settings.generations:
            known = {s.path for s in self.scored}
            for path in self.population:
                if path in known:
                    continue
                if stop():
                    return False
                self.scored.append(Scored(path, score(path), self.cost(path), self.generation))
                known.add(path)
            self.generation += 1
            if self.generation < self.settings.generations:
                self.breed()
            after_generation()
        return True

    def breed(self) -> None:
        """The next generation, from the best `parents` scored so far."""
        top = self.ranked()[: self.settings.parents]
        g = self.generator

        def pick() -> Path:
            return top[int(torch.randint(len(top), (1,), generator=g))].path

        mutants = self._fill([], lambda: self.space.mutate(pick(), self.settings.mutation_prob, g),
                             self.settings.population // 2)
        children = self._fill(mutants, lambda: self.space.crossover(pick(), pick(), g))
        # A space smaller than the search: fill from random paths while new ones exist.
        self.population = self._fill(children, lambda: self.space.random(g))

    def _fill(self, have: list[Path], make: Callable[[], Path], upto: int | None = None) -> list[Path]:
        upto = self.settings.population if upto is None else upto
        seen = {s.path for s in self.scored} | set(have)
        out = list(have)
        tries = 0
        while len(out) < upto and tries < TRIES * upto:
            tries += 1
            path = make()
            if path not in seen and self.admitted(path):
                seen.add(path)
                out.append(path)
        return out

    def ranked(self) -> list[Scored]:
        """Every scored path, best first (ties: cheaper, then scored earlier); NaN last."""
        def key(s: Scored) -> tuple[float, float]:
            bad = math.isnan(s.score)
            return (math.inf if bad else (-s.score if self.higher else s.score), s.cost)

        return sorted(self.scored, key=key)

    def best(self) -> Scored:
        return self.ranked()[0]

    def pareto(self) -> list[Scored]:
        """The scored paths no other beats on both cost and score, by cost."""
        def better_or_equal(a: float, b: float) -> bool:
            return a >= b if self.higher else a <= b

        ok = [s for s in self.scored if not math.isnan(s.score)]
        front = [s for s in ok if not any(
            o.cost <= s.cost and better_or_equal(o.score, s.score) and (o.cost < s.cost or o.score != s.score)
            for o in ok)]
        unique = {s.path: s for s in front}
        return sorted(unique.values(), key=lambda s: (s.cost, s.path))

    # --- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"generation": self.generation,
                "population": [[list(p) for p in path] for path in self.population],
                "scored": [{"path": [list(p) for p in s.path], "score": s.score, "cost": s.cost,
                            "generation": s.generation} for s in self.scored],
                "generator": self.generator.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.generation = int(state["generation"])
        self.population = [_path(p) for p in state["population"]]
        self.scored = [Scored(_path(s["path"]), float(s["score"]), float(s["cost"]), int(s["generation"]))
                       for s in state["scored"]]
        self.generator.set_state(state["generator"])


def _path(data: Any) -> Path:
    return tuple(tuple(int(j) for j in pick) for pick in data)
