"""Node kinds: what a node of a space file is, as classes in one registry.

A kind (op, choice, dense, combine, block, or one a user registers) says, on the space side,
- its schema: a pydantic model whose key named like the kind marks a node of this kind
  (`{repeat: conv_3x3, times: 2, in: x}`); the space file's one schema
  (nasflow.space.schema) is a discriminated union of the registered kinds' models;
- the references it reads (`refs`), and how its node becomes a graph node (`expand`:
  resolve inputs, check its fields, fill a GNode) with inferred channels and size (`infer`);
- the ops its cost counts (`cost_ops`), and the decision row its label names, if any.

Building the torch module and deriving are the other halves of a kind. They live with the
stages that own them and register by the kind's name: nasflow.compile.kinds
(`@register_compiled_kind`) and nasflow.derive.kinds (`@register_derived_kind`). The space
stage must not import the compiler or the deriver (tests/test_layering.py), and validating
or costing a space needs no torch; so a new kind is one file with up to three small classes,
one per stage, as tests/kind_repeat.py shows. Builtin kinds are in
nasflow.space.builtin_kinds, nasflow.compile.kinds and nasflow.derive.kinds.

A node's kind is the newest registered kind whose key it has, so a kind whose key is another
kind's field (dense nodes have an `op` field) registers after it.
"""
from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from fractions import Fraction
from typing import Any, ClassVar, Protocol, TypeVar, Union

from pydantic import BaseModel, ConfigDict

from nasflow.errors import SpaceError, check_return, hook_error
from nasflow.ops.registry import OPS
from nasflow.registry import Registry
from nasflow.space.node import GNode
from nasflow.space.values import same
from nasflow.space.yaml_io import Loc


Expr = Union[int, str]  # an integer, or an expression over the params in scope ("C // 2")
ArgValue = Union[bool, int, float, str]


class NodeModel(BaseModel):
    """Base of a kind's schema model: unknown keys are errors, `in` is an alias."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ExpandContext(Protocol):
    """What a kind sees of the graph builder while expanding one node."""

    path: str  # the node's expanded name (`cell1.m1`)
    loc: Loc  # where the node is written in the space file

    def fail(self, loc: Loc, message: str) -> SpaceError:
        """An error at `loc` (file:line), to raise."""

    def resolve(self, ref: str, loc: Loc) -> str:
        """The expanded name a reference written at `loc` points at."""

    def op_args(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """`args` checked against the op's arguments, integer expressions evaluated."""

    def int(self, expr: int | str, loc: Loc, what: str) -> int:
        """A positive integer expression over the params in scope."""


class InferContext(Protocol):
    def fail(self, loc: Loc, message: str) -> SpaceError: ...


class NodeKind:
    """The space side of a node kind. Subclass, set `schema`, register with
    `@register_node_kind("name")` (the name is the key that marks the kind's nodes)."""

    name: ClassVar[str] = ""
    schema: ClassVar[type[NodeModel]]
    decision: ClassVar[str | None] = None  # "alpha" (candidate ops) | "beta" (inputs) | None
    inline: ClassVar[bool] = False  # True: expands into other nodes (a block), no node of its own

    def refs(self, node: Any) -> list[str]:
        """The references the node reads, as written."""
        raise NotImplementedError

    def expand(self, node: Any, g: GNode, ctx: ExpandContext) -> None:
        """Fill `g` (its kind, name and loc set) from the schema node: inputs, op, args,
        label ... Raise ctx.fail(...) for what is wrong. `act` and `out` are checked after."""
        raise NotImplementedError

    def infer(self, g: GNode, srcs: list[GNode], ctx: InferContext) -> None:
        """Set g.c_out and g.size (g.c_in and g.size are set from the inputs already)."""
        raise NotImplementedError

    def cost_ops(self, g: GNode) -> list[tuple[str, int]]:
        """(op, input channels) of what the node computes, each costed at g.c_out output
        channels on its first input's size; none means a parameter-free node."""
        return []


NODE_KINDS: Registry[type[NodeKind]] = Registry("node kind")
_LISTENERS: list[Callable[[], None]] = []

K = TypeVar("K", bound=type[NodeKind])


def _learn_name(name: str, cls: type[NodeKind]) -> None:
    if name not in cls.schema.model_fields:
        raise TypeError(f"node kind '{name}': its schema {cls.schema.__name__} needs a field '{name}'")
    cls.name = name


_add_kind = NODE_KINDS.decorator(_learn_name)


