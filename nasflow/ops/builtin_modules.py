"""The torch modules of the built-in ops (their specs: nasflow.ops.builtin). Imported only
when a model is built, so checking or costing a space never imports torch."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn


def _conv(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int, bias: bool = False) -> nn.Module:
        return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias)

    return factory


conv_1x1, conv_3x3, conv_5x5, conv_7x7 = (_conv(k) for k in (1, 3, 5, 7))


def _dw_pw(c_in: int, c_out: int, k: int, dilation: int) -> list[nn.Module]:
    return [
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_in, k, padding=dilation * (k // 2), dilation=dilation, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
    ]


def _sep(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(*_dw_pw(c_in, c_in, k, 1), *_dw_pw(c_in, c_out, k, 1))

    return factory


def _dil(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(*_dw_pw(c_in, c_out, k, 2))

    return factory


sep_conv_3x3, sep_conv_5x5, sep_conv_7x7 = (_sep(k) for k in (3, 5, 7))
dil_conv_3x3, dil_conv_5x5 = (_dil(k) for k in (3, 5))


def identity(c_in: int, c_out: int) -> nn.Module:
    return nn.Identity()


def relu(c_in: int, c_out: int) -> nn.Module:
    return nn.ReLU()


def lrelu(c_in: int, c_out: int, slope: float = 0.05) -> nn.Module:
    return nn.LeakyReLU(slope)


def sigmoid(c_in: int, c_out: int) -> nn.Module:
    return nn.Sigmoid()


def pixel_shuffle(c_in: int, c_out: int, r: int = 2) -> nn.Module:
    return nn.PixelShuffle(r)
