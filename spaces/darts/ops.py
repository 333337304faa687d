"""The ops of the DARTS literature (Liu et al. 2019; PC-DARTS, Xu et al. 2020), with their
exact costs, under names of their own: the core's `sep_conv_*` / `dil_conv_*` are DLSR's
(no BatchNorm) and stay as they are.

Every op takes `stride` (1 or 2; the output size and the cost follow it) and `affine` (the
BatchNorm's scale and shift: DARTS searches with `affine: false` and retrains with `true`).
A space names this module in `imports:` (`nasflow.spaces.darts.ops`).

This module is the ops' specs and costs, pure Python: `nasflow validate` / `cost` of a DARTS
space import no torch. Their torch modules live in nasflow.spaces.darts.modules; an op added
here registers with `factory="nasflow.spaces.darts.modules:<function>"` and `args={...}`
equal to that function's (a test checks they agree).

Costs: parameters exactly as the built module; Multi-Adds one per conv / linear weight per
output value position (depthwise: k*k per channel), one add per linear bias; ReLU,
BatchNorm, pooling and the zero op are free, as the project's counter has it.
"""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from nasflow.ops.registry import register_op

MODULES = "nasflow.spaces.darts.modules"
STRIDE_AFFINE = {"stride": 1, "affine": True}  # the args of most ops here


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
def _rcb_params(c_in: int, c_out: int, k: int = 1, stride: int = 1, affine: bool = True) -> int:
    return c_in * c_out * k * k + _bn(c_out, affine)


def _rcb_madds(c_in: int, c_out: int, h: int, w: int, k: int = 1, stride: int = 1,
               affine: bool = True) -> int:
    return c_in * c_out * k * k * _out(h, stride) * _out(w, stride)


register_op("darts_relu_conv_bn", factory=f"{MODULES}:relu_conv_bn", args={"k": 1, **STRIDE_AFFINE},
            doc="ReLU, k x k conv, BatchNorm (DARTS' cell preprocessing with k = 1)",
            params=_rcb_params, madds=_rcb_madds, resize=_resize, check=_stride_check)


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


for _k in (3, 5):
    _p, _m = _dw_cost(_k, True)
    register_op(f"darts_sep_conv_{_k}x{_k}", factory=f"{MODULES}:sep_conv_{_k}x{_k}", args=STRIDE_AFFINE,
                doc=f"DARTS separable {_k}x{_k}: twice ReLU, depthwise, pointwise, BatchNorm",
                params=_p, madds=_m, resize=_resize, check=_stride_check)
    _p, _m = _dw_cost(_k, False)
    register_op(f"darts_dil_conv_{_k}x{_k}", factory=f"{MODULES}:dil_conv_{_k}x{_k}", args=STRIDE_AFFINE,
                doc=f"DARTS dilated {_k}x{_k}: ReLU, depthwise with dilation 2, pointwise, BatchNorm",
                params=_p, madds=_m, resize=_resize, check=_stride_check)


# --- FactorizedReduce and skip_connect ---------------------------------------------------
def _fr_params(c_in: int, c_out: int, affine: bool = True) -> int:
    return 2 * c_in * (c_out // 2) + _bn(c_out, affine)


def _fr_madds(c_in: int, c_out: int, h: int, w: int, affine: bool = True) -> int:
    return 2 * c_in * (c_out // 2) * _out(h, 2) * _out(w, 2)


def _even(c_in: int, c_out: int) -> str | None:
    return None if c_out % 2 == 0 else f"needs an even number of out channels, got {c_out}"


register_op("darts_factorized_reduce", factory=f"{MODULES}:factorized_reduce", args={"affine": True},
            doc="ReLU, two shifted 1x1 convs at stride 2 concatenated, BatchNorm (halves the size)",
            params=_fr_params, madds=_fr_madds, resize=lambda: Fraction(1, 2), check=_even)


def _skip_params(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> int:
    return 0 if stride == 1 else _fr_params(c_in, c_out, affine)


def _skip_madds(c_in: int, c_out: int, h: int, w: int, stride: int = 1, affine: bool = True) -> int:
    return 0 if stride == 1 else _fr_madds(c_in, c_out, h, w, affine)


register_op("darts_skip_connect", factory=f"{MODULES}:skip_connect", args=STRIDE_AFFINE,
            doc="identity; FactorizedReduce at stride 2",
            params=_skip_params, madds=_skip_madds, resize=_resize, check=_same, same_channels=True,
            identity=lambda stride=1, affine=True: stride == 1)


# --- zero and pooling --------------------------------------------------------------------
register_op("darts_none", factory=f"{MODULES}:zero", args=STRIDE_AFFINE,
            doc="zero: no connection (DARTS' `none`)", resize=_resize, check=_same, same_channels=True)
for _kind in ("max", "avg"):
    register_op(f"darts_{_kind}_pool_3x3", factory=f"{MODULES}:{_kind}_pool_3x3", args=STRIDE_AFFINE,
                doc=(f"{_kind} pooling 3x3; with affine false (the search setting) followed by "
                     "BatchNorm without affine, as DARTS' search network"),
                resize=_resize, check=_same, same_channels=True)


# --- stem and classifier -----------------------------------------------------------------
def _cb_params(c_in: int, c_out: int, k: int = 3, affine: bool = True) -> int:
    return c_in * c_out * k * k + _bn(c_out, affine)


def _cb_madds(c_in: int, c_out: int, k: int = 3, affine: bool = True) -> int:
    return c_in * c_out * k * k


register_op("darts_conv_bn", factory=f"{MODULES}:conv_bn", args={"k": 3, "affine": True},
            doc="k x k conv (no bias, same padding), BatchNorm: DARTS' CIFAR stem",
            params=_cb_params, madds_per_pixel=_cb_madds)
register_op("darts_classifier", factory=f"{MODULES}:classifier",
            doc="global average pooling, then a linear layer: N x C x H x W -> N x classes (the last node)",
            params=lambda c_in, c_out: c_in * c_out + c_out,
            madds=lambda c_in, c_out, h, w: c_in * c_out + c_out)


# --- the auxiliary head --------------------------------------------------------------------
def _pooled(n: int, stride: int) -> int:
    return (n - 5) // stride + 1  # 5x5 average pooling, no padding


def _aux_params(c_in: int, c_out: int, stride: int = 3) -> int:
    return c_in * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * c_out + c_out


def _aux_madds(c_in: int, c_out: int, h: int, w: int, stride: int = 3) -> int:
    ph, pw = _pooled(h, stride), _pooled(w, stride)
    return c_in * 128 * ph * pw + 128 * 768 * 4 * (ph - 1) * (pw - 1) + 768 * c_out + c_out


register_op("darts_aux_head", factory=f"{MODULES}:aux_head", args={"stride": 3},
            doc="DARTS' auxiliary classifier (training only: a space's `auxiliary:` output): "
                "N x C x 8 x 8 -> N x classes",
            params=_aux_params, madds=_aux_madds,
            check=lambda c_in, c_out, stride=3: None if stride in (2, 3) else f"takes stride 3 (CIFAR) or 2 "
            f"(ImageNet), got {stride}")
