"""Limits on what nasflow reads and builds from files that other people send: checked
before anything is allocated, each breach one LimitError naming the limit, the value met and
the environment variable that raises it (docs/howto/limits.md lists them).

A small file must not eat the machine: a YAML alias bomb of a few hundred bytes expands to a
billion nodes, blocks nested thousands deep overflow Python's stack, `--set channels=100000`
asks for hundreds of gigabytes of weights, and a PNG header may claim 20000 x 20000 pixels.
Each is refused here, from counts and headers, before it is expanded, built or decoded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nasflow.errors import NasflowError

__all__ = ["LIMITS", "Limit", "LimitError", "available_memory", "check", "check_memory", "human_bytes", "value"]


class LimitError(NasflowError, ValueError):
    """Input that would exceed one of nasflow's resource limits (see LIMITS)."""


@dataclass(frozen=True)
class Limit:
    name: str
    env: str  # the environment variable that sets it
    default: int
    unit: str  # what it counts, for messages and the docs


LIMITS: dict[str, Limit] = {lim.name: lim for lim in [
    Limit("space_bytes", "NASFLOW_MAX_SPACE_BYTES", 16 << 20, "bytes"),
    Limit("yaml_depth", "NASFLOW_MAX_YAML_DEPTH", 64, "levels of nesting (YAML mappings and lists)"),
    Limit("yaml_nodes", "NASFLOW_MAX_YAML_NODES", 200_000,
          "values once its aliases (*name) are expanded"),
    Limit("block_depth", "NASFLOW_MAX_BLOCK_DEPTH", 32, "levels of blocks inside blocks"),
    Limit("nodes", "NASFLOW_MAX_NODES", 100_000, "nodes once blocks and stacks are expanded"),
    Limit("image_pixels", "NASFLOW_MAX_IMAGE_PIXELS", 200_000_000, "pixels (width x height of one image)"),
]}


def value(name: str) -> int:
    """The limit's value: its environment variable if set (a positive integer), else the default."""
    lim = LIMITS[name]
    text = os.environ.get(lim.env, "").strip()
    if not text:
        return lim.default
    try:
        n = int(text.replace("_", ""))
    except ValueError:
        n = 0
    if n < 1:
        raise NasflowError(f"{lim.env}={text!r} must be a positive integer (the limit on {lim.unit}; "
                           f"default {lim.default:,})")
    return n


def check(name: str, n: int, subject: str, at_least: bool = False) -> None:
    """Raise LimitError when `n` exceeds the limit `name`; `subject` says what was counted,
    e.g. "the YAML document"; `at_least`: counting stopped at n."""
    lim = LIMITS[name]
    top = value(name)
    if n > top:
        raise LimitError(f"{subject} has {n:,}{' or more' if at_least else ''} {lim.unit}, over the limit of {top:,}; if it is "
                         f"meant to be this large, raise the limit: {lim.env}={_suggest(n)}")


def _suggest(n: int) -> int:
    """A round number above n."""
    step = 10 ** max(len(str(n)) - 1, 0)
    return (n // step + 1) * step


# --- memory --------------------------------------------------------------------------
MEMORY_ENV = "NASFLOW_MAX_MEMORY"  # GB the memory check allows instead of what is available


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KB"


def available_memory() -> int | None:
    """Bytes this process may still take: MemAvailable, lowered by a cgroup's limit; None
    where neither can be read (the check is then skipped)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            room = max(int(text) - used, 0)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def check_memory(needed: int, subject: str, fix: str) -> None:
    """Raise LimitError when `needed` bytes exceed the memory available (or NASFLOW_MAX_MEMORY
    GB when set). `subject` says what needs it, `fix` how to need less."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        try:
            allowed: int | None = int(float(text) * (1 << 30))
        except ValueError:
            raise NasflowError(f"{MEMORY_ENV}={text!r} must be a number of GB") from None
        where = f"{MEMORY_ENV} allows {human_bytes(allowed)}"
    else:
        allowed = available_memory()
        where = f"this machine has {human_bytes(allowed)} available" if allowed is not None else ""
    if allowed is None or needed <= allowed:
        return
    raise LimitError(f"{subject} needs ~{human_bytes(needed)}; {where}: {fix} (or, if it does fit, "
                     f"say how much may be used: {MEMORY_ENV}=<GB>)")
