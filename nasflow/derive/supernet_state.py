"""The supernet's state dict as weight inheritance reads it: a tensor the derived model has
and the supernet lacks because the search ran that norm without affine parameters (DARTS
searches `affine: false` and retrains `affine: true`) is the identity affine (weight 1, bias
0), so the derived model computes what the supernet computed; any other missing tensor is
one clear error instead of a KeyError.
"""
from __future__ import annotations

import torch
from torch import Tensor

from nasflow.errors import NasflowError

# affine parameter -> what makes it the identity
_IDENTITY = {"weight": torch.ones_like, "bias": torch.zeros_like}


class SupernetState(dict[str, Tensor]):
    """A supernet state dict whose missing norm affine parameters read as the identity.

    A norm without affine parameters is recognised by its running statistics: the supernet
    holds `PREFIX.running_mean` but no `PREFIX.weight`. A norm that tracks no statistics and
    has no affine leaves nothing in the state dict to recognise, so it is not covered."""

    def __missing__(self, key: str) -> Tensor:
        prefix, _, name = key.rpartition(".")
        stats = self.get(f"{prefix}.running_mean")
        if name in _IDENTITY and stats is not None and f"{prefix}.weight" not in self:
            return _IDENTITY[name](stats)
        raise NasflowError(f"the supernet has no tensor '{key}' for the derived model: "
                           "the weights are not from this architecture's supernet")
