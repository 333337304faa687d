"""Validation before any tensor exists: one clear error per kind of bad input."""
from __future__ import annotations

import pytest
from toy_spaces import python_space, yaml_space_file

from nasflow.errors import SpaceError
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, dense

HEAD = "name: t\nparams: {C: 4}\ninputs: {x: 3}\n"
CELL = """blocks:
  cell:
    params: {C: null}
    inputs: [x]
    nodes:
      a: {op: conv_3x3, in: x, out: C}
    output: a
"""

BAD = {
    "cycle": (HEAD + "nodes:\n  a: {op: conv_1x1, in: b}\n  b: {op: conv_1x1, in: a}\noutput: b\n",
              r"space.yaml:5: cycle: (a -> b -> a|b -> a -> b)"),
    "unknown op": (HEAD + "nodes:\n  a: {op: conv_3x4, in: x}\noutput: a\n",
                   r"space.yaml:5: node 'a': unknown op 'conv_3x4'; did you mean 'conv_3x3'"),
    "unknown candidate": (HEAD + "nodes:\n  a: {choice: [conv_1x1, sep_conv_9x9], in: x}\noutput: a\n",
                          r"unknown op 'sep_conv_9x9'"),
    "unknown block": (HEAD + CELL + "nodes:\n  a: {block: cel, in: x}\noutput: a\n",
                      r"space.yaml:12: node 'a': unknown block 'cel' \(did you mean 'cell'\?\)"),
    "undefined input": (HEAD + "nodes:\n  stem: {op: conv_1x1, in: x}\n  a: {op: conv_1x1, in: stm}\noutput: a\n",
                        r"space.yaml:6: node 'a' reads 'stm', which is not defined \(did you mean 'stem'\?\)"),
    "undefined output": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x}\noutput: b\n",
                         r"space.yaml:6: the space's output reads 'b', which is not defined"),
    "unused node": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x}\n  b: {op: conv_1x1, in: x}\noutput: a\n",
                    r"space.yaml:6: node 'b' is never used on the way to the output 'a'"),
    "unused input": ("name: t\ninputs: {x: 3, y: 3}\nnodes:\n  a: {op: conv_1x1, in: x}\noutput: a\n",
                     r"space.yaml:2: input 'y' is never used"),
    "unused block input": (HEAD + CELL.replace("inputs: [x]", "inputs: [x, z]") + "nodes:\n  a: {block: cell, in: [x, x], args: {C: 4}}\noutput: a\n",
                           r"block 'cell': input 'z' is never used"),
    "channel mismatch": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: 8}\n  b: {combine: add, in: [a, x]}\noutput: b\n",
                         r"space.yaml:6: combine node 'b' \(add\) needs equal channels \(a: 8, x: 3\)"),
    "empty choice": (HEAD + "nodes:\n  a: {choice: [], in: x}\noutput: a\n",
                     r"space.yaml:5: choice node 'a' has no candidates"),
    "dense takes no in": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x}\n  b: {dense: [x, a], in: x, topk: 3}\noutput: b\n",
                       r"unknown key 'in'"),
    "topk > candidates": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: 3}\n  b: {dense: [x, a], topk: 3, merge: sum}\noutput: b\n",
                          r"space.yaml:6: dense node 'b' has topk 3 but 2 candidate input\(s\); use 1..2"),
    "bad expression": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: C // }\noutput: a\n",
                       r"space.yaml:5: node 'a': bad expression 'C //': not valid integer arithmetic"),
    "unknown name in expression": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: D * 2}\noutput: a\n",
                                   r"unknown name 'D' \(known: C\)"),
    "non-positive channels": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: C - 4}\noutput: a\n",
                              r"evaluates to 0; channels must be positive"),
    "eval is not used": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: \"__import__('os')\"}\noutput: a\n",
                         r"only integers, names"),
    "bad name": (HEAD + "nodes:\n  a-b: {op: conv_1x1, in: x}\noutput: a-b\n",
                 r"node name 'a-b' must be an identifier"),
    "duplicate name (input)": (HEAD + "nodes:\n  x: {op: conv_1x1, in: x}\noutput: x\n",
                               r"node 'x' has the name of an input"),
    "duplicate candidate": (HEAD + "nodes:\n  a: {choice: [conv_1x1, conv_1x1], in: x}\noutput: a\n",
                            r"lists 'conv_1x1' twice"),
    "label clash": (HEAD + "nodes:\n  a: {choice: [conv_1x1, conv_3x3], in: x, label: m}\n"
                    "  b: {choice: [conv_1x1], in: a, label: m}\noutput: b\n",
                    r"node 'b' shares label 'm' with 'a' but not the same candidates"),
    "missing block param": (HEAD + CELL + "nodes:\n  a: {block: cell, in: x}\noutput: a\n",
                            r"block 'cell' needs param 'C'; add it under args"),
    "unknown block param": (HEAD + CELL + "nodes:\n  a: {block: cell, in: x, args: {C: 4, D: 1}}\noutput: a\n",
                            r"block 'cell' has no param 'D'"),
    "block input count": (HEAD + CELL + "nodes:\n  a: {block: cell, in: [x, x], args: {C: 4}}\noutput: a\n",
                          r"block 'cell' takes 1 input\(s\) \(x\), got 2"),
    "block recursion": (HEAD + "blocks:\n  loop:\n    inputs: [x]\n    nodes:\n      a: {block: loop, in: x}\n"
                        "    output: a\nnodes:\n  a: {block: loop, in: x}\noutput: a\n",
                        r"block 'loop' uses itself"),
    "unknown op argument": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, args: {bais: true}}\noutput: a\n",
                            r"op 'conv_1x1' has no argument 'bais' \(did you mean 'bias'\?\)"),
    "not an activation": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, act: conv_3x3}\noutput: a\n",
                          r"'conv_3x3' is not an activation"),
    "dense channels differ": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: 5}\n"
                              "  b: {dense: [x, a], topk: 1, op: conv_1x1, out: 3}\noutput: b\n",
                              r"dense node 'b': candidate inputs must have equal channels \(x: 3, a: 5\)"),
    "pixel shuffle channels": (HEAD + "nodes:\n  a: {op: pixel_shuffle, in: x, args: {r: 2}}\noutput: a\n",
                               r"op 'pixel_shuffle' needs in channels divisible by r\*r = 4, got 3"),
    "fixed out channels": (HEAD + "nodes:\n  a: {op: lrelu, in: x, out: 5}\noutput: a\n",
                           r"op 'lrelu' gives 3 channels from 3, but out is 5"),
    "size mismatch": (HEAD + "nodes:\n  a: {op: conv_1x1, in: x, out: 12}\n  b: {op: pixel_shuffle, in: a}\n"
                      "  c: {combine: add, in: [b, x]}\noutput: c\n", r"mixes inputs of different sizes"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_space_gives_one_clear_error(tmp_path, case):
    text, match = BAD[case]
    with pytest.raises(SpaceError, match=match):
        build_graph(Space.from_yaml(yaml_space_file(tmp_path, text)))


def test_python_space_errors_name_the_node():
    space = python_space()
    bad = space.model_copy(update={"output": "up_cnv"})
    with pytest.raises(SpaceError, match=r"the space's output reads 'up_cnv'.*did you mean 'up_conv'"):
        build_graph(bad)


def test_expansion_channels_and_decisions():
    graph = build_graph(python_space())
    assert [n for n in graph.nodes if n.startswith("c2.")] == ["c2.m1", "c2.r1", "c2.d1", "c2.cat", "c2.fuse"]
    assert graph.nodes["c2.m1"].inputs == ["c1.fuse"]  # a block instance means its output
    assert graph.nodes["c1.cat"].c_out == 4 + 8
    assert graph.nodes["e3"].c_in == [8, 8, 8]
    assert graph.nodes["up"].c_out == 3 and graph.nodes["up"].size == 2
    assert graph.decisions["m1"].nodes == ("c1.m1", "c2.m1", "c3.m1")  # one shared alpha
    assert graph.decisions["e3"].kind == "beta" and graph.decisions["e3"].topk == 2


def test_overrides_change_channels():
    graph = build_graph(python_space(), {"C": 16, "scale": 3})
    assert graph.nodes["c1.d1"].c_out == 8
    assert graph.nodes["up_conv"].c_out == 27 and graph.nodes["up"].size == 3


def test_per_instance_labels():
    graph = build_graph(python_space(per_instance_labels=True))
    assert {"c1.m1", "c2.m1", "c3.m1"} <= set(graph.decisions)


def test_labelled_dense_node_keeping_all_inputs_is_a_decision():
    """topk == number of inputs: no decision unless labelled; labelled, beta weights the
    inputs in the supernet and orders their concatenation when deriving."""
    space = python_space()
    for label, expect in ((None, False), ("e3", True)):
        e3 = dense(["c1", "c2", "c3"], topk=3, op="conv_1x1", out="C", act="lrelu", label=label, bias=True)
        graph = build_graph(space.model_copy(update={"nodes": {**space.nodes, "e3": e3}}))
        assert ("e3" in graph.decisions) is expect


def test_space_imports_a_module_that_registers_an_op(tmp_path):
    from nasflow.errors import NasflowWarning
    from nasflow.space.imports import set_trust_imports

    (tmp_path / "my_ops_for_test.py").write_text(
        "from torch import nn\n"
        "from nasflow.ops.registry import register_op\n\n"
        "@register_op('double_conv_for_test', params=lambda c_in, c_out: 2 * c_in * c_out,\n"
        "             madds_per_pixel=lambda c_in, c_out: 2 * c_in * c_out)\n"
        "def double_conv(c_in, c_out):\n"
        "    '''two 1x1 convs'''\n"
        "    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.Conv2d(c_out, c_out, 1, bias=False))\n")
    path = tmp_path / "space.yaml"
    path.write_text("name: t\nimports: [my_ops_for_test]\ninputs: {x: 3}\n"
                    "nodes:\n  a: {choice: [conv_1x1, double_conv_for_test], in: x, out: 4}\noutput: a\n")
    set_trust_imports(True)  # a module beside the space file runs only when trusted
    try:
        with pytest.warns(NasflowWarning, match="imported my_ops_for_test"):  # named to the user
            graph = build_graph(Space.from_yaml(path))
    finally:
        set_trust_imports(None)
    assert graph.nodes["a"].candidates == ["conv_1x1", "double_conv_for_test"]
    path.write_text("name: t\nimports: [no_such_module_xyz]\ninputs: {x: 3}\n"
                    "nodes:\n  a: {op: conv_1x1, in: x}\noutput: a\n")
    with pytest.raises(SpaceError, match=r"space.yaml:2.*cannot import module 'no_such_module_xyz'"):
        build_graph(Space.from_yaml(path))
