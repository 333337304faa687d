"""MobileNetV2's own architectures as value assignments of spaces/mobilenetv2/space.yaml.

torchvision's `mobilenet_v2(width_mult=m)` is the space's architecture with kernel 3 in
every stage, expansion 6 in stages 2-7 (stage 1's t = 1 is fixed in the space), the depths
(1, 2, 3, 4, 3, 3, 1) and the widths its multiplier m gives: each of MobileNetV2's channel
counts (32 for the stem, then 16, 24, 32, 64, 96, 160, 320) times m, rounded to the nearest
multiple of 8, at least 8, and raised by 8 where rounding lost more than 10% (the last conv
keeps 1280 below m = 1). The width lists are written out here, not computed; a test checks
them against the rounding rule, and tests/mobilenetv2/test_reference.py checks every tensor
shape of the built models against torchvision's.

    from nasflow import Space, build_graph
    graph = build_graph(Space.from_yaml("spaces/mobilenetv2/space.yaml"), values=values(1.0))

Pure Python: importable where torch is not.
"""
from __future__ import annotations

# Stem, then stages 1-7: the widths at each width multiplier.
WIDTHS: dict[float, tuple[int, ...]] = {
    0.5: (16, 8, 16, 16, 32, 48, 80, 160),
    0.75: (24, 16, 24, 24, 48, 72, 120, 240),
    1.0: (32, 16, 24, 32, 64, 96, 160, 320),
}
DEPTHS = (1, 2, 3, 4, 3, 3, 1)  # blocks per stage 1..7 (MobileNetV2's n)
EXPANSION, KERNEL = 6, 3  # MobileNetV2's t (stages 2-7) and depthwise kernel
SEARCHED_DEPTHS = range(2, 7)  # stages whose depth is a value decision (D2..D6)


def values(width_mult: float) -> dict[str, int]:
    """The value decisions that give torchvision's mobilenet_v2(width_mult=width_mult)."""
    if width_mult not in WIDTHS:
        raise ValueError(f"width_mult {width_mult} is not one of {sorted(WIDTHS)}")
    out = {f"W{s}": w for s, w in enumerate(WIDTHS[width_mult])}
    out.update({f"K{s}": KERNEL for s in range(1, 8)})
    out.update({f"E{s}": EXPANSION for s in range(2, 8)})
    out.update({f"D{s}": DEPTHS[s - 1] for s in SEARCHED_DEPTHS})
    return out
