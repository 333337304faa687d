"""Durable replacement of a file: the one way run, checkpoint and model files reach disk.

A temporary file moved into place with os.replace is atomic (a reader sees the old file or
the new one) but not durable: after a power loss the rename may be on disk while the data it
names is not. So the temporary file is fsynced before the rename, and its directory after it
(the directory entry is what the rename changed).
"""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


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
        try:
            write(tmp)
            replace_durably(tmp, path)
        except OSError as exc:
            if exc.filename is not None or exc.errno is None:  # named already, or not a system error
                raise
            # A write, flush or fsync that fails names no file (a full disk: "[Errno 28] No
            # space left on device"): the one line must say which one.
            raise OSError(exc.errno, exc.strerror, str(tmp)) from exc
        except Exception as exc:  # a writer outside Python's io (safetensors: SafetensorError)
            code = next((c for c, text in _IO_TEXTS.items() if text in str(exc)), None)
            if code is None:
                raise
            raise OSError(code, os.strerror(code), str(tmp)) from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


_IO_TEXTS = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
             errno.EROFS: "Read-only file system", errno.EACCES: "Permission denied"}
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _human(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


class WriteFailure(NamedTuple):
    """A file-system failure a user can fix, in parts: what failed ("no space left on the disk
    writing 'X' (...)", "cannot write 'X': the file system is read-only") and the remedy ("free
    some space", "make 'D' writable, ..."). A command that runs several things (a sweep, a
    population) says what failed for each, the remedy once, and what it kept."""

    what: str
    remedy: str
    disk_full: bool  # else read-only or forbidden
    run: Path | None = None  # the run directory the failed file belongs to, if any

    @property
    def line(self) -> str:
        """The one line of a single command."""
        if self.disk_full:
            again = (f"continue the run with --resume --out {self.run} (from its last checkpoint)"
                     if self.run is not None else "run the command again")
            return (f"{self.what}: what was written before is kept whole (files are replaced only once written); "
                    f"{self.remedy} and {again}")
        return f"{self.what}; {self.remedy}"


def _run_of(path: Path) -> Path | None:
    """The run directory (a search's or a training's, its config.json written) whose own file
    `path` is: in it, or in its snapshots/, best/ or model/. None for anything else (a derived
    architecture in RUN/derived is not the run's; the same command makes it again)."""
    folder = path.parent.parent if path.parent.name in ("snapshots", "best", "model") else path.parent
    return folder if (folder / "config.json").is_file() else None


def write_failure(exc: BaseException) -> WriteFailure | None:
    """`exc` as a WriteFailure, or None when it is not one (not ours to explain)."""
    if not isinstance(exc, OSError) or exc.errno not in _WRITE_ERRORS:
        return None
    if not exc.filename:  # a write, flush or close that failed names no file; nasflow's own writes name it
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return None
        return WriteFailure("no space left on the disk writing a file this command writes (--debug shows which)",
                            "free some space", True)
    path = Path(os.fsdecode(exc.filename))
    # write_atomic's temporary name '.NAME.tmp' stands for NAME
    replacing = path.name.startswith(".") and path.name.endswith(".tmp")
    target = path.with_name(path.name[1:-4]) if replacing else path
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = next((p for p in [target, *target.parents] if p.exists()), Path("."))
        free = shutil.disk_usage(folder).free
        # the size of the file it replaces is what the new one needs (not so for an appended log)
        last = f"; the last one took {_human(target.stat().st_size)}" if replacing and target.is_file() else ""
        return WriteFailure(f"no space left on the disk writing '{target}' ({_human(free)} free there{last})",
                            "free some space", True, _run_of(target))
    reason = "the file system is read-only" if exc.errno == errno.EROFS else "permission denied"
    if path.exists() and not os.access(path, os.R_OK):
        return WriteFailure(f"cannot read '{path}': {reason}", "make it readable", False)
    return WriteFailure(f"cannot write '{target}': {reason}", f"make '{target.parent}' writable, or write somewhere "
                        "else (--out / -o, or copy the folder first)", False)


def explain_os_error(exc: OSError) -> str | None:
    """One line for a file-system failure a user can fix (a full disk, a read-only or
    forbidden folder), naming the path and what was being written; None for other errors.
    The command-line boundary prints it instead of a traceback (nasflow.cli.app.run)."""
    failure = write_failure(exc)
    return failure.line if failure is not None else None
