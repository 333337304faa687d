"""Mixed-op implementations, registered by name: how a choice node computes
sum_o w_o * o(x) from its candidates.

Every implementation is built from a graph node (`cls(g)`), has the same parameters and
state-dict names as the plain MixedOp (`ops.<candidate>...`), and is called as
`op(x, weights, active)`: `active` is None (every candidate) or the indices of the
candidates to compute (a sparse relaxation's non-zero weights). "plain" is registered here;
others register from their own modules (nasflow.accel registers "fused"), which the
compiler never imports: import the module that registers a name before using it.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from nasflow.errors import NasflowError
from nasflow.ops.registry import OPS
from nasflow.registry import Registry
from nasflow.space.graph import GNode

MIXED_OPS: Registry[type[nn.Module]] = Registry("mixed-op implementation")

# Where the implementations nasflow itself offers outside the compiler are registered.
_REGISTERED_BY = {"fused": "nasflow.accel"}


# Class decorator: `@register_mixed_op("partial")` makes mixed_op="partial" build it.
register_mixed_op: Callable[[str], Callable[[type[nn.Module]], type[nn.Module]]] = MIXED_OPS.decorator()


def get_mixed_op(name: str) -> type[nn.Module]:
    if name in MIXED_OPS:
        return MIXED_OPS.get(name)
    known = ", ".join(MIXED_OPS.names())
    where = _REGISTERED_BY.get(name)
    hint = (f"import {where} first (it registers '{name}')" if where else
            "import the module that registers it first")
    raise NasflowError(f"unknown mixed-op implementation '{name}' (registered: {known}); {hint}")


def build_op(name: str, c_in: int, c_out: int, args: dict) -> nn.Module:
    spec = OPS.get(name)
    module = spec.factory(c_in, c_out, **spec.bind(args))
    if not spec.declared_params:
        # Registered without a cost: the cost table, regularizers and reports would count 0.
        found = sum(p.numel() for p in module.parameters())
        if found:
            raise NasflowError(f"op '{name}' was registered without a cost, but its module has {found:,} "
                               "parameters; give register_op its params= and madds= (or madds_per_pixel=) "
                               "so costs and regularizers count it")
    return module


def activation(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    return OPS.get(name).factory(1, 1)


@register_mixed_op("plain")
class MixedOp(nn.Module):
    """sum_o w_o * o(x): every candidate (or every active one) run separately."""

    def __init__(self, g: GNode) -> None:
        super().__init__()
        self.ops = nn.ModuleDict({c: build_op(c, g.c_in[0], g.c_out, g.args) for c in g.candidates})
        self.act = activation(g.act)

    def forward(self, x: Tensor, weights: Tensor, active: list[int] | None = None) -> Tensor:
        return self.act(self.mix(x, weights, active))

    def mix(self, x: Tensor, weights: Tensor, active: list[int] | None = None) -> Tensor:
        """The weighted sum before the node's activation (what partial channels wrap)."""
        ops = list(self.ops.values())
        if active is None:
            return sum(w * op(x) for w, op in zip(weights, ops))
        return sum(weights[i] * ops[i](x) for i in active)
