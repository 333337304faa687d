"""The derive side of node kinds, registered by the kind's name (nasflow.space.kinds has the
space side): the node a derived architecture has in place of a searched one, and the
weights it inherits from the supernet.

A kind without a derive side derives unchanged and keeps its weights as they are (op,
combine, and most kinds a user adds); choice and dense register theirs here.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from nasflow.derive.record import Genotype
from nasflow.errors import NasflowError
from nasflow.registry import Registry
from nasflow.space.node import GNode
from nasflow.space.schema import ChoiceNode, DenseNode, OpNode


class DerivedKind:
    """How nodes of one kind derive. Subclass and register with `@register_derived_kind`."""

    def derive(self, node: Any, path: str, genotype: Genotype) -> Any:
        """The schema node the derived space has for `node` (written at `path`, its expanded
        name): no decision left. By default the node itself."""
        return node

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
        op = pick(genotype.choices, node.label or path, "choice")
        return OpNode(op=op, input=node.input, out=node.out, args={**node.args, **node.final_args}, act=node.act)

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