def register_node_kind(name: str) -> Callable[[K], K]:
    """Class decorator: `@register_node_kind("repeat")` makes `{repeat: ...}` nodes this kind."""
    add = _add_kind(name)

    def decorator(cls: K) -> K:
        add(cls)
        for listener in _LISTENERS:
            listener()
        return cls

    return decorator


def unregister_node_kind(name: str) -> None:
    """Forget a kind (its nodes no longer validate): for tests and interactive sessions."""
    NODE_KINDS.remove(name)
    for listener in _LISTENERS:
        listener()


def on_register(listener: Callable[[], None]) -> None:
    """Call `listener` after each kind registers or unregisters (the schema rebuilds its
    node union)."""
    _LISTENERS.append(listener)


def kind(name: str) -> NodeKind:
    """The registered kind `name` (kinds keep no state: a fresh instance is as good as any)."""
    return NODE_KINDS.get(name)()


def kind_of_data(value: Any) -> str | None:
    """The kind of a node given as data or as a schema object (None: no kind fits)."""
    if isinstance(value, BaseModel):
        return next((k for k in NODE_KINDS if type(value) is NODE_KINDS.get(k).schema), None)
    if isinstance(value, dict):
        return next((k for k in reversed(NODE_KINDS.names()) if k in value), None)
    return None


# --- helpers the builtin kinds share, for kinds built on ops ----------------------------
def checked_refs(name: str, value: Any) -> list[str]:
    """What node kind `name`'s `refs` returned: a list of str."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(r, str) for r in value):
        raise hook_error(f"node kind '{name}' refs", "a list of references (str)", value)
    return list(value)


def checked_cost_ops(name: str, value: Any) -> list[tuple[str, int]]:
    """What node kind `name`'s `cost_ops` returned: a list of (op name, input channels)."""
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], str) and isinstance(t[1], numbers.Integral)
            and not isinstance(t[1], bool) for t in value):
        raise hook_error(f"node kind '{name}' cost_ops", "a list of (op name, input channels) tuples", value)
    return list(value)


def checked_inferred(name: str, g: GNode) -> None:
    """After node kind `name`'s `infer`: g.c_out is an int >= 1 (the node's output channels)."""
    if isinstance(g.c_out, bool) or not isinstance(g.c_out, numbers.Integral) or g.c_out < 1:
        raise hook_error(f"node kind '{name}' infer", f"g.c_out set to an int >= 1 on node '{g.name}'", g.c_out,
                         "infer sets g.c_out; it returns nothing")


def op_out(ctx: InferContext, g: GNode, op: str, c_in: int) -> int:
    """Channels `op` gives from `c_in` at node g (its `out` and `args`), checked."""
    spec = OPS.get(op)
    args = spec.bind(g.args)
    if spec.out_channels is not None:
        fixed = op_hook_int(op, "out_channels", spec.out_channels(c_in, **only_accepted(spec.out_channels, args)))
    elif spec.same_channels:
        fixed = c_in
    else:
        fixed = None
    if fixed is not None and g.out is not None and not same(g.out, fixed):
        raise ctx.fail(g.loc, f"node '{g.name}': op '{op}' gives {fixed} channels from {c_in}, "
                       f"but out is {g.out}; remove 'out' or fix it")
    c_out = fixed if fixed is not None else (g.out if g.out is not None else c_in)
    problem = spec.check(c_in, c_out, **only_accepted(spec.check, args))
    check_return(f"op '{op}' check", problem, (str, type(None)), "None (fits) or a str saying why not")
    if problem:
        raise ctx.fail(g.loc, f"node '{g.name}': op '{op}' {problem}")
    return c_out


def resize(op: str, args: dict[str, Any]) -> Fraction:
    """The factor `op` scales the spatial size by."""
    spec = OPS.get(op)
    factor = spec.resize(**only_accepted(spec.resize, spec.bind(args)))
    if isinstance(factor, bool) or not isinstance(factor, numbers.Rational) or factor <= 0:
        raise hook_error(f"op '{op}' resize", "a positive int or fractions.Fraction (output size / input "
                         "size, e.g. Fraction(1, 2) for stride 2)", factor)
    return Fraction(factor)


def op_hook_int(op: str, hook: str, value: Any) -> int:
    """`value`, which op `op`'s `hook` (params, madds, out_channels) returned, when it is an int
    >= 0 (a Sym of value decisions is one); else one HookError naming the hook."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise hook_error(f"op '{op}' {hook}", "an int >= 0", value)
    return value


def only_accepted(fn: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The subset of `args` that `fn` accepts (resize/out_channels take only what they need)."""
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return args
    return {k: v for k, v in args.items() if k in params}
