"""Search speed levers that wrap the model and the loss, leaving the search itself alone.

- channels_last: the supernet's weights, and every 4-D tensor of a batch, in NHWC memory
  order. oneDNN's CPU convolutions (depthwise ones above all) run about twice as fast so;
  values are the same up to float rounding.
- bf16 autocast: the loss (forward and so backward) under torch.autocast(bfloat16); weights,
  optimizer state and arch params stay fp32. It changes the numbers (bf16 has 8 bits of
  mantissa), so it is an option, off by default, and the bench reports the loss change.
- keep freed memory (CPU, glibc): see `keep_freed_memory`.

They apply through `prepare_model`, `wrap_loss` and `keep_freed_memory`, so the strategies
need not know of them.
"""
from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nasflow.errors import NasflowError

AMP_MODES = ("none", "bf16")


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """None means auto: on for the CPU, where it measured faster (bench/speed.py)."""
    return device.type == "cpu" if setting is None else setting


def to_channels_last(batch: Any) -> Any:
    """Every 4-D tensor of a batch (tensor, dict, list, tuple) in channels-last order."""
    if isinstance(batch, Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch
    if isinstance(batch, dict):
        return {k: to_channels_last(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_channels_last(v) for v in batch)
    return batch


def prepare_model(model: nn.Module, channels_last: bool) -> nn.Module:
    """The model in the memory format the search runs it in (in place, returned)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def keep_freed_memory(device: torch.device) -> bool:
    """On the CPU, keep the memory a step frees in the process for the next step.

    A step frees GBs of activations. glibc's malloc gives blocks of a few MB back to the OS
    (mmap / heap trim), so the next step page-faults them in again, zeroed: ~300k faults,
    ~8% of a DLSR search step (bench/speed.py, 2 threads). Raising the mmap threshold to
    its maximum (32 MiB) and the trim threshold to 1 GiB keeps them, as jemalloc or tcmalloc
    would (PyTorch's CPU tuning guide suggests those); peak RSS moved by under 1%.
    Process-wide and idempotent; False where it does not apply (not the CPU, not glibc).
    """
    if device.type != "cpu" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


LossFn = Callable[[nn.Module, Any], tuple[Tensor, dict[str, float]]]


def wrap_loss(loss_fn: LossFn, *, channels_last: bool, amp: str, device: torch.device) -> LossFn:
    """`loss_fn` with the batch moved to channels-last and the forward under autocast."""
    if amp not in AMP_MODES:
        raise NasflowError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if not channels_last and amp == "none":
        return loss_fn

    def loss(model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        if channels_last:
            batch = to_channels_last(batch)
        if amp == "none":
            return loss_fn(model, batch)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            total, terms = loss_fn(model, batch)
        # The optimizers and the arch gradient work in fp32.
        return total.float(), terms

    return loss
