"""The DARTS cell network as nasflow space files: the search space and the published
genotypes, written by one builder so that both have the same stem, cells and head.

    python -m nasflow.spaces.darts.build DIR     # rewrites the YAML files in DIR

A network is: stem (3x3 conv + BN to 3*C), `layers` cells, global pooling and a linear
classifier (and an auxiliary head at 2/3 depth, used only when training with `auxiliary` on).
Each cell reads the two previous cells' outputs (s0, s1), preprocesses them to
C channels (a 1x1 ReLU-conv-BN; a FactorizedReduce for s0 after a reduction), builds 4
intermediate nodes each the sum of two edges, and concatenates them (4*C channels). The
cells at layers//3 and 2*layers//3 reduce: their edges from s0 and s1 run at stride 2, and
C doubles. The cells are one stack node (`stack: layers`), so `C` and `layers` are params:
one file gives the 8-cell search network and, derived with `--set layers=20 --set C=36`,
the 20-cell evaluation network.
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


def _cell(dag: str, after_reduction: bool, search: bool) -> dict[str, Any]:
    """A cell: its two inputs preprocessed to C channels, then its DAG (block `dag`)."""
    affine = {"args": {"affine": False}, "final_args": {"affine": True}} if search else {}
    p0 = ({"op": "darts_factorized_reduce", "in": "s0", "out": "C", **affine} if after_reduction
          else {"op": "darts_relu_conv_bn", "in": "s0", "out": "C", **affine})
    return {"params": {"C": None}, "inputs": ["s0", "s1"], "output": "dag", "nodes": {
        "p0": p0, "p1": {"op": "darts_relu_conv_bn", "in": "s1", "out": "C", **affine},
        "dag": {"block": dag, "in": ["p0", "p1"]}}}


def _dag_fixed(edges: list[Edge], reduction: bool) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for k in range(STEPS):
        names = []
        for e, (op, src) in enumerate(edges[2 * k:2 * k + 2]):
            name = f"e{k + 2}_{src}"
            args = {"stride": 2} if reduction and src < 2 else {}
            nodes[name] = {"op": f"darts_{op}", "in": _state(src), **({"args": args} if args else {})}
            names.append(name)
        nodes[f"n{k + 2}"] = {"combine": "add", "in": names}
    nodes["out"] = {"combine": "concat", "in": [f"n{k + 2}" for k in range(STEPS)]}
    return {"inputs": ["p0", "p1"], "nodes": nodes, "output": "out"}


def _dag_search(kind: str, reduction: bool, rank: str) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
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
    return {"inputs": ["p0", "p1"], "nodes": nodes, "output": "out"}


# The chain of cells: instance i picks its block and width by where it sits (NetworkCIFAR:
# reductions at layers // 3 and 2 * layers // 3, C doubling at each; the cell after a
# reduction preprocesses s0 with a FactorizedReduce). Correct for any layers >= 1.
CELLS: dict[str, Any] = {
    "stack": "layers",  # cell0, cell1, ...: cell3.dag.e2_0 is an edge of the fourth cell
    "let": {"r1": "layers // 3", "r2": "2 * layers // 3",
            "red": "i in (r1, r2)",  # this cell reduces
            "after": "i - 1 in (r1, r2)",  # the previous one did
            "width": "2 ** ((i >= r1) + (i >= r2 and r2 > r1))"},
    "block": "reduce_after_reduce if red and after else reduce if red else "
             "normal_after_reduce if after else normal",
    "in": ["cell[i - 2] if i >= 2 else stem", "cell[i - 1] if i >= 1 else stem"],
    "args": {"C": "width * C"},
}
# The four kinds of cell: (its DAG, after a reduction), a DAG shared by two of them.
CELL_KINDS = {"normal": ("normal_dag", False), "reduce": ("reduce_dag", False),
              "normal_after_reduce": ("normal_dag", True), "reduce_after_reduce": ("reduce_dag", True)}


def _network(name: str, description: str, C: int, layers: int, classes: int,
             dags: dict[str, dict[str, Any]], search: bool) -> dict[str, Any]:
    """The stem, the stack of cells (`dags`: the normal and the reduction cell's DAG) and the head."""
    nodes: dict[str, Any] = {"stem": {"op": "darts_conv_bn", "in": "x", "out": "3 * C"},
                             "cell": CELLS,
                             "head": {"op": "darts_classifier", "in": "cell", "out": "classes"},
                             # NetworkCIFAR's auxiliary head, on the cell at 2/3 depth (8x8):
                             # built and run only when training with `auxiliary` on, never counted
                             "aux": {"op": "darts_aux_head", "in": "cell[2 * layers // 3]", "out": "classes"}}
    cells = {b: _cell(dag, after, search) for b, (dag, after) in CELL_KINDS.items()}
    return {"name": name, "description": description, "task": "classify", "imports": [OPS_MODULE],
            "params": {"C": C, "layers": layers, "classes": classes}, "inputs": {"x": 3},
            "blocks": {**cells, **dags}, "nodes": nodes, "output": "head", "auxiliary": ["aux"]}


def architecture(genotype: str, C: int = 36, layers: int = 20, classes: int = 10) -> Space:
    """A published genotype as an architecture file (DARTS' NetworkCIFAR; its auxiliary head
    is an `auxiliary:` output, off in parameter counts)."""
    cells = GENOTYPES[genotype]
    dags = {"normal_dag": _dag_fixed(cells["normal"], False), "reduce_dag": _dag_fixed(cells["reduce"], True)}
    return Space.from_data(_network(
        genotype, f"The published {genotype} cells (NetworkCIFAR); C={C}, {layers} cells by default.",
        C, layers, classes, dags, search=False))


def search_space(C: int = 16, layers: int = 8, classes: int = 10, rank: str = "beta",
                 name: str = "darts") -> Space:
    """The search network: every edge a choice over the 8 DARTS ops (alpha shared by the
    cells of a type), every intermediate node the top-2 of its edges, ranked by `rank`."""
    how = {"beta": "PC-DARTS: a node's edges weighted by beta, the top-2 by beta",
           "alpha": "DARTS: a node's edges summed, the top-2 by their strongest non-none alpha",
           "beta_alpha": "the top-2 by beta x the strongest non-none alpha"}[rank]
    dags = {"normal_dag": _dag_search("normal", False, rank), "reduce_dag": _dag_search("reduce", True, rank)}
    return Space.from_data(_network(
        name, f"DARTS cell search space ({how}); C={C}, {layers} cells by default.", C, layers, classes,
        dags, search=True))


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv or sys.argv[1:] or [str(Path(__file__).parent)])[0])
    search_space().to_yaml(folder / "space.yaml")
    search_space(rank="alpha", name="darts_alpha").to_yaml(folder / "space-darts.yaml")
    for genotype in GENOTYPES:
        architecture(genotype).to_yaml(folder / f"{genotype}.yaml")


if __name__ == "__main__":
    main()
