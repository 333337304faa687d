"""A relaxation that fixes every decision's weights to given options (value 1, else exactly 0).

`sparse=True`: the supernet runs only those options (value decisions sliced to their values);
`sparse=False`: it computes every option with these weights (value decisions masked)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nasflow.compile.relaxation import Relaxation


class OneHot(Relaxation):
    def __init__(self, picks: dict[str, int | list[int]], sparse: bool = True) -> None:
        self.picks, self.sparse = picks, sparse  # type: ignore[misc]

    def __call__(self, arch: Any) -> dict[str, Tensor]:
        out = {}
        for label, d in arch.decisions.items():
            w = torch.zeros(len(d.options))
            w[self.picks[label]] = 1.0
            out[label] = w
        return out
