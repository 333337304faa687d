"""The latency table (nasflow profile) and the latency regularizer: what is measured, how it
is checked against the space and the machine, and the expected latency's value and gradient."""
from __future__ import annotations

import itertools
import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from synthetic import PlantedTask, fast_config, planted_space
from toy_spaces import YAML_SPACE, python_space

from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.errors import NasflowError
from nasflow.hardware import profile as profile_module
from nasflow.hardware.archs import CALIBRATION_SEED, random_architectures
from nasflow.hardware.check import check_table, spearman
from nasflow.hardware.profile import profile_space
from nasflow.hardware.timing import Runner, time_interleaved
from nasflow.search.latency_table import Timing, run_nodes
from nasflow.search.latency_table import LatencyTableError, cpu_name, load_table
from nasflow.search.loop import run_search
from nasflow.search.regularizers import LatencyRegularizer, get_regularizer, make_regularizer
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space

SIZE = (6, 10)  # h, w: tiny, the timings' values do not matter here, their bookkeeping does


def _yaml_graph(text: str = YAML_SPACE):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.yaml"
        path.write_text(text)
        return build_graph(Space.from_yaml(path))


@pytest.fixture(scope="module")
def toy():
    graph = build_graph(python_space())
    return graph, profile_space(graph, SIZE, warmup=0, reps=2)


# YAML_SPACE with a last node that reads b, so no genotype prunes a node: the derived model
# then runs exactly the nodes the expectation counts (pruned branches are counted, see
# nasflow/search/decision_costs.py).
UNPRUNED = YAML_SPACE.replace("head: {op: conv_1x1, in: mix, out: 3}\noutput: head",
                              "head: {op: conv_1x1, in: mix}\n  out: {combine: add, in: [head, b]}\noutput: out")


@pytest.fixture(scope="module")
def yaml_toy():
    assert UNPRUNED != YAML_SPACE
    graph = _yaml_graph(UNPRUNED)
    return graph, profile_space(graph, SIZE, warmup=0, reps=2)


def test_table_covers_every_node_and_option_and_is_stamped(toy, tmp_path):
    graph, table = toy
    assert set(table.nodes) == {n for n, g in graph.nodes.items() if g.kind != "input"}
    assert list(table.nodes["c2.m1"].options) == list(graph.decisions["m1"].options)
    assert list(table.nodes["e3"].options) == ["c1", "c2", "c3"]
    assert table.nodes["stem"].timing is not None and table.nodes["stem"].timing.ms > 0
    # the three cells compute the same thing at the same shapes: timed once
    assert table.nodes["c1.m1"].options == table.nodes["c3.m1"].options
    m = table.machine
    assert (m.kind, m.name, m.threads, m.torch, m.backend, m.dtype) == (
        "cpu", cpu_name(), torch.get_num_threads(), torch.__version__, "eager", "fp32")
    assert table.input_size == SIZE and table.output_size == (12, 20)
    path = table.save(tmp_path / "t.json")
    assert load_table(path) == table
    assert json.loads(path.read_text())["format"] == "nasflow-latency-table/1"


def _one_hot_logits(graph, genotype: Genotype) -> dict[str, torch.Tensor]:
    logits = {}
    for label, d in graph.decisions.items():
        picked = [genotype.choices[label]] if d.kind == "alpha" else genotype.edges[label]
        logits[label] = torch.tensor([1e4 if o in picked else -1e4 for o in d.options])
    return logits


def test_expected_latency_of_one_hot_decisions_is_the_tables_sum(yaml_toy):
    graph, table = yaml_toy  # a: 3 ops, b: 2 ops, mix: beta top-1 over 3 inputs
    model = compile_graph(graph)
    reg = LatencyRegularizer(graph, table)
    d = graph.decisions
    for a, b, mix in itertools.product(d["a"].options, d["b"].options, d["mix"].options):
        geno = Genotype(choices={"a": a, "b": b}, edges={"mix": [mix]})
        with torch.no_grad():
            for label, row in _one_hot_logits(graph, geno).items():
                model.arch.logits(label).copy_(row)
        derived = build_graph(derive_space(graph.space, geno))
        # the derived model's own nodes looked up in the table, summed
        want = sum(table.nodes[n].timing.ms if table.nodes[n].timing is not None and g.kind == table.nodes[n].kind
                   else table.nodes[n].options[g.op].ms if g.kind == "op"
                   else sum(table.nodes[n].options[c].ms for c in g.candidates)
                   for n, g in derived.nodes.items() if g.kind != "input")
        assert float(reg.expected_ms(model).detach()) == pytest.approx(want, rel=1e-5)
        assert table.predict(derived)[0] == pytest.approx(want, rel=1e-9)


