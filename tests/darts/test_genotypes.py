"""The published DARTS genotypes as architecture files: built by nasflow's compiler, their
parameter counts equal the reference code's exactly, and a CIFAR batch gives 10 logits.

Reference counts: `NetworkCIFAR(36, 10, 20, False, genotype)` (C=36, 10 classes, 20 layers,
no auxiliary head), `sum(p.numel() for p in model.parameters())`, run on CPU from
  quark0/darts      f276dd346a09ae3160f8e3aca5c7b193fda1da37  cnn/model.py, cnn/genotypes.py
  yuhuixu1993/PC-DARTS b74702f86c70e330ce0db35762cfade9df026bb7  model.py, genotypes.py
(DARTS_V2's 3,349,342 is also the figure the DARTS code base prints as "param size 3.35MB").
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasflow.compile.supernet import compile_graph
from nasflow.space.cost import graph_cost
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space
from nasflow.spaces.darts.build import architecture

DARTS_DIR = Path(__file__).resolve().parents[2] / "spaces" / "darts"

REFERENCE = {
    # quark0/darts@f276dd3: NetworkCIFAR(36, 10, 20, False, genotypes.DARTS_V1)
    "darts_v1": 3_169_414,
    # quark0/darts@f276dd3: NetworkCIFAR(36, 10, 20, False, genotypes.DARTS_V2)
    "darts_v2": 3_349_342,
    # yuhuixu1993/PC-DARTS@b74702f: NetworkCIFAR(36, 10, 20, False, genotypes.PC_DARTS_cifar)
    "pc_darts": 3_634_678,
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_published_genotype_matches_the_reference(name):
    torch.manual_seed(0)
    space = Space.from_yaml(DARTS_DIR / f"{name}.yaml")
    graph = build_graph(space)
    model = compile_graph(graph)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == REFERENCE[name]
    assert graph_cost(graph, (32, 32)).params == REFERENCE[name]  # the cost model agrees
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_architecture_files_are_what_the_builder_writes(name):
    assert (DARTS_DIR / f"{name}.yaml").read_text() == architecture(name).to_yaml()



def test_reductions_sit_at_a_third_and_two_thirds():
    space = architecture("darts_v2", C=4, layers=8)
    blocks = build_graph(space).stacks["cell"]  # the block of each cell of the stack, in order
    assert [i for i, b in enumerate(blocks) if b.startswith("reduce")] == [2, 5]
    assert blocks[3] == blocks[6] == "normal_after_reduce"


def test_width_is_a_param():
    small = build_graph(Space.from_yaml(DARTS_DIR / "darts_v2.yaml"), {"C": 8})
    assert 0 < graph_cost(small, (32, 32)).params < REFERENCE["darts_v2"] / 10


def test_search_space_files_are_what_the_builder_writes():
    from nasflow.spaces.darts.build import search_space

    assert (DARTS_DIR / "space.yaml").read_text() == search_space().to_yaml()
    assert (DARTS_DIR / "space-darts.yaml").read_text() == search_space(rank="alpha", name="darts_alpha").to_yaml()
