"""Node kinds are classes in registries, one per stage, and a new kind is one file:
tests/kind_repeat.py defines `repeat` outside nasflow, and a space using it validates (with
file:line errors), costs, compiles, searches a few steps on the planted task and derives."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from synthetic import CANDIDATES, PlantedTask, fast_config, planted_space

from nasflow.compile.kinds import COMPILED_KINDS
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype, derive_space, inherit_weights
from nasflow.derive.kinds import DERIVED_KINDS
from nasflow.errors import NasflowError, SpaceError
from nasflow.search.derive_run import derive_run
from nasflow.search.loop import run_search
from nasflow.space.cost import graph_cost, op_cost
from nasflow.space.graph import build_graph
from nasflow.space.kinds import NODE_KINDS, unregister_node_kind
from nasflow.space.schema import Space

SPACE = """\
name: planted-repeat
imports: [kind_repeat]
params: {C: 4}
inputs: {x: C, y: C}
nodes:
  m: {choice: [%s], in: x}
  r: {repeat: conv_3x3, times: 3, in: m, act: relu}
  u1: {op: identity, in: y}
  u2: {combine: mul, in: [x, y]}
  u3: {op: sigmoid, in: y}
  u4: {combine: mul, in: [y, y]}
  e: {dense: [u1, u2, u3, u4], topk: 2, op: conv_1x1, out: C}
  out: {combine: add, in: [r, e]}
