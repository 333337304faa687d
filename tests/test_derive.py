"""Derivation: genotype from arch parameters, derived space files that the same compiler
builds, and the round trip derive -> YAML -> compile."""
from __future__ import annotations

import pytest
import torch
from toy_spaces import python_space, yaml_space_file

from nasflow.derive.genotype import Genotype, derive_space, genotype_from_arch
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.space.schema import ChoiceNode, Space
from nasflow.compile.supernet import compile_graph


def _logits(model, graph):
    return {label: model.arch.logits(label) for label in graph.decisions}


def _set(model, label, values):
    with torch.no_grad():
        model.arch.logits(label).copy_(torch.tensor(values))


def test_genotype_is_argmax_and_topk_in_beta_order():
    graph = build_graph(python_space())
    model = compile_graph(graph)
    _set(model, "m1", [0.1, 0.0, 0.9, 0.2])
    _set(model, "e3", [0.2, 0.1, 0.7])
    geno = genotype_from_arch(graph, _logits(model, graph))
    assert geno.choices == {"m1": "sep_conv_3x3"}
    assert geno.edges == {"e3": ["c3", "c1"]}  # descending beta: the concatenation order
    assert genotype_from_arch(graph, _logits(model, graph), topk=1).edges == {"e3": ["c3"]}
    with pytest.raises(NasflowError, match="topk 4 does not fit dense node 'e3' with 3 candidate inputs"):
        genotype_from_arch(graph, _logits(model, graph), topk=4)


def test_genotype_rejects_arch_of_another_space():
    graph = build_graph(python_space())
    with pytest.raises(NasflowError, match="decision 'm1' has 4 candidates but 3"):
        genotype_from_arch(graph, {"m1": torch.zeros(3), "e3": torch.zeros(3)})


def _round_trip(space: Space, tmp_path) -> None:
    graph = build_graph(space)
    model = compile_graph(graph)
    geno = genotype_from_arch(graph, _logits(model, graph))
    derived = derive_space(space, geno)
    built = compile_graph(build_graph(derived))
    assert build_graph(derived).is_derived
    path = tmp_path / "arch.yaml"
    derived.to_yaml(path)
    again_graph = build_graph(Space.from_yaml(path))
    again = compile_graph(again_graph)
    assert again_graph.is_derived
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in built.parameters())
    assert list(again.state_dict()) == list(built.state_dict())
    assert Space.from_yaml(path).meta["genotype"] == geno.to_json()
    x = torch.rand(1, 3, 9, 9)
    assert again(x).shape == model(x).shape


def test_python_space_derives_and_round_trips(tmp_path):
    _round_trip(python_space(), tmp_path)


def test_yaml_space_derives_and_round_trips(tmp_path):
    _round_trip(Space.from_yaml(yaml_space_file(tmp_path)), tmp_path)


def test_dropped_inputs_are_pruned():
    space = python_space()
    geno = Genotype({"m1": "conv_1x1"}, {"e3": ["c2", "c1"]})
    derived = derive_space(space, geno)
    assert list(derived.nodes) == ["stem", "c1", "c2", "e3", "up_conv", "up"]  # c3 fed nothing
    assert derived.nodes["e3"].dense == ["c2", "c1"]
    assert not any(isinstance(n, ChoiceNode) for b in derived.blocks.values() for n in b.nodes.values())


def test_per_instance_choices_give_block_variants():
    space = python_space(per_instance_labels=True)
    geno = Genotype({"c1.m1": "conv_1x1", "c2.m1": "conv_3x3", "c3.m1": "conv_1x1"}, {"e3": ["c3", "c2"]})
    derived = derive_space(space, geno)
    assert sorted(derived.blocks) == ["cell", "cell_2"]
    assert [derived.nodes[c].block for c in ("c1", "c2", "c3")] == ["cell", "cell_2", "cell"]
    graph = build_graph(derived)
    assert graph.nodes["c2.m1"].op == "conv_3x3" and graph.nodes["c3.m1"].op == "conv_1x1"


def test_missing_genotype_entry():
    with pytest.raises(NasflowError, match="no entry for choice 'm1'"):
        derive_space(python_space(), Genotype({}, {"e3": ["c1", "c2"]}))


def test_labelled_full_dense_node_is_reordered_and_weights_follow():
    """A labelled dense node keeping all its inputs is derived in beta order, and
    inherit_weights permutes the merge conv's input channels to match."""
    from nasflow.derive.genotype import inherit_weights
    from nasflow.space.schema import dense

    space = python_space()
    e3 = dense(["c1", "c2", "c3"], topk=3, op="conv_1x1", out="C", act="lrelu", label="e3", bias=True)
    space = space.model_copy(update={"nodes": {**space.nodes, "e3": e3}})
    graph = build_graph(space)
    geno = Genotype({"m1": "conv_3x3"}, {"e3": ["c3", "c1", "c2"]})
    derived = derive_space(space, geno)
    assert derived.nodes["e3"].dense == ["c3", "c1", "c2"] and build_graph(derived).is_derived
    supernet, model = compile_graph(graph), compile_graph(build_graph(derived))
    state = inherit_weights(graph, supernet.state_dict(), build_graph(derived), model.state_dict())
    c = 8
    old = supernet.state_dict()["e3.op.weight"]
    assert torch.equal(state["e3.op.weight"][:, :c], old[:, 2 * c:])
    assert torch.equal(state["e3.op.weight"][:, c:2 * c], old[:, :c])


def test_derive_drops_a_space_input_only_an_unpicked_candidate_read():
    space = Space.model_validate({
        "name": "two-inputs", "inputs": {"x": 4, "y": 4},
        "nodes": {"a": {"op": "conv_1x1", "in": "x"},
                  "e": {"dense": ["x", "y", "a"], "topk": 1, "op": "conv_1x1", "out": 4}},
        "output": "e"})
    derived = derive_space(space, Genotype(choices={}, edges={"e": ["a"]}))
    assert list(derived.inputs) == ["x"]
    model = compile_graph(build_graph(derived))
    x, y = torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 5)
    assert model(x=x, y=y).shape == (1, 4, 5, 5)  # by name, a dropped input is ignored
    with pytest.raises(NasflowError, match="model takes 1 input"):
        model(x, y)
