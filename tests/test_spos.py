"""SPOS: a uniformly drawn single path per step (only it computed), then an evolution over the
trained supernet scored on the task's metric, under the budget, with BatchNorm recalibrated;
the chosen genotype is what `derive` derives; planted structure recovered; exact resume
during training and across the evolution."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from strategy_checks import assert_resume_is_exact, final_state, recovered, recoveries
from synthetic import CANDIDATES, PlantedTask, fast_config, planted_space

import nasflow.spaces.darts.ops  # noqa: F401  (the DARTS ops: BatchNorm in every candidate)
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype
from nasflow.errors import NasflowError
from nasflow.search.budget import Budget
from nasflow.search.derive_run import derive_run
from nasflow.search.loop import run_search
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, choice, combine, dense, op
from nasflow.strategies import SPOS, get_strategy
from nasflow.strategies import evolution, spos

BN_OPS = ["darts_none", "darts_sep_conv_3x3", "darts_dil_conv_3x3", "darts_sep_conv_5x5", "darts_skip_connect"]


def bn_space() -> Space:
    """The planted space with DARTS' candidates (BatchNorm in each) and a never-derived none."""
    return Space(name="planted-bn", params={"C": 4}, inputs={"x": "C", "y": "C"}, nodes={
        "m": choice(BN_OPS, "x", never_derive=["darts_none"]),
        "u1": op("identity", "y"), "u2": combine("mul", ["x", "y"]),
        "u3": op("sigmoid", "y"), "u4": combine("mul", ["y", "y"]),
        "e": dense(["u1", "u2", "u3", "u4"], topk=2, op="conv_1x1", out="C"),
        "out": combine("add", ["m", "e"]),
    }, output="out")


def _attached(space: Space, **options):
    strategy = get_strategy("spos")(config=fast_config(strategy="spos", strategy_options=options))
    torch.manual_seed(0)
    model = compile_graph(build_graph(space), mixed_op=strategy.mixed_op())
    strategy.attach(model)
    return strategy, model


def test_a_uniform_single_path_per_forward_only_it_computed_never_a_never_derive_op():
    strategy, model = _attached(bn_space())
    assert strategy.a_optimizer is None and model.relaxation.sparse
    calls = {c: 0 for c in BN_OPS}
    for c, m in model.m.ops.items():
        m.register_forward_hook(lambda mod, args, out, c=c: calls.__setitem__(c, calls[c] + 1))
    pairs = set()
    inputs, _ = PlantedTask().sample(2, torch.Generator().manual_seed(0))
    for _ in range(60):
        before = dict(calls)
        weights = model.relaxation(model.arch)
        assert weights["m"].tolist().count(1.0) == 1 and weights["m"].sum() == 1.0
        assert weights["e"].tolist().count(1.0) == 2 and weights["e"].sum() == 2.0  # 2 distinct inputs
        pairs.add(tuple(i for i, w in enumerate(weights["e"].tolist()) if w == 1.0))
        model(**inputs)
        ran = [c for c in BN_OPS if calls[c] > before[c]]
        assert len(ran) == 1 and ran != ["darts_none"]  # one candidate ran, never the excluded one
    assert all(calls[c] > 0 for c in BN_OPS[1:]) and len(pairs) == 6  # uniform: every option drawn


def test_a_step_trains_the_drawn_path_weights_only():
    strategy, model = _attached(planted_space())
    strategy.loss_fn = PlantedTask().loss
    task = PlantedTask()
    batch = task.sample(4, torch.Generator().manual_seed(1))
    arch0 = [p.detach().clone() for p in model.arch_parameters()]
    ops0 = {c: [p.detach().clone() for p in m.parameters()] for c, m in model.m.ops.items()}
    logs = strategy.step(model, batch, batch)
    assert "train/loss" in logs and not SPOS.learns_arch
    assert all(torch.equal(a, p) and p.grad is None for a, p in zip(arch0, model.arch_parameters()))
    moved = [c for c, m in model.m.ops.items() if any(not torch.equal(a, p) for a, p in zip(ops0[c], m.parameters()))]
    assert len(moved) == 1  # the one drawn candidate learned, the others sat out
    with pytest.raises(NasflowError, match="no arch gradient"):
        strategy.arch_gradient(model, batch, batch)


def test_recovers_the_planted_op_and_edges(tmp_path):
    found = recoveries(tmp_path, "spos", steps=100, warmup=0)
    assert recovered(found) >= 4, found
    run = tmp_path / "spos-0"
    chosen = json.loads((run / "chosen.json").read_text())
    assert chosen["strategy"] == "spos" and chosen["step"] == 100
    # derive derives the evolution's pick, not argmax alpha (SPOS never moves alpha)
    derived = derive_run(run)
    evo = json.loads((run / "spos" / "evolution.json").read_text())
    assert derived.genotype.to_json() == chosen["genotype"] == evo["best"]["genotype"]
    assert evo["metric"] == "mse" and evo["higher_is_better"] is False
    assert evo["best"]["mse"] == min(s["mse"] for s in evo["scored"])
    assert evo["best"] in evo["pareto"] and (run / "spos" / "pareto.txt").read_text().count("(best)") == 1
    costs = [p["cost"] for p in evo["pareto"]]
    scores = [p["mse"] for p in evo["pareto"]]
    assert costs == sorted(costs) and scores == sorted(scores, reverse=True)  # cheaper is worse on the front
    assert len({json.dumps(s["genotype"]) for s in evo["scored"]}) == len(evo["scored"]) == 32  # 8 x 4, no repeats


