"""The stack construct: a block instantiated `stack` times, each instance choosing its
block, inputs and args by its index; instance names, index-aware args, references to
an instance from outside, one clear error (file:line) per bad stack, and derivation
keeping the stack so that the derived file rebuilds at another depth."""
from __future__ import annotations

import networkx as nx
import pytest
import torch
from toy_spaces import yaml_space_file

from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import derive_space, genotype_from_arch
from nasflow.errors import SpaceError
from nasflow.space.expr import ExprError, evaluate, evaluate_ref, ref_names
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, stack

# Three instances by default; the last one uses another block, each is wider than the one
# before, and `side` reads the second instance's output while `cat` reads the last one's.
TEXT = """name: t
params: {C: 4, n: 3}
inputs: {x: 3}
blocks:
  plain:
    params: {C: null}
    inputs: [x]
    nodes:
      c: {op: conv_3x3, in: x, out: C}
    output: c
  wide:
    params: {C: null}
    inputs: [x]
    nodes:
      c: {choice: [conv_1x1, conv_3x3], in: x, out: C, label: wide_c}
    output: c
nodes:
  stem: {op: conv_3x3, in: x, out: C}
  layer:
    stack: n
    let:
      last: i == n - 1
    block: wide if last else plain
    in: layer[i - 1] if i > 0 else stem
    args:
      C: C * (i + 1)
  side: {op: conv_1x1, in: "layer[1]", out: C}
  cat: {combine: concat, in: [side, layer]}
  out: {op: conv_1x1, in: cat, out: 3}
output: out
"""


def _space(tmp_path, text: str = TEXT) -> Space:
    return Space.from_yaml(yaml_space_file(tmp_path, text))


