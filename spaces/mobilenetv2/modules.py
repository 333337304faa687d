"""The torch modules of the MobileNetV2 ops (their specs and exact costs:
nasflow.spaces.mobilenetv2.ops). Imported only when a model is built. Every factory takes
(c_in, c_out, **args) with exactly the args its spec declares.

The modules are laid out as torchvision's (`torchvision.models.mobilenetv2`): a conv with
BatchNorm and ReLU6 is a Sequential (conv, bn, relu6), so its tensors are `0.weight`,
`1.weight`, `1.bias`, `1.running_mean`, ... as torchvision's `Conv2dNormActivation`; the
classifier is a Sequential (dropout, linear) with the pooling in its forward, as
torchvision's `classifier`. Its weights then load by renaming prefixes only
(nasflow.spaces.mobilenetv2.weights).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv(c_in: int, c_out: int, k: int, stride: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False)


def conv_bn_relu6(c_in: int, c_out: int, k: int = 1, stride: int = 1) -> nn.Module:
    return nn.Sequential(_conv(c_in, c_out, k, stride), nn.BatchNorm2d(c_out), nn.ReLU6())


def conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1) -> nn.Module:
    return nn.Sequential(_conv(c_in, c_out, k, stride), nn.BatchNorm2d(c_out))


def dw_bn_relu6(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Module:
    return nn.Sequential(_conv(c_in, c_in, k, stride, groups=c_in), nn.BatchNorm2d(c_in), nn.ReLU6())


class Classifier(nn.Sequential):
    """Global average pooling, then (dropout, linear): N x C x H x W -> N x classes."""

    def __init__(self, c_in: int, classes: int, dropout: float) -> None:
        super().__init__(nn.Dropout(p=dropout), nn.Linear(c_in, classes))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def classifier(c_in: int, c_out: int, dropout: float = 0.2) -> nn.Module:
    return Classifier(c_in, c_out, dropout)