def test_resume_is_exact_during_supernet_training(tmp_path):
    state = assert_resume_is_exact(tmp_path, "spos")
    assert "generator" in state and state["evolution"]["state"]["generation"] == 4
    assert (tmp_path / "a" / "chosen.json").read_text() == (tmp_path / "b" / "chosen.json").read_text()


def test_an_interrupted_evolution_resumes_exactly(tmp_path, monkeypatch):
    config = fast_config(strategy="spos", steps=20, warmup=0, checkpoint_every=10)
    whole = run_search(config, tmp_path / "a", space=planted_space(), task=PlantedTask())
    breed = evolution.Evolution.breed

    def interrupted(self):  # Ctrl-C while the second generation is being made
        breed(self)
        if self.generation == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(evolution.Evolution, "breed", interrupted)
    stopped = run_search(config, tmp_path / "b", space=planted_space(), task=PlantedTask())
    assert not stopped.finished and not stopped.chosen and not (tmp_path / "b" / "chosen.json").exists()
    tensors, state = final_state(tmp_path / "b")
    assert state["step"] == 20 and state["strategy"]["evolution"]["state"]["generation"] == 1  # supernet kept
    assert len(state["strategy"]["evolution"]["state"]["scored"]) == 8
    monkeypatch.setattr(evolution.Evolution, "breed", breed)
    resumed = run_search(config, tmp_path / "b", task=PlantedTask(), resume=True)
    assert resumed.finished and resumed.chosen and resumed.genotype == whole.genotype
    for name in ("chosen.json", "spos/evolution.json"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    (ta, sa), (tb, sb) = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    ga, gb = (s["strategy"]["evolution"]["state"]["generator"] for s in (sa, sb))
    assert torch.equal(ga, gb)


def test_only_architectures_under_the_budget_are_admitted(tmp_path):
    graph = build_graph(planted_space())
    costs = Budget.parse("params=1").costs(graph)
    space = evolution.PathSpace(graph, SPOS().derivation_rule())
    planted = space.genotype(((CANDIDATES.index("conv_5x5"),), (1, 3)))
    limit = costs.of_genotype(graph, space.genotype(((CANDIDATES.index("conv_3x3"),), (1, 3))))
    assert costs.of_genotype(graph, planted) > limit  # the budget excludes the planted op
    every = [costs.of_genotype(graph, space.genotype(((i,), pair))) for i in range(6)
             for pair in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]]
    assert sum(c > limit for c in every) >= 12  # it bites
    config = fast_config(strategy="spos", steps=60, warmup=0, budget=f"params={int(limit)}", gamma=0.1)
    result = run_search(config, tmp_path / "r", space=planted_space(), task=PlantedTask())
    evo = json.loads((tmp_path / "r" / "spos" / "evolution.json").read_text())
    assert evo["cost"] == "params" and evo["budget"] == f"params={int(limit)}"
    assert evo["scored"] and all(s["cost"] <= limit for s in evo["scored"])
    assert costs.of_genotype(graph, result.genotype) <= limit and result.genotype.choices["m"] != "conv_5x5"
    # a budget only the cheapest op meets (with any pair of inputs: they cost alike)
    least = costs.of_genotype(graph, space.genotype(space.cheapest(costs)))
    assert sum(c <= least for c in every) == 6
    only = run_search(config.model_copy(update={"budget": f"params={int(least)}", "steps": 5}), tmp_path / "only",
                      space=planted_space(), task=PlantedTask())
    scored = json.loads((tmp_path / "only" / "spos" / "evolution.json").read_text())["scored"]
    assert only.genotype.choices["m"] == "conv_1x1" and len(scored) == 6
    assert all(s["genotype"]["choices"]["m"] == "conv_1x1" for s in scored)
    with pytest.raises(NasflowError, match="no architecture of this space is under it .the cheapest costs"):
        run_search(config.model_copy(update={"budget": "params=10"}), tmp_path / "tight",
                   space=planted_space(), task=PlantedTask())


def test_a_band_admits_only_architectures_within_it(tmp_path):
    graph = build_graph(planted_space())
    costs = Budget.parse("params=1").costs(graph)
    space = evolution.PathSpace(graph, SPOS().derivation_rule())
    per_op = {op: costs.of_genotype(graph, space.genotype(((i,), (1, 3)))) for i, op in enumerate(CANDIDATES)}
    floor, limit = per_op["sep_conv_3x3"], per_op["conv_3x3"]
    inside = {op for op, c in per_op.items() if floor <= c <= limit}
    assert inside == {"sep_conv_3x3", "conv_3x3"}  # the band holds two of the six ops
    band = f"params={int(floor)}..{int(limit)}"
    config = fast_config(strategy="spos", steps=5, warmup=0, budget=band, gamma=0.1)
    result = run_search(config, tmp_path / "r", space=planted_space(), task=PlantedTask())
    evo = json.loads((tmp_path / "r" / "spos" / "evolution.json").read_text())
    assert evo["budget"] == band and len(evo["scored"]) == 12  # both ops, every pair of inputs
    assert all(s["genotype"]["choices"]["m"] in inside for s in evo["scored"])
    assert result.genotype.choices["m"] in inside


