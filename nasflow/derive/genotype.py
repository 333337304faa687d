"""Derivation: a genotype from the architecture parameters, and the derived architecture.

The genotype is a plain record keyed by decision label: the argmax op of each alpha, the
top-k inputs of each beta (in descending beta order, which is the concatenation order). The
derived architecture is the same space with every choice replaced by its op and every dense
node cut to its k inputs: a space file with no choices, which the same compiler builds.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import torch
from torch import Tensor

from nasflow.derive.rule import DerivationRule
from nasflow.errors import NasflowError
from nasflow.space.graph import Graph, build_graph
from nasflow.space.schema import Block, BlockNode, ChoiceNode, DenseNode, Node, OpNode, Space


@dataclass
class Genotype:
    choices: dict[str, str] = field(default_factory=dict)  # alpha label -> op
    edges: dict[str, list[str]] = field(default_factory=dict)  # beta label -> inputs kept

    def to_json(self) -> dict[str, Any]:
        return {"choices": self.choices, "edges": self.edges}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Genotype:
        return cls(dict(data.get("choices", {})), {k: list(v) for k, v in data.get("edges", {}).items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.choices.items()]
        parts += [f"{k}<-({','.join(v)})" for k, v in self.edges.items()]
        return " ".join(parts)


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
            if isinstance(node, ChoiceNode):
                op = self._pick(self.geno.choices, node.label or path, "choice")
                out[name] = OpNode(op=op, input=node.input, out=node.out, args=node.args, act=node.act)
            elif isinstance(node, DenseNode) and (node.topk < len(node.dense) or node.label is not None):
                kept = self._pick(self.geno.edges, node.label or path, "dense")
                out[name] = node.model_copy(update={"dense": list(kept), "topk": len(kept), "label": None})
            elif isinstance(node, BlockNode):
                out[name] = node.model_copy(update={"block": self._specialise(node.block, path + ".")})
            else:
                out[name] = node
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

    @staticmethod
    def _pick(table: dict[str, Any], label: str, what: str) -> Any:
        if label not in table:
            raise NasflowError(f"the genotype has no entry for {what} '{label}'; it is from another space")
        return table[label]


def inherit_weights(supernet_graph: Graph, supernet_state: dict[str, Tensor],
                    derived_graph: Graph, derived_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights for a derived model taken from its supernet: the chosen candidate of each
    choice, and the kept inputs' slices of each dense node's merge op.

    With one-hot alpha (and top-1 one-hot beta) the derived model then computes exactly
    what the supernet computes; it is also a warm start for retraining.
    """
    out: dict[str, Tensor] = {}
    for key, target in derived_state.items():
        node, rest = _split_key(key, derived_graph)
        g_new, g_old = derived_graph.nodes[node], supernet_graph.nodes.get(node)
        if g_old is None:
            raise NasflowError(f"'{key}': node '{node}' is not in the supernet")
        if g_old.kind == "choice":
            src = supernet_state[f"{node}.ops.{g_new.op}.{rest.removeprefix('op.')}"]
        elif g_old.kind == "dense" and g_old.merge == "concat" and rest == "op.weight" and g_new.inputs != g_old.inputs:
            c = g_old.c_in[0]
            chunks = supernet_state[key].split(c, dim=1)
            src = torch.cat([chunks[g_old.inputs.index(i)] for i in g_new.inputs], dim=1)
        else:
            src = supernet_state[key]
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
