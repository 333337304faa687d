"""Budgets (--budget latency=40ms | params=300k | madds=20G): parsing, the penalty that acts
only above the budget, and searches on the planted space that land under their budget."""
from __future__ import annotations

import pytest
import torch
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.errors import NasflowError
from nasflow.hardware.check import check_table
from nasflow.hardware.profile import profile_space
from nasflow.hardware.timing import Runner, threads
from nasflow.search.budget import STRENGTH, Budget, BudgetPenalty, derived_against_budget
from nasflow.search.decision_costs import DecisionCosts
from nasflow.search.loop import run_search
from nasflow.space.cost import graph_cost
from nasflow.space.graph import build_graph


@pytest.mark.parametrize("text, metric, limit", [
    ("latency=40ms", "latency", 40.0), ("latency=0.5s", "latency", 500.0), ("latency=250us", "latency", 0.25),
    ("params=300k", "params", 3e5), ("params=1.2M", "params", 1.2e6), ("params=5000", "params", 5000.0),
    ("madds=20G", "madds", 2e10), ("MAdds = 500m", "madds", 5e8),
])
def test_parse(text, metric, limit):
    b = Budget.parse(text)
    assert (b.metric, b.limit) == (metric, pytest.approx(limit))


@pytest.mark.parametrize("text, floor, limit", [
    ("params=50k..56k", 5e4, 5.6e4), ("params=50.4k..56k", 5.04e4, 5.6e4),
    ("latency=500us..2ms", 0.5, 2.0), ("madds = 1G .. 1.5g", 1e9, 1.5e9),
])
def test_parse_a_band(text, floor, limit):
    b = Budget.parse(text)
    assert (b.floor, b.limit) == (pytest.approx(floor), pytest.approx(limit))
    assert Budget.parse(str(b)) == b  # its written form reads back (run folders, configs)
    assert "BELOW the floor" in b.report(floor * 0.99)
    assert "within" in b.report(floor) and "within" in b.report(limit)
    assert "OVER" in b.report(limit * 1.1)
    assert str(Budget.parse("params=56k")) == "params=56k" and "under" in Budget.parse("params=56k").report(1)


@pytest.mark.parametrize("text, match", [
    ("speed=3", "must look like"), ("params", "must look like"), ("params=abc", "a number with a unit"),
    ("latency=40kg", "a number with a unit among us, ms, s"), ("params=0", "above 0"),
    ("params=56k..50k", "floor must be below its limit"), ("params=56k..56k", "floor must be below its limit"),
    ("params=..56k", "a number with a unit"), ("params=0..56k", "above 0"),
])
def test_parse_errors(text, match):
    with pytest.raises(NasflowError, match=match):
        Budget.parse(text)


def test_params_and_madds_costs_match_the_cost_model():
    graph = build_graph(planted_space())
    geno = Genotype(choices={"m": "sep_conv_3x3"}, edges={"e": ["u2", "u4"]})
    from nasflow.derive.genotype import derive_space

    derived = graph_cost(build_graph(derive_space(graph.space, geno)), (10, 12))
    for metric, want in (("params", derived.params), ("madds", derived.madds)):
        costs = DecisionCosts.from_graph(graph, metric, (10, 12))
        assert costs.of_genotype(graph, geno) == pytest.approx(want)
    # pruned branches are still counted (u1, u3 here cost nothing)


def test_penalty_acts_only_above_the_budget():
    graph = build_graph(planted_space())
    model = compile_graph(graph)
    costs = DecisionCosts.from_graph(graph, "params")
    with torch.no_grad():
        model.arch.logits("m").copy_(torch.tensor([5.0, 0, 0, 0, 0, 0]))  # conv_1x1: the cheapest
    expected = float(costs.expected(model.arch.softmax()).detach())
    under = BudgetPenalty(graph, Budget("params", expected * 2), costs)
    penalty, details = under(model)
    assert float(penalty.detach()) == 0 and details["budget/params_derived"] <= expected * 2
    penalty.backward()  # a zero penalty still has a (zero) gradient: strategies need no special case
    model.zero_grad()
    over = BudgetPenalty(graph, Budget("params", expected / 2), costs)
    penalty, _ = over(model)
    assert float(penalty.detach()) == pytest.approx(2.0 * STRENGTH, rel=1e-5)
    # the argmax is over the budget while the expectation is under: the penalty acts too
    with torch.no_grad():
        model.arch.logits("m").copy_(torch.tensor([0.0, 0, 0.05, 0, 0, 0]))  # conv_5x5 barely ahead
    exp = float(costs.expected(model.arch.softmax()).detach())
    derived = costs.of_genotype(graph, Genotype(choices={"m": "conv_5x5"}, edges={"e": ["u1", "u2"]}))
    limit = (exp + derived) / 2
    assert exp < limit < derived
    penalty, _ = BudgetPenalty(graph, Budget("params", limit), costs)(model)
    assert float(penalty.detach()) > 0


