"""Drop-path (FractalNet; DARTS' evaluation network): while training, each branch of a sum
inside a block is zeroed per sample with probability p and the kept samples scaled by
1 / (1 - p), so a cell learns not to lean on any one of its edges.

Which nodes: op nodes inside a block (a dotted name) whose value goes only into sums of the
same block (a `combine: add`, a dense node summing its inputs), and whose op is not identity-like (an op
declares that with `identity=` in register_op, or builds an nn.Identity: DARTS drops every
op of a cell but its identity skip_connect). Preprocessing ops, concatenations and
everything outside blocks are left alone.

The probability is the model's `drop_path` attribute (0: off), set by the train loop from
its schedule; the masks are drawn from torch's RNG on the tensor's device, which the run
seeds and checkpoints, so a resumed run draws the same masks. Off in eval mode.
"""
from __future__ import annotations

import torch
from torch import Tensor

from nasflow.ops.registry import OPS
from nasflow.space.graph import Graph
from nasflow.space.node import GNode


def is_sum(g: GNode) -> bool:
    """Whether node g adds its inputs (a join whose branches drop-path may drop)."""
    return (g.kind == "combine" and g.merge == "add") or (g.kind == "dense" and g.merge == "sum" and not g.op)


def is_identity(g: GNode) -> bool:
    """Whether op node g passes its input through unchanged (by its op's declaration; else
    by building it: an nn.Identity)."""
    assert g.op is not None
    spec = OPS.get(g.op)
    args = spec.bind(g.args)
    if spec.identity is not None:
        return bool(spec.identity(**args))
    # Built aside: initialising its weights must not draw from the run's RNG.
    with torch.random.fork_rng(devices=[]):
        return isinstance(spec.factory(g.c_in[0], g.c_out, **args), torch.nn.Identity)


def drop_path_nodes(graph: Graph) -> frozenset[str]:
    """The nodes drop-path acts on (see the module docstring)."""
    consumers: dict[str, list[GNode]] = {}
    for g in graph.nodes.values():
        for i in g.inputs:
            consumers.setdefault(i, []).append(g)
    return frozenset(
        g.name for g in graph.nodes.values()
        if g.kind == "op" and "." in g.name and consumers.get(g.name)
        and all(is_sum(c) and _scope(c.name) == _scope(g.name) for c in consumers[g.name])
        and not is_identity(g))


def _scope(name: str) -> str:
    """The block instance a node belongs to ("" at the top)."""
    return name.rpartition(".")[0]


def drop_path(x: Tensor, p: float) -> Tensor:
    """x with each sample zeroed with probability p, the others scaled by 1 / (1 - p)."""
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask
