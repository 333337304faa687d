"""Value decisions (nasflow.space.values, nasflow.compile.values): numbers a space searches.

The space language (names, ties, errors at file:line), exact costs per value against counting
the built modules, the supernet's two ways (masked: one conv at the largest width; exact:
only the drawn widths run), subnet extraction equal to the supernet restricted to it, and
every strategy searching and resuming exactly on a space with widths and a depth.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow import Space, build_graph, compile_graph
from nasflow.derive.genotype import Genotype, derive_space, inherit_weights
from nasflow.errors import NasflowError, SpaceError
from nasflow.search import decision_costs
from nasflow.search.decision_costs import DecisionCosts, architecture_range, every_node_counts
from nasflow.space.builtin import builtin_space
from nasflow.space.cost import graph_cost, value_costs
from one_hot import OneHot

# A cell stack of searched depth and width, a choice whose width is searched, a concat of
# searched widths read by a 1x1 conv, and a fixed-width head.
SPACE = """\
name: widths
params: {scale: 2}
values: {C: [4, 6, 8], depth: [1, 2, 3]}
inputs: {x: 3}
blocks:
  res:
    params: {C: null}
    inputs: [x]
    output: a
    nodes:
      c: {op: conv_3x3, in: x, out: C, act: relu}
      a: {combine: add, in: [c, x]}
nodes:
  stem: {op: conv_3x3, in: x, out: C}
  m: {choice: [conv_1x1, conv_3x3, sep_conv_3x3], in: stem, label: m}
  body: {stack: depth, block: res, in: "body[i - 1] if i > 0 else m", args: {C: C}}
  cat: {combine: concat, in: [stem, body]}
  fuse: {op: conv_1x1, in: cat, out: C, args: {bias: true}}
  up: {op: conv_3x3, in: fuse, out: 3 * scale * scale}
  ps: {op: pixel_shuffle, in: up, args: {r: scale}}
output: ps
"""


@pytest.fixture()
def space(tmp_path: Path) -> Space:
    path = tmp_path / "widths.yaml"
    path.write_text(SPACE)
    return Space.from_yaml(path)


def assignments(space: Space) -> Iterator[dict[str, int]]:
    names = list(space.values)
    for combo in itertools.product(*(space.values[n] for n in names)):
        yield dict(zip(names, combo))


def Fixed(picks: dict[str, int]) -> OneHot:  # noqa: N802
    """One option per decision, weight exactly 1, sparse: the exact, sliced way."""
    return OneHot(picks, sparse=True)


def FixedSoft(picks: dict[str, int]) -> OneHot:  # noqa: N802
    """The same one-hot weights, not sparse: the masked (differentiable) way computes them."""
    return OneHot(picks, sparse=False)


def picks_of(graph: Any, values: dict[str, int], op: str) -> dict[str, int]:
    out = {"m": graph.decisions["m"].options.index(op)}
    out.update({k: graph.decisions[k].values.index(v) for k, v in values.items()})
    return out


@contextmanager
def conv_calls() -> Iterator[list[tuple[int, ...]]]:
    """The weight shape of every conv2d computed meanwhile."""
    seen: list[tuple[int, ...]] = []
    real = F.conv2d

    def spy(x: Tensor, weight: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        seen.append(tuple(weight.shape))
        return real(x, weight, *args, **kwargs)

    F.conv2d = spy
    try:
        yield seen
    finally:
        F.conv2d = real


# --- the space language -------------------------------------------------------------------

def test_values_are_decisions_read_by_the_nodes_that_use_them(space: Space) -> None:
    graph = build_graph(space)
    d = graph.decisions
    assert [k for k in d] == ["m", "C", "depth"]  # op decisions first, values after
    assert d["C"].kind == "value" and d["C"].values == (4, 6, 8) and d["C"].options == ("4", "6", "8")
    assert "fuse" in d["C"].nodes and "up" in d["C"].nodes and "ps" not in d["C"].nodes
    assert set(d["depth"].nodes) == {"body1.c", "body1.a", "body2.c", "body2.a"}  # instance 0 always exists
    # The graph is the largest network; a fixed assignment is a plain one.
    assert graph.nodes["cat"].c_out == 16 and graph.nodes["body2.c"].c_out == 8
    small = build_graph(space, values={"C": 4, "depth": 1})
    assert small.nodes["cat"].c_out == 8 and "body1.c" not in small.nodes
    assert [k for k in small.decisions] == ["m"]
    # --set fixes a value decision as it sets a param.
    assert build_graph(space, {"C": 6}).nodes["fuse"].c_out == 6


def test_a_space_with_values_round_trips_through_yaml(space: Space, tmp_path: Path) -> None:
    space.to_yaml(tmp_path / "again.yaml")
    again = Space.from_yaml(tmp_path / "again.yaml")
    assert again.to_data() == space.to_data() and again.values == {"C": [4, 6, 8], "depth": [1, 2, 3]}


def test_python_api_builds_the_same_space(space: Space) -> None:
    from nasflow.space.schema import combine, op

    built = Space(name="p", values={"W": [2, 4]}, inputs={"x": 3}, nodes={
        "a": op("conv_3x3", "x", out="W"), "b": op("conv_1x1", "x", out="W"),
        "s": combine("add", ["a", "b"])}, output="s")
    graph = build_graph(built)
    assert graph.decisions["W"].nodes == ("a", "b", "s")


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        build_graph(Space.from_yaml(path))
    return str(info.value)


def test_added_widths_from_two_decisions_is_an_error_naming_both_nodes(tmp_path: Path) -> None:
    msg = _error(tmp_path, """\
name: t
values: {A: [2, 4], B: [2, 4]}
inputs: {x: 3}
nodes:
  a: {op: conv_3x3, in: x, out: A}
  b: {op: conv_3x3, in: x, out: B}
  s: {combine: add, in: [a, b]}
output: s
""")
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:7:")
    assert "a: {2, 4} by A" in msg and "b: {2, 4} by B" in msg and "one value decision" in msg


@pytest.mark.parametrize("body, where, words", [
    ("values: {A: [2, 4]}\ninputs: {x: 3}\nnodes:\n  a: {op: conv_3x3, in: x, out: '2 if A > 2 else 4'}\noutput: a\n",
     5, "condition reads the value decision(s) A"),
    ("values: {A: [2, 4], B: [1, 2]}\ninputs: {x: 3}\nnodes:\n  a: {op: conv_3x3, in: x, out: A}\noutput: a\n",
     2, "value decision 'B' is read by no node"),
    ("params: {A: 3}\nvalues: {A: [2, 4]}\ninputs: {x: 3}\nnodes:\n  a: {op: conv_3x3, in: x, out: A}\noutput: a\n",
     3, "both a param and a value decision"),
    ("values: {A: [2, 4, 2]}\ninputs: {x: 3}\nnodes:\n  a: {op: conv_3x3, in: x, out: A}\noutput: a\n",
     2, "lists 2 twice"),
    ("values: {A: [2, 4]}\ninputs: {x: 3}\nnodes:\n  a: {op: conv_3x3, in: x, out: 16 // A}\noutput: a\n",
     5, "not largest at the decisions' largest values"),
])
def test_value_mistakes_are_one_error_at_their_line(tmp_path: Path, body: str, where: int, words: str) -> None:
    msg = _error(tmp_path, "name: t\n" + body)
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:{where}:"), msg
    assert words in msg, msg


def test_an_instance_a_searched_depth_may_remove_cannot_be_read(tmp_path: Path) -> None:
    msg = _error(tmp_path, SPACE.replace("cat: {combine: concat, in: [stem, body]}",
                                         "cat: {combine: concat, in: [stem, 'body[1]']}"))
    assert "searched depth" in msg and "may have only 1 instance" in msg


def test_validate_and_cost_show_values_without_torch(space: Space, tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "w.yaml").write_text(SPACE)
    code = ("import sys\nfrom nasflow.cli.main import main\nsys.argv = ['nasflow', 'cost', sys.argv[1], "
            "'--size', '16x16', '--json']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'cost imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "w.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    data = json.loads(done.stdout)
    graph = build_graph(space)
    report = graph_cost(graph, (8, 8))
    assert data["values"]["largest"]["params"] == report.params
    assert data["values"]["smallest"]["params"] == report.at({"C": 4, "depth": 1})[0]
    assert data["values"]["per_value"]["C"]["6"]["params"] == report.at({"C": 6})[0]
    assert data["architectures"] == architecture_range(graph, (8, 8))


@pytest.mark.parametrize("grid", [4096, 1], ids=["every-assignment", "one-decision-at-a-time"])
def test_the_cheapest_and_dearest_architecture_are_exact(space: Space, monkeypatch: pytest.MonkeyPatch,
                                                          grid: int) -> None:
    monkeypatch.setattr(decision_costs, "EXACT_VALUE_GRID", grid)
    graph = build_graph(space)
    counted: dict[str, list[int]] = {"params": [], "madds": []}
    for values in assignments(space):
        for op in graph.decisions["m"].options:
            derived = build_graph(derive_space(space, Genotype(choices={"m": op}, values=values)))
            counted["params"].append(sum(p.numel() for p in compile_graph(derived).parameters()))
            counted["madds"].append(graph_cost(derived, (8, 8)).madds)
    assert architecture_range(graph, (8, 8)) == {"cheapest": {m: min(c) for m, c in counted.items()},
                                                 "dearest": {m: max(c) for m, c in counted.items()}}
    assert len(set(counted["params"])) == 27  # every architecture differs: the extremes are no accident


def test_the_cheapest_dlsr_width_architecture_is_what_its_built_model_counts() -> None:
    from nasflow.strategies import SPOS, evolution

    space = Space.from_yaml(builtin_space("dlsr/space-width"))
    graph = build_graph(space)
    costs = DecisionCosts.from_graph(graph, "params")
    paths = evolution.PathSpace(graph, SPOS().derivation_rule())
    for dearest in (False, True):
        geno = paths.genotype(paths.dearest(costs) if dearest else paths.cheapest(costs))
        model = compile_graph(build_graph(derive_space(space, geno)))
        counted = sum(p.numel() for p in model.parameters())
        assert costs.extreme(graph, dearest=dearest)[0] == costs.of_genotype(graph, geno) == counted
    assert geno.values == {"channels": 48, "esa_f": 12}  # the dearest: the widest


def test_no_range_where_an_input_decision_can_cut_a_branch() -> None:
    darts = build_graph(Space.from_yaml(builtin_space("darts")))  # a cell's unkept edges are pruned
    assert not every_node_counts(darts) and architecture_range(darts, (32, 32)) is None


# --- exact costs per value -----------------------------------------------------------------

def test_costs_per_value_are_what_the_built_modules_count(space: Space) -> None:
    graph = build_graph(space)
    report = graph_cost(graph, (8, 8))
    params_costs = DecisionCosts.from_graph(graph, "params", (8, 8))
    madds_costs = DecisionCosts.from_graph(graph, "madds", (8, 8))
    for values in assignments(space):
        for op in graph.decisions["m"].options:
            geno = Genotype(choices={"m": op}, values=values)
            derived = build_graph(derive_space(space, geno))
            counted = sum(p.numel() for p in compile_graph(derived).parameters())
            madds = graph_cost(derived, (8, 8)).madds
            assert params_costs.of_genotype(graph, geno) == counted
            assert madds_costs.of_genotype(graph, geno) == madds
            one_hot = {k: F.one_hot(torch.tensor(i), len(graph.decisions[k].options)).float()
                       for k, i in picks_of(graph, values, op).items()}
            assert float(params_costs.expected(one_hot)) == pytest.approx(counted, rel=1e-6)
            assert float(madds_costs.expected(one_hot)) == pytest.approx(madds, rel=1e-6)
        # The supernet report's rows at an assignment: every candidate of m at those widths.
        fixed = graph_cost(build_graph(space, values=values), (8, 8))
        assert report.at(values) == (fixed.params, fixed.madds)
    assert value_costs(graph, report).smallest == report.at({"C": 4, "depth": 1})


def test_expected_cost_is_the_average_over_architectures(space: Space) -> None:
    graph = build_graph(space)
    costs = DecisionCosts.from_graph(graph, "params", (8, 8))
    g = torch.Generator().manual_seed(3)
    weights = {k: torch.softmax(torch.randn(len(d.options), generator=g), 0) for k, d in graph.decisions.items()}
    brute = 0.0
    for values in assignments(space):
        for i, op in enumerate(graph.decisions["m"].options):
            p = float(weights["m"][i]) * math.prod(
                float(weights[k][graph.decisions[k].values.index(v)]) for k, v in values.items())
            brute += p * costs.of_genotype(graph, Genotype(choices={"m": op}, values=values))
    assert float(costs.expected(weights)) == pytest.approx(brute, rel=1e-5)


# --- the supernet ---------------------------------------------------------------------------

def _net(space: Space) -> tuple[Any, Any, Tensor]:
    torch.manual_seed(0)
    graph = build_graph(space)
    return graph, compile_graph(graph), torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_a_differentiable_width_runs_each_conv_once_at_the_largest_width(space: Space) -> None:
    graph, net, x = _net(space)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    with conv_calls() as seen:
        y = net(x)
    # One call per conv module (no module per value), each with the whole weight.
    assert sorted(seen) == sorted(tuple(m.weight.shape) for m in convs)
    y.square().mean().backward()
    for label in ("C", "depth"):  # the masks and the depth's weighted sum carry the gradient
        assert net.arch.value[label].grad.abs().sum() > 0


def test_a_sampled_step_runs_only_the_drawn_widths(space: Space) -> None:
    graph, net, x = _net(space)
    net.relaxation = Fixed(picks_of(graph, {"C": 4, "depth": 2}, "conv_3x3"))
    with conv_calls() as seen:
        y = net(x)
    # stem, m (conv_3x3 only), two instances, fuse (reading 4 + 4 active of 8 + 8), up.
    assert seen == [(4, 3, 3, 3), (4, 4, 3, 3), (4, 4, 3, 3), (4, 4, 3, 3), (4, 8, 1, 1), (12, 4, 3, 3)]
    assert y.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("values, op", [({"C": 4, "depth": 1}, "conv_1x1"), ({"C": 6, "depth": 2}, "sep_conv_3x3"),
                                        ({"C": 8, "depth": 3}, "conv_3x3"), ({"C": 4, "depth": 3}, "sep_conv_3x3")])
def test_a_subnet_with_inherited_weights_is_the_supernet_restricted_to_it(space: Space, values: dict[str, int],
                                                                        op: str) -> None:
    graph, net, x = _net(space)
    with torch.no_grad():  # biases away from zero, so a wrong slice shows
        for p in net.weights():
            p.add_(0.1 * torch.randn_like(p))
    geno = Genotype(choices={"m": op}, values=values)
    derived = build_graph(derive_space(space, geno))
    model = compile_graph(derived)
    model.load_state_dict(inherit_weights(graph, net.state_dict(), derived, model.state_dict(), values))
    want = model(x)
    net.relaxation = Fixed(picks_of(graph, values, op))
    assert torch.equal(net(x), want)
    net.relaxation = FixedSoft(picks_of(graph, values, op))
    torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-6)


def test_partial_channels_refuse_a_searched_width_with_one_line(space: Space) -> None:
    import nasflow.strategies  # noqa: F401  (registers the partial mixed ops)
    from strategies.partial_channels import partial_mixed_op  # noqa: F401
    from nasflow.strategies.partial_channels import partial_mixed_op as name_of

    with pytest.raises(NasflowError, match="choice node 'm': its width is a value decision"):
        compile_graph(build_graph(space), mixed_op=name_of(2, fused=False))


# --- strategies ------------------------------------------------------------------------------

class WidthTask:
    """Regress a fixed random function of x: enough for a search to run, resume and derive."""

    name = "widths-test"

    def __new__(cls) -> Any:
        from nasflow.tasks.contract import Metric, Task

        class _Task(Task):
            name = "widths-test"
            metrics = (Metric("mse", higher_is_better=False),)

            def batches(self, split: str, batch_size: int, seed: int, *, rank: int = 0,
                        world_size: int = 1) -> Iterator[Any]:
                return _Stream(seed * 2 + (split == "valid"), batch_size)

            def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
                x, y = batch
                loss = F.mse_loss(model(x), y)
                return loss, {"mse": float(loss.detach())}

            def evaluate(self, model: nn.Module) -> dict[str, float]:
                x, y = next(_Stream(99, 4))
                with torch.no_grad():
                    return {"mse": float(F.mse_loss(model(x), y))}

        return _Task()


class _Stream:
    def __init__(self, seed: int, n: int) -> None:
        self.g, self.n = torch.Generator().manual_seed(seed), n

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        x = torch.rand(self.n, 3, 8, 8, generator=self.g)
        return x, F.interpolate(x, scale_factor=2, mode="nearest").roll(1, dims=1)

    def state_dict(self) -> dict[str, Any]:
        return {"g": self.g.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.set_state(state["g"])


STRATEGIES = ["darts", "darts2", "milenas", "gdas", "drnas", "spos", "sandwich"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_searches_and_resumes_exactly_on_values(space: Space, tmp_path: Path, strategy: str) -> None:
    from nasflow.search.loop import run_search
    from nasflow.search.run_dir import RunDir
    from synthetic import fast_config

    options = {"population": 2, "generations": 1, "parents": 1} if strategy in ("spos", "sandwich") else {}
    config = fast_config(strategy=strategy, steps=8, warmup=2, checkpoint_every=3, log_every=2, batch_size=2,
                         gamma=0.5, regularizer="params", strategy_options=options)
    whole = run_search(config, tmp_path / "a", space=space, task=WidthTask())
    stopped = run_search(config, tmp_path / "b", space=space, task=WidthTask(), stop_at=5)
    assert not stopped.finished
    resumed = run_search(config, tmp_path / "b", task=WidthTask(), resume=True)
    assert resumed.finished and resumed.genotype == whole.genotype
    assert set(whole.genotype.values) == {"C", "depth"}
    (ta, _), (tb, _) = RunDir(tmp_path / "a").load_checkpoint(), RunDir(tmp_path / "b").load_checkpoint()
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    # What the search chose builds as a plain model of those widths.
    derived = build_graph(derive_space(space, whole.genotype))
    assert not derived.decisions and derived.nodes["fuse"].c_out == whole.genotype.values["C"]


def test_the_sandwich_step_trains_the_largest_smallest_and_random_widths(space: Space) -> None:
    from nasflow.runs.config import AdamConfig
    from nasflow.search.config import SearchConfig
    from nasflow.strategies.sandwich import Sandwich

    graph, net, x = _net(space)
    task = WidthTask()
    config = SearchConfig(strategy="sandwich", seed=0, weights_optim=AdamConfig(lr=1e-2),
                          strategy_options={"random": 1})
    strategy = Sandwich(task.loss, None, None, None, config)
    strategy.attach(net)
    with conv_calls() as seen:
        strategy.weights_step(net, next(_Stream(0, 2)))
    stems = [s for s in seen if s[1:] == (3, 3, 3)]  # the stem's weight: (C, 3, 3, 3), once per architecture
    assert [s[0] for s in stems[:2]] == [8, 4] and len(stems) == 3
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.weights())


def test_under_a_budget_the_sandwich_draws_only_architectures_under_it(space: Space) -> None:
    from nasflow.search.config import SearchConfig
    from nasflow.strategies.sandwich import Sandwich

    graph, net, _ = _net(space)
    costs = DecisionCosts.from_graph(graph, "params")
    task = WidthTask()

    def drawn(**config: Any) -> list[list[float]]:
        strategy = Sandwich(task.loss, None, None, None, SearchConfig(strategy="sandwich", seed=0, **config))
        strategy.attach(net)
        space_ = strategy.path_relaxation.space
        return [[costs.of_genotype(graph, space_.genotype(p)) for p in strategy.draw_paths()] for _ in range(40)]

    limit = 1500.0
    everywhere = drawn()
    assert max(step[0] for step in everywhere) > limit  # unfocused, the largest is over the budget
    focused = drawn(budget=f"params={limit:g}")
    assert all(c <= limit for step in focused for c in step)
    # The largest is the widest under the budget: lowered only as far as needed, so it costs
    # more than the step's smallest, and the random ones spread between.
    assert all(step[0] >= step[1] for step in focused) and any(step[0] > step[1] for step in focused)
    assert len({c for step in focused for c in step[2:]}) > 3
    off = drawn(budget=f"params={limit:g}", strategy_options={"focus": False})
    assert off == everywhere  # focus=false: every budget at once, as without one
    with pytest.raises(NasflowError, match="no architecture of this space is under it"):
        drawn(budget="params=10")  # refused when attached, not after the training


def test_a_bands_evolution_admits_only_architectures_within_it(space: Space) -> None:
    from nasflow.strategies import SPOS, evolution
    from nasflow.strategies.evolution import Evolution, EvolutionSettings

    graph = build_graph(space)
    costs = DecisionCosts.from_graph(graph, "params")
    paths = evolution.PathSpace(graph, SPOS().derivation_rule())
    cost = lambda p: costs.of_genotype(graph, paths.genotype(p))  # noqa: E731
    every = sorted(cost(p) for p in itertools.product(*[[(j,) for j in a] for a in paths.allowed]))
    assert (cost(paths.cheapest(costs)), cost(paths.dearest(costs))) == (every[0], every[-1])
    floor, limit = 2000.0, 3000.0
    settings = EvolutionSettings(population=4, generations=3, parents=2, mutation_prob=0.5)

    def run(floor: float) -> Any:  # a score that prefers the cheaper: the floor must hold it up
        evo = Evolution(paths, settings, False, cost, limit, seed=0, floor=floor)
        evo.start(paths.cheapest(costs))
        evo.run(cost)
        return evo

    banded, free = run(floor), run(0.0)
    assert banded.scored and all(floor <= s.cost <= limit for s in banded.scored)
    assert banded.best().cost == min(c for c in every if c >= floor)
    assert free.best().cost < floor
    with pytest.raises(NasflowError, match="no random architecture .* costs between 3,250 and 3,260: widen"):
        Evolution(paths, settings, False, cost, 3260.0, seed=0, floor=3250.0).start(paths.cheapest(costs))


def test_a_floor_no_architecture_reaches_is_refused_before_training(space: Space) -> None:
    from nasflow.search.config import SearchConfig
    from nasflow.strategies.sandwich import Sandwich

    _, net, _ = _net(space)
    strategy = Sandwich(WidthTask().loss, None, None, None,
                        SearchConfig(strategy="sandwich", seed=0, budget="params=4k..5k"))
    with pytest.raises(NasflowError, match=r"params=4k..5k: no architecture of this space reaches its floor "
                                           r"\(the dearest costs 3.52k\); lower the floor"):
        strategy.attach(net)


def test_derive_with_budgets_picks_subnets_that_score_the_same_with_inherited_weights(space: Space,
                                                                                     tmp_path: Path) -> None:
    from nasflow.runs.modeldir import load_model
    from nasflow.search.loop import run_search
    from nasflow.strategies.subnets import pick_subnets
    from nasflow.tasks.contract import TASKS, register_task
    from synthetic import fast_config

    task = WidthTask()
    if task.name not in TASKS:
        register_task(task.name)(type(task))
    config = fast_config(strategy="sandwich", steps=6, warmup=2, batch_size=2, task=task.name,
                         strategy_options={"population": 2, "generations": 1, "parents": 1})
    run_search(config, tmp_path / "run", space=space, task=task)
    budgets = ["params=3k", "params=12k", "params=2k..3k"]
    found = pick_subnets(tmp_path / "run", budgets, options={"population": 3, "generations": 2})
    assert [s.budget for s in found] == budgets
    graph = build_graph(space)
    costs = DecisionCosts.from_graph(graph, "params")
    for s, floor, limit in zip(found, (0, 0, 2e3), (3e3, 12e3, 3e3)):
        assert floor <= s.cost == costs.of_genotype(graph, s.genotype) <= limit
        model = load_model(s.model_dir)[0]
        assert sum(p.numel() for p in model.parameters()) == s.cost  # the model is that architecture
        assert task.evaluate(model.eval())["mse"] == pytest.approx(s.score, rel=1e-6)
    assert (tmp_path / "run" / "subnets" / "subnets.json").is_file()


def test_per_instance_widths_are_decisions_of_their_own_and_refused_under_a_searched_depth() -> None:
    conv = {"params": {"C": None}, "inputs": ["x"], "output": "c", "nodes": {"c": {"op": "conv_3x3", "in": "x", "out": "C"}}}

    def space(depth: Any) -> Space:
        return Space.from_data({"name": "r", "values": {"D": [1, 2], "W0": [4, 8], "W1": [4, 8]}, "inputs": {"x": 3},
                                "blocks": {"b": conv},
                                "nodes": {"s": {"stack": depth, "block": "b", "in": "s[i - 1] if i > 0 else x",
                                                "args": {"C": "W0 if i == 0 else W1"}},
                                          "d": {"op": "conv_1x1", "in": "s", "out": "D * 2"},
                                          "out": {"op": "conv_1x1", "in": "d", "out": 3}}, "output": "out"})

    graph = build_graph(space(2))
    assert [graph.nodes[f"s{i}.c"].c_out.deps for i in range(2)] == [("W0",), ("W1",)]
    genotype = Genotype(values={"D": 2, "W0": 8, "W1": 4})
    model = compile_graph(build_graph(derive_space(space(2), genotype)))
    assert DecisionCosts.from_graph(graph, "params").of_genotype(graph, genotype) == \
        sum(p.numel() for p in model.parameters())
    with pytest.raises(SpaceError, match=r"stack 's' has a searched depth, but its instances' outputs may differ "
                                         r"in shape \(s0.c: 8 \(from W0\), s1.c: 8 \(from W1\)\)"):
        build_graph(space("D"))


def test_a_stack_of_searched_depth_may_choose_its_block_by_index() -> None:
    conv = {"params": {"C": None}, "inputs": ["x"], "output": "c", "nodes": {"c": {"op": "conv_3x3", "in": "x", "out": "C"}}}
    space = Space.from_data({"name": "r", "values": {"D": [1, 2, 3]}, "params": {"C": 4}, "inputs": {"x": 3},
                             "blocks": {"first": conv, "rest": conv},
                             "nodes": {"s": {"stack": "D", "block": "first if i == 0 else rest",
                                             "in": "s[i - 1] if i > 0 else x", "args": {"C": "C"}},
                                       "out": {"op": "conv_1x1", "in": "s", "out": 3}}, "output": "out"})
    graph = build_graph(space)
    assert graph.stacks["s"] == ["first", "rest", "rest"] and graph.nodes["out"].inputs == ["s2.c"]
    assert build_graph(space, values={"D": 1}).nodes["out"].inputs == ["s0.c"]


def test_profile_times_every_value_and_prices_each_architecture_exactly(space: Space, tmp_path: Path) -> None:
    from nasflow.hardware.profile import profile_space
    from nasflow.search.latency_table import load_table

    graph = build_graph(space)
    table = profile_space(graph, (8, 8), warmup=0, reps=1)
    entry = table.nodes["fuse"]
    assert entry.value_deps == ["C"] and set(entry.at_values) == {"C=4", "C=6", "C=8"}
    assert table.nodes["m"].at_values["C=6"].options.keys() == {"conv_1x1", "conv_3x3", "sep_conv_3x3"}
    table.save(tmp_path / "lat.json")
    table = load_table(tmp_path / "lat.json")
    costs = table.decision_costs(graph)
    for values, op in [({"C": 4, "depth": 1}, "conv_1x1"), ({"C": 8, "depth": 3}, "sep_conv_3x3"),
                       ({"C": 6, "depth": 2}, "conv_3x3")]:
        geno = Genotype(choices={"m": op}, values=values)
        derived = build_graph(derive_space(space, geno))
        predicted = table.predict(derived)[0]  # the derived nodes find their entries by signature
        assert costs.of_genotype(graph, geno) == pytest.approx(predicted, rel=1e-9)
        one_hot = {k: F.one_hot(torch.tensor(i), len(graph.decisions[k].options)).float()
                   for k, i in picks_of(graph, values, op).items()}
        assert float(costs.expected(one_hot)) == pytest.approx(predicted, rel=1e-5)
    # A space whose values differ from the profiled ones is stale, in one line.
    other = space.model_copy(update={"values": {"C": [4, 8], "depth": [1, 2, 3]}})
    with pytest.raises(NasflowError, match="profiled with value decisions"):
        table.decision_costs(build_graph(other))


KERNELS = """\
name: kernels
imports: [nasflow.spaces.mobilenetv2.ops]
values: {K: [3, 5, 7], W: [4, 8]}
inputs: {x: 3}
nodes:
  stem: {op: mbv2_conv_bn_relu6, in: x, out: W, args: {k: 3}}
  dw: {op: mbv2_dw_bn_relu6, in: stem, args: {k: K}}
  head: {op: mbv2_conv_bn, in: dw, out: 3}
