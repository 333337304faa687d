"""Derivation: a genotype from the architecture parameters, and the derived architecture.

The genotype is a plain record keyed by decision label: the argmax op of each alpha (or the
ops the strategy's rule keeps, a list), the top-k inputs of each beta (in descending beta
order, which is the concatenation order). The derived architecture is the same space with
every choice replaced by its op (by a node per kept op and their sum) and every dense node
cut to its k inputs: a space file with no choices, which the same compiler builds.
A stack stays a stack (its blocks derived), so the derived file keeps the params its count
and arguments read (`layers`, `C`) and rebuilds at another depth; only a stack whose
instances of one block derive differently (per-instance decisions) is pinned to its count.
"""
from __future__ import annotations

import json
from typing import Any

import networkx as nx
from torch import Tensor

from nasflow.compile.values import inherit_slice
from nasflow.derive.kinds import derived_kind, kept_op_source
from nasflow.derive.record import Genotype
from nasflow.derive.supernet_state import SupernetState
from nasflow.derive.rule import DerivationRule, checked_keep, checked_pick, checked_scores
from nasflow.errors import NasflowError, hook_error
from nasflow.space.expr import ref_names
from nasflow.space.graph import Decision, Graph, build_graph
from nasflow.space.kinds import kind, kind_of_data
from nasflow.space.schema import Block, BlockNode, Node, Space, StackNode
from nasflow.space.stack import block_names, instance_name

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
            kept = checked_keep(rule, d, rule.keep(d, row))
            geno.choices[label] = kept[0] if len(kept) == 1 else kept  # several: summed when derived
        elif d.kind == "value":
            geno.values[label] = int(checked_pick(rule, d, 1, rule.pick(d, row, 1))[0])
        else:
            k = d.topk if topk is None else topk
            if not 1 <= k <= len(d.options):
                raise NasflowError(f"topk {k} does not fit dense node '{label}' with "
                                   f"{len(d.options)} candidate inputs; use 1..{len(d.options)}")
            scores = rule.input_scores(d, row, _edge_strengths(graph, d, logits, rule))
            scores = checked_scores(rule, "input_scores", d, scores)
            geno.edges[label] = checked_pick(rule, d, k, rule.pick(d, row, k, scores))
    return geno


def _edge_strengths(graph: Graph, d: Decision, logits: dict[str, Tensor],
                    rule: DerivationRule) -> list[float | None]:
    """Per input of beta decision `d` (at its first node): the rule's edge strength of the
    choice node that input is, None for an input that is no choice node."""
    if (rule.input_rank or d.rank) == "beta":
        return [None] * len(d.options)
    out: list[float | None] = []
    for src in graph.nodes[d.nodes[0]].inputs:
        g = graph.nodes[src]
        if g.kind != "choice" or g.label not in logits:
            out.append(None)
        else:
            out.append(rule.edge_strength(graph.decisions[g.label], logits[g.label]))
    return out


def derive_space(space: Space, genotype: Genotype, name: str | None = None) -> Space:
    """The architecture the genotype picks, as a space with no choices: its value decisions
    become params holding the picked numbers, so every expression reads them as written."""
    missing = sorted(set(space.values) - set(genotype.values))
    if missing:
        raise NasflowError(f"the genotype has no value for {', '.join(map(repr, missing))}; it is from another space")
    picked = {k: v for k, v in genotype.values.items() if k in space.values}
    return _Deriver(space.fix_values(picked), genotype).run(name)


def _prune(space: Space) -> Space:
    """Drop the nodes that no longer reach the output, until none is left: inputs a dense
    node did not keep and what only they read, at the top level and inside cells (DARTS'
    edges not among a node's top 2), and a cell's input that none of its kept nodes reads
    (with what fed it). A space input that only an unpicked dense candidate read is dropped
    too (the derived model does not take it); keyword calls that still pass it keep
    working, as the forward ignores unknown names."""
    while True:
        pruned = _prune_once(space)
        if pruned.to_data() == space.to_data():
            return pruned
        space = pruned


