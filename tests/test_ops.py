"""The op registry: declared costs equal what counting the built modules gives, and the
paper's Table I is reproduced exactly."""
from __future__ import annotations

import pytest
import torch
from counting import counted_madds
from torch import nn

from nasflow.errors import NasflowError
from nasflow.ops.registry import OPS, get_op, register_op
import nasflow.spaces.dlsr.ops  # noqa: F401,E402  (ESA lives with the SR instance: its cost is checked here too)
from nasflow.registry import UnknownNameError

# DLSR paper, Table I: 50 channels, x2 on a 1280x720 output, i.e. a 640x360 input.
TABLE_I = {
    "conv_1x1": (2.5, 0.576), "conv_3x3": (22.5, 5.184), "conv_5x5": (62.5, 14.400),
    "conv_7x7": (122.5, 28.224), "sep_conv_3x3": (5.9, 1.359), "sep_conv_5x5": (7.5, 1.728),
    "sep_conv_7x7": (9.9, 2.281), "dil_conv_3x3": (2.95, 0.680), "dil_conv_5x5": (3.75, 0.864),
}


@pytest.mark.parametrize("name", list(TABLE_I))
def test_table_i(name):
    spec = get_op(name)
    args = spec.bind({})
    params_k, madds_g = TABLE_I[name]
    assert spec.params(50, 50, **args) == round(params_k * 1000)
    assert round(spec.madds(50, 50, 360, 640, **args) / 1e9, 3) == madds_g


def _channels(name: str) -> tuple[int, int]:
    spec = get_op(name)
    c_in = 12
    if spec.out_channels is not None:
        return c_in, spec.out_channels(c_in)
    return c_in, c_in if spec.same_channels else 10


# DARTS' auxiliary head takes only the 8x8 (7x7) maps of 2/3 depth: tests/darts/test_aux_head.py.
_SIZED = {"darts_aux_head"}
_OP_CASES = [(n, False) for n in OPS.names() if n not in _SIZED] + [
    (n, True) for n in OPS.names() if "bias" in get_op(n).args and n not in _SIZED]


@pytest.mark.parametrize("name, bias", _OP_CASES)
def test_declared_cost_equals_counted(name, bias):
    spec = get_op(name)
    args = spec.bind({"bias": True} if bias else {})
    c_in, c_out = _channels(name)
    module = spec.factory(c_in, c_out, **args)
    assert spec.params(c_in, c_out, **args) == sum(p.numel() for p in module.parameters())
    x = torch.randn(1, c_in, 29, 34)  # odd sizes: strided and pooled branches must agree too
    assert counted_madds(module, x) == spec.madds(c_in, c_out, 29, 34, **args)
    assert module(x).shape[1] == c_out


def test_duplicate_registration_raises():
    with pytest.raises(NasflowError, match="op 'conv_3x3' is already registered"):
        register_op("conv_3x3")(lambda c_in, c_out: nn.Identity())


@pytest.mark.parametrize("name", ["my.op", ""])
def test_an_op_name_that_cannot_name_a_module_is_refused_at_registration(name: str) -> None:
    # A candidate's name keys its module in the supernet: torch refuses '.', deep in compile.
    with pytest.raises(NasflowError, match="must be non-empty and hold no '.'"):
        register_op(name)(lambda c_in, c_out: nn.Identity())
    assert name not in OPS


def test_unknown_op_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'sep_conv_5x5'"):
        get_op("sep_conv5x5")


def test_custom_op_from_python_is_usable_in_a_space():
    from nasflow.space.graph import build_graph
    from nasflow.space.schema import Space, op
    from nasflow.compile.supernet import compile_graph

    name = "test_scaled_identity"
    if name not in OPS:
        @register_op(name, same_channels=True)
        def scaled(c_in: int, c_out: int, factor: int = 2) -> nn.Module:
            """multiplies by a constant"""
            class Scale(nn.Module):
                def forward(self, x):
                    return factor * x
            return Scale()

    space = Space(name="t", inputs={"x": 3}, nodes={"a": op(name, "x", factor=3)}, output="a")
    model = compile_graph(build_graph(space))
    x = torch.ones(1, 3, 4, 4)
    assert torch.equal(model(x), 3 * x)