def test_instances_are_named_by_index_and_their_args_follow_it(tmp_path):
    graph = build_graph(_space(tmp_path))
    assert graph.stacks["layer"] == ["plain", "plain", "wide"]
    assert [graph.nodes[f"layer{i}.c"].c_out for i in range(3)] == [4, 8, 12]
    assert graph.nodes["layer0.c"].inputs == ["stem"] and graph.nodes["layer2.c"].inputs == ["layer1.c"]
    assert graph.nodes["layer2.c"].kind == "choice" and graph.decisions["wide_c"].nodes == ("layer2.c",)
    assert graph.nodes["side"].inputs == ["layer1.c"]  # layer[1]: the second instance's output
    assert graph.nodes["cat"].inputs == ["side", "layer2.c"]  # layer: the last instance's
    model = compile_graph(graph)
    assert {k.split(".")[0] for k in model.state_dict() if k.startswith("layer")} == {"layer0", "layer1", "layer2"}
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_one_file_gives_networks_of_any_depth(tmp_path):
    space = _space(tmp_path)
    deep = build_graph(space, {"n": 6})
    assert deep.stacks["layer"] == ["plain"] * 5 + ["wide"]
    assert deep.nodes["layer5.c"].c_out == 24 and deep.nodes["side"].inputs == ["layer1.c"]
    assert compile_graph(deep)(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_python_builder_writes_the_same_node(tmp_path):
    node = stack("n", "wide if last else plain", "layer[i - 1] if i > 0 else stem", let={"last": "i == n - 1"},
                 C="C * (i + 1)")
    space = _space(tmp_path)
    assert space.nodes["layer"] == node
    assert Space.from_data(space.to_data()).nodes["layer"] == node  # saves and loads unchanged


BAD = {
    "no instances": (("stack: n", "stack: n - 3"),
                     r"space.yaml:20: stack node 'layer': stack is 'n - 3' = 0; it needs 1 or more instances"),
    "unknown name in the count": (("stack: n", "stack: m"), r"space.yaml:20: stack node 'layer': .*unknown name 'm'"),
    "instance out of range": (('"layer[1]"', '"layer[n]"'),
                              r"space.yaml:27: node 'side' reads layer\[3\], but stack 'layer' has instances 0..2"),
    "reads a later instance": (("in: layer[i - 1] if", "in: layer[i] if"),
                               r"space.yaml:24: stack node 'layer': instance 1 reads layer\[1\]; an instance "
                               r"reads only earlier ones \(0..0\)"),
    "reads itself": (("in: layer[i - 1] if i > 0 else stem", "in: layer"),
                     r"space.yaml:24: stack node 'layer' reads itself; read an earlier instance, layer\[i - 1\]"),
    "unknown block at one index": (("wide if last else plain", "wid if last else plain"),
                                   r"space.yaml:23: node 'layer2': unknown block 'wid' \(did you mean 'wide'\?\)"),
    "block names an instance": (("wide if last else plain", "plain[i]"),
                                r"space.yaml:23: stack node 'layer': block 'plain\[i\]' at i=0 names 'plain\[0\]'"),
    "let hides a param": (("last: i == n - 1", "C: i == n - 1"),
                          r"space.yaml:22: stack node 'layer': let 'C' hides the param or index 'C'"),
    "bad let": (("last: i == n - 1", "last: i == m"), r"space.yaml:22: stack node 'layer': let 'last' at i=0: "
                r"bad expression 'i == m': unknown name 'm'"),
    "bad args": (("C: C * (i + 1)", "C: C * (j + 1)"), r"space.yaml:26: node 'layer0': .*unknown name 'j'"),
    "index of no stack": (('"layer[1]"', '"stem[1]"'), r"space.yaml:27: node 'side' reads 'stem\[1\]', but 'stem' "
                          r"is no stack"),
    "no eval": (("wide if last else plain", "\"__import__('os')\""), r"space.yaml:23: .*bad reference"),
    "unused node in a cell": (("      c: {op: conv_3x3, in: x, out: C}\n", "      c: {op: conv_3x3, in: x, out: C}\n"
                                "      z: {op: conv_1x1, in: x}\n"),
                               r"space.yaml:10: node 'layer0.z' is never used on the way to the output"),
    "instance name taken": (("  side:", "  layer1: {op: conv_1x1, in: x}\n  side:"),
                            r"space.yaml:19: stack node 'layer' names its instance 1 'layer1', which is also a node"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_stack_gets_one_clear_error(tmp_path, case):
    (old, new), match = BAD[case]
    assert old in TEXT
    with pytest.raises(SpaceError, match=match):
        build_graph(_space(tmp_path, TEXT.replace(old, new, 1)))


def test_expressions_compare_and_choose_but_never_eval():
    env = {"i": 3, "layers": 8}
    assert evaluate("i in (layers // 3, 2 * layers // 3)", env) == 0
    assert evaluate("2 ** ((i >= layers // 3) + (i >= 2 * layers // 3))", env) == 2
    assert evaluate("1 if 0 < i < 4 and not i == 2 else 5", env) == 1
    assert evaluate_ref("cell[i - 2] if i >= 2 else stem", env) == ("cell", 1)
    assert evaluate_ref("cell[i - 2] if i >= 4 else stem", env) == ("stem", None)
    assert ref_names("a if i else b[i - 1] if i > 1 else c") == ["a", "b", "c"]
    for bad in ("(lambda: 1)()", "i.real", "[1][0]", "2 ** 10 ** 10", "'a' < 'b'"):
        with pytest.raises(ExprError):
            evaluate(bad, env)


def _logits(graph, pick: int = 1) -> dict[str, torch.Tensor]:
    return {label: torch.nn.functional.one_hot(torch.tensor(pick), len(d.options)).float()
            for label, d in graph.decisions.items()}


def test_derivation_keeps_a_stack_whose_decisions_are_shared(tmp_path):
    space = _space(tmp_path)
    derived = derive_space(space, genotype_from_arch(build_graph(space), _logits(build_graph(space))))
    assert derived.nodes["layer"] == space.nodes["layer"]  # the stack as written: its count is still n
    assert derived.blocks["wide"].nodes["c"].op == "conv_3x3"
    graph = build_graph(derived, {"n": 5, "C": 2})  # deeper and narrower than searched
    assert graph.is_derived and graph.stacks["layer"] == ["plain"] * 4 + ["wide"]
    assert graph.nodes["layer4.c"].op == "conv_3x3" and graph.nodes["layer4.c"].c_out == 10


def test_per_instance_decisions_pin_the_stack_to_its_instances(tmp_path):
    text = TEXT.replace("block: wide if last else plain", "block: wide").replace(", label: wide_c", "")
    space = _space(tmp_path, text)
    graph = build_graph(space)
    assert sorted(graph.decisions) == ["layer0.c", "layer1.c", "layer2.c"]  # one alpha per instance
    logits = {"layer0.c": torch.tensor([1.0, 0.0]), "layer1.c": torch.tensor([0.0, 1.0]),
              "layer2.c": torch.tensor([1.0, 0.0])}
    derived = derive_space(space, genotype_from_arch(graph, logits))
    node = derived.nodes["layer"]
    assert node.stack == 3 and node.block == "wide if i in (0, 2) else wide_2"
    built = build_graph(derived)
    assert [built.nodes[f"layer{i}.c"].op for i in range(3)] == ["conv_1x1", "conv_3x3", "conv_1x1"]
    assert set(built.nodes) == set(graph.nodes)  # same names: the supernet's weights carry over


def _cells(kind: str, labels: str) -> str:
    return f"""  {kind}:
    inputs: [s0, s1]
    nodes:
      e0: {{choice: [conv_1x1, conv_3x3], in: s0, label: {labels}_e0}}
      e1: {{choice: [conv_1x1, conv_3x3], in: s1, label: {labels}_e1}}
      n: {{dense: [e0, e1], topk: 1, merge: sum, label: {labels}_n}}
    output: n
"""


# Two cell kinds, each keeping one of its two input edges; `late` is used from the 6th cell
# on only, with the decisions of `a`: a derived file must bring it along for a deeper build.
CELLS = ("name: t\nparams: {C: 4, n: 3}\ninputs: {x: 3}\nblocks:\n" + _cells("a", "a") + _cells("b", "b")
         + _cells("late", "a") + """nodes:
  stem: {op: conv_3x3, in: x, out: C}
  cell:
    stack: n
    block: late if i >= 5 else b if i == 1 else a
    in: ['cell[i - 2] if i >= 2 else stem', 'cell[i - 1] if i >= 1 else stem']
output: cell
""")


@pytest.mark.parametrize("b_keeps, stack_in", [("e0", 2), ("e1", 1)])
def test_pruning_cells_of_a_stack_drops_only_inputs_none_of_its_blocks_reads(tmp_path, b_keeps, stack_in):
    space = _space(tmp_path, CELLS)
    graph = build_graph(space)
    logits = {label: torch.zeros(2) for label in graph.decisions}
    logits["a_n"] = torch.tensor([0.0, 1.0])  # a keeps e1: it reads s1 only
    logits["b_n"] = torch.tensor([1.0, 0.0] if b_keeps == "e0" else [0.0, 1.0])
    derived = derive_space(space, genotype_from_arch(graph, logits))
    assert set(derived.blocks["a"].nodes) == {"e1", "n"}
    # b reads s0: every cell keeps both inputs (a's s0 unused); else s0 leaves the stack
    assert len(derived.nodes["cell"].input_list) == stack_in == len(derived.blocks["a"].inputs)
    assert derived.nodes["cell"].input_list[-1] == "cell[i - 1] if i >= 1 else stem"
    for depth in (3, 7):  # 7: with `late`, derived with a's decisions
        built = build_graph(derived, {"n": depth})
        assert built.is_derived and len(built.stacks["cell"]) == depth
        # with b reading s0, no cell reads cell0 (cell1 reads the stem, cell2 cell1): a stack
        # still builds every instance, as the reference code computes every cell
        reached = nx.ancestors(built.dag, built.output)
        assert ("cell0.n" in reached) == (b_keeps == "e1")
        assert compile_graph(built)(torch.randn(1, 3, 6, 6)).shape == (1, 4, 6, 6)
    assert set(derived.blocks["late"].nodes) == {"e1", "n"}
