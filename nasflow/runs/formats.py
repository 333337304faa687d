"""File format versions: run directories (config.json), checkpoints (their state) and model
directories (meta.json) carry `"format": FORMAT`, and what an older nasflow wrote is migrated
on load, so a long search started on an older release resumes and derives, and its models
load, after the formats change.

Format 0 is everything written before versions existed (no `format` field); format 1 is the
same files with the field. A change to what a file holds bumps FORMAT and registers, for
each kind of file it touches, the step from the previous format:

    @migration("search config", 1)        # format 1 -> 2
    def _move_lam(data: dict) -> dict: ...

Kinds and what their migrations take and return:
    "search config", "train config"   the config.json dict, "format" removed
    "checkpoint"                      (tensors, state) of any checkpoint or snapshot file
    "model meta"                      the meta.json dict, "format" removed
    "model weights"                   a model directory's weights (a state dict)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from nasflow.errors import CheckpointError

FORMAT = 1  # what this nasflow writes
KEY = "format"  # the field that holds it

P = TypeVar("P")
Migration = Callable[[Any], Any]
MIGRATIONS: dict[str, dict[int, Migration]] = {}  # kind -> {from format: step to the next}


def migration(kind: str, from_format: int) -> Callable[[Migration], Migration]:
    """Register the step that brings a `kind` file from `from_format` to the next format."""
    def register(fn: Migration) -> Migration:
        steps = MIGRATIONS.setdefault(kind, {})
        if from_format in steps:
            raise ValueError(f"a {kind} migration from format {from_format} is already registered")
        steps[from_format] = fn
        return fn
    return register


def read_version(data: dict[str, Any], where: str) -> int:
    """Remove and return `data`'s format (0 when absent); refuse one this nasflow cannot read."""
    version = data.pop(KEY, 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(f"'{where}' has format {version!r}, not a format number; it was not "
                              "written by nasflow, or was edited")
    if version > FORMAT:
        raise CheckpointError(f"'{where}' was written by a newer nasflow (format {version}; this one "
                              f"reads formats 0 to {FORMAT}); upgrade nasflow to read it")
    return version


def migrate(kind: str, version: int, payload: P, *, to: int = FORMAT,
            migrations: dict[str, dict[int, Migration]] | None = None) -> P:
    """`payload` of a `kind` file at format `version`, brought to format `to` step by step
    (a format with no step registered for this kind left it unchanged)."""
    steps = (MIGRATIONS if migrations is None else migrations).get(kind, {})
    for v in range(version, to):
        if v in steps:
            payload = steps[v](payload)
    return payload


def stamped(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with this nasflow's format first, as it is written."""
    return {KEY: FORMAT, **{k: v for k, v in data.items() if k != KEY}}
