"""What the sampling strategies (GDAS, SPOS, DrNAS) share: their own random generator.

Draws come from a generator the strategy owns, seeded from the run's seed and saved in its
state: a resumed run draws what an uninterrupted one would, and every process of a
distributed run (seeded alike) draws the same samples, so the arch stays identical on all.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class OwnGenerator:
    """A torch.Generator seeded from `seed`, with Gumbel noise and uniform draws from it."""

    def __init__(self, seed: int) -> None:
        # Offset so the draws are not the global RNG's (seeded with the same number).
        self.generator = torch.Generator().manual_seed(seed + 0x5EED)

    def gumbel(self, like: Tensor) -> Tensor:
        """Gumbel(0, 1) noise shaped like `like`: -log(E), E ~ Exp(1)."""
        e = torch.empty(like.shape, dtype=torch.float64).exponential_(generator=self.generator)
        return (-e.log()).to(like.device, like.dtype)

    def choose(self, n: int, k: int) -> list[int]:
        """k distinct indices of n, uniformly."""
        return torch.randperm(n, generator=self.generator)[:k].tolist()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
