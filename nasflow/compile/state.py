"""How a compiled model's tensors are named: its weights, and its architecture parameters
under the `arch` submodule (`arch.alpha.<label>`, `arch.beta.<label>`), in a state dict and
in a checkpoint (where the weights sit under `weights.`). The one place that knows these
prefixes: everything that splits or joins them calls this module.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

ARCH = "arch"  # the model's submodule holding the architecture parameters
WEIGHTS = "weights"  # the prefix of the weights in a checkpoint file

V = TypeVar("V")


def arch_key(label: str) -> str:
    """A decision label as a ParameterDict key: those cannot hold '.', which block paths use."""
    return label.replace(".", "/")


def arch_param_name(kind: str, label: str) -> str:
    """The state-dict name of a decision's logits: `arch.alpha.mrb1`, `arch.beta.cell3_in`."""
    return f"{ARCH}.{kind}.{arch_key(label)}"


def is_arch(name: str) -> bool:
    """Is this state-dict (or parameter) name one of the architecture parameters?"""
    return name.startswith(ARCH + ".")


def split_state(state: Mapping[str, V]) -> tuple[dict[str, V], dict[str, V]]:
    """(weights, arch) of a model's state dict (or named parameters), names unchanged."""
    weights = {k: v for k, v in state.items() if not is_arch(k)}
    arch = {k: v for k, v in state.items() if is_arch(k)}
    return weights, arch


def arch_names(names: Iterable[str]) -> list[str]:
    return [n for n in names if is_arch(n)]


def to_checkpoint(state: Mapping[str, V]) -> dict[str, V]:
    """A model's state dict as a checkpoint file holds it: weights under `weights.`, the
    architecture parameters under their own names."""
    weights, arch = split_state(state)
    return {**{f"{WEIGHTS}.{k}": v for k, v in weights.items()}, **arch}


def from_checkpoint(tensors: Mapping[str, V]) -> tuple[dict[str, V], dict[str, V]]:
    """(weights, arch) as the model names them, from a checkpoint's (or a snapshot's)
    tensors; other entries are left out."""
    prefix = WEIGHTS + "."
    weights = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    return weights, {k: v for k, v in tensors.items() if is_arch(k)}
