"""The built-in ops: convolutions, separable and dilated convs (DLSR's candidates, no
BatchNorm), identity, activations and pixel shuffle. Ops of one instance live with it
(RFDN's ESA: nasflow.spaces.dlsr.ops)."""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from torch import nn

from nasflow.ops.registry import register_op


# --- convolutions -------------------------------------------------------------------------
def _conv_params(k: int) -> Callable[..., int]:
    return lambda c_in, c_out, bias=False: c_in * c_out * k * k + (c_out if bias else 0)


def _conv_madds(k: int) -> Callable[..., int]:
    # One multiply-add per weight per output pixel, and a bias is one add per output value
    # (the convention under which DLSR's counts land within 2% of the paper's Table II).
    return lambda c_in, c_out, bias=False: c_in * c_out * k * k + (c_out if bias else 0)


def _make_conv(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int, bias: bool = False) -> nn.Module:
        return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias)

    factory.__doc__ = f"{k}x{k} convolution, same padding"
    return factory


for _k in (1, 3, 5, 7):
    register_op(f"conv_{_k}x{_k}", params=_conv_params(_k), madds_per_pixel=_conv_madds(_k),
                family=("conv", _k))(_make_conv(_k))


# --- separable and dilated convolutions (DARTS style, without batch norm) -----------------
def _dw_pw(c_in: int, c_out: int, k: int, dilation: int) -> list[nn.Module]:
    return [
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_in, k, padding=dilation * (k // 2), dilation=dilation, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
    ]


def _sep_cost(k: int) -> Callable[..., int]:
    # ReLU, depthwise kxk, pointwise (c_in -> c_in); then ReLU, depthwise, pointwise (-> c_out)
    return lambda c_in, c_out: (c_in * k * k + c_in * c_in) + (c_in * k * k + c_in * c_out)


def _make_sep(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(*_dw_pw(c_in, c_in, k, 1), *_dw_pw(c_in, c_out, k, 1))

    factory.__doc__ = f"separable {k}x{k}: twice ReLU, depthwise, pointwise"
    return factory


def _dil_cost(k: int) -> Callable[..., int]:
    return lambda c_in, c_out: c_in * k * k + c_in * c_out


def _make_dil(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(*_dw_pw(c_in, c_out, k, 2))

    factory.__doc__ = f"dilated {k}x{k}: ReLU, depthwise with dilation 2, pointwise"
    return factory


for _k in (3, 5, 7):
    register_op(f"sep_conv_{_k}x{_k}", params=_sep_cost(_k), madds_per_pixel=_sep_cost(_k),
                family=("sep", _k))(_make_sep(_k))
for _k in (3, 5):
    register_op(f"dil_conv_{_k}x{_k}", params=_dil_cost(_k), madds_per_pixel=_dil_cost(_k),
                family=("dil", _k))(_make_dil(_k))


# --- parameter-free ops: identity and activations ----------------------------------------
@register_op("identity", same_channels=True)
def identity(c_in: int, c_out: int) -> nn.Module:
    """the input unchanged"""
    return nn.Identity()


@register_op("relu", same_channels=True)
def relu(c_in: int, c_out: int) -> nn.Module:
    """ReLU"""
    return nn.ReLU()


@register_op("lrelu", same_channels=True)
def lrelu(c_in: int, c_out: int, slope: float = 0.05) -> nn.Module:
    """LeakyReLU, slope 0.05 by default (RFDN / DLSR)"""
    return nn.LeakyReLU(slope)


@register_op("sigmoid", same_channels=True)
def sigmoid(c_in: int, c_out: int) -> nn.Module:
    """sigmoid"""
    return nn.Sigmoid()


@register_op(
    "pixel_shuffle",
    out_channels=lambda c_in, r=2: c_in // (r * r),
    resize=lambda r=2: Fraction(r),
    check=lambda c_in, c_out, r=2: None if c_in % (r * r) == 0 else f"needs in channels divisible by r*r = {r * r}, got {c_in}",
)
def pixel_shuffle(c_in: int, c_out: int, r: int = 2) -> nn.Module:
    """rearranges C*r*r channels into an r-times larger image (sub-pixel upsampler)"""
    return nn.PixelShuffle(r)
