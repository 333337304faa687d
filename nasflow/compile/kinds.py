"""The compile side of node kinds: the torch module a graph node becomes and how the
supernet calls it, registered by the kind's name (nasflow.space.kinds has the space side).

A kind's CompiledKind builds its module from the graph node (`build`) and computes the
node's value from the values computed so far (`run`). "choice" builds the mixed op the
supernet was asked for (`mixed_op`: "plain", "fused", ...; see nasflow.compile.mixed_ops).
A kind registered from outside (`@register_compiled_kind("repeat")`) compiles like these.
"""
from __future__ import annotations

from collections.abc import Callable
import torch
from torch import Tensor, nn

from nasflow.compile.mixed_ops import activation, build_op
from nasflow.errors import NasflowError
from nasflow.registry import Registry
from nasflow.space.node import GNode

Values = dict[str, Tensor]


class CompiledKind:
    """How nodes of one kind compile. Subclass and register with `@register_compiled_kind`."""

    def build(self, g: GNode, mixed_op: type[nn.Module]) -> nn.Module:
        """The module of node g (`mixed_op`: the implementation choice nodes use)."""
        raise NotImplementedError

    def run(self, module: nn.Module, g: GNode, values: Values, weights: Values,
            active: dict[str, list[int]]) -> Tensor:
        """Node g's value from `values` (every node before it), `weights` (the decision
        weights by label) and `active` (by label, the candidates a sparse relaxation runs).
        By default the module is called on its inputs' values, in order."""
        return module(*(values[i] for i in g.inputs))


COMPILED_KINDS: Registry[type[CompiledKind]] = Registry("node kind (compile side)")

# Class decorator: `@register_compiled_kind("repeat")` makes nodes of kind repeat compile with it.
register_compiled_kind: Callable[[str], Callable[[type[CompiledKind]], type[CompiledKind]]] = \
    COMPILED_KINDS.decorator()


def compiled_kind(name: str) -> CompiledKind:
    if name not in COMPILED_KINDS:
        raise NasflowError(f"node kind '{name}' has no compile side (known: {', '.join(COMPILED_KINDS.names())}); "
                           "import the module that registers it (@register_compiled_kind) first")
    return COMPILED_KINDS.get(name)()


class FixedOp(nn.Module):
    def __init__(self, g: GNode) -> None:
        super().__init__()
        self.op = build_op(g.op, g.c_in[0], g.c_out, g.args)
        self.act = activation(g.act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.op(x))


class DenseEdge(nn.Module):
    """Candidate inputs weighted by softmax(beta), merged (concat or sum), then an op."""

    def __init__(self, g: GNode) -> None:
        super().__init__()
        self.merge = g.merge
        self.op = build_op(g.op, g.merge_in, g.c_out, g.args) if g.op else nn.Identity()
        self.act = activation(g.act)

    def forward(self, xs: list[Tensor], weights: Tensor | None) -> Tensor:
        if weights is not None:
            xs = [w * x for w, x in zip(weights, xs)]
        merged = torch.cat(xs, dim=1) if self.merge == "concat" else sum(xs)
        return self.act(self.op(merged))


class Combine(nn.Module):
    def __init__(self, g: GNode) -> None:
        super().__init__()
        self.kind = g.merge
        self.act = activation(g.act)

    def forward(self, xs: list[Tensor]) -> Tensor:
        if self.kind == "concat":
            out = torch.cat(xs, dim=1)
        else:
            out = xs[0]
            for x in xs[1:]:
                out = out + x if self.kind == "add" else out * x
        return self.act(out)


@register_compiled_kind("op")
class CompiledOp(CompiledKind):
    def build(self, g: GNode, mixed_op: type[nn.Module]) -> nn.Module:
        return FixedOp(g)

    def run(self, module: nn.Module, g: GNode, values: Values, weights: Values,
            active: dict[str, list[int]]) -> Tensor:
        return module(values[g.inputs[0]])


@register_compiled_kind("choice")
class CompiledChoice(CompiledKind):
    def build(self, g: GNode, mixed_op: type[nn.Module]) -> nn.Module:
        return mixed_op(g)

    def run(self, module: nn.Module, g: GNode, values: Values, weights: Values,
            active: dict[str, list[int]]) -> Tensor:
        return module(values[g.inputs[0]], weights[g.label], active.get(g.label))


@register_compiled_kind("dense")
class CompiledDense(CompiledKind):
    def build(self, g: GNode, mixed_op: type[nn.Module]) -> nn.Module:
        return DenseEdge(g)

    def run(self, module: nn.Module, g: GNode, values: Values, weights: Values,
            active: dict[str, list[int]]) -> Tensor:
        use_beta = g.label is not None and g.extra.get("rank", "beta") != "alpha"  # alpha: DARTS' plain sum
        return module([values[i] for i in g.inputs], weights.get(g.label) if use_beta else None)


@register_compiled_kind("combine")
class CompiledCombine(CompiledKind):
    def build(self, g: GNode, mixed_op: type[nn.Module]) -> nn.Module:
        return Combine(g)

    def run(self, module: nn.Module, g: GNode, values: Values, weights: Values,
            active: dict[str, list[int]]) -> Tensor:
        return module([values[i] for i in g.inputs])
