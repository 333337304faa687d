"""The search loop on planted problems: both strategies recover the planted op and edges,
a large gamma picks the cheapest op instead, warm-up leaves the arch alone, a seed makes a
run repeatable, and the run directory records what happened."""
from __future__ import annotations

import pytest
import torch
from nasflow.strategies import STRATEGIES
from synthetic import PlantedTask, fast_config, planted_space, register_task

from nasflow.space.cost import candidate_costs
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.search.run_dir import RunDir
from nasflow.search.loop import run_search
from nasflow.space.schema import Space, op

PLANTED = [("conv_5x5", ("u2", "u4")), ("dil_conv_3x3", ("u1", "u4"))]


@pytest.mark.parametrize("strategy", ["darts", "milenas"])
@pytest.mark.parametrize("planted_op, edges", PLANTED)
def test_recovers_planted_op_and_edges(tmp_path, strategy, planted_op, edges):
    result = run_search(fast_config(strategy=strategy), tmp_path / "run", space=planted_space(),
                        task=PlantedTask(op=planted_op, edges=edges))
    assert result.finished and result.step == 100
    assert result.genotype.choices == {"m": planted_op}
    assert set(result.genotype.edges["e"]) == set(edges)
    m = result.softmax["m"]
    assert max(m) > 1.5 * sorted(m)[-2], f"{planted_op} should stand out: {m}"


@pytest.mark.parametrize("strategy", ["darts", "milenas"])
@pytest.mark.parametrize("metric", ["params", "madds"])
def test_large_gamma_picks_the_cheapest_op(tmp_path, strategy, metric):
    space = planted_space()
    costs = candidate_costs(build_graph(space), "m", metric)
    cheapest = space.nodes["m"].choice[costs.index(min(costs))]
    assert cheapest == "conv_1x1"
    result = run_search(fast_config(strategy=strategy, gamma=5.0, regularizer=metric), tmp_path / "run",
                        space=space, task=PlantedTask(op="conv_5x5"))
    assert result.genotype.choices == {"m": cheapest}


def test_warmup_updates_weights_only(tmp_path):
    result = run_search(fast_config(steps=20, warmup=20), tmp_path / "run", space=planted_space(),
                        task=PlantedTask())
    assert result.softmax == result.initial_softmax  # arch untouched
    records = RunDir(tmp_path / "run").read_metrics()
    assert [r["phase"] for r in records] == ["start", "warmup", "warmup"]
    assert records[2]["losses"]["train/loss"] < records[1]["losses"]["train/loss"]  # weights learn
    assert "valid/loss" not in records[2]["losses"]


def test_same_seed_same_search_other_seed_other_search(tmp_path):
    def arch(name, seed):
        run_search(fast_config(steps=30, warmup=5, seed=seed), tmp_path / name, space=planted_space(),
                   task=PlantedTask())
        return RunDir(tmp_path / name).load_arch()[0]

    a, b, c = arch("a", 1), arch("b", 1), arch("c", 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_metrics_snapshots_and_files(tmp_path):
    config = fast_config(steps=30, warmup=10, snapshot_steps=[10, 20, 99], gamma=0.1)
    run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    run = RunDir(tmp_path / "run")
    records = run.read_metrics()
    assert [r["step"] for r in records] == [0, 10, 20, 30]
    last = records[-1]
    assert last["phase"] == "search" and set(last["weights"]) == {"m", "e"} and len(last["weights"]["e"]) == 4
    assert abs(sum(last["weights"]["m"]) - 1) < 1e-5 and 0 < last["entropy"]["m"] < torch.log(torch.tensor(6.0))
    assert {"train/loss", "valid/loss", "arch_train/loss", "reg/penalty", "reg/params/m"} <= set(last["losses"])
    assert set(last["genotype"]) == {"choices", "edges"}
    assert run.snapshot_steps() == [10, 20]
    assert (run.path / "snapshots" / "step_000010.genotype.json").is_file()
    assert run.config() == config
    assert Space.from_yaml(run.space_path).to_data() == planted_space().to_data()


def test_overrides_are_applied_to_the_run_space(tmp_path):
    run_search(fast_config(steps=2, warmup=1, overrides={"C": 2}), tmp_path / "run",
               space=planted_space(), task=PlantedTask(channels=2))
    assert RunDir(tmp_path / "run").space().params == {"C": 2}


def test_space_without_decisions_is_refused(tmp_path):
    fixed = Space(name="fixed", inputs={"x": 3}, nodes={"a": op("conv_3x3", "x")}, output="a")
    with pytest.raises(NasflowError, match="no architecture parameters, nothing to search"):
        run_search(fast_config(), tmp_path / "run", space=fixed, task=PlantedTask())


def test_task_comes_from_the_space_or_is_asked_for(tmp_path):
    with pytest.raises(NasflowError, match="names no task; add `task: NAME`"):
        run_search(fast_config(), tmp_path / "a", space=planted_space())
    name = register_task()
    result = run_search(fast_config(steps=3, warmup=1), tmp_path / "b", space=planted_space(task=name))
    assert result.finished
    with pytest.raises(NasflowError, match="does not accept options"):
        run_search(fast_config(task_options={"colour": 3}), tmp_path / "c", space=planted_space(task=name))


def test_every_registered_strategy_runs_a_step(tmp_path):
    for name in STRATEGIES.names():
        result = run_search(fast_config(strategy=name, steps=2, warmup=1), tmp_path / name,
                            space=planted_space(), task=PlantedTask())
        if STRATEGIES.get(name).learns_arch:
            assert result.softmax != result.initial_softmax, name
        else:  # SPOS: the arch params stay, the strategy chose the architecture at the end
            assert result.softmax == result.initial_softmax and result.chosen, name
