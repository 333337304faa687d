"""The DLSR instance's own op: RFDN's enhanced spatial attention (`esa`).

Registered on import. The DLSR space files import this module (`imports:`), and older
architecture files that do not are served by the `nasflow.ops` entry point `esa`
(pyproject.toml), so every model directory still loads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasflow.ops.registry import register_op


class ESA(nn.Module):
    """Enhanced spatial attention (RFDN): a cheap, strided branch that gates every pixel.

    Submodule names follow RFDN's so released checkpoints map one to one.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        f = channels // reduction
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=7, stride=3)
        v_range = F.relu(self.conv_max(v_max))
        c3 = F.relu(self.conv3(v_range))
        c3 = self.conv3_(c3)
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        return x * torch.sigmoid(self.conv4(c3 + cf))


def _esa_params(c_in: int, c_out: int, reduction: int = 4) -> int:
    f = c_in // reduction
    return (c_in * f + f) + (f * f + f) + 4 * (9 * f * f + f) + (f * c_in + c_in)


def _esa_madds(c_in: int, c_out: int, h: int, w: int, reduction: int = 4) -> int:
    f = c_in // reduction
    h2, w2 = (h - 3) // 2 + 1, (w - 3) // 2 + 1  # conv2: 3x3, stride 2, no padding
    h3, w3 = (h2 - 7) // 3 + 1, (w2 - 7) // 3 + 1  # max pool 7, stride 3
    # every conv has a bias: one add per output value
    full = (c_in * f + f * f + f * c_in + f + f + c_in) * h * w  # conv1, conv_f, conv4
    return full + (9 * f * f + f) * h2 * w2 + 3 * (9 * f * f + f) * h3 * w3  # conv2; conv_max, conv3, conv3_


@register_op(
    "esa", params=_esa_params, madds=_esa_madds, same_channels=True,
    check=lambda c_in, c_out, reduction=4: None if c_in >= reduction else f"needs at least {reduction} channels",
)
def esa(c_in: int, c_out: int, reduction: int = 4) -> nn.Module:
    """enhanced spatial attention (RFDN); needs inputs of at least 17x17"""
    return ESA(c_in, reduction)
