"""The builtin node kinds' space side: op, choice, dense, combine and block.

- op:      a fixed op from the registry           `{op: conv_3x3, in: x, out: C, args: {bias: true}}`
- choice:  candidate ops mixed by softmax(alpha)   `{choice: [conv_1x1, sep_conv_3x3], in: x, label: mrb1}`
- dense:   candidate inputs weighted by softmax(beta), merged, top-k kept when deriving
           `{dense: [cell1, cell2], topk: 2, merge: concat, op: conv_1x1, out: C}`
- combine: add / concat / mul of several inputs    `{combine: add, in: [a, b], act: lrelu}`
- block:   an instance of a reusable cell          `{block: cell, in: stem, args: {C: channels}}`
- stack:   `stack` instances of a block, i = 0, 1, ..., each choosing its block, inputs and
           args by i (expressions): `{stack: layers, block: cell, in: "cell[i - 1] if i else stem"}`
Registered in this order (the order of the "a node needs one of the keys" message).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from nasflow.space.expr import ref_names
from nasflow.space.kinds import (ArgValue, Expr, ExpandContext, InferContext, NodeKind, NodeModel, op_out,
                                 register_node_kind, resize)
from nasflow.space.node import GNode
from nasflow.space.values import is_sym, same


class OpNode(NodeModel):
    op: str
    input: str = Field(alias="in")
    out: Expr | None = None
    args: dict[str, ArgValue] = {}
    act: str | None = None
    # Args that replace `args` in the derived network (DARTS: BatchNorm affine only after search).
    final_args: dict[str, ArgValue] = {}


class ChoiceNode(NodeModel):
    choice: list[str]
    input: str = Field(alias="in")
    out: Expr | None = None
    args: dict[str, ArgValue] = {}
    act: str | None = None
    label: str | None = None  # nodes with one label share one alpha
    # Candidates searched over but never derived (as DARTS' `zero`); a strategy may override.
    never_derive: list[str] = []
    final_args: dict[str, ArgValue] = {}  # args of the derived op that differ from the search's


class DenseNode(NodeModel):
    dense: list[str]
    topk: int = 1
    merge: Literal["concat", "sum"] = "concat"
    op: str | None = None  # applied after the merge, e.g. conv_1x1 back to C channels
    out: Expr | None = None
    args: dict[str, ArgValue] = {}
    act: str | None = None
    label: str | None = None
    # How derivation ranks the inputs: by beta, by the best derivable alpha of the choice
    # node each input is (DARTS, whose nodes have no beta: then beta is not used), or both.
    rank: Literal["beta", "alpha", "beta_alpha"] = "beta"


class CombineNode(NodeModel):
    combine: Literal["add", "concat", "mul"]
    inputs: list[str] = Field(alias="in")
    act: str | None = None


class BlockNode(NodeModel):
    block: str
    inputs: str | list[str] = Field(alias="in")
    args: dict[str, Expr] = {}

    @property
    def input_list(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)


class StackNode(NodeModel):
    """`stack` instances of a block, named `<node><i>` (cell0, cell1, ...); see
    nasflow.space.stack. Each field but `stack` is read once per instance, with the index
    `i` and the `let` values in scope."""

    stack: Expr  # how many instances: an integer expression over the params in scope
    let: dict[str, Expr] = {}  # named per-instance values, each over the params, i and the lets before it
    # The block of each instance: a name, or an expression choosing one by i
    # ("reduce if i in (r1, r2) else normal").
    block: str
    # Reference expressions: a node, an earlier instance (cell[i - 1]), or a choice between them.
    inputs: str | list[str] = Field(alias="in")
    args: dict[str, Expr] = {}  # the block's params: expressions over the params, i and let

    @property
    def input_list(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)


def _equal_channels(ctx: InferContext, g: GNode, srcs: list[GNode], what: str) -> None:
    # Syms must agree at every value: widths that are added come from one value decision.
    if not all(same(c, g.c_in[0]) for c in g.c_in):
        detail = ", ".join(f"{s.name}: {s.c_out.describe() if is_sym(s.c_out) else s.c_out}" for s in srcs)
        hint = ("; searched widths that meet here must come from one value decision (one name)"
                if any(is_sym(c) for c in g.c_in) else "")
        raise ctx.fail(g.loc, f"{what} ({detail}){hint}")


@register_node_kind("op")
class OpKind(NodeKind):
    schema = OpNode

    def refs(self, node: OpNode) -> list[str]:
        return [node.input]

    def expand(self, node: OpNode, g: GNode, ctx: ExpandContext) -> None:
        g.op, g.inputs = node.op, [ctx.resolve(node.input, (*ctx.loc, "in"))]
        g.args = ctx.op_args(node.op, node.args)
        ctx.op_args(node.op, node.final_args)  # checked: the derived op takes them

    def infer(self, g: GNode, srcs: list[GNode], ctx: InferContext) -> None:
        g.c_out, g.size = op_out(ctx, g, g.op, g.c_in[0]), g.size * resize(g.op, g.args)

    def cost_ops(self, g: GNode) -> list[tuple[str, int]]:
        return [(g.op, g.c_in[0])]


@register_node_kind("choice")
class ChoiceKind(NodeKind):
    schema = ChoiceNode
    decision = "alpha"

    def refs(self, node: ChoiceNode) -> list[str]:
        return [node.input]

    def expand(self, node: ChoiceNode, g: GNode, ctx: ExpandContext) -> None:
        path, nloc = ctx.path, ctx.loc
        g.inputs, g.candidates = [ctx.resolve(node.input, (*nloc, "in"))], list(node.choice)
        if not node.choice:
            raise ctx.fail((*nloc, "choice"), f"choice node '{path}' has no candidates; list at least one op")
        g.never_derive = list(node.never_derive)
        unknown = [c for c in node.never_derive if c not in node.choice]
        if unknown:
            raise ctx.fail((*nloc, "never_derive"), f"choice node '{path}': never_derive names "
                           f"{', '.join(unknown)}, not among its candidates ({', '.join(node.choice)})")
        if set(node.choice) <= set(node.never_derive):
            raise ctx.fail((*nloc, "never_derive"), f"choice node '{path}': never_derive excludes "
                           "every candidate; leave at least one to derive")
        if len(set(node.choice)) != len(node.choice):
            dup = next(c for c in node.choice if node.choice.count(c) > 1)
            raise ctx.fail((*nloc, "choice"), f"choice node '{path}' lists '{dup}' twice")
        for cand in node.choice:
            g.args = ctx.op_args(cand, node.args)
            ctx.op_args(cand, node.final_args)  # checked: whichever is derived takes them
        g.label = node.label or path

    def infer(self, g: GNode, srcs: list[GNode], ctx: InferContext) -> None:
        outs = {cand: op_out(ctx, g, cand, g.c_in[0]) for cand in g.candidates}
        first = next(iter(outs.values()))
        if not all(same(o, first) for o in outs.values()):
            raise ctx.fail(g.loc, f"choice node '{g.name}': candidates give different channels {outs}; set 'out'")
        resizes = {c: resize(c, g.args) for c in g.candidates}
        if len(set(resizes.values())) > 1:
            raise ctx.fail(g.loc, f"choice node '{g.name}': candidates change the size differently {resizes}")
        g.c_out, g.size = next(iter(outs.values())), g.size * next(iter(resizes.values()))

    def cost_ops(self, g: GNode) -> list[tuple[str, int]]:
        return [(c, g.c_in[0]) for c in g.candidates]


@register_node_kind("dense")
class DenseKind(NodeKind):
    schema = DenseNode
    decision = "beta"

    def refs(self, node: DenseNode) -> list[str]:
        return list(node.dense)

    def expand(self, node: DenseNode, g: GNode, ctx: ExpandContext) -> None:
        path, nloc = ctx.path, ctx.loc
        g.candidates, g.merge, g.op, g.topk = list(node.dense), node.merge, node.op, node.topk
        g.extra["rank"] = node.rank
        if not node.dense:
            raise ctx.fail((*nloc, "dense"), f"dense node '{path}' has no candidate inputs")
        if len(set(node.dense)) != len(node.dense):
            raise ctx.fail((*nloc, "dense"), f"dense node '{path}' lists an input twice")
        g.inputs = [ctx.resolve(r, (*nloc, "dense", i)) for i, r in enumerate(node.dense)]
        if not 1 <= node.topk <= len(node.dense):
            raise ctx.fail((*nloc, "topk"), f"dense node '{path}' has topk {node.topk} but "
                           f"{len(node.dense)} candidate input(s); use 1..{len(node.dense)}")
        if node.op is not None:
            g.args = ctx.op_args(node.op, node.args)
        elif node.args:
            raise ctx.fail((*nloc, "args"), f"dense node '{path}' has args but no op to give them to")
        # A dense node is a decision when it drops inputs, or when labelled: keeping
        # all of them, beta still weights them in the supernet and orders the concat.
        g.label = (node.label or path) if node.topk < len(node.dense) or node.label else None

    def infer(self, g: GNode, srcs: list[GNode], ctx: InferContext) -> None:
        _equal_channels(ctx, g, srcs, f"dense node '{g.name}': candidate inputs must have equal channels")
        if g.op is not None:
            g.c_out = op_out(ctx, g, g.op, g.merge_in)
        else:
            g.c_out = g.merge_in
            if g.out is not None and g.out != g.c_out:
                raise ctx.fail(g.loc, f"dense node '{g.name}': out {g.out} but the merge gives {g.c_out}; add an op")
            if g.merge == "concat" and g.label is not None and g.topk < len(g.inputs):
                raise ctx.fail(g.loc, f"dense node '{g.name}': concat of the top-{g.topk} of {len(g.inputs)} "
                               "inputs changes channels when derived; add an op (e.g. conv_1x1) after the merge")

    def cost_ops(self, g: GNode) -> list[tuple[str, int]]:
        return [(g.op, g.merge_in)] if g.op is not None else []


@register_node_kind("combine")
class CombineKind(NodeKind):
    schema = CombineNode

    def refs(self, node: CombineNode) -> list[str]:
        return list(node.inputs)

    def expand(self, node: CombineNode, g: GNode, ctx: ExpandContext) -> None:
        g.merge = node.combine
        if len(node.inputs) < 2:
            raise ctx.fail((*ctx.loc, "in"), f"combine node '{ctx.path}' needs at least two inputs")
        g.inputs = [ctx.resolve(r, (*ctx.loc, "in", i)) for i, r in enumerate(node.inputs)]

    def infer(self, g: GNode, srcs: list[GNode], ctx: InferContext) -> None:
        if g.merge == "concat":
            g.c_out = sum(g.c_in)
        else:
            _equal_channels(ctx, g, srcs, f"combine node '{g.name}' ({g.merge}) needs equal channels")
            g.c_out = g.c_in[0]


@register_node_kind("block")
class BlockKind(NodeKind):
    """Inlined by the graph builder (its nodes get dotted names); no graph node of its own."""

    schema = BlockNode
    inline = True

    def refs(self, node: BlockNode) -> list[str]:
        return node.input_list


@register_node_kind("stack")
class StackKind(NodeKind):
    """Inlined by the graph builder, one block instance per index (nasflow.space.stack)."""

    schema = StackNode
    inline = True

    def refs(self, node: StackNode) -> list[str]:
        return [name for r in node.input_list for name in ref_names(r)]
