"""The DLSR instance's own op: RFDN's enhanced spatial attention (`esa`), as a spec (args,
channel rule, exact cost; pure Python); its torch module is nasflow.spaces.dlsr.esa,
imported when a model is built.

Registered on import. The DLSR space files import this module (`imports:`), and older
architecture files that do not are served by the `nasflow.ops` entry point `esa`
(pyproject.toml), so every model directory still loads.
"""
from __future__ import annotations

from nasflow.ops.registry import register_op


def _esa_params(c_in: int, c_out: int, reduction: int = 4, f: int = 0) -> int:
    f = f or c_in // reduction
    return (c_in * f + f) + (f * f + f) + 4 * (9 * f * f + f) + (f * c_in + c_in)


def _esa_madds(c_in: int, c_out: int, h: int, w: int, reduction: int = 4, f: int = 0) -> int:
    f = f or c_in // reduction
    h2, w2 = (h - 3) // 2 + 1, (w - 3) // 2 + 1  # conv2: 3x3, stride 2, no padding
    h3, w3 = (h2 - 7) // 3 + 1, (w2 - 7) // 3 + 1  # max pool 7, stride 3
    # every conv has a bias: one add per output value
    full = (c_in * f + f * f + f * c_in + f + f + c_in) * h * w  # conv1, conv_f, conv4
    return full + (9 * f * f + f) * h2 * w2 + 3 * (9 * f * f + f) * h3 * w3  # conv2; conv_max, conv3, conv3_


register_op(
    "esa", factory="nasflow.spaces.dlsr.esa:esa", args={"reduction": 4, "f": 0},
    doc="enhanced spatial attention (RFDN): f inner channels (0: channels // reduction); needs inputs of at least 17x17",
    params=_esa_params, madds=_esa_madds, same_channels=True,
    channelwise=True,  # a smaller width's ESA is the largest's with its weights cut (nasflow.compile.values)
    check=lambda c_in, c_out, reduction=4, f=0: None if (f or c_in // reduction) >= 1 else
    f"needs at least {reduction} channels (or f >= 1)",
)
