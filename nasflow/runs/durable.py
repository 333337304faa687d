"""Durable replacement of a file: the one way run, checkpoint and model files reach disk.

A temporary file moved into place with os.replace is atomic (a reader sees the old file or
the new one) but not durable: after a power loss the rename may be on disk while the data it
names is not. So the temporary file is fsynced before the rename, and its directory after it
(the directory entry is what the rename changed).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """fsync a directory, where the platform allows it (Windows cannot open a directory)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """Move the written file `tmp` onto `path` so that both its data and its name survive a crash."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent if str(path.parent) else Path("."))


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` to a temporary name beside `path`, then replace `path` with it durably;
    a failed write leaves the previous file and no partial one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        replace_durably(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
