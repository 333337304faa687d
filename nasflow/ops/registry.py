"""The op registry: every op a space can name, with its module factory and its cost.

Built-in ops register in nasflow.ops.builtin (imported by the package, so they are always
there).

One source of truth: the supernet compiler, the cost model, the regularizers and
`nasflow cost` all read these specs, and a test keeps each declared cost equal to what
counting the built module gives. Multi-Adds count conv/linear weights only (one
multiply-add per weight per output pixel); biases, activations and pooling are free.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from torch import nn

from nasflow.registry import Registry


@dataclass(frozen=True)
class OpSpec:
    name: str
    factory: Callable[..., nn.Module]  # (c_in, c_out, **args) -> module
    params: Callable[..., int]  # (c_in, c_out, **args) -> number of parameters
    madds: Callable[..., int]  # (c_in, c_out, h, w, **args) -> Multi-Adds on an h x w input
    args: dict[str, Any] = field(default_factory=dict)  # accepted args and their defaults
    out_channels: Callable[..., int] | None = None  # (c_in, **args) when the op fixes c_out
    same_channels: bool = False  # c_out must equal c_in
    resize: Callable[..., Fraction] = lambda **_: Fraction(1)  # output size / input size
    check: Callable[..., str | None] = lambda c_in, c_out, **_: None  # message if unfit
    # How the fused supernet may batch this op with its siblings in a mixed op:
    # ("conv", k), ("sep", k) or ("dil", k); None runs it on its own.
    family: tuple[str, int] | None = None
    doc: str = ""
    # False when registered without `params`: such an op is taken to be parameter-free, and
    # building one whose module has parameters is an error (nasflow.compile.mixed_ops.build_op).
    declared_params: bool = True

    def bind(self, args: dict[str, Any]) -> dict[str, Any]:
        return {**self.args, **args}


OPS: Registry[OpSpec] = Registry("op")


def register_op(
    name: str,
    *,
    params: Callable[..., int] | None = None,
    madds: Callable[..., int] | None = None,
    madds_per_pixel: Callable[..., int] | None = None,
    **spec: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register `factory(c_in, c_out, **args)` as op `name`.

    Its accepted args and their defaults are read from the factory's signature. Give the
    cost either as `madds(c_in, c_out, h, w, **args)` or, for ops that keep the size, as
    `madds_per_pixel(c_in, c_out, **args)`; parameter-free ops may omit both (an op
    without `params` whose module turns out to have parameters is refused when built).
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        sig = inspect.signature(factory)
        args = {k: p.default for k, p in list(sig.parameters.items())[2:]}
        if madds is not None:
            cost = madds
        elif madds_per_pixel is not None:
            cost = lambda c_in, c_out, h, w, **a: madds_per_pixel(c_in, c_out, **a) * h * w  # noqa: E731
        else:
            cost = lambda *_, **__: 0  # noqa: E731
        OPS.add(name, OpSpec(name, factory, params or (lambda *_, **__: 0), cost, args,
                             doc=(factory.__doc__ or "").strip().split("\n")[0],
                             declared_params=params is not None, **spec))
        return factory

    return decorator


def get_op(name: str) -> OpSpec:
    return OPS.get(name)


OP_PLUGINS = "nasflow.ops"  # entry points: op name -> the module that registers it


def find_op(name: str) -> bool:
    """Whether op `name` is registered, after importing the module a `nasflow.ops` entry
    point of that name points to (an op of an installed package, named by an architecture
    file that does not import its module: an older model directory, say)."""
    if name not in OPS:
        from importlib.metadata import entry_points

        for ep in entry_points(group=OP_PLUGINS, name=name):
            importlib.import_module(ep.value.partition(":")[0])
    return name in OPS


def load_op_plugins() -> None:
    """Import every module of the `nasflow.ops` entry points (to list all ops)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=OP_PLUGINS):
        importlib.import_module(ep.value.partition(":")[0])


# Activations usable in a node's `act:` key: registered parameter-free, channel-keeping ops.
def is_activation(name: str) -> bool:
    return name in OPS and OPS.get(name).same_channels and OPS.get(name).params(1, 1) == 0
