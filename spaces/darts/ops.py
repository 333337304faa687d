"""The ops of the DARTS literature (Liu et al. 2019; PC-DARTS, Xu et al. 2020), with their
exact costs, under names of their own: the core's `sep_conv_*` / `dil_conv_*` are DLSR's
(no BatchNorm) and stay as they are.

Every op takes `stride` (1 or 2; the output size and the cost follow it) and `affine` (the
BatchNorm's scale and shift: DARTS searches with `affine: false` and retrains with `true`).
A space names this module in `imports:` (`nasflow.spaces.darts.ops`).

Costs: parameters exactly as the built module; Multi-Adds one per conv / linear weight per
output value position (depthwise: k*k per channel), one add per linear bias; ReLU,
BatchNorm, pooling and the zero op are free, as the project's counter has it.
"""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.ops.registry import register_op


def _out(n: int, stride: int) -> int:
    """Output length of a k x k conv with 'same' padding at `stride` (odd k)."""
    return (n - 1) // stride + 1


def _bn(c: int, affine: bool) -> int:
    return 2 * c if affine else 0


def _stride_check(c_in: int, c_out: int, stride: int = 1) -> str | None:
    return None if stride in (1, 2) else f"takes stride 1 or 2, got {stride}"


def _resize(stride: int = 1) -> Fraction:
    return Fraction(1, stride)


def _same(c_in: int, c_out: int, stride: int = 1) -> str | None:
    return _stride_check(c_in, c_out, stride) or (
        None if c_in == c_out else f"keeps channels ({c_in} in, {c_out} out); remove 'out'")


# --- ReLU-conv-BN and the separable / dilated convs --------------------------------------
class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, dilation: int, groups_dw: bool,
                 affine: bool) -> None:
        pad = dilation * (k // 2)
        layers: list[nn.Module] = [nn.ReLU(inplace=False)]
        if groups_dw:  # depthwise k x k, then pointwise 1 x 1
            layers += [nn.Conv2d(c_in, c_in, k, stride, pad, dilation=dilation, groups=c_in, bias=False),
                       nn.Conv2d(c_in, c_out, 1, bias=False)]
        else:
            layers += [nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dilation, bias=False)]
        layers.append(nn.BatchNorm2d(c_out, affine=affine))
        super().__init__(*layers)


def _rcb_params(c_in: int, c_out: int, k: int = 1, stride: int = 1, affine: bool = True) -> int:
    return c_in * c_out * k * k + _bn(c_out, affine)


def _rcb_madds(c_in: int, c_out: int, h: int, w: int, k: int = 1, stride: int = 1,
               affine: bool = True) -> int:
    return c_in * c_out * k * k * _out(h, stride) * _out(w, stride)


@register_op("darts_relu_conv_bn", params=_rcb_params, madds=_rcb_madds, resize=_resize, check=_stride_check)
def darts_relu_conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1, affine: bool = True) -> nn.Module:
    """ReLU, k x k conv, BatchNorm (DARTS' cell preprocessing with k = 1)"""
    return ReLUConvBN(c_in, c_out, k, stride, 1, False, affine)


