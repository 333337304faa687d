"""The DARTS cell network as nasflow space files: the search space and the published
genotypes, written by one builder so that both have the same stem, cells and head.

    python -m nasflow.spaces.darts.build DIR     # rewrites the YAML files in DIR

A network is: stem (3x3 conv + BN to 3*C), `layers` cells, global pooling and a linear
classifier. Each cell reads the two previous cells' outputs (s0, s1), preprocesses them to
C channels (a 1x1 ReLU-conv-BN; a FactorizedReduce for s0 after a reduction), builds 4
intermediate nodes each the sum of two edges, and concatenates them (4*C channels). The
cells at layers//3 and 2*layers//3 reduce: their edges from s0 and s1 run at stride 2, and
C doubles. The space language has no repeat construct yet, so each cell is written out
(the search space at 8 cells, the architectures at 20); `C` stays a param.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nasflow.space.schema import Space

OPS_MODULE = "nasflow.spaces.darts.ops"
PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
              "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
STEPS = 4  # intermediate nodes per cell

Edge = tuple[str, int]  # (op, input index: 0 = s0, 1 = s1, k >= 2 = intermediate node k)

# The published cells: two edges per intermediate node, in the papers' genotype notation.
GENOTYPES: dict[str, dict[str, list[Edge]]] = {
    # DARTS (first order), quark0/darts cnn/genotypes.py DARTS_V1
    "darts_v1": {
        "normal": [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
                   ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)]},
    # DARTS (second order), quark0/darts cnn/genotypes.py DARTS_V2
    "darts_v2": {
        "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                   ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]},
    # PC-DARTS on CIFAR-10, yuhuixu1993/PC-DARTS genotypes.py PC_DARTS_cifar
    "pc_darts": {
        "normal": [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
                   ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        "reduce": [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
                   ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)]},
}


def _state(i: int) -> str:
    return ("p0", "p1")[i] if i < 2 else f"n{i}"


def _preprocess(after_reduction: bool, search: bool) -> dict[str, Any]:
    affine = {"args": {"affine": False}, "final_args": {"affine": True}} if search else {}
    p0 = ({"op": "darts_factorized_reduce", "in": "s0", "out": "C", **affine} if after_reduction
          else {"op": "darts_relu_conv_bn", "in": "s0", "out": "C", **affine})
    return {"p0": p0, "p1": {"op": "darts_relu_conv_bn", "in": "s1", "out": "C", **affine}}


def _cell_fixed(edges: list[Edge], reduction: bool, after_reduction: bool) -> dict[str, Any]:
    nodes = _preprocess(after_reduction, search=False)
    for k in range(STEPS):
        names = []
        for e, (op, src) in enumerate(edges[2 * k:2 * k + 2]):
            name = f"e{k + 2}_{src}"
            args = {"stride": 2} if reduction and src < 2 else {}
            nodes[name] = {"op": f"darts_{op}", "in": _state(src), **({"args": args} if args else {})}
            names.append(name)
        nodes[f"n{k + 2}"] = {"combine": "add", "in": names}
    nodes["out"] = {"combine": "concat", "in": [f"n{k + 2}" for k in range(STEPS)]}
    return {"params": {"C": None}, "inputs": ["s0", "s1"], "nodes": nodes, "output": "out"}


def _cell_search(kind: str, reduction: bool, after_reduction: bool, rank: str) -> dict[str, Any]:
    nodes = _preprocess(after_reduction, search=True)
    for k in range(2, STEPS + 2):
        names = []
        for src in range(k):
            args: dict[str, Any] = {"affine": False}
            if reduction and src < 2:
                args["stride"] = 2
            nodes[f"e{k}_{src}"] = {"choice": [f"darts_{p}" for p in PRIMITIVES], "in": _state(src),
                                    "args": args, "final_args": {"affine": True},
                                    "label": f"{kind}_e{k}_{src}", "never_derive": ["darts_none"]}
            names.append(f"e{k}_{src}")
        nodes[f"n{k}"] = {"dense": names, "topk": 2, "merge": "sum", "label": f"{kind}_n{k}", "rank": rank}
    nodes["out"] = {"combine": "concat", "in": [f"n{k}" for k in range(2, STEPS + 2)]}
    return {"params": {"C": None}, "inputs": ["s0", "s1"], "nodes": nodes, "output": "out"}


def reduction_layers(layers: int) -> tuple[int, int]:
    return layers // 3, 2 * layers // 3


def _network(name: str, description: str, C: int, layers: int, classes: int,
             cell: Any) -> dict[str, Any]:
    """The stem, the chain of cells (`cell(reduction, after_reduction)` -> block name) and the head."""
    nodes: dict[str, Any] = {"stem": {"op": "darts_conv_bn", "in": "x", "out": "3 * C"}}
    prev_prev, prev, mult, after = "stem", "stem", 1, False
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        if reduction:
            mult *= 2
        channels = "C" if mult == 1 else f"{mult} * C"
        nodes[f"cell{i}"] = {"block": cell(reduction, after), "in": [prev_prev, prev], "args": {"C": channels}}
        prev_prev, prev, after = prev, f"cell{i}", reduction
    nodes["head"] = {"op": "darts_classifier", "in": prev, "out": "classes"}
    return {"name": name, "description": description, "task": "classify", "imports": [OPS_MODULE],
            "params": {"C": C, "classes": classes}, "inputs": {"x": 3}, "nodes": nodes, "output": "head"}


def architecture(genotype: str, C: int = 36, layers: int = 20, classes: int = 10) -> Space:
    """A published genotype as an architecture file (DARTS' NetworkCIFAR, no auxiliary head)."""
    cells = GENOTYPES[genotype]
    blocks: dict[str, Any] = {}

    def cell(reduction: bool, after: bool) -> str:
        name = ("reduce" if reduction else "normal") + ("_after_reduce" if after else "")
        blocks.setdefault(name, _cell_fixed(cells["reduce" if reduction else "normal"], reduction, after))
        return name

    data = _network(genotype, f"The published {genotype} cells at C={C}, {layers} layers (NetworkCIFAR).",
                    C, layers, classes, cell)
    return Space.from_data({**data, "blocks": blocks})


def search_space(C: int = 16, layers: int = 8, classes: int = 10, rank: str = "beta",
                 name: str = "darts") -> Space:
    """The search network: every edge a choice over the 8 DARTS ops (alpha shared by the
    cells of a type), every intermediate node the top-2 of its edges, ranked by `rank`."""
    blocks: dict[str, Any] = {}

    def cell(reduction: bool, after: bool) -> str:
        kind = "reduce" if reduction else "normal"
        name_ = kind + ("_after_reduce" if after else "")
        blocks.setdefault(name_, _cell_search(kind, reduction, after, rank))
        return name_

    how = {"beta": "PC-DARTS: a node's edges weighted by beta, the top-2 by beta",
           "alpha": "DARTS: a node's edges summed, the top-2 by their strongest non-none alpha",
           "beta_alpha": "the top-2 by beta x the strongest non-none alpha"}[rank]
    data = _network(name, f"DARTS cell search space ({how}); C={C}, {layers} cells.", C, layers, classes, cell)
    return Space.from_data({**data, "blocks": blocks})


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv or sys.argv[1:] or [str(Path(__file__).parent)])[0])
    search_space().to_yaml(folder / "space.yaml")
    search_space(rank="alpha", name="darts_alpha").to_yaml(folder / "space-darts.yaml")
    for genotype in GENOTYPES:
        architecture(genotype).to_yaml(folder / f"{genotype}.yaml")


if __name__ == "__main__":
    main()
