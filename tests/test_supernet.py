"""The compiler: arch parameters apart from weights, readable names, and a supernet with
one-hot alpha/beta computing exactly what the derived model computes."""
from __future__ import annotations

import pytest
import torch
from toy_spaces import python_space

from nasflow.derive.genotype import derive_space, genotype_from_arch, inherit_weights
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.compile.supernet import compile_graph


def test_weights_and_arch_parameters_split_parameters():
    model = compile_graph(build_graph(python_space()))
    weights = {id(p) for p in model.weights()}
    arch = {id(p) for p in model.arch_parameters()}
    assert weights and arch and not (weights & arch)
    assert weights | arch == {id(p) for p in model.parameters()}
    assert set(model.arch_state_dict()) == {"arch.alpha.m1", "arch.beta.e3"}
    assert not any(k.startswith("arch.") for k in model.weights_state_dict())


def test_state_dict_names_follow_nodes_and_candidates():
    keys = set(compile_graph(build_graph(python_space())).state_dict())
    assert {"stem.op.weight", "c2.m1.ops.conv_3x3.weight", "c2.m1.ops.sep_conv_3x3.1.weight",
            "c3.d1.op.bias", "e3.op.weight", "up_conv.op.bias"} <= keys


def test_forward_shapes_and_input_check():
    model = compile_graph(build_graph(python_space()))
    assert model(torch.randn(2, 3, 10, 12)).shape == (2, 3, 20, 24)
    # generic: dim 1 is the channel / feature width, whatever the task's layout
    with pytest.raises(NasflowError, match=r"input 'x' must be N x 3 x \.\.\. .*got \(1, 1, 10, 10\)"):
        model(torch.randn(1, 1, 10, 10))
    with pytest.raises(NasflowError, match=r"input 'x' must be N x 3 x \.\.\. .*got \(3,\)"):
        model(torch.randn(3))


def test_alpha_shared_by_label_and_per_instance():
    shared = compile_graph(build_graph(python_space()))
    assert shared.arch.alpha["m1"].shape == (4,)
    per_node = compile_graph(build_graph(python_space(per_instance_labels=True)))
    assert sorted(per_node.arch.alpha.keys()) == ["c1/m1", "c2/m1", "c3/m1"]


@pytest.mark.parametrize("pick, edge", [(1, 2), (2, 0), (3, 1)])
def test_one_hot_supernet_equals_derived_model(pick, edge):
    torch.manual_seed(0)
    space = python_space()
    space = space.model_copy(update={"nodes": {**space.nodes, "e3": space.nodes["e3"].model_copy(update={"topk": 1})}})
    graph = build_graph(space)
    supernet = compile_graph(graph)
    with torch.no_grad():
        supernet.arch.alpha["m1"].copy_(torch.nn.functional.one_hot(torch.tensor(pick), 4) * 200.0)
        supernet.arch.beta["e3"].copy_(torch.nn.functional.one_hot(torch.tensor(edge), 3) * 200.0)
    geno = genotype_from_arch(graph, {label: supernet.arch.logits(label) for label in graph.decisions})
    assert geno.choices["m1"] == graph.decisions["m1"].options[pick]
    assert geno.edges["e3"] == [["c1", "c2", "c3"][edge]]
    derived_graph = build_graph(derive_space(space, geno))
    derived = compile_graph(derived_graph)
    derived.load_state_dict(inherit_weights(graph, supernet.weights_state_dict(), derived_graph,
                                            derived.state_dict()))
    x = torch.rand(1, 3, 12, 12) * 255
    torch.testing.assert_close(derived(x), supernet(x), rtol=1e-5, atol=1e-4)
