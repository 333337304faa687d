"""The op registry: every op a space can name, with its spec (args, channel and size rules,
exact cost: pure Python) and its module factory.

One source of truth: the supernet compiler, the cost model, the regularizers and
`nasflow cost` all read these specs, and a test keeps each declared cost equal to what
counting the built module gives. Multi-Adds count conv/linear weights only (one
multiply-add per weight per output pixel); biases, activations and pooling are free.

An op registers in one call, in either of two forms:

* `@register_op("name", params=..., madds_per_pixel=...)` on the factory itself
  (`factory(c_in, c_out, **args) -> nn.Module`; args and doc read from it): for a user's
  module, which imports torch anyway.
* `register_op("name", factory="package.module:attr", args={...}, doc=..., params=...)`:
  the factory named by its import path, imported only when a module is built. Specs
  registered this way need no torch, so `nasflow validate` and `nasflow cost` never import
  it; the built-in ops (nasflow.ops.builtin) and the instances' ops are registered so.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, overload

from nasflow.errors import NasflowError
from nasflow.registry import Registry

if TYPE_CHECKING:  # the specs need no torch; only building a module does
    from torch import nn

Factory = Callable[..., "nn.Module"]  # (c_in, c_out, **args) -> module


def factory_args(factory: Factory) -> dict[str, Any]:
    """The args a factory accepts after (c_in, c_out), with their defaults."""
    return {k: p.default for k, p in list(inspect.signature(factory).parameters.items())[2:]}


@dataclass(frozen=True)
class OpSpec:
    name: str
    # The factory, or "module:attr" where it lives (imported on first use of `factory`).
    source: Factory | str
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
    # (**args) -> whether the op passes its input through unchanged at these args (skip_connect
    # at stride 1). Drop-path leaves such ops alone (nasflow.compile.drop_path); None: the op
    # is identity-like when its built module is an nn.Identity.
    identity: Callable[..., bool] | None = None
    # True when the op computes each output channel from the input channels alike at any
    # width: run at the largest channels on an input that is zero past the active ones, its
    # output, cut to the active channels, is what the op built at those channels computes
    # (convolutions, activations). A differentiable width decision then runs the op once, at
    # the largest width, and masks its output (FBNetV2); other ops run once per value.
    channelwise: bool = False
    _loaded: Factory | None = field(default=None, init=False, repr=False, compare=False)  # source, imported

    def bind(self, args: dict[str, Any]) -> dict[str, Any]:
        return {**self.args, **args}

    @property
    def factory(self) -> Factory:
        """The module factory, imported from `source` on first use (imports torch)."""
        if not isinstance(self.source, str):
            return self.source
        if self._loaded is None:
            found = _resolve(self.name, self.source)
            if factory_args(found) != self.args:
                raise NasflowError(f"op '{self.name}': its factory {self.source} takes {factory_args(found)} "
                                   f"but the op was registered with args={self.args}; make them agree")
            object.__setattr__(self, "_loaded", found)  # import and check once
        assert self._loaded is not None
        return self._loaded


def _resolve(name: str, source: str) -> Factory:
    module, sep, attr = source.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr) if sep else None
    except (ImportError, AttributeError) as exc:
        raise NasflowError(f"op '{name}': cannot load its factory '{source}' ({exc})") from None
    if not callable(found):
        raise NasflowError(f"op '{name}': factory '{source}' must name a callable as 'module:attr'")
    return found


OPS: Registry[OpSpec] = Registry("op")
"""Every op a space can name, by name: `OPS.get("conv_3x3")` is its OpSpec (module factory,
arguments with their defaults, params and Multi-Adds). Fill it with `register_op`; an
unknown name is an error that suggests the closest ones."""


@overload
def register_op(name: str, *, factory: str, args: dict[str, Any] | None = ..., doc: str = ...,
                params: Callable[..., int] | None = ..., madds: Callable[..., int] | None = ...,
                madds_per_pixel: Callable[..., int] | None = ..., **spec: Any) -> OpSpec: ...
@overload
def register_op(name: str, *, factory: None = ..., args: None = ..., doc: None = ...,
                params: Callable[..., int] | None = ..., madds: Callable[..., int] | None = ...,
                madds_per_pixel: Callable[..., int] | None = ...,
                **spec: Any) -> Callable[[Factory], Factory]: ...
def register_op(
    name: str,
    *,
    factory: str | None = None,
    args: dict[str, Any] | None = None,
    doc: str | None = None,
    params: Callable[..., int] | None = None,
    madds: Callable[..., int] | None = None,
    madds_per_pixel: Callable[..., int] | None = None,
    **spec: Any,
) -> OpSpec | Callable[[Factory], Factory]:
    """Register op `name` (see the module docstring for the two forms).

    Give the cost either as `madds(c_in, c_out, h, w, **args)` or, for ops that keep the
    size, as `madds_per_pixel(c_in, c_out, **args)`; parameter-free ops may omit both (an op
    without `params` whose module turns out to have parameters is refused when built).
    """
    if "." in name or not name:  # a candidate's name keys its module in the supernet (torch refuses '.')
        raise NasflowError(f"op '{name}': an op name must be non-empty and hold no '.' (it names the op's module "
                           f"in the supernet and its weights); rename it, e.g. '{name.replace('.', '_') or 'my_op'}'")
    if madds is not None:
        cost = madds
    elif madds_per_pixel is not None:
        cost = lambda c_in, c_out, h, w, **a: madds_per_pixel(c_in, c_out, **a) * h * w  # noqa: E731
    else:
        cost = lambda *_, **__: 0  # noqa: E731

    def add(source: Factory | str, op_args: dict[str, Any], op_doc: str) -> OpSpec:
        return OPS.add(name, OpSpec(name, source, params or (lambda *_, **__: 0), cost, op_args,
                                    doc=op_doc, declared_params=params is not None, **spec))

    if factory is not None:
        if ":" not in factory:
            raise NasflowError(f"op '{name}': factory='{factory}' must be 'module:attr'")
        return add(factory, dict(args or {}), doc or "")
    if args is not None or doc is not None:
        raise NasflowError(f"op '{name}': args= and doc= go with factory='module:attr'; a decorated "
                           "factory gives them by its signature and docstring")

    def decorator(fn: Factory) -> Factory:
        add(fn, factory_args(fn), (fn.__doc__ or "").strip().split("\n")[0])
        return fn

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
