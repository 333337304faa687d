"""Derivation: a genotype from the architecture parameters, and the derived architecture.

The genotype is a plain record keyed by decision label: the argmax op of each alpha, the
top-k inputs of each beta (in descending beta order, which is the concatenation order). The
derived architecture is the same space with every choice replaced by its op and every dense
node cut to its k inputs: a space file with no choices, which the same compiler builds.
"""
from __future__ import annotations

import json

import networkx as nx
from torch import Tensor

from nasflow.derive.kinds import derived_kind
from nasflow.derive.record import Genotype
from nasflow.derive.rule import DerivationRule
from nasflow.errors import NasflowError
from nasflow.space.graph import Graph, build_graph
from nasflow.space.kinds import kind_of_data
from nasflow.space.schema import Block, BlockNode, Node, Space

__all__ = ["Genotype", "derive_space", "genotype_from_arch", "inherit_weights"]


def genotype_from_arch(graph: Graph, logits: dict[str, Tensor], topk: int | None = None,
                       rule: DerivationRule | None = None) -> Genotype:
    """The best op per choice label, the top-k inputs per dense label (k from the space or
    `topk`), as `rule` ranks them (default: argmax alpha, top-k beta).

    Each alpha's columns are that decision's own candidate list (never a parallel list).
    """
    rule = rule if rule is not None else DerivationRule()
    geno = Genotype()
    for label, d in graph.decisions.items():
        if label not in logits:
            raise NasflowError(f"no architecture parameters for decision '{label}'; "
                               "the checkpoint is from another space")
        row = logits[label].detach().float().cpu()
        if row.numel() != len(d.options):
            raise NasflowError(f"decision '{label}' has {len(d.options)} candidates but "
                               f"{row.numel()} architecture parameters")
        if d.kind == "alpha":
            geno.choices[label] = rule.pick(d, row, 1)[0]
        else:
            k = d.topk if topk is None else topk
            if not 1 <= k <= len(d.options):
                raise NasflowError(f"topk {k} does not fit dense node '{label}' with "
                                   f"{len(d.options)} candidate inputs; use 1..{len(d.options)}")
            geno.edges[label] = rule.pick(d, row, k)
    return geno


def derive_space(space: Space, genotype: Genotype, name: str | None = None) -> Space:
    """The architecture the genotype picks, as a space with no choices."""
    return _Deriver(space, genotype).run(name)


def _prune(space: Space) -> Space:
    """Drop top-level nodes (and block instances) that no longer reach the output: inputs a
    dense node did not keep, as DARTS drops unused cells' branches. A space input that only
    an unpicked dense candidate read is dropped too (the derived model does not take it);
    keyword calls that still pass it keep working, as the forward ignores unknown names."""
    graph = build_graph(space, check_unused=False)
    for d in graph.decisions.values():  # a kind with a decision but no derive side left it
        g = graph.nodes[d.nodes[0]]
        raise NasflowError(f"node '{g.name}' is still a decision after deriving: node kind '{g.kind}' has "
                           "no derive side; register one (@register_derived_kind, nasflow.derive.kinds)")
    reach = nx.ancestors(graph.dag, graph.output) | {graph.output}
    alive = {name.split(".")[0] for name in reach}
    kept = {n: node for n, node in space.nodes.items() if n in alive}
    inputs = {n: c for n, c in space.inputs.items() if n in alive}
    used_blocks = {b for b in _blocks_used(space, kept)}
    blocks = {b: blk for b, blk in space.blocks.items() if b in used_blocks}
    return space.model_copy(update={"nodes": kept, "blocks": blocks, "inputs": inputs})


def _blocks_used(space: Space, nodes: dict[str, Node]) -> set[str]:
    found: set[str] = set()
    stack = [n.block for n in nodes.values() if isinstance(n, BlockNode)]
    while stack:
        b = stack.pop()
        if b not in found:
            found.add(b)
            stack += [n.block for n in space.blocks[b].nodes.values() if isinstance(n, BlockNode)]
    return found


class _Deriver:
    def __init__(self, space: Space, genotype: Genotype) -> None:
        self.space, self.geno = space, genotype
        self.blocks: dict[str, Block] = {}
        self.variants: dict[str, list[tuple[str, str]]] = {}

    def run(self, name: str | None) -> Space:
        nodes = self._nodes(self.space.nodes, "")
        meta = {**self.space.meta, "derived_from": self.space.name, "genotype": self.geno.to_json()}
        derived = self.space.model_copy(update={
            "name": name or f"{self.space.name}-derived", "nodes": nodes, "blocks": self.blocks, "meta": meta})
        return _prune(derived)

    def _nodes(self, nodes: dict[str, Node], prefix: str) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for name, node in nodes.items():
            path = prefix + name
            if isinstance(node, BlockNode):
                out[name] = node.model_copy(update={"block": self._specialise(node.block, path + ".")})
            else:  # each kind derives its own nodes (nasflow.derive.kinds)
                out[name] = derived_kind(kind_of_data(node)).derive(node, path, self.geno)
        return out

    def _specialise(self, block: str, prefix: str) -> str:
        """A block whose choices resolve the same in every instance stays one block;
        instances that differ (per-instance labels) get variants `cell_2`, `cell_3`, ..."""
        original = self.space.blocks[block]
        derived = original.model_copy(update={"nodes": self._nodes(original.nodes, prefix)})
        key = json.dumps(derived.model_dump(mode="json", by_alias=True), sort_keys=True)
        seen = self.variants.setdefault(block, [])
        for k, name in seen:
            if k == key:
                return name
        name = block if not seen else f"{block}_{len(seen) + 1}"
        seen.append((key, name))
        self.blocks[name] = derived
        return name


def inherit_weights(supernet_graph: Graph, supernet_state: dict[str, Tensor],
                    derived_graph: Graph, derived_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights for a derived model taken from its supernet: the chosen candidate of each
    choice, and the kept inputs' slices of each dense node's merge op (each node's kind
    says how, nasflow.derive.kinds; other kinds keep their weights as they are).

    With one-hot alpha (and top-1 one-hot beta) the derived model then computes exactly
    what the supernet computes; it is also a warm start for retraining.
    """
    out: dict[str, Tensor] = {}
    for key, target in derived_state.items():
        node, rest = _split_key(key, derived_graph)
        g_new, g_old = derived_graph.nodes[node], supernet_graph.nodes.get(node)
        if g_old is None:
            raise NasflowError(f"'{key}': node '{node}' is not in the supernet")
        src = derived_kind(g_old.kind).inherit(key, rest, g_old, g_new, supernet_state)
        if src.shape != target.shape:
            raise NasflowError(f"'{key}': supernet weight has shape {tuple(src.shape)}, derived "
                               f"model needs {tuple(target.shape)}")
        out[key] = src.clone()
    return out


def _split_key(key: str, graph: Graph) -> tuple[str, str]:
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        node = ".".join(parts[:n])
        if node in graph.nodes:
            return node, ".".join(parts[n:])
    raise NasflowError(f"state-dict key '{key}' belongs to no node of the architecture")