output: head
"""


@pytest.mark.parametrize("transform", [False, True])
@pytest.mark.parametrize("values", [{"K": 3, "W": 4}, {"K": 5, "W": 8}, {"K": 7, "W": 4}])
def test_a_searched_kernel_is_the_centre_or_ofas_transform_of_the_largest(tmp_path: Path, transform: bool,
                                                                           values: dict[str, int]) -> None:
    (tmp_path / "k.yaml").write_text(KERNELS)
    space = Space.from_yaml(tmp_path / "k.yaml")
    graph = build_graph(space)
    torch.manual_seed(0)
    net = compile_graph(graph, kernel_transform=transform).eval()
    if transform:  # one matrix per size pair of the node whose kernel is searched, identity at first
        assert sorted(net.kernel_transforms) == ["dw/5to3", "dw/7to5"]
        assert torch.equal(net.kernel_transforms["dw/5to3"], torch.eye(9))
        with torch.no_grad():
            for p in net.kernel_transforms.values():
                p.add_(0.05 * torch.randn_like(p))
    geno = Genotype(values=values)
    derived = build_graph(derive_space(space, geno))
    model = compile_graph(derived).eval()
    model.load_state_dict(inherit_weights(graph, net.state_dict(), derived, model.state_dict(), values))
    x = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    picks = {k: graph.decisions[k].values.index(v) for k, v in values.items()}
    with torch.no_grad():
        want = model(x)
        net.relaxation = Fixed(picks)  # sliced: the kernel taken (or transformed) at its size
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-6)
        net.relaxation = FixedSoft(picks)  # masked: one conv at 7x7 with the effective kernel
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-6)
    if transform and values["K"] < 7:  # the transform changes the kernel a plain centre would take
        plain = compile_graph(graph).eval()
        plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("kernel_transforms.")})
        plain.relaxation = Fixed(picks)
        with torch.no_grad():
            assert not torch.allclose(plain(x), want)


def test_a_latency_table_with_a_null_or_infinite_timing_is_one_error(space: Space, tmp_path: Path) -> None:
    import json

    from nasflow.hardware.profile import profile_space
    from nasflow.search.latency_table import LatencyTableError, load_table

    graph = build_graph(space)
    data = profile_space(graph, (8, 8), warmup=0, reps=1).model_dump()
    data["nodes"]["ps"]["timing"] = None  # a node without a decision or a value: its one timing
    (tmp_path / "null.json").write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="no timing for node 'ps'"):
        load_table(tmp_path / "null.json").decision_costs(graph)
    data["nodes"]["ps"]["timing"] = {"ms": float("inf"), "spread": 0.0}
    (tmp_path / "inf.json").write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="malformed at nodes.ps.timing.ms"):
        load_table(tmp_path / "inf.json")


def test_batchnorm_statistics_recomputed_for_a_sampled_width_are_the_subnets(tmp_path: Path) -> None:
    """SPOS / sandwich recompute BatchNorm statistics per path (momentum None: the plain average
    over batches); the sliced modules must follow the supernet's momentum, not their own."""
    from nasflow.strategies.spos import batch_norms

    (tmp_path / "k.yaml").write_text(KERNELS)
    space = Space.from_yaml(tmp_path / "k.yaml")
    graph = build_graph(space)
    torch.manual_seed(0)
    net = compile_graph(graph)
    values = {"K": 5, "W": 4}
    derived = build_graph(derive_space(space, Genotype(values=values)))
    model = compile_graph(derived)
    model.load_state_dict(inherit_weights(graph, net.state_dict(), derived, model.state_dict(), values))
    net.relaxation = Fixed({k: graph.decisions[k].values.index(v) for k, v in values.items()})
    g = torch.Generator().manual_seed(5)
    batches = [torch.rand(4, 3, 9, 9, generator=g) * (1 + i) for i in range(3)]
    for m in (net, model):
        for bn in batch_norms(m):
            bn.reset_running_stats()
            bn.momentum = None
        m.train()
        with torch.no_grad():
            for x in batches:
                m(x)
    mean = net.state_dict()["stem.op.1.running_mean"][:4]
    torch.testing.assert_close(mean, model.state_dict()["stem.op.1.running_mean"])
    net.eval(), model.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(batches[0]), model(batches[0]), rtol=1e-5, atol=1e-6)


def test_a_gapped_concatenation_read_by_other_than_a_conv_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(SPACE.replace("fuse: {op: conv_1x1, in: cat, out: C, args: {bias: true}}",
                                                   "fuse: {op: sep_conv_3x3, in: cat, out: C}"))
    graph = build_graph(Space.from_yaml(tmp_path / "g.yaml"))
    with pytest.raises(NasflowError, match="node 'fuse' reads a concatenation whose parts' widths are searched"):
        compile_graph(graph)


def test_derive_budget_mistakes_are_one_line(space: Space, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from nasflow.strategies.subnets import pick_subnets
    from test_hostile import _cli, _one_line_error

    (tmp_path / "w.yaml").write_text(SPACE)
    _one_line_error(*_cli(["derive", str(tmp_path / "w.yaml"), "--budget", "params=10k"], capsys),
                    "is not a run directory")
    with pytest.raises(NasflowError, match="does not exist"):
        pick_subnets(tmp_path / "nowhere", ["params=10k"])