def test_gradient_matches_finite_differences(toy):
    graph, table = toy
    costs = LatencyRegularizer(graph, table).costs
    g = torch.Generator().manual_seed(0)
    logits = {label: torch.randn(len(d.options), generator=g, dtype=torch.float64, requires_grad=True)
              for label, d in graph.decisions.items()}

    def f(ls):
        return costs.expected({k: F.softmax(v, -1) for k, v in ls.items()})

    grads = torch.autograd.grad(f(logits), list(logits.values()))
    eps = 1e-6
    for (label, v), grad in zip(logits.items(), grads):
        if graph.decisions[label].kind == "alpha":  # e3's inputs have equal shapes: equal times
            assert grad.abs().max() > 0
        for i in range(v.numel()):
            up = {k: t.detach().clone() for k, t in logits.items()}
            down = {k: t.detach().clone() for k, t in logits.items()}
            up[label][i] += eps
            down[label][i] -= eps
            numeric = (f(up) - f(down)) / (2 * eps)
            assert float(grad[i]) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9), (label, i)


def test_regularizer_penalty_is_relative_to_uniform_and_pushes_to_faster_ops(toy):
    graph, table = toy
    model = compile_graph(graph)
    reg = LatencyRegularizer(graph, table)
    with torch.no_grad():
        for p in model.arch_parameters():
            p.zero_()
    penalty, details = reg(model)
    assert float(penalty.detach()) == pytest.approx(1.0, rel=1e-5)
    assert details["latency/expected_ms"] == pytest.approx(reg.reference, rel=1e-5)
    penalty.backward()
    alpha = model.arch.logits("m1")
    ms = [sum(table.nodes[f"c{i}.m1"].options[o].ms for i in (1, 2, 3)) for o in graph.decisions["m1"].options]
    # d/d alpha_o at uniform = (ms_o - mean) / (N * reference): the slower, the larger
    assert torch.argsort(alpha.grad).tolist() == sorted(range(len(ms)), key=ms.__getitem__)


def test_latency_by_name_needs_a_table(toy):
    graph, _ = toy
    with pytest.raises(Exception, match="--latency-table"):
        get_regularizer("latency")(graph)


# --- bad tables: one clear error each ---------------------------------------------------------
def test_malformed_tables(tmp_path, toy):
    graph, table = toy
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LatencyTableError, match="not JSON"):
        load_table(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LatencyTableError, match="not a nasflow latency table"):
        load_table(bad)
    data = table.model_dump()
    del data["machine"]["name"]
    bad.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="malformed at machine.name"):
        load_table(bad)
    data = table.model_dump()
    data["nodes"]["stem"]["timing"]["ms"] = -1
    bad.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="malformed at nodes.stem.timing.ms"):
        load_table(bad)
    with pytest.raises(LatencyTableError, match="does not exist"):
        load_table(tmp_path / "missing.json")


def test_stale_tables(tmp_path, toy):
    graph, table = toy
    path = str(table.save(tmp_path / "t.json"))
    other_params = build_graph(python_space().with_params({"C": 6}))
    with pytest.raises(LatencyTableError, match="stale at node 'stem'.*C=6"):
        make_regularizer(other_params, "latency", path)
    # other labels, same nodes and candidates: the per-node timings still hold
    assert make_regularizer(build_graph(python_space(per_instance_labels=True)), "latency", path) is not None
    yaml_graph = _yaml_graph()
    with pytest.raises(LatencyTableError, match="profiled for space 'toy', not 'toy-yaml'"):
        make_regularizer(yaml_graph, "latency", path)
    candidates = _yaml_graph(YAML_SPACE.replace("[conv_1x1, conv_5x5, sep_conv_5x5]", "[conv_1x1, conv_5x5]"))
    yaml_table = profile_space(_yaml_graph(), SIZE, warmup=0, reps=1)
    with pytest.raises(LatencyTableError, match="stale at node 'a': options"):
        yaml_table.check_space(candidates)


def test_foreign_device_table(tmp_path, toy):
    graph, table = toy
    foreign = table.model_copy(update={"machine": table.machine.model_copy(update={"name": "Some Other CPU 9000"})})
    path = str(foreign.save(tmp_path / "foreign.json"))
    with pytest.raises(LatencyTableError, match="measured on cpu 'Some Other CPU 9000'.*profile here"):
        make_regularizer(graph, "latency", path)


def test_a_table_at_another_size_than_the_training_patch_is_normal(tmp_path):
    # PlantedTask trains on 10x10 patches; the table is profiled at a 24x40 deployment size.
    space = planted_space()
    table = profile_space(build_graph(space), (24, 40), warmup=0, reps=1)
    path = str(table.save(tmp_path / "t.json"))
    result = run_search(fast_config(steps=6, warmup=2, gamma=0.5, regularizer="latency", latency_table=path),
                        tmp_path / "run", space=space, task=PlantedTask())
    assert result.finished
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("reg/latency/expected_ms" in rec.get("losses", {}) for rec in logged)


