"""The derive side of node kinds, registered by the kind's name (nasflow.space.kinds has the
space side): the node a derived architecture has in place of a searched one, and the
weights it inherits from the supernet.

A kind without a derive side derives unchanged and keeps its weights as they are (op,
combine, and most kinds a user adds); choice and dense register theirs here.

A choice whose rule kept several ops derives, in the space language itself, as one op node
per kept op (`NAME__OP`, the op's name with non-identifier characters as `_`; `_2`, `_3`, ...
after it where that name is taken: a node of the space named so, two ops whose names
normalise alike) and an `add` combine under the choice's own name (with its `act`): what the
search computed, unweighted. Compiler, costs, export and drawing read it as any other space;
`kept_op_source` maps such a node back to its choice (the combine it feeds) and op (its own),
not by parsing its name, so it inherits that candidate's weights.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from nasflow.derive.record import Genotype
from nasflow.errors import NasflowError
from nasflow.registry import Registry
from nasflow.space.node import GNode
from nasflow.space.graph import Graph
from nasflow.space.schema import ChoiceNode, CombineNode, DenseNode, OpNode

KEPT_SEP = "__"  # between a choice's name and one of its kept ops: NAME__OP


class DerivedKind:
    """How nodes of one kind derive. Subclass and register with `@register_derived_kind`."""

    def derive(self, node: Any, path: str, genotype: Genotype) -> Any:
        """The schema node the derived space has for `node` (written at `path`, its expanded
        name): no decision left. By default the node itself."""
        return node

    def derive_nodes(self, node: Any, name: str, path: str, genotype: Genotype,
                     siblings: Mapping[str, Any]) -> dict[str, Any]:
        """The derived space's nodes in place of `node` (named `name`; `siblings`: the names
        taken at its level, the space's nodes there and those derived before it): by default
        `{name: derive(...)}`; a kind may write one node as several, under names not taken."""
        return {name: self.derive(node, path, genotype)}

    def inherit(self, key: str, rest: str, old: GNode, new: GNode, supernet: dict[str, Tensor]) -> Tensor:
        """The supernet's tensor for the derived model's state-dict entry `key` (`rest`: the
        key after the node's name), `old`/`new`: the node in the supernet and derived graphs."""
        return supernet[key]


DERIVED_KINDS: Registry[type[DerivedKind]] = Registry("node kind (derive side)")

# Class decorator: `@register_derived_kind("mine")` makes nodes of kind mine derive with it.
register_derived_kind: Callable[[str], Callable[[type[DerivedKind]], type[DerivedKind]]] = \
    DERIVED_KINDS.decorator()


def derived_kind(name: str | None) -> DerivedKind:
    """The derive side of kind `name`; a kind without one derives unchanged."""
    return DERIVED_KINDS.get(name)() if name in DERIVED_KINDS else DerivedKind()


def pick(table: dict[str, Any], label: str, what: str) -> Any:
    """The genotype's entry for a decision, or one clear error."""
    if label not in table:
        raise NasflowError(f"the genotype has no entry for {what} '{label}'; it is from another space")
    return table[label]


@register_derived_kind("op")
class DerivedOp(DerivedKind):
    """An op node takes its `final_args` (the settings after the search)."""

    def derive(self, node: OpNode, path: str, genotype: Genotype) -> OpNode:
        if not node.final_args:
            return node
        return node.model_copy(update={"args": {**node.args, **node.final_args}, "final_args": {}})


@register_derived_kind("choice")
class DerivedChoice(DerivedKind):
    """A choice becomes an op node of its picked candidate, which keeps that candidate's weights."""

    def derive(self, node: ChoiceNode, path: str, genotype: Genotype) -> OpNode:
        ops = self._kept(node, path, genotype)
        if len(ops) != 1:
            raise NasflowError(f"choice '{node.label or path}' keeps {len(ops)} ops ({', '.join(ops)}): "
                               "derive it with derive_nodes (a node per op and their sum)")
        return self._op(node, ops[0], node.act)

    def derive_nodes(self, node: ChoiceNode, name: str, path: str, genotype: Genotype,
                     siblings: Mapping[str, Any]) -> dict[str, Any]:
        ops = self._kept(node, path, genotype)
        if len(ops) == 1:
            return {name: self._op(node, ops[0], node.act)}
        out: dict[str, Any] = {}
        for op in ops:  # the activation acts on the sum, as in the supernet's mixed op
            out[kept_op_name(name, op, taken=[*siblings, *out])] = self._op(node, op, None)
        out[name] = CombineNode(combine="add", inputs=list(out), act=node.act)
        return out

    @staticmethod
    def _kept(node: ChoiceNode, path: str, genotype: Genotype) -> list[str]:
        picked = pick(genotype.choices, node.label or path, "choice")
        ops = [picked] if isinstance(picked, str) else list(picked)
        unknown = [o for o in ops if o not in node.choice]
        if unknown or not ops:
            raise NasflowError(f"the genotype keeps {', '.join(map(repr, unknown)) or 'no op'} for choice "
                               f"'{node.label or path}', whose candidates are {', '.join(node.choice)}; "
                               "it is from another space")
        return ops

    @staticmethod
    def _op(node: ChoiceNode, op: str, act: str | None) -> OpNode:
        return OpNode(op=op, input=node.input, out=node.out, args={**node.args, **node.final_args}, act=act)

    def inherit(self, key: str, rest: str, old: GNode, new: GNode, supernet: dict[str, Tensor]) -> Tensor:
        return supernet[f"{old.name}.ops.{new.op}.{rest.removeprefix('op.')}"]


@register_derived_kind("dense")
class DerivedDense(DerivedKind):
    """A dense node keeps its top-k inputs, and its concat's op the columns they fed."""

    def derive(self, node: DenseNode, path: str, genotype: Genotype) -> DenseNode:
        if node.topk == len(node.dense) and node.label is None:
            return node  # keeps every input: no decision
        kept = pick(genotype.edges, node.label or path, "dense")
        return node.model_copy(update={"dense": list(kept), "topk": len(kept), "label": None, "rank": "beta"})

    def inherit(self, key: str, rest: str, old: GNode, new: GNode, supernet: dict[str, Tensor]) -> Tensor:
        if old.merge == "concat" and rest == "op.weight" and new.inputs != old.inputs:
            chunks = supernet[key].split(old.c_in[0], dim=1)
            return torch.cat([chunks[old.inputs.index(i)] for i in new.inputs], dim=1)
        return supernet[key]


def _ident(op: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", op)


def kept_op_name(choice: str, op: str, taken: Iterable[str] = ()) -> str:
    """The name of the node holding op `op` of a choice `choice` that kept several: NAME__OP,
    with `_2`, `_3`, ... after it while that is among `taken` (the names at its level: a node
    of the space named so, or a kept op whose name normalised alike, conv-3x3 and conv.3x3)."""
    base, taken = f"{choice}{KEPT_SEP}{_ident(op)}", set(taken)
    return next(n for n in (base, *(f"{base}_{k}" for k in range(2, len(taken) + 3))) if n not in taken)


def kept_op_source(node: str, supernet: Graph, derived: Graph) -> tuple[str, str] | None:
    """(the supernet's choice node, the op) a derived node that is not in the supernet holds,
    when it is one of the ops a choice kept (derive_nodes): the choice is the `add` it feeds
    under the choice's name, the op its own; None otherwise."""
    g = derived.nodes.get(node)
    if g is None or g.kind != "op":
        return None
    for succ in derived.dag.successors(node):
        choice, summed = supernet.nodes.get(succ), derived.nodes[succ]
        if choice is not None and choice.kind == "choice" and summed.kind == "combine" and g.op in choice.candidates:
            return succ, g.op
    return None
