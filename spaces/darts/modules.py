"""The torch modules of the DARTS ops (their specs and exact costs: nasflow.spaces.darts.ops).
Imported only when a model is built, so checking or costing a DARTS space never imports torch.
Every factory takes (c_in, c_out, **args) with exactly the args its spec declares."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.errors import NasflowError


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


def relu_conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1, affine: bool = True) -> nn.Module:
    return ReLUConvBN(c_in, c_out, k, stride, 1, False, affine)


def _sep(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        return nn.Sequential(ReLUConvBN(c_in, c_in, k, stride, 1, True, affine),
                             ReLUConvBN(c_in, c_out, k, 1, 1, True, affine))

    return factory


def _dil(k: int) -> Callable[..., nn.Module]:
    def factory(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        return ReLUConvBN(c_in, c_out, k, stride, 2, True, affine)

    return factory


sep_conv_3x3, sep_conv_5x5 = _sep(3), _sep(5)
dil_conv_3x3, dil_conv_5x5 = _dil(3), _dil(5)


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


def factorized_reduce(c_in: int, c_out: int, affine: bool = True) -> nn.Module:
    return FactorizedReduce(c_in, c_out, affine)


def skip_connect(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c_in, c_out, affine)


# --- zero and pooling --------------------------------------------------------------------
class Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


def zero(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    return Zero(stride)


def _pool(kind: str) -> Callable[..., nn.Module]:
    # DARTS' search network follows each pooling candidate with a BatchNorm without affine;
    # its evaluation network has none. `affine: false` is the search setting of every op
    # here, so it also adds that BatchNorm (no parameters); `affine: true` has none.
    def factory(c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        pool: nn.Module = (nn.MaxPool2d(3, stride, padding=1) if kind == "max"
                           else nn.AvgPool2d(3, stride, padding=1, count_include_pad=False))
        return pool if affine else nn.Sequential(pool, nn.BatchNorm2d(c_in, affine=False))

    return factory


max_pool_3x3, avg_pool_3x3 = _pool("max"), _pool("avg")


# --- stem and classifier -----------------------------------------------------------------
def conv_bn(c_in: int, c_out: int, k: int = 3, affine: bool = True) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class Classifier(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.pool(x).flatten(1))


def classifier(c_in: int, c_out: int) -> nn.Module:
    return Classifier(c_in, c_out)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary head: ReLU, 5x5 average pooling (stride 3 on CIFAR's 8x8, 2 on
    ImageNet's 7x7) to 2x2, 1x1 conv to 128 + BN + ReLU, 2x2 conv to 768 + BN + ReLU, linear."""

    def __init__(self, c_in: int, classes: int, stride: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=stride, padding=0, count_include_pad=False),
            nn.Conv2d(c_in, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(768, classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.features(x)
        if out.shape[2:] != (1, 1):
            raise NasflowError(f"darts_aux_head takes the {5 + self.features[1].stride}x"
                             f"{5 + self.features[1].stride} maps of 2/3 depth (8x8 on 32x32 CIFAR "
                             f"images with stride 3), got {tuple(x.shape[2:])}")
        return self.classifier(out.flatten(1))


def aux_head(c_in: int, c_out: int, stride: int = 3) -> nn.Module:
    """DARTS' auxiliary classifier (training only: a space's `auxiliary:` output): N x C x 8 x 8 -> N x classes"""
    return AuxiliaryHead(c_in, c_out, stride)
