"""Derivation on cell spaces: `none` never derived, a node's inputs ranked by beta, by the
best derivable alpha or by both, unused nodes and cell inputs pruned, search-time op
arguments replaced by the final ones, and the DARTS search space derived end to end."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import nasflow.spaces.darts.ops  # noqa: F401
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import derive_space, genotype_from_arch
from nasflow.derive.rule import DerivationRule
from nasflow.errors import SpaceError
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space
from nasflow.spaces.darts.build import search_space

OPS = ["darts_none", "darts_skip_connect", "darts_max_pool_3x3"]


def _edges_space(rank: str) -> Space:
    edge = {"choice": OPS, "never_derive": ["darts_none"]}
    return Space.from_data({
        "name": "t", "imports": ["nasflow.spaces.darts.ops"], "inputs": {"x": 4},
        "nodes": {"a": {**edge, "in": "x"}, "b": {**edge, "in": "x"}, "c": {**edge, "in": "x"},
                  "n": {"dense": ["a", "b", "c"], "topk": 1, "merge": "sum", "rank": rank}},
        "output": "n"})


# alpha rows over (none, skip, max): a's strongest op is `none`, its best derivable one weak
PLANTED = {"a": torch.tensor([5.0, 0.0, 0.0]), "b": torch.tensor([0.0, 2.0, 0.0]),
           "c": torch.tensor([0.0, 0.0, 1.0]), "n": torch.tensor([3.0, 0.0, 1.0])}


@pytest.mark.parametrize("rank, kept", [("beta", "a"), ("alpha", "b"), ("beta_alpha", "c")])
def test_each_ranking_mode(rank, kept):
    graph = build_graph(_edges_space(rank))
    assert graph.decisions["n"].rank == rank
    geno = genotype_from_arch(graph, PLANTED)
    assert geno.edges["n"] == [kept]
    assert geno.choices["a"] == "darts_skip_connect"  # argmax is `none`: never derived


def test_a_rule_may_override_the_space_ranking():
    class ByAlpha(DerivationRule):
        input_rank = "alpha"

    assert genotype_from_arch(build_graph(_edges_space("beta")), PLANTED, rule=ByAlpha()).edges["n"] == ["b"]


def test_ranking_by_alpha_ignores_beta_in_the_supernet():
    torch.manual_seed(0)
    model = compile_graph(build_graph(_edges_space("alpha")))
    x = torch.randn(1, 4, 6, 6)
    y = model(x)
    with torch.no_grad():
        model.arch.beta["n"].copy_(torch.tensor([9.0, -9.0, 0.0]))
    assert torch.equal(model(x), y)


def test_unused_nodes_and_cell_inputs_are_pruned():
    space = Space.from_data({
        "name": "t", "imports": ["nasflow.spaces.darts.ops"], "inputs": {"x": 4},
        "blocks": {"cell": {"inputs": ["s0", "s1"], "nodes": {
            "p0": {"op": "darts_relu_conv_bn", "in": "s0", "out": 4},
            "e0": {"choice": OPS, "in": "p0", "label": "e0"},
            "e1": {"choice": OPS, "in": "s1", "label": "e1"},
            "n": {"dense": ["e0", "e1"], "topk": 1, "merge": "sum", "label": "n"}}, "output": "n"}},
        "nodes": {"pre": {"op": "darts_relu_conv_bn", "in": "x", "out": 4},
                  "c0": {"block": "cell", "in": ["pre", "x"]}},
        "output": "c0"})
    graph = build_graph(space)
    logits = {"e0": torch.zeros(3), "e1": torch.tensor([0.0, 1.0, 0.0]), "n": torch.tensor([0.0, 1.0])}
    derived = derive_space(space, genotype_from_arch(graph, logits))
    cell = derived.blocks["cell"]
    assert set(cell.nodes) == {"e1", "n"} and cell.inputs == ["s1"]  # p0, e0 and the port s0 gone
    assert "pre" not in derived.nodes and derived.nodes["c0"].input_list == ["x"]
    model = compile_graph(build_graph(derived))
    assert model(torch.randn(1, 4, 6, 6)).shape == (1, 4, 6, 6)


def test_search_and_final_arguments():
    space = search_space(C=4)
    graph = build_graph(space)
    supernet = compile_graph(graph)
    bns = [m for m in supernet.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and sum(m.affine for m in bns) == 1  # only the stem's: the rest search without affine
    logits = {label: torch.zeros(len(d.options)) for label, d in graph.decisions.items()}
    derived = derive_space(space, genotype_from_arch(graph, logits))
    model = compile_graph(build_graph(derived))
    assert all(m.affine for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert pools  # with zero logits, max_pool (the first derivable) wins: DARTS' eval pools have no BN
    model.eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_final_args_are_checked():
    with pytest.raises(SpaceError, match="no argument 'afine'"):
        build_graph(Space.from_data({
            "name": "t", "imports": ["nasflow.spaces.darts.ops"], "inputs": {"x": 4},
            "nodes": {"a": {"choice": OPS, "in": "x", "final_args": {"afine": True}}}, "output": "a"}))


@pytest.mark.parametrize("rank", ["beta", "alpha"])
def test_darts_space_derives_to_two_edges_per_node_and_rebuilds_wider(rank):
    space = search_space(C=4, rank=rank)
    graph = build_graph(space)
    g = torch.Generator().manual_seed(1)
    logits = {label: torch.randn(len(d.options), generator=g) for label, d in graph.decisions.items()}
    geno = genotype_from_arch(graph, logits)
    assert "darts_none" not in geno.choices.values()
    assert all(len(v) == 2 for v in geno.edges.values())
    wide = derive_space(space.with_params({"C": 36}), geno)
    cell = wide.blocks["normal_dag"]  # the normal cell's edges (its block `normal` adds the preprocessing)
    assert sum(1 for n in cell.nodes if n.startswith("e")) == 8  # 14 edges searched, 8 kept
    small = build_graph(derive_space(space, geno))
    big = build_graph(wide)
    assert big.nodes["head"].c_in[0] == 9 * small.nodes["head"].c_in[0]  # 4*4*36 vs 4*4*4
