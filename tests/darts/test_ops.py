"""The DARTS ops: declared costs equal what counting the built module gives, at stride 1
and 2, with and without BatchNorm affine; sizes follow the stride."""
from __future__ import annotations

import pytest
import torch
from counting import counted_madds

import nasflow.spaces.darts.ops  # noqa: F401  (registers the darts_* ops)
from nasflow.ops.registry import OPS, get_op

# The auxiliary head takes only the 8x8 (7x7) maps of 2/3 depth: tests/darts/test_aux_head.py.
DARTS_OPS = [n for n in OPS.names() if n.startswith("darts_") and n != "darts_aux_head"]
CASES = [(n, s, a) for n in DARTS_OPS for s in (1, 2) for a in (True, False)
         if (s == 1 or "stride" in get_op(n).args) and (a or "affine" in get_op(n).args)]


def test_the_literature_ops_are_there():
    for name in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                 "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"):
        assert f"darts_{name}" in DARTS_OPS


@pytest.mark.parametrize("name, stride, affine", CASES)
@pytest.mark.parametrize("size", [(16, 12), (15, 9)])
def test_declared_cost_equals_counted(name, stride, affine, size):
    spec = get_op(name)
    args = spec.bind({k: v for k, v in (("stride", stride), ("affine", affine)) if k in spec.args})
    c_in = 12
    c_out = c_in if spec.same_channels else 10
    module = spec.factory(c_in, c_out, **args)
    assert spec.params(c_in, c_out, **args) == sum(p.numel() for p in module.parameters())
    x = torch.randn(1, c_in, *size)  # costs are per sample
    assert counted_madds(module, x) == spec.madds(c_in, c_out, *size, **args)
    y = module(x)
    assert y.shape[1] == c_out
    if name != "darts_classifier":
        resize = spec.resize(**{k: v for k, v in args.items() if k == "stride"})
        if name == "darts_factorized_reduce":
            resize = spec.resize()
        assert y.shape[2:] == tuple((n - 1) // int(1 / resize) + 1 for n in size)


def test_search_time_bn_has_no_parameters():
    search, final = (get_op("darts_max_pool_3x3").factory(8, 8, affine=a) for a in (False, True))
    assert isinstance(search[1], torch.nn.BatchNorm2d) and not search[1].affine  # DARTS' search pools
    assert isinstance(final, torch.nn.MaxPool2d)  # DARTS' evaluation pools: no BatchNorm
    assert get_op("darts_sep_conv_3x3").params(8, 8, affine=False) == 2 * (8 * 9 + 64)


def test_factorized_reduce_matches_the_halves_on_even_sizes():
    spec = get_op("darts_factorized_reduce")
    m = spec.factory(4, 6, affine=False).eval()
    x = torch.randn(1, 4, 8, 8)
    r = torch.relu(x)
    want = torch.cat([m.conv_1(r), m.conv_2(r[:, :, 1:, 1:])], dim=1)
    assert torch.allclose(m(x), m.bn(want))


def test_an_op_with_parameters_but_no_declared_cost_is_refused():
    from nasflow.compile.supernet import compile_graph
    from nasflow.errors import NasflowError
    from nasflow.ops.registry import register_op
    from nasflow.space.graph import build_graph
    from nasflow.space.schema import Space, op

    name = "test_costless_conv"
    if name not in OPS:
        @register_op(name)
        def costless(c_in: int, c_out: int) -> torch.nn.Module:
            """a conv registered without its cost"""
            return torch.nn.Conv2d(c_in, c_out, 1)

    space = Space(name="t", inputs={"x": 3}, nodes={"a": op(name, "x", out=4)}, output="a")
    with pytest.raises(NasflowError, match=f"op '{name}' was registered without a cost, but its module has 16 parameters"):
        compile_graph(build_graph(space))
