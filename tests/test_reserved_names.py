"""A node named like an attribute of the compiled model (or of any torch module) is one clear
file:line error at validation, not a silent replacement (`arch` used to replace the
architecture parameters) or a bare KeyError from inside torch (`graph`, `weights`)."""
from __future__ import annotations

import pytest
from toy_spaces import python_space, yaml_space_file
from torch import nn

from nasflow.compile.supernet import Supernet, compile_graph
from nasflow.errors import SpaceError
from nasflow.space.graph import MODEL_ATTRIBUTES, MODULE_ATTRIBUTES, build_graph
from nasflow.space.schema import Space, op

HEAD = "name: t\nparams: {C: 4}\ninputs: {x: 3}\n"
CELL = """blocks:
  cell:
    params: {C: null}
    inputs: [x]
    nodes:
      a: {op: conv_3x3, in: x, out: C}
      NAME: {op: conv_1x1, in: a, out: C}
    output: NAME
"""


def _top(name: str) -> str:
    return HEAD + f"nodes:\n  stem: {{op: conv_1x1, in: x, out: C}}\n  {name}: {{choice: [conv_1x1, conv_3x3], in: stem}}\noutput: {name}\n"


@pytest.mark.parametrize("name, clash", [
    ("arch", "the compiled model's own 'arch'"), ("graph", "the compiled model's own 'graph'"),
    ("weights", "the compiled model's own 'weights'"), ("forward", "torch.nn.Module's 'forward'"),
    ("training", "torch.nn.Module's 'training'"), ("state_dict", "torch.nn.Module's 'state_dict'"),
    ("_steps", "a private attribute (names starting with '_' are reserved)")])
def test_a_top_level_node_with_a_reserved_name_is_one_clear_error(tmp_path, name, clash):
    with pytest.raises(SpaceError) as err:
        build_graph(Space.from_yaml(yaml_space_file(tmp_path, _top(name))))
    fix = name.strip("_") + "_node"
    assert str(err.value) == (f"{tmp_path / 'space.yaml'}:6: node '{name}' is named like {clash}; nodes become "
                              f"attributes of the compiled model: rename it (e.g. '{fix}')")


def test_inside_a_block_only_torch_module_names_are_reserved(tmp_path):
    space = HEAD + CELL + "nodes:\n  c1: {block: cell, in: x, args: {C: 4}}\noutput: c1\n"
    with pytest.raises(SpaceError, match=r"space.yaml:10: node 'c1.training' is named like torch.nn.Module's 'training'"):
        build_graph(Space.from_yaml(yaml_space_file(tmp_path, space.replace("NAME", "training"))))
    # a block's `arch` or `fuse` is an attribute of its container, not of the model: allowed
    for name in ("arch", "fuse", "weights"):
        graph = build_graph(Space.from_yaml(yaml_space_file(tmp_path, space.replace("NAME", name))))
        model = compile_graph(graph)
        assert isinstance(getattr(model.c1, name), nn.Module)
        assert sorted(model.state_dict()) == sorted(model.weights_state_dict())  # no arch params here


def test_a_block_instance_with_a_reserved_name_is_refused(tmp_path):
    space = HEAD + CELL.replace("NAME", "b") + "nodes:\n  arch: {block: cell, in: x, args: {C: 4}}\noutput: arch\n"
    with pytest.raises(SpaceError, match=r"space.yaml:13: node 'arch' is named like the compiled model's own 'arch'"):
        build_graph(Space.from_yaml(yaml_space_file(tmp_path, space)))


def test_a_python_space_is_refused_too():
    space = python_space()
    bad = space.model_copy(update={"nodes": {**space.nodes, "weights": op("conv_3x3", "up", out=3)},
                                   "output": "weights"})
    with pytest.raises(SpaceError, match=r"^node 'weights' is named like the compiled model's own 'weights'"):
        build_graph(bad)


def test_the_reserved_lists_cover_the_model_and_torch():
    """The lists are kept by hand so that validation needs no torch; they must name every
    public attribute of torch's Module and of the compiled model (nodes apart)."""
    model = compile_graph(build_graph(python_space()))
    nodes = set(model._modules) - {"arch"}
    torch_names = {n for n in dir(nn.Module()) if not n.startswith("_")}
    assert torch_names <= MODULE_ATTRIBUTES, sorted(torch_names - MODULE_ATTRIBUTES)
    model_names = {n for n in dir(model) if not n.startswith("_")} - nodes - torch_names
    assert model_names <= MODEL_ATTRIBUTES, (
        f"add {sorted(model_names - MODEL_ATTRIBUTES)} to nasflow.space.graph.MODEL_ATTRIBUTES")
    stale = sorted(n for n in MODEL_ATTRIBUTES if not hasattr(model, n))
    assert not stale, f"the model has no {stale} any more: remove them from MODEL_ATTRIBUTES (they refuse good names)"


def test_the_compiler_refuses_a_clash_the_lists_miss(tmp_path):
    """An attribute added to the model later and not yet listed is caught when compiling,
    before the node replaces it."""
    class Extended(Supernet):
        temperature = 1.0

    graph = build_graph(Space.from_yaml(yaml_space_file(tmp_path, _top("temperature"))))
    with pytest.raises(SpaceError, match=r"space.yaml:6: node 'temperature': 'temperature' is already an attribute"):
        Extended(graph)
    assert compile_graph(graph).temperature is not None  # the plain model has no such attribute
