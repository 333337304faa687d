"""Stacks: one block instantiated `stack` times, each instance choosing its block, inputs
and args by its index `i` (nasflow.space.builtin_kinds.StackNode).

Instance i of a stack node `cell` is named `cell<i>` (cell0, cell1, ...): its nodes are
`cell3.p0`, ..., as if written out as block nodes, so state dicts, labels and derivation
read the same names. Elsewhere `cell[k]` reads instance k's output and `cell` the last
one's. This module evaluates what one instance is; the graph builder (nasflow.space.graph)
expands it and derivation (nasflow.derive.genotype) keeps the stack.
"""
from __future__ import annotations

from collections.abc import Mapping

from nasflow.space.builtin_kinds import StackNode
from nasflow.space.expr import ExprError, evaluate, evaluate_ref, ref_names
from nasflow.space.values import smallest
from nasflow.space.yaml_io import Loc

INDEX = "i"  # the instance index's name in a stack's expressions


class StackProblem(ValueError):
    """What is wrong with a stack node, and where in it (a path below the node)."""

    def __init__(self, where: Loc, message: str) -> None:
        super().__init__(message)
        self.where, self.message = where, message


def instance_name(stack: str, i: int) -> str:
    return f"{stack}{i}"


def count(node: StackNode, env: Mapping[str, int]) -> int:
    """How many instances: 1 or more; a Sym when a value decision sets the depth (the graph
    then has the most instances, and an instance exists while its index is below the count)."""
    try:
        n = evaluate(node.stack, env)
    except ExprError as exc:
        raise StackProblem(("stack",), str(exc)) from None
    if smallest(n) < 1:
        raise StackProblem(("stack",), f"stack is {node.stack!r} = {smallest(n)}; it needs 1 or more instances")
    return n


def instance_env(node: StackNode, env: Mapping[str, int], i: int) -> dict[str, int]:
    """The scope of instance i: the params, `i`, then the `let` values in order."""
    if INDEX in env:
        raise StackProblem(("stack",), f"the index '{INDEX}' is also a param in scope; rename the param")
    out = {**env, INDEX: i}
    for name, expr in node.let.items():
        if not name.isidentifier():
            raise StackProblem(("let", name), f"let name '{name}' must be an identifier")
        if name in out:
            raise StackProblem(("let", name), f"let '{name}' hides the param or index '{name}'; rename it")
        try:
            out[name] = evaluate(expr, out)
        except ExprError as exc:
            raise StackProblem(("let", name), f"let '{name}' at i={i}: {exc}") from None
    return out


def instance_block(node: StackNode, ienv: Mapping[str, int]) -> str:
    """The block instance i uses (`ienv`: its scope)."""
    try:
        name, index = evaluate_ref(node.block, ienv)
    except ExprError as exc:
        raise StackProblem(("block",), f"block at i={ienv[INDEX]}: {exc}") from None
    if index is not None:
        raise StackProblem(("block",), f"block {node.block!r} at i={ienv[INDEX]} names '{name}[{index}]'; "
                           "name a block, not an instance")
    return name


def block_names(node: StackNode) -> list[str]:
    """Every block the stack may use, whatever its params (the names its `block` mentions)."""
    return ref_names(node.block)
