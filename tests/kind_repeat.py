"""A node kind defined outside nasflow, in one file: `repeat`, a fixed op applied `times`
times at the same channels (`{repeat: conv_3x3, times: 2, in: x, act: relu}`).

Its space side validates, infers and costs it; its compile side builds the chain of ops.
It derives as it is (no decision), so it needs no derive side. A space uses it with
`imports: [kind_repeat]`, or by importing this module first.
"""
from __future__ import annotations

from pydantic import Field
from torch import nn

from nasflow.compile.kinds import COMPILED_KINDS, CompiledKind, register_compiled_kind
from nasflow.compile.mixed_ops import activation, build_op
from nasflow.space.kinds import (ArgValue, Expr, ExpandContext, InferContext, NodeKind, NodeModel, op_out,
                                 register_node_kind, resize, unregister_node_kind)
from nasflow.space.node import GNode


class RepeatNode(NodeModel):
    repeat: str  # the op
    input: str = Field(alias="in")
    times: int = 2
    out: Expr | None = None
    args: dict[str, ArgValue] = {}
    act: str | None = None  # after the last repeat


@register_node_kind("repeat")
class RepeatKind(NodeKind):
    schema = RepeatNode

    def refs(self, node: RepeatNode) -> list[str]:
        return [node.input]

    def expand(self, node: RepeatNode, g: GNode, ctx: ExpandContext) -> None:
        if node.times < 1:
            raise ctx.fail((*ctx.loc, "times"), f"repeat node '{ctx.path}': times is {node.times}; use 1 or more")
        g.op, g.inputs = node.repeat, [ctx.resolve(node.input, (*ctx.loc, "in"))]
        g.args = ctx.op_args(node.repeat, node.args)
        g.extra = {"times": node.times}

    def infer(self, g: GNode, srcs: list[GNode], ctx: InferContext) -> None:
        g.c_out = op_out(ctx, g, g.op, g.c_in[0])
        if g.c_out != g.c_in[0] or resize(g.op, g.args) != 1:
            raise ctx.fail(g.loc, f"repeat node '{g.name}': '{g.op}' must keep channels and size to be "
                           f"repeated ({g.c_in[0]} channels in, {g.c_out} out)")

    def cost_ops(self, g: GNode) -> list[tuple[str, int]]:
        return [(g.op, g.c_in[0])] * g.extra["times"]


@register_compiled_kind("repeat")
class CompiledRepeat(CompiledKind):
    def build(self, g: GNode, mixed_op: type[nn.Module]) -> nn.Module:
        ops = [build_op(g.op, g.c_out, g.c_out, g.args) for _ in range(g.extra["times"])]
        return nn.Sequential(*ops, activation(g.act))  # run: called on its one input


def unregister() -> None:
    """Undo this module's registrations (tests leave the registries as they found them)."""
    unregister_node_kind("repeat")
    COMPILED_KINDS.remove("repeat")
