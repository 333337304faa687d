"""The smallest input a compiled model (or supernet) runs on, found from its own layers
without computing anything: the model runs on meta tensors (shapes only, no memory), so an
image smaller than the model's receptive field (a 1 x 1 image to `upscale`, a tiny image in
an `eval --bench` folder, `profile --size 2x2`) is one error naming the smallest size, not
a conv's, a pooling's or onnxruntime's error from inside the run.
"""
from __future__ import annotations

import itertools
import weakref

import torch
from torch import nn
from torch.func import functional_call

from nasflow.errors import NasflowError

__all__ = ["check_input_size", "runs_at", "smallest_side"]

_LARGEST = 512  # sides probed; a model that needs more is not refused here (its own error says)
_runs: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()  # a side that ran
_cache: weakref.WeakKeyDictionary[nn.Module, int | None] = weakref.WeakKeyDictionary()


def _channels(model: nn.Module) -> int | None:
    graph = getattr(model, "graph", None)
    if graph is None or len(graph.inputs) != 1:
        return None
    return int(graph.nodes[graph.inputs[0]].c_out)


def runs_at(model: nn.Module, h: int, w: int) -> bool:
    """Whether `model` takes a 1 x C x h x w input (checked on meta tensors: no memory, no compute)."""
    channels = _channels(model)
    if channels is None:
        return True
    state = {n: torch.empty_like(t, device="meta")
             for n, t in itertools.chain(model.named_parameters(), model.named_buffers())}
    try:
        with torch.no_grad():
            functional_call(model, state, (torch.empty(1, channels, h, w, device="meta"),))
    except (RuntimeError, ValueError, IndexError) as exc:
        return not _too_small(exc)
    except Exception:  # noqa: BLE001 - an op meta tensors cannot run: no answer, no refusal
        return True
    return True


# What torch says when an input is below a layer's window (conv, pooling, a reflection pad);
# any other failure on meta tensors (a sampled path reading its weights with .item() or
# .tolist(), which meta tensors cannot answer) is no answer, and refuses nothing.
_TOO_SMALL = ("kernel size can't be greater than actual input size", "output size is too small",
              "padding size should be less than", "input size", "output size", "non-positive")


def _too_small(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in _TOO_SMALL) and "meta" not in text


def smallest_side(model: nn.Module) -> int | None:
    """The smallest s such that the model takes an s x s input (None: no such s up to 512,
    or the model cannot be probed), by bisection: inputs below a model's receptive field
    fail, larger ones run."""
    if model not in _cache:
        if not runs_at(model, _LARGEST, _LARGEST):
            _cache[model] = None
        else:
            lo, hi = 0, _LARGEST  # lo fails (or is 0), hi runs
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if runs_at(model, mid, mid) else (mid, hi)
            _cache[model] = hi
    return _cache[model]


def check_input_size(model: nn.Module, h: int, w: int, what: str, fix: str = "") -> None:
    """One NasflowError when `model` cannot take an h x w input: `what` names the input
    ("image photo.png (1 x 1)"), `fix` says what to do instead. One probe per new size; none
    for a size at least as large on both sides as one that ran."""
    ok = _runs.get(model)
    if ok is not None and min(h, w) >= ok:
        return
    if runs_at(model, h, w):
        _runs[model] = min(h, w) if ok is None else min(ok, h, w)
        return
    side = smallest_side(model)
    at_least = f"at least {side} x {side} pixels" if side is not None else "a larger input"
    space = getattr(getattr(model, "graph", None), "space", None)
    label = f"model '{space.name}'" if space is not None else "the model"
    raise NasflowError(f"{what} is smaller than {label} can take: its layers need {at_least}"
                       f"{'; ' + fix if fix else ''}")
