"""Shared by the step-fidelity tests and their fixture generators (tests/fixtures/step_fidelity/):
the initial weights as a function of each weight's nasflow name and shape, so a fixture stores
only the batch, the arch params and the parameters after the step, and the reference and
nasflow start from identical tensors without storing them."""
from __future__ import annotations

import zlib
from pathlib import Path

import torch
from torch import Tensor

FIXTURES = Path(__file__).parent / "fixtures" / "step_fidelity"


def seeded_weight(name: str, shape: tuple[int, ...]) -> Tensor:
    """A float32 tensor drawn from a generator seeded by the name's CRC-32: a conv or linear
    weight ~ N(0, 1 / fan_in), a BatchNorm scale 1 + N(0, 0.01), any other vector (biases,
    BatchNorm shifts) N(0, 0.01). Depends on nothing but (name, shape)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if len(shape) > 1:
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d
        return (x / fan_in ** 0.5).float()
    if name.endswith(".weight"):  # a norm layer's scale
        return (1.0 + 0.1 * x).float()
    return (0.1 * x).float()


def seeded_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    return {name: seeded_weight(name, shape) for name, shape in shapes.items()}


def max_differences(got: dict[str, Tensor], want: dict[str, Tensor]) -> dict[str, float]:
    """max |got - want| per name of `want`; every name must be in `got` with the same shape."""
    missing = sorted(set(want) - set(got))
    assert not missing, f"not in nasflow's model: {missing[:5]}"
    out = {}
    for name, w in want.items():
        g = got[name]
        assert g.shape == w.shape, f"{name}: {tuple(g.shape)} vs the reference's {tuple(w.shape)}"
        out[name] = float((g.double() - w.double()).abs().max()) if w.numel() else 0.0
    return out
