"""One writer per run directory: RUN/.lock, held with flock while a search or training writes.

    with hold_run("runs/a"):      # a second process gets one RunError naming this one's pid
        ...                       # check, create or resume the run, step, checkpoint

Two processes writing one run (a `--resume` while the search still runs, two searches given
the same --out) interleaved metrics and raced on the same temporary names. The kernel
releases an flock when its holder dies, however it dies, so a lock cannot outlive its process;
the file keeps the holder's pid, so a lock file whose lock is free was left by a process that
was killed, and taking it over says so. The file is removed when the holder ends normally.

POSIX only (fcntl): on Windows runs are not locked.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from nasflow.errors import NasflowWarning, RunError
from nasflow.runs.distributed import DistContext, on_main

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"

# Run directories this process holds: {resolved path: (fd, depth, folder made by the lock)}.
# Re-entrant, so a run resumed in the process that stopped it (tests, population) is no clash.
_held: dict[Path, tuple[int, int, bool]] = {}
_taken_over: set[Path] = set()  # held run directories whose lock a killed process had left


def holder(run_dir: str | Path) -> int | None:
    """The pid written in RUN/.lock (the holder's, or a killed holder's), None if none is."""
    try:
        return int((Path(run_dir) / LOCK).read_text().strip())
    except (OSError, ValueError):
        return None


def _try_lock(path: Path) -> int | None:
    """An fd holding the flock of `path` (created if missing), or None while another holds it.
    Retries when the file was replaced between open and lock (its holder ended and removed it),
    so two processes never hold locks on two files of one name."""
    assert fcntl is not None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def acquire(run_dir: str | Path, new: bool = True) -> None:
    """Hold RUN/.lock for this process (`new`: a run about to be made, RUN made if needed; else
    one to resume, not locked while RUN does not exist: opening it says so). A live holder:
    one RunError naming its pid. A lock file left by a killed process: taken over, with a
    warning."""
    path = Path(run_dir).resolve()
    if fcntl is None or (not new and not path.is_dir()):
        return
    if path in _held:
        fd, depth, made = _held[path]
        _held[path] = (fd, depth + 1, made)
        return
    if path.exists() and not path.is_dir():
        raise RunError(f"--out '{run_dir}' is a file; give a directory for the run")
    if new and path.is_dir() and not (path / LOCK).exists() and any(path.iterdir()):
        # A run already, or other files: the caller's check refuses it, and no lock file is left
        # there, so a lock file left behind always means a folder a nasflow run made.
        return
    made = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    fd = _try_lock(path / LOCK)
    if fd is None:
        pid = holder(path)
        who = f"pid {pid}" if pid is not None else "pid not yet written"
        stop = f" (kill {pid})" if pid is not None else ""
        raise RunError(f"run '{run_dir}' is being written by another process ({who}); wait for it to end or "
                       f"stop it{stop}, or write to another --out")
    try:
        stale = os.read(fd, 32).decode(errors="replace").strip()
        if stale and stale != str(os.getpid()):
            _taken_over.add(path)
            warnings.warn(NasflowWarning(
                f"run '{run_dir}': taking over the lock of process {stale}, which is no longer running (it was "
                "killed; its last checkpoint is kept)"), stacklevel=3)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException as exc:
        os.close(fd)
        (path / LOCK).unlink(missing_ok=True)  # a full disk: leave no lock (nor a folder it made) behind
        if made:
            with suppress(OSError):
                path.rmdir()
        if isinstance(exc, OSError) and exc.filename is None:  # pwrite names no file: say which
            raise OSError(exc.errno, exc.strerror, str(path / LOCK)) from exc
        raise
    _held[path] = (fd, 1, made)


def taken_over(run_dir: str | Path) -> bool:
    """Whether this process holds `run_dir` and took its lock over from a killed process: what
    else is there was written by that process (a run killed while being made has no config)."""
    return Path(run_dir).resolve() in _taken_over


def release(run_dir: str | Path) -> None:
    """Let go of RUN/.lock (the outermost hold removes the file, and RUN itself when the lock
    made it and nothing else was written there)."""
    path = Path(run_dir).resolve()
    if path not in _held:
        return
    fd, depth, made = _held[path]
    if depth > 1:
        _held[path] = (fd, depth - 1, made)
        return
    del _held[path]
    _taken_over.discard(path)
    try:
        (path / LOCK).unlink(missing_ok=True)  # before unlocking: a waiter then opens a new file
        if made and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def hold_run(run_dir: str | Path, ctx: DistContext | None = None, new: bool = True) -> Iterator[None]:
    """RUN/.lock held for the block by the process that writes the run (rank 0 under
    torchrun: a refusal there is raised on every rank). `new`: as acquire's."""
    main = ctx is None or ctx.is_main
    if ctx is None:
        acquire(run_dir, new)
    else:
        on_main(lambda: acquire(run_dir, new), ctx)
    try:
        yield
    finally:
        if main:
            release(run_dir)
