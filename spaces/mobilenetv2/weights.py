"""torchvision's MobileNetV2 state dict under nasflow's names (no torchvision import).

A model built from spaces/mobilenetv2/space.yaml with every value fixed (a derived
architecture, or `build_graph(space, values=...)`) has, per stage s, the first block `s<s>`
and the blocks after it `s<s>r0`, `s<s>r1`, ...; torchvision numbers the same modules
`features.0` (stem) to `features.<n + 1>` (the last conv) and names the classifier's linear
layer `classifier.1`. Below each module the names agree (nasflow.spaces.mobilenetv2.modules
lays the ops out as torchvision's), so the mapping renames prefixes only:

    model.load_state_dict(from_torchvision(torchvision_state, model.state_dict()))
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nasflow.errors import NasflowError

STAGES = range(2, 8)  # stages of `first` (+ `skip`) blocks; stage 1 is the t = 1 block


def blocks(names: Iterable[str]) -> list[str]:
    """The inverted residual blocks of stages 2-7, in order, of a model whose tensors are
    `names` (its state dict's keys)."""
    have = {n.split(".", 1)[0] for n in names}
    out: list[str] = []
    for s in STAGES:
        out.append(f"s{s}")
        i = 0
        while f"s{s}r{i}" in have:
            out.append(f"s{s}r{i}")
            i += 1
    return out


def prefixes(names: Iterable[str]) -> list[tuple[str, str]]:
    """(torchvision module, nasflow module) pairs for a model whose tensors are `names`."""
    names = list(names)
    pairs = [("features.0", "stem.op"), ("features.1.conv.0", "s1.dw.op"),
             ("features.1.conv.1", "s1.project.op.0"), ("features.1.conv.2", "s1.project.op.1")]
    f = 2
    for b in blocks(names):
        pairs += [(f"features.{f}.conv.0", f"{b}.expand.op"), (f"features.{f}.conv.1", f"{b}.dw.op"),
                  (f"features.{f}.conv.2", f"{b}.project.op.0"), (f"features.{f}.conv.3", f"{b}.project.op.1")]
        f += 1
    return pairs + [(f"features.{f}", "conv.op"), ("classifier", "head.op")]


def torchvision_name(name: str, pairs: list[tuple[str, str]]) -> str:
    """torchvision's name of nasflow tensor `name`."""
    for theirs, ours in pairs:
        if name.startswith(ours + "."):
            return theirs + name[len(ours):]
    raise NasflowError(f"tensor '{name}' has no torchvision counterpart")


def from_torchvision(state: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """torchvision's `state` under the names of `ours` (a nasflow model's state dict: its
    names tell the depths). Every tensor on both sides must be mapped, with one shape."""
    pairs = prefixes(ours)
    features = {k.split(".")[1] for k in state if k.startswith("features.")}
    mine = {theirs.split(".")[1] for theirs, _ in pairs if theirs.startswith("features.")}
    if len(features) != len(mine):
        raise NasflowError(f"torchvision's state has {len(features)} feature modules (features.0 .. "
                           f"features.{len(features) - 1}), nasflow's model {len(mine)}: the depths differ")
    out: dict[str, Any] = {}
    for name, mine in ours.items():
        theirs = torchvision_name(name, pairs)
        if theirs not in state:
            raise NasflowError(f"torchvision's state has no '{theirs}' (nasflow's '{name}'): the depths differ")
        if tuple(state[theirs].shape) != tuple(mine.shape):
            raise NasflowError(f"'{theirs}' is {tuple(state[theirs].shape)} in torchvision's state but nasflow's "
                               f"'{name}' is {tuple(mine.shape)}: the widths, kernels or expansions differ")
        out[name] = state[theirs]
    extra = sorted(set(state) - {torchvision_name(n, pairs) for n in ours})
    if extra:
        raise NasflowError(f"torchvision's state has {len(extra)} tensor(s) nasflow's model lacks, e.g. '{extra[0]}'")
    return out