def _dw_cost(k: int, two: bool) -> tuple[Callable[..., int], Callable[..., int]]:
    """(params, madds) of DARTS' DilConv (one ReLU-dw-pw-BN) or SepConv (two, the first at
    `stride` and c_in -> c_in, the second at 1 and c_in -> c_out)."""

    def params(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> int:
        last = c_in * k * k + c_in * c_out + _bn(c_out, affine)
        return last + (c_in * k * k + c_in * c_in + _bn(c_in, affine) if two else 0)

    def madds(c_in: int, c_out: int, h: int, w: int, stride: int = 1, affine: bool = True) -> int:
        pixels = _out(h, stride) * _out(w, stride)
        last = (c_in * k * k + c_in * c_out) * pixels
        return last + ((c_in * k * k + c_in * c_in) * pixels if two else 0)

    return params, madds


def _make_sep(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        return nn.Sequential(ReLUConvBN(c_in, c_in, k, stride, 1, True, affine),
                             ReLUConvBN(c_in, c_out, k, 1, 1, True, affine))

    factory.__doc__ = f"DARTS separable {k}x{k}: twice ReLU, depthwise, pointwise, BatchNorm"
    return factory


def _make_dil(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        return ReLUConvBN(c_in, c_out, k, stride, 2, True, affine)

    factory.__doc__ = f"DARTS dilated {k}x{k}: ReLU, depthwise with dilation 2, pointwise, BatchNorm"
    return factory


for _k in (3, 5):
    _p, _m = _dw_cost(_k, True)
    register_op(f"darts_sep_conv_{_k}x{_k}", params=_p, madds=_m, resize=_resize, check=_stride_check)(_make_sep(_k))
    _p, _m = _dw_cost(_k, False)
    register_op(f"darts_dil_conv_{_k}x{_k}", params=_p, madds=_m, resize=_resize, check=_stride_check)(_make_dil(_k))


# --- FactorizedReduce and skip_connect ---------------------------------------------------
class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 convs at stride 2 (the second shifted by one pixel), concatenated, BN.
    On even sizes exactly DARTS'; an odd size (where DARTS' fails) pads the shifted half."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        if x.shape[2] % 2 or x.shape[3] % 2:
            shifted = F.pad(shifted, (0, x.shape[3] % 2, 0, x.shape[2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _fr_params(c_in: int, c_out: int, affine: bool = True) -> int:
    return 2 * c_in * (c_out // 2) + _bn(c_out, affine)


def _fr_madds(c_in: int, c_out: int, h: int, w: int, affine: bool = True) -> int:
    return 2 * c_in * (c_out // 2) * _out(h, 2) * _out(w, 2)


def _even(c_in: int, c_out: int) -> str | None:
    return None if c_out % 2 == 0 else f"needs an even number of out channels, got {c_out}"


@register_op("darts_factorized_reduce", params=_fr_params, madds=_fr_madds,
             resize=lambda: Fraction(1, 2), check=_even)
def darts_factorized_reduce(c_in: int, c_out: int, affine: bool = True) -> nn.Module:
    """ReLU, two shifted 1x1 convs at stride 2 concatenated, BatchNorm (halves the size)"""
    return FactorizedReduce(c_in, c_out, affine)


def _skip_params(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> int:
    return 0 if stride == 1 else _fr_params(c_in, c_out, affine)


def _skip_madds(c_in: int, c_out: int, h: int, w: int, stride: int = 1, affine: bool = True) -> int:
    return 0 if stride == 1 else _fr_madds(c_in, c_out, h, w, affine)


@register_op("darts_skip_connect", params=_skip_params, madds=_skip_madds, resize=_resize,
             check=_same, same_channels=True)
def darts_skip_connect(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """identity; FactorizedReduce at stride 2"""
    return nn.Identity() if stride == 1 else FactorizedReduce(c_in, c_out, affine)


# --- zero and pooling --------------------------------------------------------------------
class Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


@register_op("darts_none", resize=_resize, check=_same, same_channels=True)
def darts_none(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """zero: no connection (DARTS' `none`)"""
    return Zero(stride)


def _make_pool(kind: str) -> Callable[..., nn.Module]:
    # DARTS' search network follows each pooling candidate with a BatchNorm without affine;
    # its evaluation network has none. `affine: false` is the search setting of every op
    # here, so it also adds that BatchNorm (no parameters); `affine: true` has none.
    def factory(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        pool: nn.Module = (nn.MaxPool2d(3, stride, padding=1) if kind == "max"
                           else nn.AvgPool2d(3, stride, padding=1, count_include_pad=False))
        return pool if affine else nn.Sequential(pool, nn.BatchNorm2d(c_in, affine=False))

    factory.__doc__ = (f"{kind} pooling 3x3; with affine false (the search setting) followed by "
                       "BatchNorm without affine, as DARTS' search network")
    return factory


for _kind in ("max", "avg"):
    register_op(f"darts_{_kind}_pool_3x3", resize=_resize, check=_same,
                same_channels=True)(_make_pool(_kind))


# --- stem and classifier -----------------------------------------------------------------
def _cb_params(c_in: int, c_out: int, k: int = 3, affine: bool = True) -> int:
    return c_in * c_out * k * k + _bn(c_out, affine)


def _cb_madds(c_in: int, c_out: int, k: int = 3, affine: bool = True) -> int:
    return c_in * c_out * k * k


@register_op("darts_conv_bn", params=_cb_params, madds_per_pixel=_cb_madds)
def darts_conv_bn(c_in: int, c_out: int, k: int = 3, affine: bool = True) -> nn.Module:
    """k x k conv (no bias, same padding), BatchNorm: DARTS' CIFAR stem"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class Classifier(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.pool(x).flatten(1))


@register_op("darts_classifier", params=lambda c_in, c_out: c_in * c_out + c_out,
             madds=lambda c_in, c_out, h, w: c_in * c_out + c_out)
def darts_classifier(c_in: int, c_out: int) -> nn.Module:
    """global average pooling, then a linear layer: N x C x H x W -> N x classes (the last node)"""
    return Classifier(c_in, c_out)
