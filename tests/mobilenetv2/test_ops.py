"""The MobileNetV2 ops: declared params and Multi-Adds equal counting the built module, at
stride 1 and 2 and kernels 3, 5, 7; sizes follow the stride; every factory takes exactly the
args its spec declares; and the ops are channelwise, as they are registered."""
from __future__ import annotations

import pytest
import torch
from counting import counted_madds

import nasflow.spaces.mobilenetv2.ops  # noqa: F401  (registers the mbv2_* ops)
from nasflow.ops.registry import OPS, factory_args, get_op

MBV2_OPS = [n for n in OPS.names() if n.startswith("mbv2_")]
CONVS = [n for n in MBV2_OPS if n != "mbv2_classifier"]


def test_the_ops_are_there():
    assert sorted(MBV2_OPS) == ["mbv2_classifier", "mbv2_conv_bn", "mbv2_conv_bn_relu6", "mbv2_dw_bn_relu6"]
    for name in MBV2_OPS:
        spec = get_op(name)
        assert factory_args(spec.factory) == spec.args and spec.channelwise


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(16, 12), (15, 9)])
def test_declared_cost_equals_counted(name, k, stride, size):
    spec = get_op(name)
    c_in = 12
    c_out = c_in if name == "mbv2_dw_bn_relu6" else 10
    module = spec.factory(c_in, c_out, k=k, stride=stride)
    assert spec.params(c_in, c_out, k=k, stride=stride) == sum(p.numel() for p in module.parameters())
    x = torch.randn(1, c_in, *size)  # costs are per sample
    assert counted_madds(module, x) == spec.madds(c_in, c_out, *size, k=k, stride=stride)
    y = module.eval()(x)
    assert y.shape[1] == c_out and y.shape[2:] == tuple((n - 1) // stride + 1 for n in size)
    assert spec.resize(stride=stride) == pytest.approx(1 / stride)


def test_classifier_cost_equals_counted():
    spec = get_op("mbv2_classifier")
    module = spec.factory(24, 7, dropout=0.2).eval()
    x = torch.randn(1, 24, 5, 3)
    assert spec.params(24, 7) == sum(p.numel() for p in module.parameters())
    assert counted_madds(module, x) == spec.madds(24, 7, 5, 3) == 24 * 7 + 7
    assert module(x).shape == (1, 7)


@pytest.mark.parametrize("name, args, problem", [
    ("mbv2_conv_bn", {"stride": 3}, "stride 1 or 2"),
    ("mbv2_dw_bn_relu6", {"k": 4}, "odd kernel size"),
    ("mbv2_classifier", {"dropout": 1.0}, "dropout probability"),
])
def test_bad_args_are_refused_with_the_value(name, args, problem):
    spec = get_op(name)
    message = spec.check(8, 8, **args)
    assert message is not None and problem in message
