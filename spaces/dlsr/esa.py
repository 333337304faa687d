"""RFDN's enhanced spatial attention as a torch module: the factory of the DLSR instance's
`esa` op (its spec, with the exact cost: nasflow.spaces.dlsr.ops). Imported only when a model
is built."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ESA(nn.Module):
    """Enhanced spatial attention (RFDN): a cheap, strided branch that gates every pixel.

    Submodule names follow RFDN's so released checkpoints map one to one.
    """

    def __init__(self, channels: int, reduction: int = 4, f: int = 0) -> None:
        super().__init__()
        f = f or channels // reduction  # the inner width: RFDN's is a quarter of the channels
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


def esa(c_in: int, c_out: int, reduction: int = 4, f: int = 0) -> nn.Module:
    return ESA(c_in, reduction, f)