def _prune_once(space: Space) -> Space:
    graph = build_graph(space, check_unused=False)
    for d in graph.decisions.values():  # a kind with a decision but no derive side left it
        g = graph.nodes[d.nodes[0]]
        raise NasflowError(f"node '{g.name}' is still a decision after deriving: node kind '{g.kind}' has "
                           "no derive side; register one (@register_derived_kind, nasflow.derive.kinds)")
    alive: set[str] = set()  # every reached expanded name and each of its dotted prefixes
    for name in set().union(*(nx.ancestors(graph.dag, o) | {o} for o in [graph.output, *graph.auxiliary])):
        parts = name.split(".")
        alive.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    prefixes: dict[str, list[str]] = {}  # block -> the dotted prefixes of its instances
    stacked: list[list[str]] = []  # the blocks each kept stack may use

    def is_alive(path: str, node: Node) -> bool:
        if isinstance(node, StackNode):
            return any(instance_name(path, k) in alive for k in range(len(graph.stacks.get(path, []))))
        return path in alive

    def walk(nodes: dict[str, Node], prefix: str) -> None:
        for n, node in nodes.items():
            if isinstance(node, BlockNode) and prefix + n in alive:
                prefixes.setdefault(node.block, []).append(f"{prefix}{n}.")
                walk(space.blocks[node.block].nodes, f"{prefix}{n}.")
            elif isinstance(node, StackNode) and is_alive(prefix + n, node):
                stacked.append([b for b in block_names(node) if b in space.blocks])
                for k, b in enumerate(graph.stacks[prefix + n]):
                    inst = instance_name(prefix + n, k) + "."
                    prefixes.setdefault(b, []).append(inst)
                    walk(space.blocks[b].nodes, inst)

    kept = {n: node for n, node in space.nodes.items() if is_alive(n, node)}
    walk(kept, "")
    blocks: dict[str, Block] = {}
    dropped_ports: dict[str, list[int]] = {}
    for b, blk in space.blocks.items():
        if b in prefixes:
            nodes = {m: node for m, node in blk.nodes.items() if any(is_alive(p + m, node) for p in prefixes[b])}
        elif any(b in bs for bs in stacked):  # a stack may use it at other params: kept, pruned on its own
            nodes = {m: node for m, node in blk.nodes.items() if m in _reached_in_block(blk)}
        else:
            continue
        refs = _names_read(nodes.values()) | {blk.output}
        dropped_ports[b] = [i for i, port in enumerate(blk.inputs) if port not in refs]
        blocks[b] = blk.model_copy(update={"nodes": nodes})
    _agree_on_stack_ports(dropped_ports, stacked)
    blocks = {b: blk.model_copy(update={"inputs": [port for i, port in enumerate(blk.inputs)
                                                   if i not in dropped_ports[b]]}) for b, blk in blocks.items()}
    kept = _drop_instance_inputs(kept, dropped_ports)
    blocks = {b: blk.model_copy(update={"nodes": _drop_instance_inputs(blk.nodes, dropped_ports)})
              for b, blk in blocks.items()}
    inputs = {n: c for n, c in space.inputs.items() if n in alive}
    return space.model_copy(update={"nodes": kept, "blocks": blocks, "inputs": inputs})


def _names_read(nodes: Any) -> set[str]:
    return {name for node in nodes for r in kind(kind_of_data(node)).refs(node) for name in ref_names(r)}


def _reached_in_block(blk: Block) -> set[str]:
    """The nodes of a block its output reads, directly or not."""
    seen: set[str] = set()
    todo = [blk.output]
    while todo:
        n = todo.pop()
        if n in blk.nodes and n not in seen:
            seen.add(n)
            todo += _names_read([blk.nodes[n]])
    return seen


def _agree_on_stack_ports(dropped: dict[str, list[int]], stacked: list[list[str]]) -> None:
    """The blocks of one stack share its inputs: they drop only the inputs none of them
    reads (the others keep an unused port, which a stacked block may have)."""
    changed = True
    while changed:
        changed = False
        for bs in stacked:
            common = set.intersection(*(set(dropped[b]) for b in bs)) if bs else set()
            for b in bs:
                if set(dropped[b]) != common:
                    dropped[b], changed = sorted(common), True


def _drop_instance_inputs(nodes: dict[str, Node], dropped: dict[str, list[int]]) -> dict[str, Node]:
    """Block instances without the inputs their (pruned) block no longer takes."""
    out: dict[str, Node] = {}
    for n, node in nodes.items():
        if isinstance(node, BlockNode) and dropped.get(node.block):
            node = node.model_copy(update={"inputs": [
                r for i, r in enumerate(node.input_list) if i not in dropped[node.block]]})
        elif isinstance(node, StackNode):
            gone = next((dropped[b] for b in block_names(node) if b in dropped), [])
            if gone:
                node = node.model_copy(update={"inputs": [
                    r for i, r in enumerate(node.input_list) if i not in gone]})
        out[n] = node
    return out


