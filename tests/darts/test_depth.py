"""Depth and width are params of the DARTS files: the cells are one stack node, so one file
gives the 8-cell search network and the 20-cell evaluation network, and the searched cells
derived with layers=20, C=36 are the published network when the search picked its cells."""
from __future__ import annotations

from pathlib import Path

import torch

import nasflow.spaces.darts.ops  # noqa: F401
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import derive_space, genotype_from_arch
from nasflow.space.cost import graph_cost
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space
from nasflow.spaces.darts.build import GENOTYPES, PRIMITIVES

DARTS_DIR = Path(__file__).resolve().parents[2] / "spaces" / "darts"


def test_one_search_file_gives_the_8_and_the_20_cell_network():
    space = Space.from_yaml(DARTS_DIR / "space.yaml")
    assert space.params["layers"] == 8
    small, big = build_graph(space), build_graph(space, {"layers": 20})
    assert [i for i, b in enumerate(big.stacks["cell"]) if b == "reduce"] == [6, 13]
    assert len(small.stacks["cell"]) == 8 and {"cell7.dag.e5_4", "cell19.dag.e5_4"} <= set(big.nodes)
    # The supernet is the network the written-out file (main before the stack, f1d6d40) was:
    # 1,930,618 weights and 252 arch parameters at C=16, 8 cells, counted on that file.
    supernet = compile_graph(small)
    assert graph_cost(small, (32, 32)).params == sum(p.numel() for p in supernet.weights()) == 1_930_618
    assert sum(p.numel() for p in supernet.arch_parameters()) == 252


def test_an_architecture_file_builds_at_any_depth():
    space = Space.from_yaml(DARTS_DIR / "darts_v2.yaml")
    eight = build_graph(space, {"layers": 8, "C": 4})
    assert eight.stacks["cell"] == ["normal", "normal", "reduce", "normal_after_reduce", "normal", "reduce",
                                    "normal_after_reduce", "normal"]
    model = compile_graph(eight).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    tiny = build_graph(space, {"layers": 2, "C": 4})  # two reductions in a row
    assert tiny.stacks["cell"] == ["reduce", "reduce_after_reduce"]
    assert tiny.nodes["head"].c_in[0] == 4 * 4 * 4  # C doubled twice, 4 nodes concatenated


def _planted(graph, genotype: dict[str, list[tuple[str, int]]]) -> dict[str, torch.Tensor]:
    """Arch parameters under which the search picks `genotype`'s ops and edges."""
    logits = {label: torch.zeros(len(d.options)) for label, d in graph.decisions.items()}
    for kind, edges in genotype.items():
        for k in range(2, 6):
            for op, src in edges[2 * (k - 2): 2 * k - 2]:
                logits[f"{kind}_n{k}"][src] = 1.0
                logits[f"{kind}_e{k}_{src}"][PRIMITIVES.index(op)] = 1.0
    return logits


def test_searched_cells_derived_at_evaluation_depth_are_the_published_network():
    space = Space.from_yaml(DARTS_DIR / "space.yaml")
    graph = build_graph(space)  # searched at 8 cells, C=16
    genotype = genotype_from_arch(graph, _planted(graph, GENOTYPES["darts_v2"]))
    arch = derive_space(space.with_params({"layers": 20, "C": 36}), genotype)
    assert arch.params["layers"] == 20 and arch.nodes["cell"].stack == "layers"
    built = build_graph(arch)
    assert built.is_derived and len(built.stacks["cell"]) == 20
    published = build_graph(Space.from_yaml(DARTS_DIR / "darts_v2.yaml"))
    model = compile_graph(built)
    assert sum(p.numel() for p in model.parameters()) == 3_349_342  # quark0/darts NetworkCIFAR(36, 10, 20)
    assert {n: g.op for n, g in built.nodes.items()} == {n: g.op for n, g in published.nodes.items()
                                                         if n in built.nodes}
    # every cell kind came along, also the one only two reductions in a row use
    assert build_graph(arch, {"layers": 2, "C": 4}).stacks["cell"] == ["reduce", "reduce_after_reduce"]


def test_a_head_can_read_the_cell_at_two_thirds():
    """DARTS' auxiliary head reads the cell at 2*layers//3: `cell[2 * layers // 3]`."""
    data = Space.from_yaml(DARTS_DIR / "darts_v2.yaml").to_data()
    data["nodes"]["aux"] = {"op": "darts_classifier", "in": "cell[2 * layers // 3]", "out": "classes"}
    data["nodes"]["both"] = {"combine": "add", "in": ["head", "aux"]}
    data["output"] = "both"
    space = Space.from_data(data)
    for layers in (8, 20):
        graph = build_graph(space, {"layers": layers, "C": 4})
        assert graph.nodes["aux"].inputs == [f"cell{2 * layers // 3}.dag.out"]
        assert graph.nodes["aux"].c_in == [4 * 4 * 4]  # a reduction cell: C doubled twice, 4 nodes