output: out
""" % ", ".join(CANDIDATES)


@pytest.fixture
def repeat_kind():
    """Registers `repeat` through the space's `imports:` and unregisters it afterwards, so
    other tests see the builtin kinds only."""
    yield
    if "repeat" in NODE_KINDS:
        unregister_node_kind("repeat")
    if "repeat" in COMPILED_KINDS:
        COMPILED_KINDS.remove("repeat")
    for module in ("kind_repeat", "kind_beside_the_space"):
        sys.modules.pop(module, None)


def write(tmp_path, text: str = SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_builtin_kinds_have_their_halves_registered():
    assert NODE_KINDS.names()[:5] == ["op", "choice", "dense", "combine", "block"]
    assert {"op", "choice", "dense", "combine"} <= set(COMPILED_KINDS.names())
    assert {"choice", "dense"} <= set(DERIVED_KINDS.names())
    assert [NODE_KINDS.get(k).decision for k in ("op", "choice", "dense", "combine")] == [None, "alpha", "beta", None]


def test_new_kind_validates_with_file_line_errors(tmp_path, repeat_kind):
    assert "repeat" not in NODE_KINDS
    space = Space.from_yaml(write(tmp_path))  # imports kind_repeat before reading the nodes
    assert "repeat" in NODE_KINDS and type(space.nodes["r"]).__name__ == "RepeatNode"
    assert Space.from_data(space.to_data()).to_yaml() == space.to_yaml()  # round trip
    with pytest.raises(SpaceError, match=r"space.yaml:7: nodes.r: unknown key 'tims'"):
        Space.from_yaml(write(tmp_path, SPACE.replace("times: 3", "tims: 3")))
    with pytest.raises(SpaceError, match=r"space.yaml:7: repeat node 'r': times is 0; use 1 or more"):
        build_graph(Space.from_yaml(write(tmp_path, SPACE.replace("times: 3", "times: 0"))))
    with pytest.raises(SpaceError, match=r"space.yaml:7: repeat node 'r': 'conv_1x1' must keep channels"):
        build_graph(Space.from_yaml(write(tmp_path, SPACE.replace("conv_3x3, times: 3", "conv_1x1, out: 8"))))
    with pytest.raises(SpaceError, match=r"a node needs one of the keys op, choice, dense, combine, block, stack or repeat"):
        Space.from_yaml(write(tmp_path, SPACE.replace("{repeat: conv_3x3", "{repeats: conv_3x3")))


def test_without_the_kind_its_nodes_are_refused(tmp_path):
    text = SPACE.replace("imports: [kind_repeat]\n", "")
    with pytest.raises(SpaceError, match=r"space.yaml:6: nodes.r: a node needs one of the keys op, choice, "
                                         r"dense, combine, block or stack$"):
        Space.from_yaml(write(tmp_path, text))


def test_a_kind_beside_the_space_file_needs_trust(tmp_path, repeat_kind, monkeypatch):
    (tmp_path / "kind_beside_the_space.py").write_text((Path(__file__).parent / "kind_repeat.py").read_text())
    path = write(tmp_path, SPACE.replace("[kind_repeat]", "[kind_beside_the_space]"))
    monkeypatch.delenv("NASFLOW_TRUST_IMPORTS", raising=False)
    with pytest.raises(SpaceError, match=r"space.yaml:7: nodes.r: a node needs one of the keys .*the space imports "
                                         r"'kind_beside_the_space' .* not imported .*--trust-imports"):
        Space.from_yaml(path)
    monkeypatch.setenv("NASFLOW_TRUST_IMPORTS", "1")
    with pytest.warns(Warning, match="kind_beside_the_space"):
        space = Space.from_yaml(path)
    assert build_graph(space).nodes["r"].kind == "repeat"


def test_new_kind_costs_its_ops(tmp_path, repeat_kind):
    graph = build_graph(Space.from_yaml(write(tmp_path)))
    rows = [r for r in graph_cost(graph, (16, 16)).rows if r.node == "r"]
    one = op_cost("conv_3x3", 4, 4, {}, 16, 16)
    assert [(r.kind, r.op, r.params, r.madds) for r in rows] == [("repeat", "conv_3x3", *one)] * 3
    assert graph.nodes["r"].c_out == 4 and graph.nodes["out"].c_in == [4, 4]


def test_new_kind_compiles_to_its_chain_of_ops(tmp_path, repeat_kind):
    torch.manual_seed(0)
    net = compile_graph(build_graph(Space.from_yaml(write(tmp_path))))
    convs = [m for m in net.r if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3
    x, y = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    seen = {}
    net.m.register_forward_hook(lambda mod, inp, out: seen.setdefault("m", out))
    net.r.register_forward_hook(lambda mod, inp, out: seen.setdefault("r", out))
    net(x=x, y=y)
    want = seen["m"]
    for conv in convs:
        want = conv(want)
    assert torch.equal(seen["r"], torch.relu(want))


def test_new_kind_searches_and_derives(tmp_path, repeat_kind):
    space = Space.from_yaml(write(tmp_path))
    result = run_search(fast_config(steps=4, warmup=1, checkpoint_every=2), tmp_path / "run", space=space,
                        task=PlantedTask())
    assert result.finished and result.step == 4
    derived = derive_run(tmp_path / "run", size=(8, 8))
    assert derived.space.nodes["r"] == space.nodes["r"]  # a fixed node derives as it is
    assert derived.space.nodes["m"].op == result.genotype.choices["m"]
    assert derived.space.imports == ["kind_repeat"]
    again = Space.from_yaml(derived.out_dir / "arch.yaml")
    graph = build_graph(again)
    assert graph.is_derived and graph.nodes["r"].kind == "repeat"
    assert derived.params == graph_cost(graph, (8, 8)).params
    # the derived model inherits the searched weights, the repeat's included
    super_graph = build_graph(space)
    torch.manual_seed(0)
    supernet, model = compile_graph(super_graph), compile_graph(graph)
    weights = inherit_weights(super_graph, supernet.state_dict(), graph, model.state_dict())
    assert torch.equal(weights["r.0.weight"], supernet.state_dict()["r.0.weight"])


def test_a_kind_without_its_compile_side_says_so(tmp_path, repeat_kind):
    graph = build_graph(Space.from_yaml(write(tmp_path)))
    compiled = COMPILED_KINDS.remove("repeat")
    try:
        with pytest.raises(NasflowError, match=r"node kind 'repeat' has no compile side.*@register_compiled_kind"):
            compile_graph(graph)
    finally:
        COMPILED_KINDS.add("repeat", compiled)


def test_a_decision_kind_without_its_derive_side_says_so():
    space = planted_space()
    genotype = Genotype({"m": "conv_1x1"}, {"e": ["u1", "u2"]})
    assert derive_space(space, genotype).nodes["m"].op == "conv_1x1"
    derive_choice = DERIVED_KINDS.remove("choice")
    try:
        with pytest.raises(NasflowError, match=r"node 'm' is still a decision after deriving: node kind 'choice' "
                                               r"has no derive side"):
            derive_space(space, genotype)
    finally:
        DERIVED_KINDS.add("choice", derive_choice)


def test_the_docs_example_is_the_tested_kind():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "space-language.md").read_text()
    (block,) = re.findall(r"```python file=kind_repeat.py\n(.*?)```", doc, re.S)
    assert block == (Path(__file__).parent / "kind_repeat.py").read_text()
