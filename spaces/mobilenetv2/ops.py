"""The ops of MobileNetV2 (Sandler et al. 2018), with their exact costs: the convolutions of
its inverted residual blocks, each followed by BatchNorm (and ReLU6 where the paper has
one), and its classifier. A space names this module in `imports:`
(`nasflow.spaces.mobilenetv2.ops`).

| op | module | where |
| --- | --- | --- |
| `mbv2_conv_bn_relu6` | k x k conv (no bias), BatchNorm, ReLU6 | the stem (3x3, stride 2), a block's 1x1 expansion, the last 1x1 conv |
| `mbv2_dw_bn_relu6` | depthwise k x k conv, BatchNorm, ReLU6 (keeps the channels) | a block's depthwise conv (stride 1 or 2) |
| `mbv2_conv_bn` | k x k conv (no bias), BatchNorm: the linear bottleneck | a block's 1x1 projection |
| `mbv2_classifier` | global average pooling, dropout, linear | the head: N x C x H x W -> N x classes |

Each takes `k` (odd; a value decision may set it: the supernet holds the largest kernel and
uses its centre) and `stride` (1 or 2: the output size is (n - 1) // stride + 1, as
'same' padding (k - 1) // 2 gives). Every op is `channelwise`: each output channel is
computed from the input channels alike at any width (the BatchNorm and ReLU6 act per
channel), so a differentiable width decision runs it once at the largest width and masks it.

This module is the specs and costs, pure Python (`nasflow validate` / `cost` import no
torch); the torch modules are nasflow.spaces.mobilenetv2.modules, whose factories take
exactly the args declared here (checked when first loaded).

Costs, nasflow's convention: parameters exactly as the built module (BatchNorm: its scale
and shift; running statistics are buffers); Multi-Adds one per conv weight per output pixel
(depthwise: k*k per channel) and one per linear weight, plus one add per linear bias;
BatchNorm, ReLU6, pooling and dropout are free. The formulas are plain arithmetic on
(c_in, c_out, k, ...), so the same functions give each value's exact cost when those are
value decisions (nasflow.space.values.Sym).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

from nasflow.ops.registry import register_op

MODULES = "nasflow.spaces.mobilenetv2.modules"
CONV_ARGS = {"k": 1, "stride": 1}


def _out(n: int, stride: int) -> int:
    """Output length of an odd k x k conv with padding (k - 1) // 2 at `stride`."""
    return (n - 1) // stride + 1


def _resize(stride: int = 1) -> Fraction:
    return Fraction(1, stride)


def _numbers(x: Any) -> list[int]:
    """Every value an arg takes (a value decision's Sym: each of its values)."""
    return list(getattr(x, "values", [x]))


def _check(c_in: int, c_out: int, k: int = 1, stride: int = 1) -> str | None:
    if stride not in (1, 2):
        return f"takes stride 1 or 2, got {stride}"
    even = [v for v in _numbers(k) if v < 1 or v % 2 == 0]
    return f"takes an odd kernel size k, got {even[0]}" if even else None


# --- convolutions with BatchNorm ----------------------------------------------------------
def _conv_params(c_in: int, c_out: int, k: int = 1, stride: int = 1) -> int:
    return c_in * c_out * k * k + 2 * c_out


def _conv_madds(c_in: int, c_out: int, h: int, w: int, k: int = 1, stride: int = 1) -> int:
    return c_in * c_out * k * k * _out(h, stride) * _out(w, stride)


register_op("mbv2_conv_bn_relu6", factory=f"{MODULES}:conv_bn_relu6", args=CONV_ARGS,
            doc="k x k conv (no bias), BatchNorm, ReLU6: MobileNetV2's stem, expansion and last conv",
            params=_conv_params, madds=_conv_madds, resize=_resize, check=_check, channelwise=True)
register_op("mbv2_conv_bn", factory=f"{MODULES}:conv_bn", args=CONV_ARGS,
            doc="k x k conv (no bias), BatchNorm: MobileNetV2's linear bottleneck (projection)",
            params=_conv_params, madds=_conv_madds, resize=_resize, check=_check, channelwise=True)


def _dw_params(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> int:
    return c_in * k * k + 2 * c_in


def _dw_madds(c_in: int, c_out: int, h: int, w: int, k: int = 3, stride: int = 1) -> int:
    return c_in * k * k * _out(h, stride) * _out(w, stride)


register_op("mbv2_dw_bn_relu6", factory=f"{MODULES}:dw_bn_relu6", args={"k": 3, "stride": 1},
            doc="depthwise k x k conv (no bias), BatchNorm, ReLU6; keeps the channels",
            params=_dw_params, madds=_dw_madds, resize=_resize, check=_check, channelwise=True,
            # its own output (not same_channels): masked at a searched width like a conv's
            out_channels=lambda c_in: c_in)


# --- classifier -----------------------------------------------------------------------------
def _dropout_check(c_in: int, c_out: int, dropout: float = 0.2) -> str | None:
    return None if 0.0 <= dropout < 1.0 else f"takes a dropout probability in [0, 1), got {dropout}"


register_op("mbv2_classifier", factory=f"{MODULES}:classifier", args={"dropout": 0.2},
            doc="global average pooling, dropout (0.2), linear: N x C x H x W -> N x classes (the last node)",
            params=lambda c_in, c_out, dropout=0.2: c_in * c_out + c_out,
            madds=lambda c_in, c_out, h, w, dropout=0.2: c_in * c_out + c_out,
            check=_dropout_check, channelwise=True)