# --- nasflow profile --check --------------------------------------------------------------------
def test_check_ranks_predicted_against_measured(toy):
    graph, table = toy
    result = check_table(graph, table, n=3, warmup=0, reps=1)
    assert len(result.rows) == 3
    assert len({r.genotype for r in result.rows}) == 3
    for r in result.rows:
        assert r.predicted_ms > 0 and r.measured_ms > 0
    assert -1 <= result.spearman <= 1 and result.mean_relative_error >= 0


def test_check_of_one_derived_architecture(toy):
    graph, table = toy
    derived = build_graph(derive_space(graph.space, Genotype(choices={"m1": "sep_conv_3x3"}, edges={"e3": ["c3", "c1"]})))
    result = check_table(derived, table, warmup=0, reps=2)
    (row,) = result.rows
    assert row.table_ms == pytest.approx(table.predict(derived)[0]) and row.measured_ms > 0 and result.drift > 0
    assert math.isnan(result.spearman) and result.to_json()["spearman"] is None  # one architecture: no ranks


def test_interleaved_timing_runs_every_call_once_a_round_in_shuffled_orders():
    now, log = [0.0], []

    def call(name: str, seconds: float):
        def run() -> None:
            log.append(name)
            now[0] += seconds
        return run

    calls = {"a": call("a", 1e-3), "b": call("b", 2e-3), "c": call("c", 4e-3)}
    timed = time_interleaved(calls, warmup=1, rounds=6, clock=lambda: now[0])
    assert {k: t.ms for k, t in timed.items()} == pytest.approx({"a": 1.0, "b": 2.0, "c": 4.0})
    assert all(t.spread == pytest.approx(0.0, abs=1e-9) for t in timed.values())
    assert log[:3] == ["a", "b", "c"]  # the warm-up
    rounds = [log[3 + 3 * i: 6 + 3 * i] for i in range(6)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds) and len(log) == 21
    assert len({tuple(r) for r in rounds}) > 1  # shuffled: no call always first


def test_calibration_measures_a_per_node_overhead_that_every_prediction_carries(monkeypatch):
    graph = _yaml_graph(UNPRUNED)
    archs = random_architectures(graph, 2, CALIBRATION_SEED)
    nodes = [run_nodes(a) for a in archs]
    assert len(set(nodes)) == 1  # UNPRUNED: every architecture runs every node

    def fake(calls, warmup, rounds, **kwargs):
        # every node 1 ms alone (a dense candidate: its share of k inputs); the whole networks
        # 0.5 and 0.7 ms a node more than their parts
        return {key: Timing(ms=(1.0 + (0.5, 0.7)[int(key.split()[1])]) * nodes[0] if key.startswith("calibration")
                            else 1.0, spread=0.0) for key in calls}

    monkeypatch.setattr(profile_module, "time_interleaved", fake)
    table = profile_space(graph, SIZE, warmup=0, reps=1, calibrate=2)
    assert table.calibrated_on == 2 and table.node_overhead_ms == pytest.approx(0.6)  # the median
    plain = profile_space(graph, SIZE, warmup=0, reps=1)
    assert plain.calibrated_on == 0 and plain.node_overhead_ms == 0.0
    model = compile_graph(graph)
    reg = LatencyRegularizer(graph, table)
    d = graph.decisions
    for a, b, mix in itertools.product(d["a"].options, d["b"].options, d["mix"].options):
        geno = Genotype(choices={"a": a, "b": b}, edges={"mix": [mix]})
        derived = build_graph(derive_space(graph.space, geno))
        want = plain.predict(derived)[0] + 0.6 * run_nodes(derived)
        assert table.predict(derived)[0] == pytest.approx(want)
        with torch.no_grad():
            for label, row in _one_hot_logits(graph, geno).items():
                model.arch.logits(label).copy_(row)
        assert float(reg.expected_ms(model).detach()) == pytest.approx(want, rel=1e-5)


def test_cpu_clock_is_stamped_and_checked_with(toy):
    graph, _ = toy
    table = profile_space(graph, SIZE, Runner(clock="cpu"), warmup=0, reps=2)
    assert table.machine.clock == "cpu"
    assert len(check_table(graph, table, n=2, warmup=0, reps=1).rows) == 2
    with pytest.raises(NasflowError, match="clock"):
        Runner(clock="sundial")
    with pytest.raises(NasflowError, match="OpenVINO"):
        Runner("openvino", clock="cpu")


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, rel=1e-6)  # ties averaged