def test_a_band_is_refused_before_anything_is_built_by_a_strategy_that_learns_alpha(tmp_path):
    with pytest.raises(NasflowError, match="budget 'params=100..200': a band's floor is for strategies that pick "
                                           r"the architecture by evolution .*--strategy milenas learns alpha.*"
                                           "give --budget params=200$"):
        run_search(fast_config(budget="params=100..200", gamma=0.2), tmp_path / "m", space=planted_space(),
                   task=PlantedTask())
    assert not (tmp_path / "m").exists()


def test_sweep_folders_name_a_band_and_sort_by_its_limit(tmp_path):
    from nasflow.search.report import _sweep_order
    from nasflow.search.sweep import budget_values

    values = budget_values("params=50k..56k,params=30k")
    assert [v.name for v in values] == ["budget-params-50k..56k", "budget-params-30k"]
    assert values[0].update == {"budget": "params=50k..56k"}
    assert sorted((tmp_path / v.name for v in values), key=_sweep_order)[0].name == "budget-params-30k"


def test_budget_config_errors(tmp_path):
    from nasflow.search.config import SearchConfig

    with pytest.raises(NasflowError, match="gamma must be above 0"):
        SearchConfig.build({"budget": "params=200", "gamma": 0.0})
    with pytest.raises(NasflowError, match="budget 'params=lots'"):
        SearchConfig.build({"budget": "params=lots"})
    with pytest.raises(NasflowError, match="a latency budget needs a latency table"):
        run_search(fast_config(budget="latency=1ms", gamma=0.2), tmp_path / "b", space=planted_space(),
                   task=PlantedTask())
    assert not (tmp_path / "b").exists()


def test_params_budget_search_lands_under_its_budget(tmp_path):
    space = planted_space()
    graph = build_graph(space)
    costs = DecisionCosts.from_graph(graph, "params")
    free = run_search(fast_config(), tmp_path / "free", space=space, task=PlantedTask(op="conv_5x5"))
    budget = Budget.parse("params=200")
    assert costs.of_genotype(graph, free.genotype) > budget.limit  # the task alone goes over
    held = run_search(fast_config(gamma=0.2, regularizer=None, budget=str(budget)), tmp_path / "held",
                      space=space, task=PlantedTask(op="conv_5x5"))
    assert costs.of_genotype(graph, held.genotype) <= budget.limit
    assert "under" in derived_against_budget(graph, held.genotype, str(budget))


def test_latency_budget_search_lands_under_its_budget(tmp_path):
    space = planted_space()
    graph = build_graph(space)
    table = profile_space(graph, (32, 32), warmup=1, reps=3)
    path = str(table.save(tmp_path / "t.json"))
    costs = table.decision_costs(graph)
    m = next(n for n in costs.nodes if n.node == "m")
    # a budget between the fastest and the slowest choice of m, with e's inputs as they come
    limit = costs.fixed + 2 * min(n.costs[0] for n in costs.nodes if n.node == "e") + (min(m.costs) + max(m.costs)) / 2
    held = run_search(fast_config(gamma=0.2, regularizer="latency", budget=f"latency={limit}ms",
                                  latency_table=path), tmp_path / "held", space=space, task=PlantedTask(op="conv_5x5"))
    got = costs.of_genotype(graph, held.genotype)
    assert got <= limit, (held.genotype, got, limit)


def test_latency_budget_search_lands_under_its_budget_by_measurement(tmp_path):
    # Two candidates far apart (conv_5x5 does 25x conv_1x1's work), timed on
    # the process's CPU time with one thread, so other jobs on the machine do not move the
    # figures; the table is calibrated (per-node overhead) on two whole architectures.
    space = planted_space(channels=16, candidates=["conv_1x1", "conv_5x5"])
    graph = build_graph(space)
    with threads(1):
        table = profile_space(graph, (128, 128), Runner(clock="cpu"), warmup=1, reps=5, calibrate=2)
    assert table.calibrated_on == 2 and table.machine.clock == "cpu"
    path = str(table.save(tmp_path / "t.json"))
    costs = table.decision_costs(graph)
    m = next(n for n in costs.nodes if n.node == "m")
    assert max(m.costs) > 2 * min(m.costs)  # the budget below sits well apart from both
    e = next(n for n in costs.nodes if n.node == "e")
    limit = costs.fixed + 2 * max(e.costs) + (min(m.costs) + max(m.costs)) / 2
    task = PlantedTask(op="conv_5x5", channels=16)
    held = run_search(fast_config(gamma=0.2, regularizer="latency", budget=f"latency={limit}ms", latency_table=path),
                      tmp_path / "held", space=space, task=task)
    assert held.genotype.choices["m"] == "conv_1x1"
    # the derived model run whole, interleaved with the table's nodes, on the table's clock and threads
    measured = check_table(build_graph(derive_space(space, held.genotype)), table, warmup=1, reps=5)
    (row,) = measured.rows
    assert row.measured_ms <= limit, (row, limit)