def test_batchnorm_statistics_are_recomputed_per_path_and_used(tmp_path, monkeypatch):
    # recalibrate: the running stats become the average of the path's own batch statistics
    strategy, model = _attached(bn_space())
    bns = spos.batch_norms(model)
    assert bns and all(bn.momentum == 0.1 for bn in bns)
    task = PlantedTask()
    batches = [task.sample(4, torch.Generator().manual_seed(i)) for i in range(3)]
    path = ((BN_OPS.index("darts_dil_conv_3x3"),), (1, 3))
    bn = next(m for m in model.m.ops["darts_dil_conv_3x3"].modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    bn.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach()))
    strategy.path_relaxation.fixed = path
    spos.recalibrate(model, bns, batches, lambda m, b: task.loss(m, b))
    want_mean = torch.stack([x.mean((0, 2, 3)) for x in seen]).mean(0)
    want_var = torch.stack([x.var((0, 2, 3), unbiased=True) for x in seen]).mean(0)
    assert len(seen) == 3 and not torch.allclose(want_mean, torch.zeros(4))
    torch.testing.assert_close(bn.running_mean, want_mean)
    torch.testing.assert_close(bn.running_var, want_var)
    assert all(b.momentum == 0.1 for b in bns)  # put back
    # the evolution recalibrates before scoring each path, and puts the supernet's stats back
    calls, during = [], []
    recalibrate = spos.recalibrate

    def spy(model, bns, batches, loss_fn):
        recalibrate(model, bns, batches, loss_fn)
        calls.append(len(batches))
        during.append(bns[0].running_mean.clone())

    monkeypatch.setattr(spos, "recalibrate", spy)
    config = fast_config(strategy="spos", steps=10, warmup=0, strategy_options={"population": 4, "generations": 2,
                                                                               "bn_batches": 2})
    trained = run_search(config, tmp_path / "r", space=bn_space(), task=PlantedTask())
    evo = json.loads((tmp_path / "r" / "spos" / "evolution.json").read_text())
    assert calls == [2] * len(evo["scored"]) == [2] * 8
    tensors, _ = final_state(tmp_path / "r")
    stats = [k for k in tensors if k.endswith("running_mean")]
    assert stats and trained.finished
    # a second run stopped after its last step, before the evolution, holds the supernet's own stats
    calls.clear()
    monkeypatch.setattr(SPOS, "finish", lambda self, end: None)
    bare = run_search(config, tmp_path / "s", space=bn_space(), task=PlantedTask())
    bare_tensors, _ = final_state(tmp_path / "s")
    assert not calls and bare.finished
    for k in stats:  # the evolution changed them per path and put the trained ones back
        assert torch.equal(tensors[k], bare_tensors[k]), k
    assert len({tuple(d.tolist()) for d in during}) > 1  # each path its own statistics


def test_the_dlsr_supernet_has_no_batchnorm_to_recalibrate():
    from pathlib import Path

    from nasflow.space.load import load_space

    space = load_space(Path(__file__).resolve().parents[1] / "spaces" / "dlsr" / "space.yaml", {"channels": 8})
    assert spos.batch_norms(compile_graph(build_graph(space), mixed_op="plain")) == []


def test_a_latency_budget_admits_by_the_latency_table(tmp_path):
    from nasflow.hardware.profile import profile_space

    graph = build_graph(planted_space())
    table = profile_space(graph, (16, 16), warmup=1, reps=3)
    path = str(table.save(tmp_path / "t.json"))
    costs = table.decision_costs(graph)
    space = evolution.PathSpace(graph, SPOS().derivation_rule())
    every = [costs.of_genotype(graph, space.genotype(((i,), pair))) for i in range(6)
             for pair in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]]
    limit = (min(every) + max(every)) / 2
    assert any(c > limit for c in every) and any(c <= limit for c in every)
    config = fast_config(strategy="spos", steps=20, warmup=0, budget=f"latency={limit}ms", latency_table=path,
                         gamma=0.1)
    result = run_search(config, tmp_path / "r", space=planted_space(), task=PlantedTask())
    evo = json.loads((tmp_path / "r" / "spos" / "evolution.json").read_text())
    assert evo["cost"] == "latency" and evo["scored"]
    for s in evo["scored"]:  # the cost is the table's prediction, and under the budget
        assert s["cost"] == pytest.approx(costs.of_genotype(graph, Genotype.from_json(s["genotype"])))
        assert s["cost"] <= limit
    assert costs.of_genotype(graph, result.genotype) <= limit
