"""The built-in ops' specs: convolutions, separable and dilated convs (DLSR's candidates, no
BatchNorm), identity, activations and pixel shuffle. Pure Python: their torch modules live in
nasflow.ops.builtin_modules, imported when a model is built. Ops of one instance live with it
(RFDN's ESA: nasflow.spaces.dlsr.ops)."""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from nasflow.ops.registry import register_op

MODULES = "nasflow.ops.builtin_modules"


# --- convolutions -------------------------------------------------------------------------
def _conv_params(k: int) -> Callable[..., int]:
    return lambda c_in, c_out, bias=False: c_in * c_out * k * k + (c_out if bias else 0)


def _conv_madds(k: int) -> Callable[..., int]:
    # One multiply-add per weight per output pixel, and a bias is one add per output value
    # (the convention under which DLSR's counts land within 2% of the paper's Table II).
    return lambda c_in, c_out, bias=False: c_in * c_out * k * k + (c_out if bias else 0)


for _k in (1, 3, 5, 7):
    register_op(f"conv_{_k}x{_k}", factory=f"{MODULES}:conv_{_k}x{_k}", args={"bias": False},
                doc=f"{_k}x{_k} convolution, same padding",
                params=_conv_params(_k), madds_per_pixel=_conv_madds(_k), family=("conv", _k),
                channelwise=True)


# --- separable and dilated convolutions (DARTS style, without batch norm) -----------------
def _sep_cost(k: int) -> Callable[..., int]:
    # ReLU, depthwise kxk, pointwise (c_in -> c_in); then ReLU, depthwise, pointwise (-> c_out)
    return lambda c_in, c_out: (c_in * k * k + c_in * c_in) + (c_in * k * k + c_in * c_out)


def _dil_cost(k: int) -> Callable[..., int]:
    return lambda c_in, c_out: c_in * k * k + c_in * c_out


for _k in (3, 5, 7):
    register_op(f"sep_conv_{_k}x{_k}", factory=f"{MODULES}:sep_conv_{_k}x{_k}",
                doc=f"separable {_k}x{_k}: twice ReLU, depthwise, pointwise",
                params=_sep_cost(_k), madds_per_pixel=_sep_cost(_k), family=("sep", _k), channelwise=True)
for _k in (3, 5):
    register_op(f"dil_conv_{_k}x{_k}", factory=f"{MODULES}:dil_conv_{_k}x{_k}",
                doc=f"dilated {_k}x{_k}: ReLU, depthwise with dilation 2, pointwise",
                params=_dil_cost(_k), madds_per_pixel=_dil_cost(_k), family=("dil", _k), channelwise=True)


# --- parameter-free ops: identity and activations ----------------------------------------
register_op("identity", factory=f"{MODULES}:identity", doc="the input unchanged", same_channels=True,
            identity=lambda **_: True, channelwise=True)
register_op("relu", factory=f"{MODULES}:relu", doc="ReLU", same_channels=True, channelwise=True)
register_op("lrelu", factory=f"{MODULES}:lrelu", args={"slope": 0.05},
            doc="LeakyReLU, slope 0.05 by default (RFDN / DLSR)", same_channels=True, channelwise=True)
register_op("sigmoid", factory=f"{MODULES}:sigmoid", doc="sigmoid", same_channels=True, channelwise=True)
register_op(
    "pixel_shuffle", factory=f"{MODULES}:pixel_shuffle", args={"r": 2},
    doc="rearranges C*r*r channels into an r-times larger image (sub-pixel upsampler)",
    out_channels=lambda c_in, r=2: c_in // (r * r),
    resize=lambda r=2: Fraction(r),
    channelwise=True,  # output channel j reads input channels j*r*r .. (j+1)*r*r - 1
    check=lambda c_in, c_out, r=2: None if c_in % (r * r) == 0 else f"needs in channels divisible by r*r = {r * r}, got {c_in}",
)
