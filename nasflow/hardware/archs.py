"""Derived architectures of a space, built and ready to time end to end: the random ones
`nasflow profile --check` compares with the table, and the ones `nasflow profile` calibrates
the table's per-node overhead on (another seed, so the check never sees them).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import derive_space, genotype_from_arch
from nasflow.errors import NasflowError
from nasflow.hardware.timing import Runner
from nasflow.space.graph import Graph, build_graph

CHECK_SEED = 0
CALIBRATION_SEED = 1_000_003  # far from the check's seeds: calibration and check see other architectures


def random_architectures(graph: Graph, n: int, seed: int = CHECK_SEED) -> list[Graph]:
    """`n` distinct derived architectures (fewer if the space has fewer), from random logits."""
    if not graph.decisions:
        raise NasflowError(f"'{graph.space.name}' has no choices: there is one architecture, nothing to "
                           "check a table against; profile the search space")
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Graph] = {}
    for _ in range(20 * n):
        if len(out) == n:
            break
        logits = {label: torch.randn(len(d.options), generator=g) for label, d in graph.decisions.items()}
        geno = genotype_from_arch(graph, logits)
        if str(geno) not in out:
            out[str(geno)] = build_graph(derive_space(graph.space, geno))
    return list(out.values())


def end_to_end(derived: Graph, input_size: tuple[int, int], runner: Runner, seed: int = 0) -> Callable[[], object]:
    """A call of the whole derived model (random weights) on inputs of `input_size` (h, w)."""
    torch.manual_seed(seed)
    model = compile_graph(derived, fuse=False).eval()
    h, w = input_size
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(1, derived.nodes[name].c_out, int(h * derived.nodes[name].size),
                         int(w * derived.nodes[name].size), generator=g) for name in derived.inputs]
    return runner.prepare(model, inputs)


def short_name(derived: Graph) -> str:
    geno = derived.space.meta.get("genotype", {})
    parts = [str(v) for v in geno.get("choices", {}).values()]
    parts += ["(" + ",".join(v) + ")" for v in geno.get("edges", {}).values()]
    return " ".join(parts) or derived.space.name