class _Deriver:
    def __init__(self, space: Space, genotype: Genotype) -> None:
        self.space, self.geno = space, genotype
        self.blocks: dict[str, Block] = {}
        self.variants: dict[str, list[tuple[str, str]]] = {}
        self.stacks = build_graph(space, check_unused=False).stacks if _has_stack(space) else {}

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
            elif isinstance(node, StackNode):
                out[name] = self._stack(node, path)
            else:  # each kind derives its own nodes (nasflow.derive.kinds); a choice keeping
                # several ops becomes a node per op and their sum under its name
                # several ops: names not taken by the level's nodes nor those derived before it
                out.update(derived_kind(kind_of_data(node)).derive_nodes(node, name, path, self.geno, {**nodes, **out}))
        return out

    def _stack(self, node: StackNode, path: str) -> StackNode:
        """The stack with its blocks derived. Instances of one block that derive alike (their
        decisions shared by label) keep the stack as written, so it rebuilds at any count;
        otherwise each instance names its own variant and the count is pinned."""
        used = self.stacks.get(path, [])
        picked = [self._specialise(b, instance_name(path, k) + ".") for k, b in enumerate(used)]
        for b in block_names(node):  # blocks the stack uses only at other params
            if b not in used and b in self.space.blocks and b not in self.blocks:
                try:
                    self._specialise(b, instance_name(path, len(used)) + ".")
                except NasflowError:
                    pass  # its decisions were never searched: it cannot be derived
        if picked == used:
            return node
        groups: dict[str, list[int]] = {}
        for k, b in enumerate(picked):
            groups.setdefault(b, []).append(k)
        *cases, (last, _) = groups.items()
        chain = " else ".join(f"{b} if i == {ks[0]}" if len(ks) == 1 else f"{b} if i in ({', '.join(map(str, ks))})"
                              for b, ks in cases)
        return node.model_copy(update={"stack": len(picked), "block": f"{chain} else {last}" if cases else last})

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


def _has_stack(space: Space) -> bool:
    nodes = [*space.nodes.values(), *(n for blk in space.blocks.values() for n in blk.nodes.values())]
    return any(isinstance(n, StackNode) for n in nodes)


def inherit_weights(supernet_graph: Graph, supernet_state: dict[str, Tensor],
                    derived_graph: Graph, derived_state: dict[str, Tensor],
                    values: dict[str, int] | None = None) -> dict[str, Tensor]:
    """Weights for a derived model taken from its supernet: the chosen candidate of each
    choice, and the kept inputs' slices of each dense node's merge op (each node's kind
    says how, nasflow.derive.kinds; other kinds keep their weights as they are).

    With one-hot alpha (and top-1 one-hot beta) the derived model then computes exactly
    what the supernet computes; it is also a warm start for retraining. A supernet with value
    decisions holds each weight at the largest values: `values` (the derived architecture's
    picks) cuts each to the derived shape (nasflow.compile.values.inherit_slice), a kernel
    through the supernet's kernel_transforms when it has them (OFA's option). A norm the
    search ran without affine parameters (DARTS' `affine: false`) and the derived model has
    with them gets the identity affine (weight 1, bias 0) and the supernet's statistics.
    """
    supernet_state = SupernetState(supernet_state)  # missing affine parameters: the identity
    out: dict[str, Tensor] = {}
    transforms = {k.split(".", 1)[1]: v for k, v in supernet_state.items() if k.startswith("kernel_transforms.")}
    for key, target in derived_state.items():
        own = key  # the derived model's name for it
        node, rest = _split_key(key, derived_graph)
        g_new, g_old = derived_graph.nodes[node], supernet_graph.nodes.get(node)
        source = kept_op_source(node, supernet_graph, derived_graph) if g_old is None else None
        if source is not None:  # one of several ops a choice kept: that candidate's weights
            node, key = source[0], f"{source[0]}.{rest}"
            g_old = supernet_graph.nodes[node]
        if g_old is None:
            raise NasflowError(f"'{key}': node '{node}' is not in the supernet")
        src = derived_kind(g_old.kind).inherit(key, rest, g_old, g_new, supernet_state)
        if not isinstance(src, Tensor):
            raise hook_error(f"node kind '{g_old.kind}' inherit", f"a tensor for '{key}'", src)
        if values:
            src = inherit_slice(supernet_graph, node, g_new.inputs, key, src, target.shape, values, transforms)
        if src.shape != target.shape:
            raise NasflowError(f"'{key}': supernet weight has shape {tuple(src.shape)}, derived "
                               f"model needs {tuple(target.shape)}")
        out[own] = src.clone()
    return out


def _split_key(key: str, graph: Graph) -> tuple[str, str]:
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        node = ".".join(parts[:n])
        if node in graph.nodes:
            return node, ".".join(parts[n:])
    raise NasflowError(f"state-dict key '{key}' belongs to no node of the architecture")
